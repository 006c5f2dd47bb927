"""Re-learning target embedding rows through the frozen English model (issue #21, method 4).

Starting from stitched rows (F_t or aligned-neighbour rows), only the target words' rows are trained so that
the frozen English encoder represents a target Bible verse as it represents the parallel English verse
(mean-pooled last hidden states, MSE or cosine): Reimers & Gurevych (2020) distil a whole multilingual
student this way; here the student is the embedding table alone. Training data are parallel Bible verses
without any evaluation verse and its +-1 neighbours (the guard the static vectors use), a verse budget, and
held-out parallel verses for early stopping - never task data, never a label.

The result is a word -> row table over the words of the training verses; at evaluation a word keeps its
stitched row unless it was re-learned, so a row never depends on the evaluation texts.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from mosecrot.errors import InputError
from mosecrot.text.bible import Bible, with_neighbours

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


@dataclass
class RelearnConfig:
    """Re-learning of the target rows (``stitch.relearn``); off unless ``enabled``."""

    enabled: bool = False
    # Which frozen encoder the rows are fitted to: the pretrained English model (task-independent: with rows
    # that do not depend on the seed either, one fit serves every seed and trial) or the English model after
    # task fine-tuning (the one that reads the target text at test time; one fit per seed).
    encoder: Literal["pretrained", "finetuned"] = "pretrained"
    loss: Literal["mse", "cosine"] = "mse"
    verses: int = 2000  # parallel training verses (a budget; the rest of the Bible is not read)
    held_out: int = 200  # parallel verses for early stopping (never evaluation data)
    epochs: int = 3
    learning_rate: float = 3e-3
    batch_size: int = 32
    max_length: int = 64
    patience: int = 1  # epochs without held-out improvement before stopping
    seed: int = 0

    def validate(self, prefix: str = "relearn") -> None:
        for name in ("verses", "held_out", "epochs", "batch_size", "max_length", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"expected a positive integer, got {value!r}", key=f"{prefix}.{name}")
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise InputError(f"expected a positive number, got {lr!r}", key=f"{prefix}.learning_rate")


def parallel_verses(
    bible: Bible, source: str, language: str, exclude_ids: set[str], n: int, seed: int
) -> list[tuple[str, str]]:
    """Up to ``n`` ``(english, target)`` verse pairs of the default editions, evaluation ids and their +-1
    neighbours left out, sampled with ``seed`` (sorted ids first, so the sample is reproducible)."""
    skip = with_neighbours(exclude_ids)
    try:
        en, tgt = bible.texts(source), bible.texts(language)
    except InputError as err:
        raise InputError(
            f"re-learning needs parallel {source}-{language} Bible text: {err.message}",
            key="stitch.relearn.enabled",
            expected=f"a Bible (the experiment's bible:) with a {language} edition, or relearn off",
        ) from err
    ids = sorted(v for v in en.keys() & tgt.keys() if v not in skip and en[v].strip() and tgt[v].strip())
    if not ids:
        raise InputError(
            f"no parallel {source}-{language} Bible verses outside the evaluation data",
            key="stitch.relearn.enabled",
            expected=f"a Bible with both {source} and {language} (re-learning needs parallel text)",
        )
    random.Random(seed).shuffle(ids)
    return [(en[v], tgt[v]) for v in ids[:n]]


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _pad(batch: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    for i, seq in enumerate(batch):
        ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    return ids, (ids != pad_id).long()


@torch.no_grad()
def sentence_vectors(encoder: Any, embedding: torch.Tensor, ids: list[list[int]], pad_id: int, batch: int):
    """Mean-pooled last hidden states of ``encoder`` (a transformers base model) over ``embedding`` rows."""
    out = []
    for start in range(0, len(ids), batch):
        x, mask = _pad(ids[start : start + batch], pad_id)
        hidden = encoder(inputs_embeds=F.embedding(x, embedding), attention_mask=mask).last_hidden_state
        out.append(_mean_pool(hidden, mask))
    return torch.cat(out)


@dataclass
class RelearnResult:
    words: list[str]
    rows: torch.Tensor  # (len(words), D): the re-learned rows
    stats: dict[str, float]


def relearn_rows(
    encoder: Any,
    teacher_embedding: torch.Tensor,
    teacher_ids: list[list[int]],
    student_ids: list[list[int]],
    fixed_before: torch.Tensor,
    trainable: torch.Tensor,
    fixed_after: torch.Tensor,
    pad_id: int,
    config: RelearnConfig,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Train ``trainable`` rows (ids ``len(fixed_before) ..``) so the encoder's mean-pooled student
    sentences match the teacher's; the last ``held_out`` pairs stop training. Returns the best rows."""
    n_held = min(config.held_out, max(1, len(student_ids) // 5))
    if len(student_ids) - n_held < 1:
        raise InputError(
            f"{len(student_ids)} parallel verses are too few to re-learn and hold out from",
            key="stitch.relearn.verses",
        )
    params = [p for p in encoder.parameters()]
    grads = [p.requires_grad for p in params]
    was_training = encoder.training
    encoder.eval()  # no dropout: the frozen model as it reads text at test time
    for p in params:
        p.requires_grad_(False)
    try:
        targets = sentence_vectors(encoder, teacher_embedding, teacher_ids, pad_id, config.batch_size)
        rows = torch.nn.Parameter(trainable.detach().clone().float())
        optimiser = torch.optim.Adam([rows], lr=config.learning_rate)
        train = list(range(len(student_ids) - n_held))
        held = list(range(len(student_ids) - n_held, len(student_ids)))
        rng = random.Random(config.seed)

        def loss_of(idx: list[int]) -> torch.Tensor:
            x, mask = _pad([student_ids[i] for i in idx], pad_id)
            table = torch.cat([fixed_before, rows, fixed_after])
            hidden = encoder(inputs_embeds=F.embedding(x, table), attention_mask=mask).last_hidden_state
            pred, gold = _mean_pool(hidden, mask), targets[idx]
            if config.loss == "cosine":
                return (1 - F.cosine_similarity(pred, gold, dim=-1)).mean()
            return F.mse_loss(pred, gold)

        def held_loss() -> float:
            with torch.no_grad():
                parts = [held[i : i + config.batch_size] for i in range(0, len(held), config.batch_size)]
                return float(sum(loss_of(p) * len(p) for p in parts) / len(held))

        best, best_rows, start_loss, stale, seen = held_loss(), rows.detach().clone(), 0.0, 0, 0
        start_loss = best
        started = time.perf_counter()
        epochs_run = 0
        for epoch in range(config.epochs):
            rng.shuffle(train)
            for i in range(0, len(train), config.batch_size):
                optimiser.zero_grad()
                loss = loss_of(train[i : i + config.batch_size])
                loss.backward()
                optimiser.step()
                seen += len(train[i : i + config.batch_size])
            epochs_run = epoch + 1
            current = held_loss()
            if progress is not None:
                progress(epoch, current)
            if current < best - 1e-6:
                best, best_rows, stale = current, rows.detach().clone(), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        seconds = time.perf_counter() - started
    finally:
        for p, g in zip(params, grads, strict=True):
            p.requires_grad_(g)
        encoder.train(was_training)
    stats = {
        "held_out_loss_before": start_loss,
        "held_out_loss_after": best,
        "epochs": float(epochs_run),
        "examples_per_second": seen / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "train_verses": float(len(train)),
    }
    return best_rows, stats


def encoder_of(model: PreTrainedModel) -> Any:
    """The transformer body of a classification model (what reads ``inputs_embeds``)."""
    return model.base_model


def rows_table(words: list[str], rows: torch.Tensor) -> dict[str, np.ndarray]:
    return {w: rows[i].numpy() for i, w in enumerate(words)}
