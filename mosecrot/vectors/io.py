"""Reading and writing static vectors, with errors that say which file, which line and what was wrong.

Formats (``format="auto"`` picks by file name):

- ``vec``: fastText text (``.vec``, ``.txt``, optionally ``.gz``): a header ``<count> <dim>`` then one
  ``word v1 ... vd`` row per line, most frequent word first. Parsed here rather than by gensim,
  whose errors on a malformed file do not name the line.
- ``bin``: fastText's binary model (``.bin``) through gensim; keeps the subword n-grams, so unseen
  words still get vectors.
- ``gensim``: files written by gensim's ``save`` (``.kv`` keyed vectors, ``.model`` Word2Vec or
  FastText models); FastText ones keep their subwords. These are pickles: load only trusted files.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mosecrot.errors import InputError, unknown_choice
from mosecrot.vectors.static import StaticVectors

log = logging.getLogger(__name__)

FORMATS = ("auto", "vec", "bin", "gensim")
_SUFFIXES = {
    ".vec": "vec",
    ".txt": "vec",
    ".vec.gz": "vec",
    ".txt.gz": "vec",
    ".bin": "bin",
    ".kv": "gensim",
    ".model": "gensim",
}
_HEADER_EXPECTED = "'<count> <dim>': two positive integers (files without a header, such as GloVe, need one)"
_FIELD_SEP = re.compile(r"[ \t]+")  # not str.split(): words may contain other Unicode spaces
_UINT = re.compile(r"[0-9]+")


def detect_format(path: str | Path) -> str:
    """The format a file name implies; an `InputError` when it implies none."""
    name = Path(path).name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(
        "cannot tell the vector format from the file name",
        path=path,
        expected="a name ending in " + ", ".join(_SUFFIXES) + ", or an explicit format",
    )


def load_vectors(path: str | Path, format: str = "auto", limit: int | None = None) -> StaticVectors:
    """Load static vectors; `limit` keeps the first `limit` words (the most frequent in fastText files)."""
    path = Path(path)
    if format not in FORMATS:
        raise unknown_choice("vector format", format, FORMATS, path=path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"bad limit {limit!r}", path=path, key="limit", expected="a positive integer or None")
    if not path.is_file():
        raise InputError("vector file not found", path=path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "vec":
        return _load_vec(path, limit)
    if fmt == "bin":
        return _load_fasttext_bin(path, limit)
    return _load_gensim(path, limit)


def load_vectors_for_languages(
    paths: Mapping[str, str | Path],
    expected_dim: int | None = None,
    format: str = "auto",
    limit: int | None = None,
) -> dict[str, StaticVectors]:
    """Load one vector file per language, insisting they all share one dimension.

    Stitching maps every language into one space, so a file of another dimension is an input error.
    Text headers are checked first, so a mismatch is reported before any large file is read.
    """
    header_dims = {lang: (Path(p), d) for lang, p in paths.items() if (d := _peek_vec_dim(p, format)) is not None}
    _check_dims(header_dims, expected_dim)
    out = {lang: load_vectors(p, format=format, limit=limit) for lang, p in paths.items()}
    _check_dims({lang: (Path(paths[lang]), v.dim) for lang, v in out.items()}, expected_dim)
    return out


def _check_dims(dims: dict[str, tuple[Path, int]], expected_dim: int | None) -> None:
    first: tuple[str, Path, int] | None = None
    for lang, (path, dim) in dims.items():
        if expected_dim is not None and dim != expected_dim:
            raise InputError(f"{lang} vectors have dimension {dim}", path=path, expected=f"dimension {expected_dim}")
        if first is None:
            first = (lang, path, dim)
        elif dim != first[2]:
            raise InputError(
                f"inconsistent vector dimensions: {lang} vectors have {dim}, "
                f"but {first[0]} vectors ({first[1]}) have {first[2]}",
                path=path,
                expected="one dimension for every language",
            )


def _peek_vec_dim(path: str | Path, format: str) -> int | None:
    """The dimension from a text file's header (None for other formats, which must be loaded)."""
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt != "vec" or not path.is_file():
        return None  # load_vectors reports the missing file
    with _open_binary(path) as f:
        first = f.readline()
        if not first.strip():
            return None  # load_vectors reports empty files and bad headers
        return _parse_header(first, path)[1]


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"not valid UTF-8 ({err.reason} at byte {err.start} of the line)", path=path, line=line
        ) from err


def _parse_header(raw: bytes, path: Path) -> tuple[int, int]:
    text = _decode(raw, path, 1).strip()
    fields = text.split()
    if len(fields) == 2 and all(_UINT.fullmatch(f) for f in fields):
        count, dim = int(fields[0]), int(fields[1])
        if count > 0 and dim > 0:
            return count, dim
    raise InputError(f"bad header {text[:60]!r}", path=path, line=1, expected=_HEADER_EXPECTED)


def _parse_row(text: str, dim: int, path: Path, line: int) -> tuple[str, np.ndarray]:
    """Split a row into word and vector. The fast path covers well-formed rows; the slow one finds
    what is wrong with the rest (or accepts a tab after the word, which the fast path does not)."""
    word, _, values = text.partition(" ")
    try:
        vec = np.fromstring(values, dtype=np.float32, sep=" ")
    except ValueError:
        vec = None
    if vec is not None and len(vec) == dim and word and "\t" not in word and np.isfinite(vec).all():
        return word, vec
    return _parse_row_strictly(text, dim, path, line)


