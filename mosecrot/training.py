"""The one training and evaluation loop: fine-tune on English, select on English dev, evaluate.

A plain function used by local runs and, unchanged, by Ray Train workers: distributed concerns come
in through `LoopHooks` (wrap the model in DDP, shard the loader, report metrics), so this module never
imports Ray. Metrics are computed over a whole split (macro-F1 is not averaged per batch).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SequentialSampler, Subset
from tqdm.auto import tqdm

from mosecrot.errors import InputError
from mosecrot.metrics import SCORED_SPLITS, classification_scores


@dataclass
class TrainingConfig:
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 32
    grad_accum: int = 1
    max_length: int = 100
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    select_by: Literal["dev_macro_f1", "dev_loss"] = "dev_macro_f1"
    max_steps: int | None = None  # cap on optimizer steps (tests, benchmarks); null = epochs decide
    eval_batch_size: int = 64
    device: str = "auto"  # auto: cuda when available, else cpu
    # Which target-language splits zero-shot methods are scored on. [test] halves-ish a sweep trial's
    # evaluation when nothing selects on target dev sets (english-dev protocol); [dev, test] otherwise.
    eval_target_splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    eval_source_test: bool = True  # the source language's test set (English dev is always scored: selection)
    # Batches of similar-length examples (transformers' LengthGroupedSampler: shuffled mega-batches, sorted
    # within): Bible verses padded to the batch maximum nearly double the tokens a batch computes on.
    group_by_length: bool = False

    def validate(self, prefix: str = "training") -> None:
        for name in ("epochs", "batch_size", "grad_accum", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{getattr(self, name)} is too small", key=f"{prefix}.{name}", expected=">= 1")
        if self.learning_rate <= 0:
            raise InputError("learning rate must be positive", key=f"{prefix}.learning_rate")
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError("max_steps must be >= 1 or null", key=f"{prefix}.max_steps")
        splits = self.eval_target_splits
        if (
            not isinstance(splits, list)
            or not splits
            or any(x not in SCORED_SPLITS for x in splits)
            or len(set(splits)) != len(splits)
        ):
            raise InputError(
                f"got {splits!r}",
                key=f"{prefix}.eval_target_splits",
                expected="a non-empty list of distinct splits from: dev, test",
            )

    def scored_splits(self, available, source: bool = False) -> list[str]:
        """The dev/test splits of `available` that zero-shot methods score, in that order: for the source
        language dev (selection) and test unless ``eval_source_test`` is off; for targets ``eval_target_splits``."""
        wanted = SCORED_SPLITS if self.eval_source_test else ("dev",)
        return [s for s in SCORED_SPLITS if s in available and s in (wanted if source else self.eval_target_splits)]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def set_seed(seed: int) -> None:
    """Seed every generator; on CPU the loop is then deterministic run to run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class EncodedSplit(Dataset):
    """Token ids and labels of one split, already encoded by whichever tokenizer the method uses."""

    def __init__(self, input_ids: list[list[int]], labels: list[int]) -> None:
        if len(input_ids) != len(labels):
            raise ValueError(f"{len(input_ids)} inputs but {len(labels)} labels")
        self.input_ids = input_ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.input_ids[i], self.labels[i]


