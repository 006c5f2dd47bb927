"""The EMS training config: one YAML per model (``mosecrot/ems/configs/NAME.yaml`` or a path).

Everything that decides a trained EMS encoder is here (languages, data exclusions, tokenizer, model
size, losses, optimisation); the resolved form is saved inside every checkpoint, and its fingerprint
ties a checkpoint to the tokenizer and data it was trained with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mosecrot.cache import stable_hash
from mosecrot.configschema import (
    apply_overrides,
    apply_settings,
    field_type,
    from_dict,
    interpolate,
    named_config_path,
    read_yaml,
    to_dict,
    unwrap_optional,
)
from mosecrot.data_config import BibleConfig
from mosecrot.errors import InputError

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"

# Scale presets (layers, d_model, heads, ffn). "paper" is the reference model (Mao et al. 2024).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"layers": 1, "d_model": 32, "heads": 2, "ffn": 64},  # tests
    # 2 x 128: at equal CPU time, pairs seen per language limit retrieval more than width does (GPU study at
    # the 30-min CPU step budget: 2 x 128 at batch 128 / lr 2e-3 reached top-1 .49 where 2 x 256 reached .26).
    "cpu": {"layers": 2, "d_model": 128, "heads": 4, "ffn": 512},  # trains in <= 30 min on 2 cores
    "paper": {"layers": 6, "d_model": 1024, "heads": 16, "ffn": 4096},
}


@dataclass
class BibleGenreExclusion:
    """A bible-genre selection whose dev/test verses must stay out of EMS training. A larger
    ``per_class`` only adds verses to a split, so generous sizes cover every smaller experiment."""

    seed: int = 13
    per_class: dict[str, int] = field(default_factory=lambda: {"dev": 100, "test": 200})


@dataclass
class EMSDataConfig:
    sampling_temperature: float = 5.0  # language sampling q_L ∝ n_L^(1/T): 1 = proportional, large = uniform
    retrieval_test_size: int = 1000  # held-out verse pairs per language (retrieval evaluation)
    retrieval_seed: int = 0
    max_pairs_per_language: int | None = None  # null: every remaining verse pair
    taxi1500_path: str | None = "${data_dir}/taxi1500"  # all its verses are excluded when present
    # Tatoeba test pairs (LASER layout) for `mosecrot ems eval --benchmark tatoeba`; evaluation only
    tatoeba_path: str | None = "${data_dir}/tatoeba"
    bible_genre: list[BibleGenreExclusion] = field(default_factory=lambda: [BibleGenreExclusion()])
    exclude_ids: list[str] = field(default_factory=list)  # more verse ids to keep out of training
    length_pool: int = 8  # batches of similar-length pairs from a random pool of length_pool x batch; 1 = off

    def validate(self, prefix: str = "data") -> None:
        if self.sampling_temperature <= 0:
            raise InputError("must be positive", key=f"{prefix}.sampling_temperature")
        if self.retrieval_test_size < 1:
            raise InputError("must be >= 1", key=f"{prefix}.retrieval_test_size")
        if self.length_pool < 1:
            raise InputError("must be >= 1 (1: no length grouping)", key=f"{prefix}.length_pool")
        if self.max_pairs_per_language is not None and self.max_pairs_per_language < 1:
            raise InputError("must be >= 1 or null", key=f"{prefix}.max_pairs_per_language")


@dataclass
class EMSTokenizerConfig:
    vocab_size: int = 16000
    model_type: Literal["bpe", "unigram"] = "bpe"
    character_coverage: float = 0.9995  # < 1 so the rare CJK characters map to <unk>
    max_sentences: int = 300000  # sentences sampled for tokenizer training

    def validate(self, prefix: str = "tokenizer") -> None:
        if self.vocab_size < 8:
            raise InputError(
                f"vocabulary size {self.vocab_size} is impossible",
                key=f"{prefix}.vocab_size",
                expected=">= 8 (and more than the corpus's distinct characters)",
            )
        if not 0.9 <= self.character_coverage <= 1.0:
            raise InputError("must be in [0.9, 1]", key=f"{prefix}.character_coverage")
        if self.max_sentences < 1:
            raise InputError("must be >= 1", key=f"{prefix}.max_sentences")


@dataclass
class EMSModelConfig:
    """A preset, optionally overridden field by field (null = the preset's value)."""

    preset: Literal["tiny", "cpu", "paper"] = "cpu"
    layers: int | None = None
    d_model: int | None = None
    heads: int | None = None
    ffn: int | None = None
    max_positions: int = 120
    dropout: float = 0.1
    activation: Literal["swish", "gelu"] = "swish"
    language_dim: int = 128
    projection_dim: int = 128

    def __post_init__(self) -> None:
        for name, value in PRESETS.get(self.preset, {}).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def validate(self, prefix: str = "model") -> None:
        for name in ("layers", "d_model", "heads", "ffn", "max_positions", "language_dim", "projection_dim"):
            if getattr(self, name) < 1:
                raise InputError("must be >= 1", key=f"{prefix}.{name}")
        assert self.d_model is not None and self.heads is not None  # filled from the preset in __post_init__
        if self.d_model % self.heads:
            raise InputError(f"d_model {self.d_model} is not divisible by heads {self.heads}", key=f"{prefix}.heads")
        if not 0 <= self.dropout < 1:
            raise InputError("must be in [0, 1)", key=f"{prefix}.dropout")


@dataclass
class EMSLossConfig:
    xtr_weight: float = 1.0
    contrastive_weight: float = 2.0
    temperature: float = 0.1

    def validate(self, prefix: str = "loss") -> None:
        if self.xtr_weight < 0 or self.contrastive_weight < 0:
            raise InputError("loss weights must be >= 0", key=f"{prefix}.xtr_weight")
        if self.xtr_weight == 0 and self.contrastive_weight == 0:
            raise InputError(
                "both loss weights are 0: nothing to train",
                key=f"{prefix}.contrastive_weight",
                expected="xtr_weight or contrastive_weight > 0",
            )
        if self.temperature <= 0:
            raise InputError("must be positive", key=f"{prefix}.temperature")


@dataclass
class EMSTrainConfig:
    max_steps: int = 6000  # the budget: a run trains exactly this many steps, on any machine
    # Opt-in safety cap on training seconds (null: none, the default and every shipped preset). A cap makes the
    # run depend on the machine's speed (the schedule also ends at the cap): when it stops training before
    # max_steps, the checkpoint records stopped_by = time_budget and a method's result is flagged
    # (ems_time_capped = 1), so a table never reads a wall-time-shortened encoder as "the config".
    time_budget_s: float | None = None
    batch_size: int = 64
    max_length: int = 120  # tokens per sentence, at most model.max_positions
    learning_rate: float = 3e-4
    weight_decay: float = 1e-5
    warmup_fraction: float = 0.05  # of the run (max_steps, or the time budget when that ends it first)
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast (CPUs with avx512_bf16/AMX, recent GPUs)
    checkpoint_every: int = 500
    log_every: int = 25
    output_dir: str = "runs/ems"  # the checkpoint goes to OUTPUT_DIR/NAME
    resume: bool = True  # continue from OUTPUT_DIR/NAME when a matching checkpoint is there

    def validate(self, prefix: str = "train") -> None:
        for name in ("max_steps", "batch_size", "max_length", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise InputError("must be >= 1", key=f"{prefix}.{name}")
        if self.batch_size < 2:
            raise InputError("in-batch negatives need a batch of at least 2", key=f"{prefix}.batch_size")
        if self.learning_rate <= 0:
            raise InputError("must be positive", key=f"{prefix}.learning_rate")
        if not 0 <= self.warmup_fraction < 1:
            raise InputError("must be in [0, 1)", key=f"{prefix}.warmup_fraction")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise InputError("must be positive or null", key=f"{prefix}.time_budget_s")


@dataclass
class EMSConfig:
    name: str
    languages: list[str]  # the non-English side of the English-centric pairs
    pivot: str = "en"
    bible: BibleConfig = field(default_factory=BibleConfig)
    data: EMSDataConfig = field(default_factory=EMSDataConfig)
    tokenizer: EMSTokenizerConfig = field(default_factory=EMSTokenizerConfig)
    model: EMSModelConfig = field(default_factory=EMSModelConfig)
    loss: EMSLossConfig = field(default_factory=EMSLossConfig)
    train: EMSTrainConfig = field(default_factory=EMSTrainConfig)

    def validate(self) -> None:
        from mosecrot.languages import get_language

        if not self.languages:
            raise InputError("no languages", key="languages", expected="a non-empty list of language codes")
        codes = [get_language(c, key=f"languages[{i}]").code for i, c in enumerate(self.languages)]
        pivot = get_language(self.pivot, key="pivot").code
        if len(set(codes)) != len(codes):
            raise InputError("duplicate language", key="languages")
        if pivot in codes:
            raise InputError(f"the pivot {pivot!r} is also listed as a language", key="languages")
        if self.train.max_length > self.model.max_positions:
            raise InputError(
                f"{self.train.max_length} exceeds model.max_positions {self.model.max_positions}",
                key="train.max_length",
            )

    @property
    def all_languages(self) -> list[str]:
        """Pivot first, then the other side: the rows of the language embedding."""
        return [self.pivot, *self.languages]

    def data_key(self) -> dict:
        """What decides the training pairs (and so the tokenizer corpus)."""
        data = {k: v for k, v in to_dict(self.data).items() if k != "tatoeba_path"}  # evaluation only
        return {"languages": self.all_languages, "bible": to_dict(self.bible), "data": data}

    def fingerprint(self) -> str:
        """Everything but the optimisation budget and bookkeeping: a checkpoint resumes only into a
        config with the same fingerprint."""
        train = {
            k: v
            for k, v in to_dict(self.train).items()
            if k
            not in (
                "max_steps",
                "time_budget_s",
                "device",
                "precision",
                "checkpoint_every",
                "log_every",
                "output_dir",
                "resume",
            )
        }
        return stable_hash(
            {
                **self.data_key(),
                "tokenizer": to_dict(self.tokenizer),
                "model": to_dict(self.model),
                "loss": to_dict(self.loss),
                "train": train,
            }
        )


def config_path(name_or_path: str) -> Path:
    """``cpu`` -> mosecrot/ems/configs/cpu.yaml; paths pass through."""
    return named_config_path(name_or_path, CONFIGS_DIR, "EMS config")


def load_ems_config(
    name_or_path: str, overrides: list[str] | None = None, settings: dict[str, Any] | None = None
) -> EMSConfig:
    """The EMS config ``name_or_path`` with ``overrides`` (``KEY=VALUE`` strings, as ``--set``) and then
    ``settings`` (``{dotted key: value}``, as a method's ``ems_set``) applied."""
    path = config_path(name_or_path)
    data = apply_overrides(read_yaml(path), overrides or [])
    data = apply_settings(data, normalize_settings(settings or {}))
    return from_dict(EMSConfig, interpolate(data), file=str(path))


# --- dotted overrides as data (a method's ``ems_set``, a sweep's ``method.ems_set.KEY``) -------------


def setting_type(dotted: str, key: str | None = None, shown: str | None = None) -> Any:
    """The declared type of EMS config field ``dotted`` (``loss.temperature`` -> float), or an InputError at
    ``key`` that names where the path breaks and lists the valid names there."""
    return field_type(EMSConfig, dotted, key, shown, what="EMS config")


def normalize_settings(settings: dict[str, Any], key: str = "ems_set") -> dict[str, Any]:
    """``{dotted EMS key: value}``, checked against the schema (no file is read). A nested mapping at a
    config block is the same as its dotted keys (``{loss: {temperature: 0.05}}`` = ``{loss.temperature: 0.05}``),
    so YAML blocks and ``--set method.ems_set.loss.temperature=...`` mean the same; a later key wins."""
    if not isinstance(settings, dict):
        raise InputError(
            "expected a mapping of dotted EMS config keys to values",
            key=key,
            expected="e.g. {loss.temperature: 0.05, model.layers: 3}",
        )
    out: dict[str, Any] = {}

    def walk(prefix: str, mapping: dict) -> None:
        for k, value in mapping.items():
            dotted = f"{prefix}.{k}" if prefix else str(k)
            if not dotted or any(not part for part in dotted.split(".")):
                raise InputError(
                    f"bad EMS config key {dotted!r}",
                    key=f"{key}.{dotted}",
                    expected="a dotted key such as loss.temperature",
                )
            tp = unwrap_optional(setting_type(dotted, f"{key}.{dotted}", shown=f"{key}.{dotted}"))
            if isinstance(value, dict) and dataclasses.is_dataclass(tp):
                walk(dotted, value)
                continue
            out.pop(dotted, None)  # a later setting wins (``--set`` after the file), applied in order
            out[dotted] = value

    walk("", settings)
    return out


def ems_config_from_dict(data: dict, overrides: list[str] | None = None) -> EMSConfig:
    return from_dict(EMSConfig, interpolate(apply_overrides(data, overrides or [])))


def known_configs() -> list[str]:
    return sorted(x.stem for x in CONFIGS_DIR.glob("*.yaml"))


__all__ = [
    "EMSConfig",
    "EMSDataConfig",
    "EMSLossConfig",
    "EMSModelConfig",
    "EMSTokenizerConfig",
    "EMSTrainConfig",
    "PRESETS",
    "apply_settings",
    "config_path",
    "ems_config_from_dict",
    "known_configs",
    "load_ems_config",
    "normalize_settings",
    "setting_type",
]
