"""Stitched methods: the English model reads target text through target-word embeddings built from static
vectors, swapped in after English fine-tuning.

- ``mosecrot``: relative-representation stitching (MoSECroT). F_s replaces the English embeddings before
  fine-tuning (``source_side: relative``), F_t (target words, word-level tokenizer) is swapped in at
  evaluation; the paper's open points are options of `StitchConfig`.
- ``ls``: a least-squares map from the static space to the PLM's embedding space, fitted on the anchors; it
  takes only the stitching options it reads (`LSStitchConfig`).

In ``pair`` scope ``mosecrot`` fine-tunes English once per target language (F_s depends on that language's
anchors); each fine-tuning's English scores are recorded under ``{split}_{metric}.en-{lang}`` (e.g.
``dev_macro_f1.en-de``) and ``dev_macro_f1.en`` is their mean, which the english-dev sweep objective reads.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np
import torch

from mosecrot.anchors import AnchorSet
from mosecrot.cache import stable_hash, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.errors import InputError
from mosecrot.methods.context import RunContext, load_classifier
from mosecrot.methods.spec import MethodSpec
from mosecrot.metrics import SCORED_SPLITS, item_key
from mosecrot.plm import load_tokenizer
from mosecrot.relative import RelativeConfig
from mosecrot.relative.mapping import calibrate_tau, mean_weight_entropy
from mosecrot.relearn import RelearnConfig, encoder_of, parallel_verses, relearn_rows
from mosecrot.stitching import (
    StitchConfig,
    TargetVocabulary,
    build_target_vocabulary,
    check_hybrid,
    source_mapping,
    special_token_ids,
    swap_input_embeddings,
    target_mapping,
)
from mosecrot.vectors import StaticVectors

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class StitchedOptions:
    """How the model is stitched (``stitch:``; see `mosecrot.stitching.StitchConfig`)."""

    stitch: StitchConfig = field(default_factory=StitchConfig)

    def validate(self, prefix: str = "methods") -> None:
        # Also when ``stitch:`` is absent: the default relative config (cosine, standard) needs ``negatives``.
        self.stitch.validate(f"{prefix}.stitch")


@dataclass
class LSStitchConfig:
    """The stitching options LS reads (the rest of `StitchConfig` would be ignored, so LS does not take it)."""

    # Which English anchor rows W is fitted to: the embedding rows before or after fine-tuning.
    target_anchor_rows: Literal["original", "finetuned"] = "original"
    # Target words without a stored static vector: subword vector (fastText), [UNK], or dropped.
    oov: Literal["subword", "unk", "skip"] = "subword"
    # Hybrid tokenisation at test time: off | oov | oov+shared (see `mosecrot.stitching.StitchConfig`).
    hybrid: Literal["off", "oov", "oov+shared"] = "off"
    # Re-learn the mapped rows through the frozen English model from parallel Bible verses (`RelearnConfig`).
    relearn: RelearnConfig = field(default_factory=RelearnConfig)

    def validate(self, prefix: str = "stitch") -> None:
        check_hybrid(self.hybrid, f"{prefix}.hybrid")
        self.relearn.validate(f"{prefix}.relearn")


@dataclass
class LSOptions:
    """LS's options (``stitch: {target_anchor_rows, oov, hybrid, relearn}``)."""

    stitch: LSStitchConfig = field(default_factory=LSStitchConfig)

    def validate(self, prefix: str = "methods") -> None:
        self.stitch.validate(f"{prefix}.stitch")


class TargetSide(Protocol):
    """What target-side swapping reads of a method's stitching options."""

    @property
    def target_anchor_rows(self) -> str: ...  # original | finetuned: which English rows rows are built from

    @property
    def oov(self) -> str: ...

    @property
    def hybrid(self) -> str: ...


