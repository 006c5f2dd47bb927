"""What every method runs in: the prepared data, the training budget, the disk cache, and the English
fine-tunings already done (`RunContext`), plus the steps that fine-tuned methods share (fine-tune on
English, score a model on a language's splits).

Reuse that makes sweeps cheap: English fine-tunings are kept by everything that determines them, so the
model fine-tuned with its original embeddings serves the own-tokenizer floor, LS and every
``source_side: original`` variant, and a ``union`` anchor set's F_s model serves every target language
(train once, swap many).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from mosecrot.cache import DiskCache, stable_hash, texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.data_config import DataConfig
from mosecrot.errors import InputError
from mosecrot.metrics import classification_scores, item_key, metric_key, split_metrics
from mosecrot.plm import OFFLINE_MODELS, load_tokenizer, resolve_model
from mosecrot.prepare import Prepared
from mosecrot.stitching import swap_input_embeddings
from mosecrot.tasks import TaskData
from mosecrot.training import (
    EncodedSplit,
    FinetuneResult,
    LoopHooks,
    TrainingConfig,
    finetune,
    predict,
    set_seed,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class RunContext:
    """Prepared resources plus the English fine-tunings already done (keyed by what decides them).
    Built by `mosecrot.loop.run_methods`, the one loop over methods and seeds."""

    prepared: Prepared
    training: TrainingConfig
    hooks: LoopHooks = field(default_factory=LoopHooks)
    cache: DiskCache = field(default_factory=DiskCache)
    # Per-item predictions of the method now running, by `mosecrot.metrics.item_key` (``test.de``); the loop
    # empties it before each method and keeps it in the method's record (paired comparisons, bootstrap).
    predictions: dict[str, list[int]] = field(default_factory=dict)
    # Fine-tunings with the PLM's own embeddings are also kept on disk (`shared_finetune`), so every run,
    # sweep trial and confirm run with the same English training reuses them; false = always train.
    share_finetunings: bool = True
    _finetuned: dict[str, tuple[PreTrainedModel, FinetuneResult]] = field(default_factory=dict)
    _original_embeddings: dict[str, torch.Tensor] = field(default_factory=dict)

    def original_embeddings(self, model_name: str) -> torch.Tensor:
        """The PLM's pretrained input-embedding matrix, loaded once per run (not once per method and seed)."""
        if model_name not in self._original_embeddings:
            model = load_classifier(model_name, self.num_labels)
            embedding = cast(torch.nn.Embedding, model.get_input_embeddings())
            self._original_embeddings[model_name] = embedding.weight.detach().clone()
        return self._original_embeddings[model_name]

    def forget_finetuned(self) -> None:
        """Drop the fine-tuned models: they are shared by the methods of one seed, never across seeds."""
        self._finetuned.clear()

    @property
    def config(self) -> DataConfig:
        return self.prepared.config

    @property
    def source(self) -> TaskData:
        return self.prepared.tasks[self.config.source_language]

    @property
    def targets(self) -> list[str]:
        return list(self.config.target_languages)

    @property
    def num_labels(self) -> int:
        return int(self.source.splits["train"].features["label"].num_classes)

    def score(self, split: str, language: str, gold: Any, pred: Any) -> dict[str, float]:
        """The metrics of one split's predictions under the shared keys; the predictions are kept."""
        self.predictions[item_key(split, language)] = [int(p) for p in pred]
        return split_metrics(split, language, classification_scores(gold, pred, self.num_labels))

    def score_model(
        self, model: torch.nn.Module, split: str, language: str, data: EncodedSplit, pad_id: int
    ) -> dict[str, float]:
        """`score` of ``model``'s predictions on one encoded split."""
        pred, _ = predict(model, data, pad_id, self.training.eval_batch_size)
        return self.score(split, language, data.labels, pred)

    def scored_splits(self, language: str) -> list[str]:
        """The dev/test splits of ``language`` that zero-shot methods score (`TrainingConfig.scored_splits`)."""
        splits = self.prepared.tasks[language].splits
        return self.training.scored_splits(splits, source=language == self.config.source_language)

    def english_model(
        self,
        seed: int,
        model_name: str,
        embeddings: torch.Tensor | None = None,
        embeddings_key: str = "original",
        trainable: bool = True,
    ) -> tuple[PreTrainedModel, FinetuneResult]:
        """Fine-tune on English train, select on English dev; kept by model, embeddings, seed and budget."""
        key = stable_hash(
            {
                "model": model_name,
                "emb": embeddings_key,
                "trainable": trainable,
                "seed": seed,
                "training": to_dict(self.training),
            }
        )
        if key in self._finetuned:
            return self._finetuned[key]
        tokenizer = load_tokenizer(model_name)
        model = load_classifier(model_name, self.num_labels, seed)
        if embeddings is not None:
            swap_input_embeddings(model, embeddings, trainable, padding_idx=tokenizer.pad_token_id)
        else:
            cast(torch.nn.Embedding, model.get_input_embeddings()).weight.requires_grad_(trainable)
        src, max_len = self.source, self.training.max_length
        train = split_of(src, "train", cached_encode(self, model_name, tokenizer, src.splits["train"]["text"], max_len))
        dev = split_of(src, "dev", cached_encode(self, model_name, tokenizer, src.splits["dev"]["text"], max_len))

        def run_finetune() -> FinetuneResult:
            return finetune(model, train, dev, self.training, seed, tokenizer.pad_token_id, self.hooks)

        if embeddings is None and self.share_finetunings and not _distributed():
            ft = shared_finetune(self, model_name, trainable, seed, train, dev, run_finetune)
        else:
            ft = run_finetune()
        model.load_state_dict(ft.best_state)
        model.eval()
        self._finetuned[key] = (model, ft)
        return model, ft

    def english_metrics(
        self, model: torch.nn.Module, model_name: str, tokenizer: Any, ft: FinetuneResult
    ) -> dict[str, float]:
        """English dev scores of the selected epoch, English test where scored, and training throughput."""
        en = self.config.source_language
        out = {metric_key("dev", k, en): v for k, v in ft.best_dev.items() if k in ("macro_f1", "accuracy", "loss")}
        if "test" in self.scored_splits(en):
            ids = cached_encode(
                self, model_name, tokenizer, self.source.splits["test"]["text"], self.training.max_length
            )
            out.update(self.score_model(model, "test", en, split_of(self.source, "test", ids), tokenizer.pad_token_id))
        out["train_examples_per_second"] = ft.examples_per_second
        out["english_finetune_reused"] = float(ft.cached)  # 1: loaded from the disk cache, trained by an earlier run
        out["best_epoch"] = ft.best_epoch
        return out

    def evaluate_language(
        self,
        model: torch.nn.Module,
        language: str,
        input_ids_of: Callable[[list[str]], list[list[int]]],
        pad_id: int,
        splits: list[str] | None = None,
    ) -> dict[str, float]:
        """Scores of ``model`` on the scored splits of ``language`` (or those of ``splits`` it has), its text
        encoded by ``input_ids_of``."""
        task = self.prepared.tasks[language]
        out: dict[str, float] = {}
        for split in [s for s in self.scored_splits(language) if splits is None or s in splits]:
            data = split_of(task, split, input_ids_of(task.splits[split]["text"]))
            out.update(self.score_model(model, split, language, data, pad_id))
        return out


