"""SIB-200 topic classification (Adelani et al., EACL 2024): 7 topics, the same FLORES-200 sentences
in 205 languages, 701 / 99 / 204 per language.

Two sources with the same columns (``index_id``, ``category``, ``text``):

- a local directory in the layout of the public repository ``dadelani/sib-200`` (``data/annotated/``):
  ``<path>/<lang_Script>/{train,dev,test}.tsv`` with that header, and ``labels.txt`` in the language
  folder or at the root. Files are read with the csv module and quoting off: texts contain quotes.
- the Hugging Face hub dataset ``Davlan/sib200`` (one config per ``lang_Script``; its dev split is
  called ``validation``). It ships no labels.txt, so hub data uses `SIB200_LABELS`, the order of the
  repository's labels.txt.

Label order is labels.txt order. Every language's labels.txt must equal English's (``eng_Latn``),
otherwise label indices would mean different topics in different languages.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import regex
from datasets import ClassLabel, DatasetDict

from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language
from mosecrot.tasks.base import SPLITS, TaskData, TaskSpec, check_same_labels, full_coverage, make_split

if TYPE_CHECKING:
    from mosecrot.text.bible import Bible

SIB200_LABELS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
HEADER = ["index_id", "category", "text"]
ENGLISH_FOLDER = "eng_Latn"
LABELS_FILE = "labels.txt"
# The hub names the dev split "validation" (the repository's files say dev).
_HUB_SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}
_FOLDER_NAME = regex.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

# One row as read from a file or the hub: (line number or None, index_id, category, text).
Row = tuple[int | None, str, str, str]


def sib200_folder(language: str) -> str:
    """The ``lang_Script`` folder / hub config: a code of `mosecrot.languages`, or any SIB-200 name as is
    (the dataset has 205 languages; our language table only those we can tokenise)."""
    if _FOLDER_NAME.match(language):
        return language
    return get_language(language).sib200


def sib200_labels(path: str | Path | None = None) -> list[str]:
    """The task's label order: English's (or the root) labels.txt of a local copy, else the hub's."""
    if path is None:
        return list(SIB200_LABELS)
    root = _check_root(path)
    for candidate in (root / ENGLISH_FOLDER / LABELS_FILE, root / LABELS_FILE):
        if candidate.is_file():
            return read_labels(candidate)
    raise InputError("no labels.txt", path=root, expected=f"{ENGLISH_FOLDER}/{LABELS_FILE} or {LABELS_FILE}")


def read_labels(path: Path) -> list[str]:
    """One label a line; order matters (it is the ClassLabel order)."""
    labels: list[str] = []
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            label = line.strip()
            if not label:
                continue
            if label in labels:
                raise InputError(f"label {label!r} listed twice", path=path, line=n)
            labels.append(label)
    if not labels:
        raise InputError("no labels", path=path, expected="one label name a line")
    return labels


def load_sib200(
    language: str,
    path: str | Path | None = None,
    hub_id: str = "Davlan/sib200",
    splits: Sequence[str] = SPLITS,
) -> TaskData:
    """SIB-200 in one language, from a local directory (``path``) or else from the hub."""
    folder = sib200_folder(language)
    if not splits:
        raise InputError("no splits asked for", key="splits", expected="some of: " + ", ".join(SPLITS))
    for split in splits:
        if split not in SPLITS:
            raise unknown_choice("split", split, list(SPLITS), key="splits")
    if path is None:
        labels = list(SIB200_LABELS)
        rows = _hub_rows(hub_id, folder, splits)
        meta = {"source": "hub", "hub_id": hub_id, "config": folder, "text": f"SIB-200 {folder} (hub)"}
    else:
        labels, files = _local_files(Path(path), folder, splits)
        rows = {split: (str(file), _tsv_rows(file)) for split, file in files.items()}
        meta = {"source": "directory", "path": str(path), "config": folder, "text": f"SIB-200 {folder}"}
    class_label = ClassLabel(names=labels)
    data = DatasetDict()
    for split, (source, split_rows) in rows.items():
        ids, texts, categories = _checked(split_rows, labels, source)
        data[split] = make_split(ids, texts, categories, class_label)
    return TaskData("sib200", _language_code(folder), data, full_coverage(data), meta)


def _language_code(folder: str) -> str:
    """Our language code where the language table knows the folder, else the folder name itself."""
    try:
        return get_language(folder).code
    except InputError:
        return folder


