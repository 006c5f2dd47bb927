"""Training throughput of the stitched model against the unmodified one (examples/s, same run).

Both arms run the project's own loop (`mosecrot.training.finetune`) for the same number of optimizer
steps on the same real English verses (bible-genre train split, or synthetic sentences with
--synthetic), with the same seed and batch size. The stitched arm replaces MiniLM's input embeddings
by F_s (relative representations over --anchors English anchor tokens, top-k cosine,
built once before training; only the matrix values differ, its shape is the PLM's), so the ratio
measures what stitching costs while training. Arms alternate for --repeats rounds and the
median of each is compared, so drift in machine load hits both.

Writes JSON (default benchmarks/results/bench_training.json). Goal: stitched / unmodified >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RATIO_GOAL = 0.95
RESULTS = Path(__file__).resolve().parent / "results" / "bench_training.json"


def english_texts(n: int, synthetic: bool) -> tuple[list[str], list[int]]:
    if synthetic:
        words = "the king of the land went to the house of god and spoke to the people".split()
        texts = [" ".join(words[(i + j) % len(words)] for j in range(12 + i % 20)) for i in range(n)]
        return texts, [i % 6 for i in range(n)]
    from mosecrot.tasks import load_task

    task = load_task("bible-genre", "en", per_class={"train": max(1, n // 6), "dev": 1, "test": 1})
    split = task.splits["train"]
    return list(split["text"])[:n], list(split["label"])[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--anchors", type=int, default=3000)
    parser.add_argument("--weighting", default="standard")
    parser.add_argument("--synthetic", action="store_true", help="no Bible needed (synthetic sentences)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from mosecrot.methods.context import load_classifier
    from mosecrot.plm import load_tokenizer
    from mosecrot.relative import RelativeConfig
    from mosecrot.stitching import source_mapping, special_token_ids, swap_input_embeddings
    from mosecrot.training import EncodedSplit, LoopHooks, TrainingConfig, finetune

    tokenizer = load_tokenizer("minilm")
    n = args.steps * args.batch_size
    texts, labels = english_texts(n, args.synthetic)
    ids = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]
    train = EncodedSplit(ids, labels)
    dev = EncodedSplit(ids[: args.batch_size], labels[: args.batch_size])
    cfg = TrainingConfig(
        epochs=1, batch_size=args.batch_size, max_length=args.max_length, max_steps=args.steps, device="cpu"
    )
    num_labels = max(labels) + 1

    base = load_classifier("minilm", num_labels).get_input_embeddings().weight.detach().clone()
    # Anchors: BERT's vocabulary lists whole words from id 1996 ("the") on, roughly by frequency, so
    # the next --anchors ids stand in for a dictionary's most frequent single-token English words.
    anchor_ids = list(range(1996, 1996 + args.anchors))
    t = time.perf_counter()
    f_s = source_mapping(
        base, anchor_ids, special_token_ids(tokenizer), RelativeConfig(k=50, weighting=args.weighting, tau=0.1)
    )
    build_seconds = time.perf_counter() - t

    def arm(stitched: bool) -> float:
        model = load_classifier("minilm", num_labels, seed=0)
        if stitched:
            swap_input_embeddings(model, f_s, trainable=True, padding_idx=tokenizer.pad_token_id)
        result = finetune(
            model, train, dev, cfg, seed=0, pad_id=tokenizer.pad_token_id, hooks=LoopHooks(progress=False)
        )
        return result.examples_per_second

    rounds = []
    for r in range(args.repeats):
        order = (False, True) if r % 2 == 0 else (True, False)  # alternate which arm goes first
        speeds = {stitched: arm(stitched) for stitched in order}
        rounds.append({"unmodified": speeds[False], "stitched": speeds[True]})
        print(f"round {r + 1}: unmodified {speeds[False]:.1f} ex/s, stitched {speeds[True]:.1f} ex/s")
    unmodified = statistics.median(r["unmodified"] for r in rounds)
    stitched = statistics.median(r["stitched"] for r in rounds)
    report = {
        "benchmark": "training_throughput",
        "model": "minilm (sentence-transformers/all-MiniLM-L6-v2)",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "anchors": len(anchor_ids),
        "weighting": args.weighting,
        "texts": "synthetic" if args.synthetic else "bible-genre English train verses",
        "f_s_build_seconds": round(build_seconds, 2),
        "rounds": rounds,
        "unmodified_examples_per_second": unmodified,
        "stitched_examples_per_second": stitched,
        "ratio": stitched / unmodified,
        "goal": f">= {RATIO_GOAL}",
        "meets_goal": stitched / unmodified >= RATIO_GOAL,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"stitched/unmodified = {report['ratio']:.3f} (goal {report['goal']}); F_s built in "
        f"{build_seconds:.1f} s; {args.out}"
    )


if __name__ == "__main__":
    main()