# Settings that change how models are scored, never how they are trained: left out of a fine-tuning's key.
_EVALUATION_ONLY = ("eval_batch_size", "eval_target_splits", "eval_source_test", "device")


def _distributed() -> bool:
    """True inside a multi-process (DDP) group: every rank must train together, so nothing is loaded instead."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shared_finetune(
    ctx: RunContext,
    model_name: str,
    trainable: bool,
    seed: int,
    train: EncodedSplit,
    dev: EncodedSplit,
    run_finetune: Callable[[], FinetuneResult],
) -> FinetuneResult:
    """An English fine-tuning of ``model_name`` with its own embeddings, from the disk cache when one with the
    same model, English train/dev data, training settings and seed exists (a sweep's trials, a confirm's
    configurations and the methods of later runs then share one), else trained and stored.

    A loaded fine-tuning replays its per-epoch entries through ``hooks.report`` (the history of the model that
    is used) and says ``cached`` in its result, so nothing presents a reused model as newly trained."""
    training = {k: v for k, v in to_dict(ctx.training).items() if k not in _EVALUATION_ONLY}
    key = {
        "model": model_name,
        "model_files": _model_fingerprint(model_name),
        "trainable": trainable,
        "seed": seed,
        "training": training,
        "train": stable_hash({"ids": train.input_ids, "labels": train.labels}),
        "dev": stable_hash({"ids": dev.input_ids, "labels": dev.labels}),
        "num_labels": ctx.num_labels,
    }
    trained: list[FinetuneResult] = []

    def build(d: Path) -> None:
        ft = run_finetune()
        trained.append(ft)
        torch.save(ft.best_state, d / "state.pt")
        meta = {k: getattr(ft, k) for k in ("best_epoch", "best_dev", "history", "steps", "train_seconds")}
        meta["examples_per_second"] = ft.examples_per_second
        (d / "result.json").write_text(json.dumps(meta, default=float))

    def load(d: Path) -> FinetuneResult:
        if trained:
            return trained[0]
        meta = json.loads((d / "result.json").read_text())
        ft = FinetuneResult(torch.load(d / "state.pt", map_location="cpu"), meta["best_epoch"], meta["best_dev"])
        ft.history, ft.steps, ft.train_seconds = meta["history"], meta["steps"], meta["train_seconds"]
        ft.examples_per_second, ft.cached = meta["examples_per_second"], True
        for entry in ft.history:
            if ctx.hooks.report is not None:
                ctx.hooks.report(entry)
        return ft

    return ctx.cache.get_or_build("finetuned", key, build, load)


def _model_fingerprint(model_name: str) -> str:
    """Names and sizes of the model's files (a local directory): a rebuilt or replaced model is a new key."""
    path = Path(resolve_model(model_name))
    if not path.is_dir():
        return model_name  # a hub id: its revision is the hub's business
    return stable_hash(sorted((str(f.relative_to(path)), f.stat().st_size) for f in path.rglob("*") if f.is_file()))