def _digest(array: torch.Tensor | np.ndarray) -> str:
    """Content hash of a matrix (the cache key of whatever was computed from it)."""
    a = array.detach().cpu().float().numpy() if isinstance(array, torch.Tensor) else np.asarray(array, np.float32)
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16] + f"-{'x'.join(map(str, a.shape))}"


def _relative_key(rel: RelativeConfig) -> dict[str, Any]:
    """The relative config as a cache key: only what changes the result. Chunking never does; ``negatives``
    only with standard weighting, and clip is what None does (keys of entries made before the option stay)."""
    key = {k: v for k, v in to_dict(rel).items() if k != "chunk_size"}
    if rel.weighting != "standard" or rel.negatives in (None, "clip"):
        key.pop("negatives")
    # Options added later are left out at their defaults, so entries made before them keep their keys.
    for name, default in (("center", False), ("remove_pcs", 0), ("tau_calibration", "fixed")):
        if key.get(name) == default:
            key.pop(name)
    return key


def cached_source_mapping(
    ctx: RunContext, original: torch.Tensor, anchor_ids: list[int], special_ids: list[int], rel: RelativeConfig
) -> torch.Tensor:
    """F_s, cached on disk by the embedding matrix's content, the anchor token ids and the relative config."""
    key = {
        "embeddings": _digest(original),
        "anchors": stable_hash(list(anchor_ids)),
        "specials": list(special_ids),
        "relative": _relative_key(rel),
    }

    def build(d):
        torch.save(source_mapping(original, anchor_ids, special_ids, rel), d / "f_s.pt")

    return ctx.cache.get_or_build("f_s", key, build, lambda d: torch.load(d / "f_s.pt", weights_only=True))


def cached_target_mapping(
    ctx: RunContext,
    vocab: TargetVocabulary,
    vectors: StaticVectors,
    anchors: AnchorSet,
    english_rows: torch.Tensor,
    rel: RelativeConfig,
) -> torch.Tensor:
    """F_t rows of the target words, cached by words, their vectors, the anchors, the English rows and config
    (and, for CSLS, the whole static vocabulary its r_a term is computed over)."""
    key = {
        "language": vocab.language,
        "words": texts_fingerprint(vocab.words),
        "vectors": _digest(vocab.vectors),
        "anchors": stable_hash(anchors.pairs),
        "english_rows": _digest(english_rows),
        "relative": _relative_key(rel),
    }
    if anchors.weights is not None:
        key["anchor_weights"] = stable_hash(anchors.weights)
    if rel.similarity == "csls":
        key["neighbourhood"] = _digest(vectors.matrix)

    def build(d):
        rows = target_mapping(vocab, vectors, anchors, english_rows, torch.empty(0, english_rows.shape[1]), rel)
        torch.save(rows, d / "f_t.pt")

    return ctx.cache.get_or_build("f_t", key, build, lambda d: torch.load(d / "f_t.pt", weights_only=True))


def _target_texts(ctx: RunContext, lang: str) -> list[str]:
    """Every dev/test text of a language: the target vocabulary is built over them."""
    task = ctx.prepared.tasks[lang]
    return [t for split in SCORED_SPLITS if split in task.splits for t in task.splits[split]["text"]]


