"""EMS training: a plain function that runs directly or inside a Ray Train worker (never imports Ray).

When ``torch.distributed`` is initialised (a Ray Train worker, torchrun), the model is wrapped in DDP,
each rank draws its own batches, rank 0 writes checkpoints and shows progress, and the ranks agree on
when to stop: at ``train.max_steps`` (the budget), or at the opt-in time cap ``train.time_budget_s``, which is
then recorded (``stopped_by`` in the result and the checkpoint's meta). Everything that can be wrong with the
input (languages, data, vocabulary size, a checkpoint of another config) fails in `prepare_training`, before
the first step.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from mosecrot.cache import DiskCache
from mosecrot.configschema import to_dict
from mosecrot.ems.checkpoint import is_checkpoint, load_checkpoint, load_train_state, save_checkpoint
from mosecrot.ems.config import EMSConfig
from mosecrot.ems.data import BatchSampler, EMSData, assert_no_leak, build_ems_data, pair_lengths
from mosecrot.ems.model import EMSModel, collate
from mosecrot.ems.tokenizer import EMSTokenizer, train_tokenizer
from mosecrot.errors import InputError
from mosecrot.text.bible import Bible
from mosecrot.training import resolve_device, set_seed

log = logging.getLogger(__name__)


@dataclass
class EMSHooks:
    """What a runner plugs in. ``report(metrics, checkpoint_dir)`` is called on every rank after each
    log interval (checkpoint_dir None) and after each checkpoint (its directory, written by rank 0)."""

    report: Callable[[dict[str, Any], Path | None], None] | None = None
    progress: bool = True


@dataclass
class EMSTrainResult:
    directory: Path
    steps: int
    train_seconds: float
    pairs_per_second: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int = 0
    data_sizes: dict[str, int] = field(default_factory=dict)
    excluded_counts: dict[str, int] = field(default_factory=dict)
    # "max_steps" (the budget), or "time_budget" when the opt-in train.time_budget_s cap ended it first: then
    # the encoder is shorter than its config says, and the checkpoint's meta says so too.
    stopped_by: str = "max_steps"


@dataclass
class TrainingInputs:
    data: EMSData
    tokenizer: EMSTokenizer
    directory: Path
    resume_from: Path | None


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cached_tokenizer(data: EMSData, config: EMSConfig, cache: DiskCache | None = None) -> EMSTokenizer:
    """The tokenizer of this training corpus, trained once and cached on disk."""
    cache = cache or DiskCache()
    key = {"data": data.fingerprint(), "tokenizer": to_dict(config.tokenizer), "seed": config.train.seed, "format": 1}

    def build(d: Path) -> None:
        train_tokenizer(data.tokenizer_sentences(), config.tokenizer, config.train.seed).save(d / "tokenizer.model")

    return cache.get_or_build("ems_tokenizer", key, build, lambda d: EMSTokenizer.load(d / "tokenizer.model"))


def prepare_training(
    config: EMSConfig, bible: Bible | None = None, output_dir: str | Path | None = None, cache: DiskCache | None = None
) -> TrainingInputs:
    """Data, tokenizer and the checkpoint to resume from: every input check, before any training."""
    config.validate()
    rank, _ = _rank_world()
    data = build_ems_data(config, bible)
    if rank != 0:
        _barrier()  # rank 0 trains (and caches) the tokenizer first
    tokenizer = cached_tokenizer(data, config, cache)
    if rank == 0:
        _barrier()
    directory = Path(output_dir or config.train.output_dir) / config.name
    resume_from = None
    if config.train.resume and is_checkpoint(directory):
        old = load_checkpoint(directory)  # refuses a tokenizer/config that does not belong to its model
        if old.config.fingerprint() != config.fingerprint():
            raise InputError(
                "holds a checkpoint of a different EMS config (data, tokenizer, model, loss or "
                "optimiser settings differ)",
                path=directory,
                expected="the same config, train.resume=false, or another train.output_dir",
            )
        if old.tokenizer.fingerprint != tokenizer.fingerprint:
            raise InputError(
                f"the checkpoint's tokenizer ({old.tokenizer.fingerprint}) is not the one this "
                f"corpus gives ({tokenizer.fingerprint})",
                path=directory,
                expected="train.resume=false or another train.output_dir",
            )
        resume_from = directory
    return TrainingInputs(data, tokenizer, directory, resume_from)


def training_progress(config: EMSConfig, step: int, seconds: float) -> float:
    """How far the run is, 0..1: by steps, or by the time budget when that comes first."""
    t = config.train
    progress = step / t.max_steps
    if t.time_budget_s:
        progress = max(progress, seconds / t.time_budget_s)
    return min(1.0, progress)


def learning_rate(config: EMSConfig, step: int, seconds: float) -> float:
    """Linear warm-up over the first ``warmup_fraction`` of the run, then cosine decay to 0 at its end;
    the run ends at ``max_steps`` or at the time budget, whichever comes first, so a budget-limited run
    warms up and decays fully too."""
    t = config.train
    p = training_progress(config, step, seconds)
    if p < t.warmup_fraction:  # (step + 1): the first step already moves
        return t.learning_rate * min(1.0, max(p, (step + 1) / t.max_steps) / t.warmup_fraction)
    decay = (p - t.warmup_fraction) / max(1e-9, 1.0 - t.warmup_fraction)
    return t.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, decay)))


def _batch(
    data: EMSData,
    tokenizer: EMSTokenizer,
    lang: str,
    rows: np.ndarray,
    config: EMSConfig,
    lang_index: dict[str, int],
    device: torch.device,
) -> dict[str, Any]:
    pairs = data.train[lang]
    n = config.train.max_length
    ids_a, mask_a = collate(tokenizer.encode([pairs.src[i] for i in rows], n), tokenizer.pad_id)
    ids_b, mask_b = collate(tokenizer.encode([pairs.tgt[i] for i in rows], n), tokenizer.pad_id)
    size = len(rows)
    return {
        "ids_a": ids_a.to(device),
        "mask_a": mask_a.to(device),
        "lang_a": torch.full((size,), lang_index[lang], dtype=torch.long, device=device),
        "ids_b": ids_b.to(device),
        "mask_b": mask_b.to(device),
        "lang_b": torch.full((size,), lang_index[data.meta["pivot"]], dtype=torch.long, device=device),
    }


def train_ems(
    config: EMSConfig,
    hooks: EMSHooks | None = None,
    bible: Bible | None = None,
    output_dir: str | Path | None = None,
    cache: DiskCache | None = None,
) -> EMSTrainResult:
    """Train (or resume) an EMS encoder; the checkpoint goes to ``OUTPUT_DIR/NAME``."""
    hooks = hooks or EMSHooks()
    prep = prepare_training(config, bible, output_dir, cache)
    data, tokenizer = prep.data, prep.tokenizer
    assert_no_leak(data)
    rank, world = _rank_world()
    t = config.train
    set_seed(t.seed)
    device = resolve_device(t.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    langs = [data.meta["pivot"], *data.train]
    lang_index = {lang: i for i, lang in enumerate(langs)}
    model = EMSModel(tokenizer.vocab_size, len(langs), config.model, tokenizer.pad_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay, amsgrad=True)
    start, seconds, history = 0, 0.0, []
    if prep.resume_from is not None:
        bundle = load_checkpoint(prep.resume_from)
        model.load_state_dict(bundle.model.state_dict())
        state = load_train_state(prep.resume_from)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            start, seconds, history = state["step"], state["seconds"], state.get("history", [])
            torch.set_rng_state(state["torch_rng"])
    model.to(device)
    model.train()
    net: torch.nn.Module = model
    if world > 1:
        unused = config.loss.xtr_weight == 0 or config.loss.contrastive_weight == 0
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=unused
        )
    sampler = BatchSampler(
        data.sizes(),
        config.data.sampling_temperature,
        t.batch_size,
        t.seed,
        rank,
        {lang: pair_lengths(p) for lang, p in data.train.items()},
        config.data.length_pool,
    )
    meta = {
        "languages": langs,
        "data_fingerprint": data.fingerprint(),
        "data_sizes": data.sizes(),
        "excluded": {k: sorted(v) for k, v in data.excluded.items()},
        "heldout": {lang: p.ids for lang, p in data.heldout.items()},
        **{k: v for k, v in data.meta.items()},
    }

    def checkpoint(step: int) -> None:
        if rank == 0:
            save_checkpoint(
                prep.directory,
                model,
                tokenizer,
                config,
                {**meta, "step": step, "train_seconds": seconds},
                {
                    "optimizer": optimizer.state_dict(),
                    "step": step,
                    "seconds": seconds,
                    "history": history,
                    "torch_rng": torch.get_rng_state(),
                },
            )
        _barrier()
        if hooks.report is not None:
            hooks.report({"step": step, **(history[-1] if history else {})}, prep.directory)

    seconds_at_start = seconds
    bar = tqdm(total=t.max_steps, initial=start, desc=f"ems {config.name}", disable=not (hooks.progress and rank == 0))
    window: list[dict[str, float]] = []
    pairs_done, step = 0, start
    stop = start >= t.max_steps or (t.time_budget_s is not None and seconds >= t.time_budget_s)
    while not stop:
        t0 = time.perf_counter()
        lr = learning_rate(config, step, seconds)
        for group in optimizer.param_groups:
            group["lr"] = lr
        lang, rows = sampler.batch(step)
        batch = _batch(data, tokenizer, lang, rows, config, lang_index, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=t.precision == "bf16"):
            losses = net(
                batch["ids_a"],
                batch["mask_a"],
                batch["lang_a"],
                batch["ids_b"],
                batch["mask_b"],
                batch["lang_b"],
                config.loss,
            )
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        step += 1
        seconds += time.perf_counter() - t0
        pairs_done += len(rows) * world
        window.append(losses.floats())
        bar.update(1)
        if step % t.log_every == 0 or step == t.max_steps:
            entry = {
                "step": step,
                "lr": lr,
                "seconds": round(seconds, 2),
                **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
            }
            history.append(entry)
            window = []
            bar.set_postfix(loss=f"{entry['loss']:.3f}", xtr=f"{entry['xtr']:.3f}", con=f"{entry['contrastive']:.3f}")
            if hooks.report is not None:
                hooks.report(entry, None)
        stop = step >= t.max_steps or (t.time_budget_s is not None and seconds >= t.time_budget_s)
        if world > 1:  # every rank stops at the same step
            flag = torch.tensor([float(stop)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = bool(flag.item())
        if step % t.checkpoint_every == 0 and not stop:
            checkpoint(step)
    bar.close()
    stopped_by = "max_steps" if step >= t.max_steps else "time_budget"
    meta.update(stopped_by=stopped_by, max_steps=t.max_steps, time_budget_s=t.time_budget_s)
    if stopped_by == "time_budget":
        log.warning(
            "EMS %s: the time cap train.time_budget_s = %s s stopped training at step %d of %d; the result is flagged",
            config.name,
            t.time_budget_s,
            step,
            t.max_steps,
        )
    if window:
        history.append(
            {
                "step": step,
                "seconds": round(seconds, 2),
                **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
            }
        )
    checkpoint(step)
    own = seconds - seconds_at_start  # a resumed run's throughput counts only its own steps
    return EMSTrainResult(
        prep.directory,
        step,
        seconds,
        pairs_done / own if own > 0 else 0.0,
        history,
        start,
        data.sizes(),
        {k: len(v) for k, v in data.excluded.items()},
        stopped_by,
    )
