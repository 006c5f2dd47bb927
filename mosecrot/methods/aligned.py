"""Aligned-neighbour initialisation (``kind: aligned``; WECHSEL, Minixhofer et al. NAACL 2022; FOCUS, Dobler
& de Melo 2023): target words get embedding rows made of the English model's own rows.

The English model is fine-tuned with its own embeddings (no re-initialised input space, the weakness the
MoSECroT authors point to), one fine-tuning per seed shared with LS and every language. Each PLM token gets
an English static vector trained like the targets' (`mosecrot.alignment.token_vectors`); each target space
is aligned to the English one (Procrustes on dictionary pairs and identical strings, refined by
self-learning); a target word's row is the softmax(cos / tau)-weighted mean of its k nearest PLM tokens'
rows. Everything up to the rows is cached on disk, so a sweep's trials share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, cast

import numpy as np
import torch

from mosecrot.alignment import Alignment, AlignmentConfig, fit_alignment, identical_pairs, neighbour_rows, token_vectors
from mosecrot.cache import stable_hash, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.errors import InputError
from mosecrot.methods.context import RunContext
from mosecrot.methods.spec import MethodSpec
from mosecrot.methods.stitched import _digest, check_before_training, with_target_embeddings
from mosecrot.plm import load_tokenizer
from mosecrot.relearn import RelearnConfig
from mosecrot.stitching import TargetVocabulary, check_hybrid, special_token_ids
from mosecrot.vectors import StaticVectors, load_vectors, train_language_vectors


@dataclass
class AlignedStitchConfig:
    """How target rows are built from the English model's rows (``stitch:`` of ``kind: aligned``)."""

    k: int = 10  # nearest PLM tokens per target word (WECHSEL: 10)
    tau: float = 0.1  # softmax temperature over their cosine similarities (WECHSEL: 0.1)
    # Which rows are averaged: the embeddings before or after English fine-tuning.
    target_anchor_rows: Literal["original", "finetuned"] = "finetuned"
    # Target words without a stored static vector: subword vector (fastText), [UNK], or dropped.
    oov: Literal["subword", "unk", "skip"] = "subword"
    # Hybrid tokenisation at test time: off | oov | oov+shared (see `mosecrot.stitching.StitchConfig`).
    hybrid: Literal["off", "oov", "oov+shared"] = "off"
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    # Re-learn the rows through the frozen English model from parallel Bible verses (`RelearnConfig`).
    relearn: RelearnConfig = field(default_factory=RelearnConfig)

    def validate(self, prefix: str = "stitch") -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise InputError(f"k must be a positive integer, got {self.k!r}", key=f"{prefix}.k")
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not np.isfinite(tau) or tau <= 0:
            raise InputError(f"tau must be a positive number, got {tau!r}", key=f"{prefix}.tau")
        check_hybrid(self.hybrid, f"{prefix}.hybrid")
        self.alignment.validate(f"{prefix}.alignment")
        self.relearn.validate(f"{prefix}.relearn")


@dataclass
class AlignedOptions:
    """Options of ``kind: aligned``."""

    stitch: AlignedStitchConfig = field(default_factory=AlignedStitchConfig)
    # English static vectors (a .vec/.bin/.kv file) instead of fastText trained on the English Bible minus the
    # evaluation verses with the experiment's ``vectors.training`` (the default: the targets' recipe).
    english_vectors: str | None = None

    def validate(self, prefix: str = "methods") -> None:
        self.stitch.validate(f"{prefix}.stitch")


def load_english_vectors(ctx: RunContext, options: AlignedOptions) -> StaticVectors:
    """English static vectors: the user's file, or trained like the targets' on English Bible text."""
    if options.english_vectors:
        return load_vectors(options.english_vectors)
    prepared = ctx.prepared
    return train_language_vectors(
        prepared.bible,
        ctx.config.source_language,
        prepared.evaluation_ids,
        ctx.config.vectors.training,
        cache=ctx.cache,
        progress=False,
    )