def with_target_embeddings(
    ctx: RunContext,
    model: PreTrainedModel,
    lang: str,
    rows_fn: Callable[[TargetVocabulary], torch.Tensor],
    stitch: TargetSide,
    tokenizer: Any,
    splits: list[str] | None = None,
) -> dict[str, float]:
    """Swap in target-word embeddings built by ``rows_fn(vocab)``, evaluate, restore the English ones.
    ``splits``: only these (an epoch's dev scores, `epoch_target_scores`), without re-learned rows."""
    vectors = ctx.prepared.vectors[lang]
    vocab = build_target_vocabulary(
        lang,
        _target_texts(ctx, lang),
        vectors,
        tokenizer,
        stitch.oov,
        ctx.config.vectors.training.lowercase,
        hybrid=stitch.hybrid,
    )
    english = cast(torch.nn.Embedding, model.get_input_embeddings())
    specials = english.weight[vocab.plm_special_ids]
    relearn: RelearnConfig | None = getattr(stitch, "relearn", None)
    relearn_stats: dict[str, float] = {}
    relearned: set[str] = set()
    if relearn is not None and relearn.enabled and splits is None:
        rows_fn, relearn_stats, relearned = relearned_rows(ctx, model, lang, rows_fn, stitch, tokenizer, relearn)
    parts = [specials.detach().float(), rows_fn(vocab)]
    if vocab.plm_tokenizer is not None:  # hybrid: the PLM's pieces read with the model's own rows
        parts.append(english.weight.detach().float())
    matrix = torch.cat(parts, dim=0)
    swap_input_embeddings(model, matrix, trainable=False, padding_idx=vocab.tokenizer.pad_token_id)
    try:
        out = ctx.evaluate_language(
            model, lang, lambda t: vocab.encode(t, ctx.training.max_length), vocab.tokenizer.pad_token_id, splits
        )
    finally:
        model.set_input_embeddings(english)
        model.config.vocab_size = english.weight.shape[0]
    out[f"oov_token_share.{lang}"] = vocab.stats["oov_token_share"]
    out.update({f"relearn_{k}.{lang}": v for k, v in relearn_stats.items()})
    if relearn_stats:  # the share of the evaluated words whose rows were re-learned
        out[f"relearn_vocabulary_share.{lang}"] = len(relearned & set(vocab.words)) / max(1, len(vocab.words))
    if vocab.plm_tokenizer is not None:
        out[f"plm_token_share.{lang}"] = vocab.stats["plm_token_share"]
    return out


def check_before_training(ctx: RunContext, stitch: object) -> None:
    """What the stitching options need from the prepared data, checked before any English fine-tuning:
    re-learning needs parallel Bible text of every target language."""
    relearn: RelearnConfig | None = getattr(stitch, "relearn", None)
    if relearn is not None and relearn.enabled:
        for lang in ctx.targets:
            parallel_verses(ctx.prepared.bible, ctx.config.source_language, lang, set(), 1, 0)


def _state_digest(module: torch.nn.Module) -> str:
    """Content hash of a module's parameters (the cache key of rows fitted through it)."""
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(p.detach().cpu().float().numpy()).tobytes())
    return h.hexdigest()[:16]


