"""Compare two methods of two finished runs item by item: ``mosecrot compare RUN_A:METHOD RUN_B:METHOD``.

Both runs' results.json keep per-item predictions beside the gold labels and a fingerprint of each split's
texts, so any two runs on the same items can be compared afterwards by a paired bootstrap: per language
and for the mean over the languages both have, each score with its interval, the difference with its
interval, and the probability that A beats B.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mosecrot.errors import InputError
from mosecrot.metrics import item_key
from mosecrot.uncertainty import CONFIDENCE, N_RESAMPLES, comparison_row, draws, seed_mean_resampled


def parse_side(spec: str, flag: str) -> tuple[Path, str]:
    """``RUN_DIR:METHOD`` (or ``results.json:METHOD``) -> (path of results.json, method)."""
    path, sep, method = spec.rpartition(":")
    if not sep or not path or not method:
        raise InputError(f"{spec!r} is not RUN:METHOD", key=flag, expected="a run directory, a colon, a method name")
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    if not p.is_file():
        raise InputError(f"no results.json at {path}", key=flag, expected="a `mosecrot run` directory")
    return p, method


def _side(spec: str, flag: str, split: str) -> dict[str, Any]:
    path, method = parse_side(spec, flag)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"not valid JSON ({err})", path=path) from err
    records = [r for r in data.get("records", []) if r.get("method") == method and "error" not in r]
    names = sorted({str(r.get("method")) for r in data.get("records", [])})
    if not records:
        raise InputError(f"no finished records of method {method!r} in {path}", key=flag, expected=", ".join(names))
    items = data.get("items") or {}
    if not items.get("gold") or not all("predictions" in r for r in records):
        raise InputError(
            f"{path} keeps no per-item predictions (a run from before they were recorded)",
            key=flag,
            expected="a run directory written by this version of `mosecrot run`",
        )
    if records[0].get("deterministic"):
        records = records[:1]
    languages = [lang for lang in data["summary"]["languages"] if item_key(split, lang) in items["gold"]]
    return {
        "spec": spec,
        "path": str(path),
        "method": method,
        "task": data.get("task"),
        "seeds": [r["seed"] for r in records],
        "num_labels": items["num_labels"],
        "gold": {lang: items["gold"][item_key(split, lang)] for lang in languages},
        "fingerprints": {lang: items["fingerprints"].get(item_key(split, lang)) for lang in languages},
        "predictions": {
            lang: [r["predictions"][item_key(split, lang)] for r in records]
            for lang in languages
            if all(item_key(split, lang) in r["predictions"] for r in records)
        },
    }


def compare_runs(
    a_spec: str,
    b_spec: str,
    split: str = "test",
    metric: str = "macro_f1",
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap of A against B on every language both scored on the same items, and on their mean.

    Refused when the runs are on different tasks, or share no language whose items (texts and gold labels)
    are identical; languages whose items differ are listed under ``skipped``."""
    a, b = _side(a_spec, "RUN_A:METHOD", split), _side(b_spec, "RUN_B:METHOD", split)
    if a["task"] != b["task"]:
        raise InputError(f"the runs are on different tasks ({a['task']} and {b['task']})", key="RUN_B:METHOD")
    common, skipped = [], {}
    for lang in a["predictions"]:
        if lang not in b["predictions"]:
            continue
        if a["fingerprints"][lang] != b["fingerprints"][lang] or a["gold"][lang] != b["gold"][lang]:
            skipped[lang] = "different test items"
        else:
            common.append(lang)
    if not common:
        raise InputError(
            "the two runs share no language scored on the same items",
            key="RUN_B:METHOD",
            expected=f"runs of one task with overlapping languages (skipped: {skipped or 'none in common'})",
        )
    num_labels = int(a["num_labels"])
    idx = draws({lang: len(a["gold"][lang]) for lang in common}, n_resamples, seed)
    dist_a, dist_b, point_a, point_b = {}, {}, {}, {}
    for lang in common:
        gold = np.asarray(a["gold"][lang], dtype=np.int64)
        full = np.arange(len(gold))[None, :]
        pa = [np.asarray(p, dtype=np.int64) for p in a["predictions"][lang]]
        pb = [np.asarray(p, dtype=np.int64) for p in b["predictions"][lang]]
        dist_a[lang] = seed_mean_resampled(gold, pa, idx[lang], num_labels, metric)
        dist_b[lang] = seed_mean_resampled(gold, pb, idx[lang], num_labels, metric)
        point_a[lang] = float(seed_mean_resampled(gold, pa, full, num_labels, metric)[0])
        point_b[lang] = float(seed_mean_resampled(gold, pb, full, num_labels, metric)[0])

    rows = {
        lang: comparison_row(dist_a[lang], dist_b[lang], point_a[lang], point_b[lang], len(a["gold"][lang]))
        for lang in common
    }
    rows["mean"] = comparison_row(
        np.mean([dist_a[lang] for lang in common], axis=0),
        np.mean([dist_b[lang] for lang in common], axis=0),
        float(np.mean([point_a[lang] for lang in common])),
        float(np.mean([point_b[lang] for lang in common])),
        sum(len(a["gold"][lang]) for lang in common),
    )
    return {
        "a": {k: a[k] for k in ("spec", "path", "method", "seeds")},
        "b": {k: b[k] for k in ("spec", "path", "method", "seeds")},
        "metric": f"{split}_{metric}",
        "languages": common,
        "skipped": skipped,
        "rows": rows,
        "bootstrap": {"n_resamples": n_resamples, "confidence": CONFIDENCE, "seed": seed, "paired": True},
    }