def make_collate(pad_id: int) -> Callable:
    def collate(batch: list[tuple[list[int], int]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (row, _) in enumerate(batch):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        labels = torch.tensor([lab for _, lab in batch], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


@dataclass
class LoopHooks:
    """What a distributed runner plugs in; the defaults run in one process."""

    prepare_model: Callable[[torch.nn.Module], torch.nn.Module] = lambda m: m
    # (training loader, run seed) -> the loader to iterate; a DDP runner shards it (`distributed_loader`)
    prepare_loader: Callable[[DataLoader, int], DataLoader] = lambda d, seed: d
    report: Callable[[dict[str, Any]], None] | None = None  # called after each dev evaluation
    is_main: bool = True
    progress: bool = True
    # Target languages whose dev sets a method scores after every epoch where it can (a sweep's selection
    # languages, for ASHA under the selection-languages-dev protocol); set by the runner.
    epoch_languages: tuple[str, ...] = ()
    # model -> extra metrics of the epoch's entry (``dev_macro_f1.de``, ...); set by the method while it fine-tunes
    epoch_eval: Callable[[torch.nn.Module], dict[str, float]] | None = None


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


@torch.no_grad()
def predict(
    model: torch.nn.Module, split: EncodedSplit, pad_id: int, batch_size: int = 64, device: torch.device | None = None
) -> tuple[np.ndarray, float]:
    """Predicted labels and mean loss over a whole split."""
    model = _unwrap(model)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Batches of similar length pad less (verses vary from a few tokens to max_length): about 1.5x faster
    # on CPU; predictions go back to the split's order, and the loss is a sum, so nothing else changes.
    order = sorted(range(len(split)), key=lambda i: len(split.input_ids[i]))
    loader = DataLoader(Subset(split, order), batch_size=batch_size, shuffle=False, collate_fn=make_collate(pad_id))
    preds, loss_sum = [], 0.0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(**batch)
        loss_sum += out.loss.item() * batch["labels"].shape[0]
        preds.append(out.logits.argmax(-1).cpu().numpy())
    model.train(was_training)
    pred = np.empty(len(split), dtype=np.int64)
    if preds:
        pred[np.asarray(order)] = np.concatenate(preds)
    return pred, loss_sum / max(len(split), 1)


def evaluate(model: torch.nn.Module, split: EncodedSplit, pad_id: int, batch_size: int = 64) -> dict[str, float]:
    """Macro-F1 and accuracy over the whole split, plus mean loss."""
    pred, loss = predict(model, split, pad_id, batch_size)
    gold = np.asarray(split.labels)
    num_labels = int(cast(Any, _unwrap(model)).config.num_labels)
    return {**classification_scores(gold, pred, num_labels), "loss": float(loss), "n": int(len(gold))}


@dataclass
class FinetuneResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_dev: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    train_seconds: float = 0.0
    examples_per_second: float = 0.0
    cached: bool = False  # loaded from the disk cache (`mosecrot.methods.context.shared_finetune`), not trained now


def train_loader(
    train: EncodedSplit, config: TrainingConfig, seed: int, pad_id: int, hooks: LoopHooks | None = None
) -> DataLoader:
    """The shuffled training loader of `finetune`, its order seeded by ``seed``, after ``hooks.prepare_loader``."""
    hooks = hooks or LoopHooks()
    generator = torch.Generator().manual_seed(seed)
    sampler = None
    if config.group_by_length:  # with several DDP workers `distributed_loader` swaps in an ungrouped sampler
        from transformers.trainer_pt_utils import LengthGroupedSampler

        sampler = LengthGroupedSampler(
            config.batch_size, lengths=[len(ids) for ids in train.input_ids], generator=generator
        )
    return hooks.prepare_loader(
        DataLoader(
            train,
            batch_size=config.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            collate_fn=make_collate(pad_id),
            generator=generator,
        ),
        seed,
    )


def distributed_loader(loader: DataLoader, num_replicas: int, rank: int, seed: int) -> DataLoader:
    """``loader`` sharded for one DDP rank by a `DistributedSampler` seeded with the run ``seed`` (shuffled unless
    ``loader`` was sequential), so that every rank's data order varies with the run seed as one process's does.
    (Ray's ``prepare_data_loader`` builds its sampler with the default seed 0, the same order for every seed; it
    keeps a loader that already has a `DistributedSampler`.) A length-grouped sampler becomes an ungrouped one."""
    shuffle = not isinstance(loader.sampler, SequentialSampler)
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=False,
        sampler=DistributedSampler(loader.dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed),
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        generator=loader.generator,
    )


def finetune(
    model: torch.nn.Module,
    train: EncodedSplit,
    dev: EncodedSplit,
    config: TrainingConfig,
    seed: int,
    pad_id: int,
    hooks: LoopHooks | None = None,
) -> FinetuneResult:
    """Fine-tune on `train`, evaluate `dev` after every epoch, keep the best state by `select_by`."""

    hooks = hooks or LoopHooks()
    set_seed(seed)
    device = resolve_device(config.device)
    model.to(device)
    model.train()
    model = hooks.prepare_model(model)
    loader = train_loader(train, config, seed, pad_id, hooks)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )
    steps_per_epoch = math.ceil(len(loader) / config.grad_accum)
    total = config.epochs * steps_per_epoch
    if config.max_steps:
        total = min(total, config.max_steps)
    warmup = int(config.warmup_ratio * total)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(1, warmup) if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
    )
    best: FinetuneResult | None = None
    step, seen, train_seconds = 0, 0, 0.0
    history = []
    epochs = config.epochs if not config.max_steps else math.ceil(config.max_steps / steps_per_epoch)
    for epoch in range(epochs):
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        epoch_start = time.perf_counter()
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (hooks.progress and hooks.is_main), leave=False
        )
        for i, batch in enumerate(bar):
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = model(**batch).loss / config.grad_accum
            loss.backward()
            seen += batch["labels"].shape[0]
            if (i + 1) % config.grad_accum == 0 or i + 1 == len(loader):
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.set_postfix(loss=f"{loss.item() * config.grad_accum:.3f}")
                if step >= total:
                    break
        train_seconds += time.perf_counter() - epoch_start  # evaluation time is not training time
        dev_metrics = evaluate(model, dev, pad_id, config.eval_batch_size)
        entry = {"epoch": epoch + 1, "step": step, **{f"dev_{k}": v for k, v in dev_metrics.items()}}
        if hooks.epoch_eval is not None and hooks.is_main:
            entry.update(hooks.epoch_eval(_unwrap(model)))
        history.append(entry)
        better = best is None or (
            dev_metrics["macro_f1"] > best.best_dev["macro_f1"]
            if config.select_by == "dev_macro_f1"
            else dev_metrics["loss"] < best.best_dev["loss"]
        )
        if better:
            state = {k: v.detach().clone() for k, v in _unwrap(model).state_dict().items()}
            best = FinetuneResult(state, epoch + 1, dev_metrics)
        if hooks.report is not None:
            hooks.report(entry)
        if step >= total:
            break
    assert best is not None
    best.history = history
    best.steps = step
    best.train_seconds = train_seconds
    best.examples_per_second = seen / train_seconds if train_seconds else 0.0
    return best