def relearned_rows(
    ctx: RunContext,
    model: PreTrainedModel,
    lang: str,
    rows_fn: Callable[[TargetVocabulary], torch.Tensor],
    stitch: TargetSide,
    tokenizer: Any,
    config: RelearnConfig,
) -> tuple[Callable[[TargetVocabulary], torch.Tensor], dict[str, float], set[str]]:
    """``rows_fn`` with the rows of the words of parallel Bible verses re-learned through the frozen English
    model (`mosecrot.relearn`); cached by language, encoder, starting rows and config."""
    pairs = parallel_verses(
        ctx.prepared.bible,
        ctx.config.source_language,
        lang,
        ctx.prepared.evaluation_ids,
        config.verses + config.held_out,
        config.seed,
    )
    train_vocab = build_target_vocabulary(
        lang,
        [t for _, t in pairs],
        ctx.prepared.vectors[lang],
        tokenizer,
        stitch.oov,
        ctx.config.vectors.training.lowercase,
        hybrid=stitch.hybrid,
    )
    start_rows = rows_fn(train_vocab)
    if config.encoder == "pretrained":
        teacher_model = load_classifier(ctx.config.model, ctx.num_labels)
        teacher_model.eval()
    else:
        teacher_model = model
    encoder = encoder_of(teacher_model)
    teacher_embedding = cast(torch.nn.Embedding, teacher_model.get_input_embeddings()).weight.detach().float()
    key = {
        "language": lang,
        "pairs": texts_fingerprint([e + "\t" + t for e, t in pairs]),
        "words": texts_fingerprint(train_vocab.words),
        "start": _digest(start_rows),
        "encoder": _state_digest(encoder),
        "hybrid": stitch.hybrid,
        "config": to_dict(config),
    }

    def build(d):
        teacher_ids = tokenizer(
            [e for e, _ in pairs], truncation=True, max_length=config.max_length, add_special_tokens=True
        )["input_ids"]
        student_ids = train_vocab.encode([t for _, t in pairs], config.max_length)
        # The special tokens and (hybrid) the PLM's pieces keep the encoder's own rows while fitting.
        fixed_after = teacher_embedding if train_vocab.plm_tokenizer is not None else teacher_embedding[:0]
        rows, stats = relearn_rows(
            encoder,
            teacher_embedding,
            teacher_ids,
            student_ids,
            teacher_embedding[train_vocab.plm_special_ids],
            start_rows,
            fixed_after,
            tokenizer.pad_token_id,
            config,
        )
        torch.save({"words": train_vocab.words, "rows": rows, "stats": stats}, d / "relearned.pt")

    saved = ctx.cache.get_or_build("relearned_rows", key, build, lambda d: torch.load(d / "relearned.pt"))
    table = {w: i for i, w in enumerate(saved["words"])}
    learned: torch.Tensor = saved["rows"]

    def rows(vocab: TargetVocabulary) -> torch.Tensor:
        base = rows_fn(vocab).clone()
        hits = [(i, table[w]) for i, w in enumerate(vocab.words) if w in table]
        if hits:
            at, src = zip(*hits, strict=True)
            base[list(at)] = learned[list(src)]
        return base

    return rows, dict(saved["stats"]), set(table)


def _anchor_rows(
    stitch: TargetSide, original: torch.Tensor, model: PreTrainedModel, anchors: AnchorSet
) -> torch.Tensor:
    base = (
        original
        if stitch.target_anchor_rows == "original"
        else cast(torch.nn.Embedding, model.get_input_embeddings()).weight
    )
    return base[anchors.source_token_ids].detach().float()


def run_mosecrot(ctx: RunContext, options: StitchedOptions, seed: int) -> dict[str, float]:
    """Relative-representation stitching (MoSECroT), with the paper's open points as options."""
    st, rel = options.stitch, options.stitch.relative
    check_before_training(ctx, st)
    model_name = ctx.config.model
    tokenizer = load_tokenizer(model_name)
    original = ctx.original_embeddings(model_name)
    specials = special_token_ids(tokenizer)
    trainable = st.embeddings == "trainable"
    union = ctx.prepared.union
    # Languages that share one English model: all (original side or union anchors), else one per language.
    per_language = st.source_side == "relative" and union is None
    groups = [[lang] for lang in ctx.targets] if per_language else [ctx.targets]
    metrics: dict[str, float] = {}
    english: list[tuple[str, dict[str, float]]] = []
    for langs in groups:
        if st.source_side == "relative":
            ids = union.source_token_ids if union is not None else ctx.prepared.anchors[langs[0]].source_token_ids
            rel_s = dataclasses.replace(rel, tau_calibration="fixed")  # F_s uses tau itself: calibration is F_t's
            f_s = cached_source_mapping(ctx, original, ids, specials, rel_s)
            emb_key = stable_hash({"anchors": ids, "relative": to_dict(rel_s)})
            ctx.hooks.epoch_eval = epoch_target_scores(ctx, st, original, tokenizer, langs)
            try:
                model, ft = ctx.english_model(seed, model_name, f_s, emb_key, trainable)
            finally:
                ctx.hooks.epoch_eval = None
        else:
            model, ft = ctx.english_model(seed, model_name, None, "original", trainable)
        english.append((langs[0], ctx.english_metrics(model, model_name, tokenizer, ft)))
        if per_language and item_key("test", "en") in ctx.predictions:  # each model's English test items, kept
            ctx.predictions[item_key("test", f"en-{langs[0]}")] = ctx.predictions.pop(item_key("test", "en"))
        for lang in langs:
            target_rows, rel_t = _target_rows(ctx, st, original, model, lang)
            if rel.tau_calibration == "entropy":
                metrics[f"tau_t.{lang}"] = rel_t.tau
            metrics.update(with_target_embeddings(ctx, model, lang, target_rows, st, tokenizer))
            metrics[f"anchors.{lang}"] = len(ctx.prepared.anchors[lang])
    metrics.update(english_over_groups(english, per_language))
    return metrics


