"""Build and cache everything an experiment needs: task splits, static vectors, dictionaries, anchors.

`preflight` checks the cheap things first (languages, files, model tokenizer, dictionary sources), so
bad input fails in seconds, before any vector training or alignment starts. `prepare` then builds
the resources (cached on disk: a second run only loads) and reports one row per language.

The caller says whether static vectors, dictionaries and anchors are needed (``static``: some method
reads them, `mosecrot.methods.needs_static`): an experiment of sentence encoders alone (EMS, frozen e5,
the floor) needs just the task splits, and on a fresh machine skips a fastText training per language.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mosecrot.anchor_growth import dictionary_score_weights, grown_pairs
from mosecrot.anchors import AnchorSet, UnionAnchors, build_pair_anchors, build_union_anchors, eligible_pairs
from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.data_config import AnchorConfig, DataConfig
from mosecrot.dictionaries import BilingualDictionary, freedict_path, load_dictionary
from mosecrot.errors import InputError, rebase_key
from mosecrot.languages import get_language
from mosecrot.plm import load_tokenizer, single_token_ids, tokenizer_fingerprint
from mosecrot.preflight import check_splits
from mosecrot.provenance import environment
from mosecrot.tasks import TaskData, TaskSpec, get_task
from mosecrot.text.bible import Bible, with_neighbours
from mosecrot.text.tokenize import get_tokenizer, is_word
from mosecrot.vectors import StaticVectors, load_vectors, train_language_vectors
from mosecrot.vectors.sources import FILE_KINDS, check_source, load_source_vectors, source_label

log = logging.getLogger(__name__)


def _uses_bible(cfg: DataConfig, static: bool = True) -> bool:
    return (
        get_task(cfg.task.name).reads_bible
        or (static and any(cfg.vectors.kind_for(lang) == "train" for lang in cfg.target_languages))
        or (static and any(cfg.dictionary.kind_for(lang) == "induced" for lang in cfg.target_languages))
        or (static and cfg.anchors.grow.self_learning and not cfg.anchors.grow.english_vectors)
    )


def preflight(cfg: DataConfig, static: bool = True) -> Bible | None:
    """Cheap checks that fail fast with a clear message, before any expensive work (``static``: also the
    vector and dictionary sources). Returns the Bible when the task or the static resources read one."""
    spec = get_task(cfg.task.name)
    bible = cfg.bible.open() if _uses_bible(cfg, static) else None
    for lang in cfg.target_languages:
        get_language(lang)
        if bible is not None:
            _check_edition(cfg, bible, lang)
    if spec.check is not None:
        try:
            spec.check(cfg.task.loader_kwargs())
        except InputError as err:
            raise _task_key(err) from None
    if static:
        _preflight_static(cfg)
    load_tokenizer(cfg.model)
    return bible


def _check_edition(cfg: DataConfig, bible: Bible, lang: str) -> None:
    """The language's edition exists in the Bible source: an unknown edition names ``bible.editions.<lang>``, a
    language the source lacks names ``target_languages`` (both with the source)."""
    try:
        bible.default_edition(lang)
    except InputError as err:
        if err.key is not None:
            raise
        key = f"bible.editions.{lang}" if lang in cfg.bible.editions else "target_languages"
        raise InputError(
            f"{err.message} (bible.source {cfg.bible.source}" + (f", {cfg.bible.path})" if cfg.bible.path else ")"),
            path=err.path,
            key=key,
            expected=err.expected,
        ) from None


def _preflight_static(cfg: DataConfig) -> None:
    """The vector and dictionary sources exist (only for runs with a method that reads them)."""
    for lang in cfg.target_languages:
        kind = cfg.vectors.kind_for(lang)
        if kind in FILE_KINDS:
            if lang not in cfg.vectors.files:
                raise InputError(
                    f"no static vectors for target language {lang!r} (vectors kind {kind})",
                    key="vectors.files",
                    expected="a path for every target language"
                    + (" (spacy: an installed model package)" if kind == "spacy" else ""),
                )
            if kind == "files" and not Path(cfg.vectors.files[lang]).exists():
                raise InputError(
                    "static vector file not found", path=cfg.vectors.files[lang], key=f"vectors.files.{lang}"
                )
        if kind not in ("train", "files"):
            check_source(kind, cfg.vectors.files.get(lang), cfg.vectors, key=f"vectors.files.{lang}")
    for lang in cfg.target_languages:
        kind = cfg.dictionary.kind_for(lang)
        if kind == "muse":
            _muse_file(cfg, lang)
        elif kind == "freedict":
            freedict_path(lang)


def _muse_file(cfg: DataConfig, lang: str) -> Path:
    """MUSE file of a language: ``dictionary.path`` is the directory holding ``en-XX.txt`` files."""
    directory = Path(cfg.dictionary.path or "")
    path = directory / f"en-{get_language(lang).code}.txt"
    if not path.is_file():
        have = sorted(p.stem.split("-")[1] for p in directory.glob("en-*.txt"))
        raise InputError(
            f"no MUSE dictionary for {lang!r}",
            path=path,
            key="dictionary.path",
            expected=("one of: " + ", ".join(have))
            if have
            else "a directory of en-XX.txt files"
            + "; or set dictionary.per_language."
            + lang
            + " to induced or freedict",
        )
    return path


@dataclass
class Prepared:
    """Everything an experiment's runs need, built once."""

    config: DataConfig
    tasks: dict[str, TaskData]
    vectors: dict[str, StaticVectors]
    dictionaries: dict[str, BilingualDictionary]
    anchors: dict[str, AnchorSet]
    union: UnionAnchors | None
    rows: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Bible verse ids of every dev/test example of the run, the same in every language (empty when the task's
    # examples are not Bible verses): what nothing trained on Bible text may see (vectors, dictionaries,
    # EMS, centering offsets), each of which leaves them out with their +-1 neighbours (`with_neighbours`).
    evaluation_ids: set[str] = field(default_factory=set)
    shared: SharedResources | None = None  # what a sweep hands to its trials (see `SharedResources`)
    static: bool = True  # False: no vectors, dictionaries or anchors (no method of the run reads them)
    opened_bible: Bible | None = None  # the Bible preflight opened, if the task or static resources read one

    @property
    def bible(self) -> Bible:
        """The experiment's Bible (opened on first use where preparation did not need it)."""
        if self.opened_bible is None:
            self.opened_bible = self.config.bible.open()
        return self.opened_bible


def test_token_coverage(task: TaskData, vectors: StaticVectors, lowercase: bool) -> float:
    """Share of the test split's word tokens (punctuation excluded) that have a stored static vector."""
    tokenize = get_tokenizer(task.language, lowercase)
    total = covered = 0
    for text in task.splits["test"]["text"]:
        for tok in tokenize(text):
            if is_word(tok):
                total += 1
                covered += tok in vectors
    return covered / total if total else 0.0


def english_frequencies(bible: Bible | None, language: str = "en", cache: DiskCache | None = None) -> Counter:
    """English word counts from the Bible, used to order shared (union) anchors; cached on disk by the
    text's fingerprint and the word tokeniser when `cache` is given."""
    if bible is None:
        return Counter()
    tokenize = get_tokenizer(language)
    texts = list(bible.texts(language).values())

    def count() -> Counter:
        counts: Counter = Counter()
        for text in texts:
            counts.update(tokenize(text))
        return counts

    if cache is None:
        return count()
    key = {"language": language, "texts": texts_fingerprint(texts), "n": len(texts), "tokenizer": tokenize.__name__}
    return cache.get_or_build(
        "word_counts",
        key,
        lambda d: (d / "counts.json").write_text(json.dumps(count(), ensure_ascii=False)),
        lambda d: Counter(json.loads((d / "counts.json").read_text())),
    )


def cached_single_token_ids(tokenizer, words: list[str], cache: DiskCache | None = None) -> dict[str, int]:
    """`single_token_ids`, cached on disk by the tokenizer's content and the word list (every trial of a
    sweep asks the same question about the same dictionaries)."""
    if cache is None:
        return single_token_ids(tokenizer, words)
    unique = sorted(set(words))
    key = {"tokenizer": tokenizer_fingerprint(tokenizer), "words": texts_fingerprint(unique), "n": len(unique)}
    return cache.get_or_build(
        "single_token_ids",
        key,
        lambda d: (d / "ids.json").write_text(json.dumps(single_token_ids(tokenizer, unique), ensure_ascii=False)),
        lambda d: json.loads((d / "ids.json").read_text()),
    )


@dataclass
class SharedResources:
    """What does not depend on anchors or the method: task splits, static vectors, dictionaries, the
    evaluation ids and English word counts. A sweep loads them once in the driver and hands them to
    every trial (through Ray's object store), so a trial's `prepare` builds only its anchors.

    ``key`` is `resource_key` of the config they were loaded for; `prepare` uses them only for a config
    with the same key (a trial that searches, say, ``vectors.training.dim`` loads its own)."""

    key: dict[str, Any]
    tasks: dict[str, TaskData]
    vectors: dict[str, StaticVectors]
    dictionaries: dict[str, BilingualDictionary]
    evaluation_ids: set[str]
    english_counts: Counter | None = None
    static: bool = True  # False: task splits only (no vectors, dictionaries or English counts)

    def usable_here(self) -> bool:
        """False where a lazily loaded subword model's file is missing (another node's disk cache)."""
        return all(getattr(v.subwords, "available", True) for v in self.vectors.values())


def resource_key(cfg: DataConfig) -> dict[str, Any]:
    """The config keys that decide `SharedResources` (everything `load_resources` reads)."""
    return {
        "task": to_dict(cfg.task),
        "vectors": to_dict(cfg.vectors),
        "dictionary": to_dict(cfg.dictionary),
        "bible": to_dict(cfg.bible),
        "source": cfg.source_language,
        "targets": list(cfg.target_languages),
        "cache_dir": str(cfg.cache_dir),
    }


def prepare(cfg: DataConfig, *, static: bool, progress: bool = True, shared: SharedResources | None = None) -> Prepared:
    """Everything the experiment's runs need: the task splits and, with ``static`` (some method reads them),
    static vectors, dictionaries and anchors. With `shared` (of a config with the same `resource_key`, and
    static parts where needed) only the anchors and the per-language rows are built here."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    bible = preflight(cfg, static)
    cache = DiskCache(cfg.cache_dir)
    timings["preflight"] = time.perf_counter() - t0
    if shared is not None and (shared.key != resource_key(cfg) or static and not shared.static):
        log.info("shared resources were loaded for another config; loading this trial's own")
        shared = None
    if shared is None:
        shared = load_resources(cfg, bible, cache, progress, timings, static=static)
    return _build_anchors(cfg, bible, cache, shared, timings, t0)


def load_resources(
    cfg: DataConfig,
    bible: Bible | None = None,
    cache: DiskCache | None = None,
    progress: bool = True,
    timings: dict[str, float] | None = None,
    static: bool = True,
) -> SharedResources:
    """Task splits of every language and, with ``static``, static vectors and dictionaries of every target
    language (from the disk cache, or built into it)."""
    timings = {} if timings is None else timings
    if bible is None and _uses_bible(cfg, static):
        bible = preflight(cfg, static)
    cache = cache or DiskCache(cfg.cache_dir)
    spec = get_task(cfg.task.name)
    t = time.perf_counter()
    tasks = {lang: _load_task(spec, cfg, lang, bible) for lang in cfg.languages}
    check_splits(tasks, cfg.task.name, cfg.source_language)  # before vectors: an empty split fails here
    source_labels = tasks[cfg.source_language].splits["train"].features["label"].names
    for lang in cfg.target_languages:
        names = tasks[lang].splits["test"].features["label"].names
        if names != source_labels:
            raise InputError(
                f"label set of {lang} differs from {cfg.source_language}: {names} vs {source_labels}", key="task"
            )
    eval_ids = spec.evaluation_ids(cfg.task.loader_kwargs(), bible)
    timings["tasks"] = time.perf_counter() - t
    if not static:
        return SharedResources(resource_key(cfg), tasks, {}, {}, set(eval_ids), None, static=False)

    t = time.perf_counter()
    vectors: dict[str, StaticVectors] = {}
    for lang in cfg.target_languages:
        kind = cfg.vectors.kind_for(lang)
        if kind == "files":
            vectors[lang] = load_vectors(cfg.vectors.files[lang])
        elif kind != "train":
            vectors[lang] = load_source_vectors(kind, cfg.vectors.files.get(lang), cfg.vectors, cache=cache)
        else:
            assert bible is not None  # vectors.kind "train" reads the Bible (_uses_bible): preflight opened it
            vectors[lang] = train_language_vectors(
                bible, lang, eval_ids, cfg.vectors.training, cache=cache, progress=progress
            )
    timings["vectors"] = time.perf_counter() - t

    t = time.perf_counter()
    dictionaries = {}
    for lang in cfg.target_languages:
        kind = cfg.dictionary.kind_for(lang)
        kw: dict[str, Any] = {"lowercase": cfg.dictionary.lowercase}
        if kind == "muse":
            kw["path"] = _muse_file(cfg, lang)
        elif kind == "induced":
            kw.update(
                bible=bible,
                exclude_ids=eval_ids,
                cache=cache,
                min_count=cfg.dictionary.min_count,
                seed=cfg.dictionary.seed,
                progress=progress,
            )
        dictionaries[lang] = load_dictionary(kind, lang, **kw)
    timings["dictionaries"] = time.perf_counter() - t
    english = english_frequencies(bible, cfg.source_language, cache) if cfg.anchors.scope == "union" else None
    return SharedResources(resource_key(cfg), tasks, vectors, dictionaries, set(eval_ids), english)


def _load_task(spec: TaskSpec, cfg: DataConfig, lang: str, bible: Bible | None) -> TaskData:
    """The task in one language: Bible-based tasks read the language's edition (the config's, else its first)."""
    options = cfg.task.loader_kwargs()
    if spec.reads_bible:
        options.update(bible=bible, edition=cfg.bible.editions.get(lang))
    try:
        return spec.load(lang, **options)
    except InputError as err:  # the loader names its own option: the error names the experiment's key
        if err.key == "edition":
            raise rebase_key(err, "edition", f"bible.editions.{lang}") from None
        raise _task_key(err) from None


def _task_key(err: InputError) -> InputError:
    """A task loader's error keyed by its option (``per_class.train``), keyed by the experiment's full path
    (``task.per_class.train``)."""
    if err.key and not err.key.startswith(("task", "bible", "-", "$")):
        return rebase_key(err, err.key, "task." + err.key)
    return err


def _build_anchors(
    cfg: DataConfig,
    bible: Bible | None,
    cache: DiskCache,
    shared: SharedResources,
    timings: dict[str, float],
    t0: float,
) -> Prepared:
    tasks, vectors, dictionaries = shared.tasks, shared.vectors, shared.dictionaries
    languages = cfg.languages
    if not shared.static:  # task splits only: no anchors to build
        rows = [_language_row(lang, tasks[lang]) for lang in languages]
        timings["total"] = time.perf_counter() - t0
        return Prepared(
            cfg,
            tasks,
            {},
            {},
            {},
            None,
            rows,
            timings,
            set(shared.evaluation_ids),
            shared,
            static=False,
            opened_bible=bible,
        )
    t = time.perf_counter()
    tokenizer = load_tokenizer(cfg.model)
    candidates, grown = anchor_candidates(cfg, bible, cache, shared, tokenizer)
    all_en = [s for pairs in candidates.values() for s, _ in pairs]
    token_ids = cached_single_token_ids(tokenizer, all_en, cache)
    a = cfg.anchors
    anchors: dict[str, AnchorSet] = {}
    union = None
    if a.scope == "pair":
        for lang in cfg.target_languages:
            anchors[lang] = build_pair_anchors(
                lang,
                candidates[lang],
                token_ids,
                vectors[lang],
                vectors[lang].frequency,
                count=a.count,
                strategy=a.strategy,
                seed=a.seed,
                one_to_one=a.one_to_one,
                on_shortfall=a.on_shortfall,
                where=dictionaries[lang].origin,
            )
            anchors[lang].meta["dictionary_pairs"] = len(dictionaries[lang])
    else:
        eligible = {
            lang: eligible_pairs(candidates[lang], token_ids, vectors[lang], a.one_to_one, dictionaries[lang].origin)
            for lang in cfg.target_languages
        }
        freq = shared.english_counts
        if freq is None:
            freq = english_frequencies(bible, cfg.source_language, cache)
        union = build_union_anchors(
            eligible,
            token_ids,
            count=a.count,
            strategy=a.strategy,
            seed=a.seed,
            source_frequency=freq.get,
            on_shortfall=a.on_shortfall,
        )
        anchors = union.per_language
        for lang in cfg.target_languages:
            anchors[lang].meta["dictionary_pairs"] = len(dictionaries[lang])
    for lang in cfg.target_languages:
        anchors[lang].meta.update(grown.get(lang, {}))
        if a.weights == "dictionary_score":
            d = dictionaries[lang]
            anchors[lang].weights = dictionary_score_weights(anchors[lang], d.pairs, d.scores)
    timings["anchors"] = time.perf_counter() - t

    rows = []
    for lang in languages:
        task = tasks[lang]
        row = _language_row(lang, task)
        if lang in vectors:
            row.update(
                vectors=source_label(cfg.vectors.kind_for(lang), cfg.vectors.files.get(lang), cfg.vectors),
                vocab=len(vectors[lang]),
                dictionary=dictionaries[lang].origin if lang in dictionaries else "",
                dict_pairs=len(dictionaries[lang]),
                anchors=len(anchors[lang]),
                clamped=bool(anchors[lang].meta.get("clamped")),
                test_coverage=round(test_token_coverage(task, vectors[lang], cfg.vectors.training.lowercase), 4),
            )
        rows.append(row)
    timings["total"] = time.perf_counter() - t0
    return Prepared(
        cfg,
        tasks,
        vectors,
        dictionaries,
        anchors,
        union,
        rows,
        timings,
        set(shared.evaluation_ids),
        shared,
        opened_bible=bible,
    )


def with_anchors(prepared: Prepared, anchors: AnchorConfig) -> Prepared:
    """``prepared`` with its anchors chosen again under ``anchors`` (a method's own ``anchors:``), from the same
    vectors and dictionaries; what it grows is cached on disk."""
    cfg = dataclasses.replace(prepared.config, anchors=anchors)
    shared = prepared.shared
    if shared is None or not prepared.static:
        raise InputError("anchors can be chosen again only on prepared static resources", key="anchors")
    cache = DiskCache(cfg.cache_dir)
    return _build_anchors(cfg, prepared.opened_bible, cache, shared, dict(prepared.timings), time.perf_counter())


def anchor_candidates(
    cfg: DataConfig, bible: Bible | None, cache: DiskCache, shared: SharedResources, tokenizer: Any
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, dict[str, int]]]:
    """Per target language, the pairs anchors are chosen from: the dictionary's, then those ``anchors.grow``
    adds (`mosecrot.anchor_growth`; cached on disk, so a sweep's trials share them), with how many it added."""
    grow, dictionaries = cfg.anchors.grow, shared.dictionaries
    if not grow.enabled:
        return {lang: list(d.pairs) for lang, d in dictionaries.items()}, {}
    plm_vocabulary = set(tokenizer.get_vocab())
    english_source: Any = grow.english_vectors or {
        "training": to_dict(cfg.vectors.training),
        "bible": to_dict(cfg.bible),
        "evaluation": texts_fingerprint(sorted(shared.evaluation_ids)),
    }
    loaded: list[StaticVectors] = []

    def english() -> StaticVectors:
        if not loaded:
            if grow.english_vectors:
                loaded.append(load_vectors(grow.english_vectors))
            else:
                opened = bible if bible is not None else cfg.bible.open()
                training = cfg.vectors.training
                ids = shared.evaluation_ids
                loaded.append(train_language_vectors(opened, cfg.source_language, ids, training, cache, False))
        return loaded[0]

    candidates, grown = {}, {}
    for lang in cfg.target_languages:
        target, pairs = shared.vectors[lang], list(dictionaries[lang].pairs)
        key = {
            "language": lang,
            "pairs": texts_fingerprint([f"{e}\t{t}" for e, t in pairs]),
            "target": vectors_fingerprint(target),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "grow": to_dict(grow),
            "english": english_source if grow.self_learning else None,
        }

        def build(d: Path, lang: str = lang, target: StaticVectors = target, pairs: list = pairs) -> None:
            out, meta = grown_pairs(lang, pairs, target, plm_vocabulary, english, grow)
            (d / "grown.json").write_text(json.dumps({"pairs": out, "meta": meta}, ensure_ascii=False))

        saved = cache.get_or_build("grown_anchors", key, build, lambda d: json.loads((d / "grown.json").read_text()))
        candidates[lang] = [(e, t) for e, t in saved["pairs"]]
        grown[lang] = saved["meta"]
    return candidates, grown


def vectors_fingerprint(vectors: StaticVectors) -> str:
    """A digest of a static space's words and matrix (a cache key part)."""
    digest = hashlib.sha256(np.ascontiguousarray(vectors.matrix).tobytes())
    digest.update(texts_fingerprint(vectors.words).encode())
    return digest.hexdigest()[:16]


def _language_row(lang: str, task: TaskData) -> dict[str, Any]:
    row: dict[str, Any] = {"language": lang, "text": task.meta.get("text", task.meta.get("edition", ""))}
    for split in ("train", "dev", "test"):
        row[split] = task.splits[split].num_rows if split in task.splits else 0
    row["dropped"] = sum(c.get("dropped", 0) for c in task.coverage.values())
    return row


_VECTOR_REPORT_KEYS = (
    "corpus",
    "n_sentences",
    "n_tokens",
    "n_excluded_ids",
    "n_excluded_ids_with_neighbours",
    "n_excluded_verses",
)


def write_report(prepared: Prepared, out_dir: Path) -> Path:
    """``prepare.json`` (rows, anchors samples, fingerprints, resolved config, git revision)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "experiment": prepared.config.name,
        "config": to_dict(prepared.config),
        "environment": environment(),
        "rows": prepared.rows,
        "timings_s": {k: round(v, 2) for k, v in prepared.timings.items()},
        "n_evaluation_ids_excluded": len(prepared.evaluation_ids),
        # what static vectors, induced dictionaries, centering and EMS leave out: the ids and their +-1 neighbours
        "n_evaluation_ids_excluded_with_neighbours": len(with_neighbours(prepared.evaluation_ids)),
        "anchors": {
            lang: {"count": len(a), "meta": a.meta, "first": a.pairs[:20]} for lang, a in prepared.anchors.items()
        },
        "vectors": {
            lang: {
                "source": v.source,
                "dim": v.dim,
                **{k: v.meta[k] for k in _VECTOR_REPORT_KEYS if k in v.meta},
            }
            for lang, v in prepared.vectors.items()
        },
        "dictionaries": {
            lang: {"origin": d.origin, "pairs": len(d), "meta": d.meta} for lang, d in prepared.dictionaries.items()
        },
    }
    path = out_dir / "prepare.json"
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    return path