def _parse_row_strictly(text: str, dim: int, path: Path, line: int) -> tuple[str, np.ndarray]:
    fields = _FIELD_SEP.split(text.strip(" \t\r\n"))
    word, values = fields[0], fields[1:]
    if len(values) != dim:
        raise InputError(
            f"row for {word!r} has {len(values)} values",
            path=path,
            line=line,
            expected=f"{dim} values after the word, as the header says",
        )
    try:
        vec = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise InputError(
            f"non-numeric value {bad[:40]!r} in row for {word!r}", path=path, line=line, expected="decimal numbers"
        ) from None
    if not np.isfinite(vec).all():
        raise InputError(
            f"non-finite value in row for {word!r}", path=path, line=line, expected="finite float32 numbers"
        )
    return word, vec


def _is_number(token: str) -> bool:
    try:
        np.float32(token)
    except ValueError:
        return False
    return True


def _load_vec(path: Path, limit: int | None) -> StaticVectors:
    """Stream a fastText text file, checking every row. Duplicate words keep their first row.

    With `limit`, reading stops once `limit` words are kept, so the rest of the file is not checked.
    """
    with _open_binary(path) as f:
        first = f.readline()
        if not first.strip():
            if not any(line.strip() for line in f):
                raise InputError("empty file", path=path, expected="a header line '<count> <dim>' and vector rows")
        count, dim = _parse_header(first, path)
        cap = count if limit is None else min(count, limit)
        if not path.name.lower().endswith(".gz"):
            # A row takes at least 2*dim bytes, so a lying header cannot make us allocate too much.
            cap = min(cap, path.stat().st_size // (2 * dim) + 1)
        matrix = np.empty((cap, dim), dtype=np.float32)
        words: list[str] = []
        index: dict[str, int] = {}
        n_rows = duplicates = 0
        line_no = 1
        for line_no, raw in enumerate(f, start=2):
            text = _decode(raw, path, line_no)
            if not text.strip(" \t\r\n"):
                continue
            n_rows += 1
            if n_rows > count:
                raise InputError(
                    f"more rows than the header's count of {count}",
                    path=path,
                    line=line_no,
                    expected=f"exactly {count} rows, as line 1 declares",
                )
            word, vec = _parse_row(text, dim, path, line_no)
            if word in index:
                duplicates += 1
                continue
            index[word] = len(words)
            matrix[len(words)] = vec
            words.append(word)
            if limit is not None and len(words) == limit:
                break
        else:
            if n_rows < count:
                raise InputError(
                    f"header declares {count} rows but the file has {n_rows} (it ends at line {line_no})",
                    path=path,
                    line=1,
                    expected=f"{count} rows",
                )
    if duplicates:
        log.warning("%s: %d duplicate words ignored (their first row is kept)", path, duplicates)
    if len(words) < cap:
        matrix = matrix[: len(words)].copy()
    return StaticVectors(
        words,
        matrix,
        source=str(path),
        meta={"path": str(path), "format": "vec", "header_count": count, "n_duplicates": duplicates},
    )


def _load_fasttext_bin(path: Path, limit: int | None) -> StaticVectors:
    from gensim.models.fasttext import load_facebook_vectors

    try:
        wv = load_facebook_vectors(str(path))
    except Exception as err:  # gensim raises anything from struct.error to NotImplementedError
        raise InputError(
            f"cannot read as a fastText binary model: {type(err).__name__}: {err}",
            path=path,
            expected="a .bin model written by fastText",
        ) from err
    return _from_keyed_vectors(wv, path, "bin", limit)


def _load_gensim(path: Path, limit: int | None) -> StaticVectors:
    from gensim.models import KeyedVectors
    from gensim.utils import SaveLoad

    try:
        obj = SaveLoad.load(str(path))
    except Exception as err:  # unpickling fails in many ways: EOFError, UnpicklingError, missing .npy ...
        raise InputError(
            f"cannot load as a gensim file: {type(err).__name__}: {err}",
            path=path,
            expected="a file written by gensim's KeyedVectors/Word2Vec/FastText .save()",
        ) from err
    wv = getattr(obj, "wv", obj)
    if not isinstance(wv, KeyedVectors):
        raise InputError(
            f"holds a {type(obj).__name__}, not word vectors",
            path=path,
            expected="gensim KeyedVectors or a Word2Vec/FastText model",
        )
    return _from_keyed_vectors(wv, path, "gensim", limit)


def _from_keyed_vectors(wv, path: Path, fmt: str, limit: int | None) -> StaticVectors:
    """Wrap gensim keyed vectors; FastText ones with n-gram buckets become the subword model."""
    from gensim.models.fasttext import FastTextKeyedVectors

    n = len(wv.index_to_key) if limit is None else min(limit, len(wv.index_to_key))
    counts = wv.expandos.get("count")
    subwords = wv if isinstance(wv, FastTextKeyedVectors) and wv.bucket > 0 else None
    return StaticVectors(
        list(wv.index_to_key[:n]),
        wv.vectors[:n],
        counts=None if counts is None else np.asarray(counts[:n]),
        subwords=subwords,
        source=str(path),
        meta={"path": str(path), "format": fmt},
    )


def save_vectors_vec(vectors: StaticVectors, path: str | Path) -> None:
    """Write the fastText text format (gzip when the name ends in .gz), in stored order.

    Values are written with 9 significant digits, which round-trips float32 exactly. The file is
    written beside its target and renamed, so a crash never leaves a truncated file.
    """
    path = Path(path)
    bad = next((w for w in vectors.words if not w or _FIELD_SEP.search(w) or "\n" in w), None)
    if bad is not None:
        raise ValueError(f"word {bad!r} cannot be written to a .vec file (empty or holds a separator)")
    row_format = " ".join(["%.9g"] * vectors.dim)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8", newline="\n") as f:
            f.write(f"{len(vectors)} {vectors.dim}\n")
            for word, row in zip(vectors.words, vectors.matrix, strict=True):
                f.write(f"{word} {row_format % tuple(row.tolist())}\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