def _target_rows(
    ctx: RunContext, st: StitchConfig, original: torch.Tensor, model: PreTrainedModel, lang: str, cached: bool = True
) -> tuple[Callable[[TargetVocabulary], torch.Tensor], RelativeConfig]:
    """F_t of ``lang`` as a function of the target vocabulary (cached on disk unless ``cached`` is false), with
    the relative config it uses (F_t's calibrated temperature under ``tau_calibration: entropy``)."""
    rel = st.relative
    anchors, vectors = ctx.prepared.anchors[lang], ctx.prepared.vectors[lang]
    eng_rows = _anchor_rows(st, original, model, anchors)
    rel_t = calibrated_target_config(ctx, original, anchors, rel, lang) if rel.tau_calibration == "entropy" else rel

    def rows(vocab: TargetVocabulary) -> torch.Tensor:
        if cached:
            return cached_target_mapping(ctx, vocab, vectors, anchors, eng_rows, rel_t)
        return target_mapping(vocab, vectors, anchors, eng_rows, torch.empty(0, eng_rows.shape[1]), rel_t)

    return rows, rel_t


def epoch_target_scores(
    ctx: RunContext, st: StitchConfig, original: torch.Tensor, tokenizer: Any, langs: list[str]
) -> Callable[[torch.nn.Module], dict[str, float]] | None:
    """`LoopHooks.epoch_eval` for the F_s model being fine-tuned: the dev scores of each language of
    ``hooks.epoch_languages`` this model serves, F_t swapped in as after training (what ASHA's rungs read under
    the selection-languages-dev protocol); None when no such language. Rows built from the fine-tuned
    embeddings change every epoch, so they are not cached; the kept predictions are left as they were."""
    chosen = [lang for lang in ctx.hooks.epoch_languages if lang in langs]
    if not chosen:
        return None

    def scores(model: torch.nn.Module) -> dict[str, float]:
        kept, out = dict(ctx.predictions), {}
        was_training = model.training
        try:
            for lang in chosen:
                rows, _ = _target_rows(
                    ctx, st, original, cast(Any, model), lang, cached=st.target_anchor_rows != "finetuned"
                )
                scored = with_target_embeddings(ctx, cast(Any, model), lang, rows, st, tokenizer, splits=["dev"])
                out.update({k: v for k, v in scored.items() if k.startswith("dev_")})
        finally:
            ctx.predictions.clear()
            ctx.predictions.update(kept)
            model.train(was_training)
        return out

    return scores


def calibrated_target_config(
    ctx: RunContext, original: torch.Tensor, anchors: AnchorSet, rel: RelativeConfig, lang: str
) -> RelativeConfig:
    """``rel`` with F_t's temperature set so that the mean entropy of F_t's weight rows (over the language's
    whole static vocabulary) equals F_s's at ``rel.tau`` (over the PLM vocabulary, the same anchors);
    cached by both spaces, the anchors and the config."""
    vectors = ctx.prepared.vectors[lang]
    key = {
        "plm": _digest(original),
        "static": _digest(vectors.matrix),
        "anchors": stable_hash(anchors.pairs),
        "relative": _relative_key(rel),
    }

    def build(d):
        entropy = mean_weight_entropy(original, original[anchors.source_token_ids], rel)
        static = torch.from_numpy(np.ascontiguousarray(vectors.matrix, dtype=np.float32))
        anchor_static = torch.from_numpy(np.stack([vectors.vector(t) for t in anchors.target_words]).astype(np.float32))
        tau = calibrate_tau(entropy, static, anchor_static, rel)
        (d / "tau.json").write_text(json.dumps({"tau": tau, "entropy": entropy}))

    tau = ctx.cache.get_or_build("tau_t", key, build, lambda d: json.loads((d / "tau.json").read_text())["tau"])
    return dataclasses.replace(rel, tau=tau, tau_calibration="fixed")