def _check_root(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise InputError(
            "SIB-200 directory not found",
            path=root,
            expected="a directory with <lang_Script>/{train,dev,test}.tsv and labels.txt",
        )
    return root


def _local_files(root: Path, folder: str, splits: Sequence[str]) -> tuple[list[str], dict[str, Path]]:
    """Labels and split files of one language, every check done before any split is read."""
    root = _check_root(root)
    lang_dir = root / folder
    if not lang_dir.is_dir():
        available = sorted(d.name for d in root.iterdir() if d.is_dir())
        raise InputError(
            f"no folder for language {folder!r}",
            path=root,
            expected="one of: " + ", ".join(available) if available else "<lang_Script> folders such as deu_Latn",
        )
    labels_path = lang_dir / LABELS_FILE if (lang_dir / LABELS_FILE).is_file() else root / LABELS_FILE
    if not labels_path.is_file():
        raise InputError("no labels.txt", path=lang_dir, expected="labels.txt in the language folder or the root")
    labels = read_labels(labels_path)
    english = root / ENGLISH_FOLDER / LABELS_FILE
    if english.is_file() and english != labels_path:
        check_same_labels(labels, read_labels(english), str(labels_path), str(english))
    files = {split: lang_dir / f"{split}.tsv" for split in splits}
    for file in files.values():
        if not file.is_file():
            raise InputError("missing split file", path=file, expected="train.tsv, dev.tsv and test.tsv")
    for file in files.values():
        _check_header(file)
    return labels, files


def _check_header(file: Path) -> None:
    with file.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), None)
    if header != HEADER:
        raise InputError(f"header {header!r}", path=file, line=1, expected="index_id<TAB>category<TAB>text")


def _tsv_rows(file: Path) -> list[Row]:
    with file.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # header, checked by _check_header
        rows: list[Row] = []
        for fields in reader:
            if not fields:
                continue  # a blank line carries no example
            if len(fields) != len(HEADER):
                raise InputError(
                    f"{len(fields)} fields",
                    path=file,
                    line=reader.line_num,
                    expected="3 tab-separated fields: index_id, category, text",
                )
            rows.append((reader.line_num, fields[0], fields[1], fields[2]))
    return rows


def _checked(rows: Iterable[Row], labels: list[str], source: str) -> tuple[list[str], list[str], list[str]]:
    """Validate rows from either source: known category, non-empty text, unique ids."""
    ids: list[str] = []
    texts: list[str] = []
    categories: list[str] = []
    seen: set[str] = set()
    for line, index_id, category, text in rows:
        index_id, category, text = index_id.strip(), category.strip(), text.strip()
        if category not in labels:
            raise InputError(
                f"unknown category {category!r}", path=source, line=line, expected="one of: " + ", ".join(labels)
            )
        if not index_id or index_id in seen:
            raise InputError(f"{'duplicate' if index_id else 'empty'} index_id {index_id!r}", path=source, line=line)
        if not text:
            raise InputError("empty text", path=source, line=line)
        seen.add(index_id)
        ids.append(index_id)
        texts.append(text)
        categories.append(category)
    return ids, texts, categories


def _hub_rows(hub_id: str, config: str, splits: Sequence[str]) -> dict[str, tuple[str, list[Row]]]:
    """Rows of each split from the hub; any failure to load becomes an `InputError` naming a way out."""
    from datasets import load_dataset

    try:
        loaded = load_dataset(hub_id, config)
    except Exception as err:  # noqa: BLE001 - offline, unknown config, network: all mean "use a local copy"
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise InputError(
            f"could not load {hub_id} (config {config}) from the Hugging Face hub: {reason}. Offline? pass a "
            "local directory in the SIB-200 layout (sib200.path / --data-dir)"
        ) from err
    out: dict[str, tuple[str, list[Row]]] = {}
    for split in splits:
        name = next((n for n in _HUB_SPLIT_NAMES[split] if n in loaded), None)
        source = f"{hub_id}:{config}/{name or split}"
        if name is None:
            raise InputError(
                f"hub dataset has no {split} split",
                path=f"{hub_id}:{config}",
                expected="one of: " + ", ".join(_HUB_SPLIT_NAMES[split]),
            )
        ds = loaded[name]
        missing = [c for c in HEADER if c not in ds.column_names]
        if missing:
            raise InputError(f"hub split lacks columns {missing}", path=source, expected="columns " + ", ".join(HEADER))
        category = ds.features["category"]
        names = category.int2str if isinstance(category, ClassLabel) else str
        out[split] = (source, [(None, str(r["index_id"]), names(r["category"]), str(r["text"] or "")) for r in ds])
    return out


def _check(options: Mapping[str, Any]) -> None:
    if options.get("path") and not Path(options["path"]).is_dir():
        raise InputError("task data directory not found", path=options["path"], key="task.path")


def _evaluation_ids(options: Mapping[str, Any], bible: Bible | None = None) -> set[str]:
    # FLORES-200 sentences, not Bible verses: no Bible text can coincide with the evaluation data.
    return set()


@dataclass
class SIB200Options:
    path: str | None = None  # a local directory in the dadelani/sib-200 layout; null: the hub
    hub_id: str | None = None  # the hub dataset when path is null (needs hub access); null: Davlan/sib200


TASK = TaskSpec(
    name="sib200",
    load=load_sib200,
    labels=lambda options: sib200_labels(options.get("path")),
    evaluation_ids=_evaluation_ids,
    options=SIB200Options,
    extra_options=("splits",),
    check=_check,
)
