"""The `mosecrot` command."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mosecrot.errors import InputError

# Tables are wide (a column per split/resource): don't squeeze them to 80 columns in logs and CI.
console = Console(width=None if sys.stdout.isatty() else 160)

INSPECT_WORDS = ("god", "water", "king", "love", "house")


def _table(title: str, rows: list[dict], columns: list[str]) -> Table:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in ("language", "text", "dictionary") else "right")
    for row in rows:
        cells = []
        for col in columns:
            v = row.get(col, "")
            cells.append(f"{v:.1%}" if col == "test_coverage" and v != "" else str(v))
        table.add_row(*cells)
    return table


def cmd_prepare(args: argparse.Namespace) -> int:
    from mosecrot.config import load_experiment
    from mosecrot.prepare import prepare, write_report

    cfg = load_experiment(args.experiment, args.set)
    prepared = prepare(cfg, progress=not args.no_progress)
    columns = ["language", "text", "train", "dev", "test", "dropped", "vocab", "dictionary", "dict_pairs",
               "anchors", "test_coverage"]
    console.print(_table(f"prepare {cfg.name}: task {cfg.task.name}, anchors {cfg.anchors.scope}/"
                         f"{cfg.anchors.strategy}/{cfg.anchors.count}", prepared.rows, columns))
    if prepared.union is not None:
        console.print(f"union anchors: {len(prepared.union.source_words)} English words shared by "
                      f"{len(prepared.union.per_language)} languages")
    if args.inspect:
        _inspect(prepared)
    out = write_report(prepared, Path(args.output_dir or cfg.output_dir) / "prepare" / cfg.name)
    console.print(f"report: {out}   ({prepared.timings['total']:.0f} s)")
    return 0


def _inspect(prepared) -> None:
    """Sanity printout: 10 random anchors per language and neighbours of 5 translated words."""
    for lang, anchors in prepared.anchors.items():
        sample = random.Random(0).sample(anchors.pairs, min(10, len(anchors.pairs)))
        console.print(f"[bold]{lang}[/] random anchors: " + ", ".join(f"{s}→{t}" for s, t in sample))
    for lang, vectors in prepared.vectors.items():
        translations = dict(prepared.anchors[lang].pairs)
        for en in INSPECT_WORDS:
            word = translations.get(en)
            if word is None:
                continue
            nn = ", ".join(f"{w} {s:.2f}" for w, s in vectors.most_similar(word, 5))
            console.print(f"  {lang} {word} ({en}): {nn}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mosecrot", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build and cache tasks, static vectors, dictionaries and anchors")
    p.add_argument("experiment", help="experiment name (experiments/NAME.yaml) or a YAML path")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set anchors.count=500 (repeatable)")
    p.add_argument("--output-dir", help="where prepare.json goes (default: the config's output_dir)")
    p.add_argument("--inspect", action="store_true", help="print sample anchors and nearest neighbours")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_prepare)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except InputError as err:
        console.print(f"[red]error:[/] {err}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