def english_over_groups(groups: list[tuple[str, dict[str, float]]], per_language: bool) -> dict[str, float]:
    """English metrics of one or more fine-tunings (``(language, metrics)`` per group): each metric is the mean
    over the groups, so ``dev_macro_f1.en`` scores every language's model; with ``per_language`` (pair scope)
    each group's per-language keys are kept as well, ``dev_macro_f1.en`` -> ``dev_macro_f1.en-de``."""
    if len(groups) == 1:
        out = dict(groups[0][1])
    else:
        first = groups[0][1]
        out = {k: statistics.fmean(float(m[k]) for _, m in groups) for k in first if all(k in m for _, m in groups)}
    if per_language:
        for lang, m in groups:
            out.update({f"{k}-{lang}": float(v) for k, v in m.items() if "." in k})  # {split}_{metric}.en keys
    return out


def least_squares_map(static_rows: np.ndarray, plm_rows: np.ndarray) -> np.ndarray:
    """W minimising ``||static_rows @ W - plm_rows||_F`` (float64 solve, float32 result)."""
    if static_rows.shape[0] != plm_rows.shape[0] or static_rows.shape[0] == 0:
        raise InputError(
            f"least squares needs paired anchor rows, got {static_rows.shape[0]} static and "
            f"{plm_rows.shape[0]} PLM rows",
            key="anchors",
        )
    w, *_ = np.linalg.lstsq(static_rows.astype(np.float64), plm_rows.astype(np.float64), rcond=None)
    return w.astype(np.float32)


def run_ls(ctx: RunContext, options: LSOptions, seed: int) -> dict[str, float]:
    """LS: least-squares map W (static -> PLM space) on the anchors, ``min ||A_t W - A_s||``, then swap."""
    model_name = ctx.config.model
    tokenizer = load_tokenizer(model_name)
    original = ctx.original_embeddings(model_name)
    check_before_training(ctx, options.stitch)
    model, ft = ctx.english_model(seed, model_name)
    metrics = ctx.english_metrics(model, model_name, tokenizer, ft)
    for lang in ctx.targets:
        anchors, vectors = ctx.prepared.anchors[lang], ctx.prepared.vectors[lang]
        a_t = np.stack([vectors.vector(t) for t in anchors.target_words]).astype(np.float64)
        a_s = _anchor_rows(options.stitch, original, model, anchors).double().numpy()
        if anchors.weights is not None:  # weighted least squares: each anchor's residual counts by its weight
            root = np.sqrt(np.asarray(anchors.weights, dtype=np.float64))[:, None]
            a_t, a_s = a_t * root, a_s * root
        w = torch.from_numpy(least_squares_map(a_t, a_s))

        def mapped_rows(vocab: TargetVocabulary, w: torch.Tensor = w) -> torch.Tensor:
            return torch.from_numpy(vocab.vectors) @ w

        metrics.update(with_target_embeddings(ctx, model, lang, mapped_rows, options.stitch, tokenizer))
    return metrics


SPECS = (
    MethodSpec(
        "mosecrot",
        run_mosecrot,
        StitchedOptions,
        reads_static=True,
        summary="relative-representation stitching (MoSECroT): F_s before fine-tuning, F_t swapped in",
    ),
    MethodSpec(
        "ls",
        run_ls,
        LSOptions,
        reads_static=True,
        summary="least-squares map from the static space to the PLM's embeddings, then swap",
    ),
)