def load_classifier(model_name: str, num_labels: int, seed: int = 0) -> PreTrainedModel:
    """The PLM with a fresh classification head, initialised from ``seed`` (so runs are reproducible)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected here
    hf_logging.disable_progress_bar()
    set_seed(seed)
    try:
        return AutoModelForSequenceClassification.from_pretrained(resolve_model(model_name), num_labels=num_labels)
    except OSError as err:
        raise InputError(
            f"could not load model {model_name!r}: {str(err).splitlines()[0]}",
            expected="an offline name ("
            + ", ".join(OFFLINE_MODELS)
            + "), a local directory or a hub id with hub access",
        ) from err


def encode_with_plm(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def cached_encode(ctx: RunContext, model_name: str, tokenizer: Any, texts: Any, max_length: int) -> list[list[int]]:
    """PLM token ids of ``texts``, cached on disk by model, text fingerprint and max length."""
    texts = list(texts)
    key = {"model": model_name, "texts": texts_fingerprint(texts), "n": len(texts), "max_length": max_length}

    def build(d):
        (d / "ids.json").write_text(json.dumps(encode_with_plm(tokenizer, texts, max_length)))

    return ctx.cache.get_or_build("tokenised", key, build, lambda d: json.loads((d / "ids.json").read_text()))


def split_of(task: TaskData, split: str, input_ids: list[list[int]]) -> EncodedSplit:
    return EncodedSplit(input_ids, list(task.splits[split]["label"]))