def cached_token_vectors(
    ctx: RunContext, model_name: str, tokenizer, english: StaticVectors
) -> tuple[np.ndarray, np.ndarray]:
    """`token_vectors` of the PLM vocabulary, cached by the tokenizer's vocabulary and the English vectors."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(special_token_ids(tokenizer))
    key = {"tokens": texts_fingerprint(tokens), "english": _digest(english.matrix), "words": len(english)}

    def build(d):
        ids, matrix = token_vectors(tokens, special, english)
        np.save(d / "ids.npy", ids)
        np.save(d / "matrix.npy", matrix)

    return ctx.cache.get_or_build(
        "token_vectors", key, build, lambda d: (np.load(d / "ids.npy"), np.load(d / "matrix.npy"))
    )


def seed_pairs(ctx: RunContext, lang: str, target: StaticVectors, english: StaticVectors, seed: str):
    pairs: list[tuple[str, str]] = []
    if "dictionary" in seed.split("+"):
        pairs += list(ctx.prepared.dictionaries[lang].pairs)
    if "identical" in seed.split("+"):
        pairs += identical_pairs(target, english)
    return pairs


def cached_alignment(
    ctx: RunContext, lang: str, target: StaticVectors, english: StaticVectors, config: AlignmentConfig
) -> Alignment:
    """The language's alignment to English, cached by both spaces, the seed pairs and the config."""
    pairs = seed_pairs(ctx, lang, target, english, config.seed)
    key = {
        "language": lang,
        "target": _digest(target.matrix),
        "english": _digest(english.matrix),
        "pairs": stable_hash(pairs),
        "config": to_dict(config),
    }

    def build(d):
        a = fit_alignment(target, english, pairs, config, lang)
        np.savez(d / "alignment.npz", w=a.w, mean_target=a.mean_target, mean_english=a.mean_english)
        (d / "stats.json").write_text(json.dumps(a.stats))

    def load(d):
        z = np.load(d / "alignment.npz")
        stats = json.loads((d / "stats.json").read_text())
        return Alignment(z["w"], z["mean_target"], z["mean_english"], stats)

    return ctx.cache.get_or_build("alignment", key, build, load)


def run_aligned(ctx: RunContext, options: AlignedOptions, seed: int) -> dict[str, float]:
    """Aligned-neighbour initialisation: one English fine-tuning, target rows from aligned neighbours."""
    st = options.stitch
    check_before_training(ctx, st)
    if "dictionary" in st.alignment.seed.split("+"):
        empty = [lang for lang in ctx.targets if not len(ctx.prepared.dictionaries[lang])]
        if empty:
            raise InputError(
                f"alignment seeded by a dictionary, but {', '.join(empty)} has none",
                key="stitch.alignment.seed",
                expected="dictionary pairs for every target language, or seed: identical",
            )
    model_name = ctx.config.model
    tokenizer = load_tokenizer(model_name)
    original = ctx.original_embeddings(model_name)
    model, ft = ctx.english_model(seed, model_name)
    metrics = ctx.english_metrics(model, model_name, tokenizer, ft)
    english = load_english_vectors(ctx, options)
    token_ids, token_matrix = cached_token_vectors(ctx, model_name, tokenizer, english)
    finetuned = cast(torch.nn.Embedding, model.get_input_embeddings()).weight
    base = original if st.target_anchor_rows == "original" else finetuned
    token_rows = base[torch.from_numpy(token_ids)].detach().float()
    for lang in ctx.targets:
        target = ctx.prepared.vectors[lang]
        alignment = cached_alignment(ctx, lang, target, english, st.alignment)
        tokens_english = alignment.map_english(token_matrix)

        def rows(vocab: TargetVocabulary, a: Alignment = alignment, t: np.ndarray = tokens_english) -> torch.Tensor:
            return neighbour_rows(a.map_target(vocab.vectors), t, token_rows, st.k, st.tau)

        metrics.update(with_target_embeddings(ctx, model, lang, rows, st, tokenizer))
        metrics[f"alignment_seed_pairs.{lang}"] = alignment.stats["seed_pairs"]
        metrics[f"alignment_learned_pairs.{lang}"] = alignment.stats["learned_pairs"]
        metrics[f"alignment_seed_top1.{lang}"] = alignment.stats["seed_top1"]
    return metrics


SPECS = (
    MethodSpec(
        "aligned",
        run_aligned,
        AlignedOptions,
        reads_static=True,
        summary="aligned-neighbour initialisation (WECHSEL): target rows from the k nearest PLM tokens in an "
        "aligned static space, English model fine-tuned with its own embeddings",
    ),
)
