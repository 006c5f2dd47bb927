"""MUSE ground-truth dictionaries (Conneau et al. 2018): ``en-XX.txt``, one ``english target`` a line.

File order is kept: MUSE lists an English word's translations roughly by frequency, so the first
pair of a word is its most common translation.
"""

from __future__ import annotations

import re
from pathlib import Path

from mosecrot.dictionaries.base import BilingualDictionary
from mosecrot.errors import InputError
from mosecrot.languages import get_language
from mosecrot.text.tokenize import normalize

EXPECTED_LINE = "'<english> <target>' (two fields separated by a space or tab)"
_FIELD_SEP = re.compile(r"[ \t]+")


def _decode(path: Path) -> str:
    """The file as UTF-8 text; bad bytes are reported with their line number."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"not valid UTF-8 ({err.reason} at byte {err.start})",
            path=path,
            line=data.count(b"\n", 0, err.start) + 1,
            expected="a UTF-8 text file",
        ) from err


def read_muse(path: str | Path, target_lang: str, lowercase: bool = True) -> BilingualDictionary:
    """Read a MUSE dictionary; blank lines are skipped, exact duplicate pairs dropped (and counted)."""
    path = Path(path)
    code = get_language(target_lang).code
    if not path.is_file():
        raise InputError("MUSE dictionary file not found", path=path, expected="an en-XX.txt file")
    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for n, line in enumerate(_decode(path).removeprefix("\ufeff").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        fields = _FIELD_SEP.split(line)
        if len(fields) != 2:
            raise InputError(f"{len(fields)} fields in {line[:80]!r}", path=path, line=n, expected=EXPECTED_LINE)
        pair = (normalize(fields[0], lowercase), normalize(fields[1], lowercase))
        if pair in seen:
            duplicates += 1
            continue
        seen.add(pair)
        pairs.append(pair)
    if not pairs:
        raise InputError("MUSE dictionary has no pairs", path=path, expected=EXPECTED_LINE)
    return BilingualDictionary(
        source_lang="en",
        target_lang=code,
        pairs=pairs,
        origin="muse",
        meta={"path": str(path), "lowercase": lowercase, "duplicates_dropped": duplicates},
    )


def muse_path(data_dir: str | Path, target_lang: str) -> Path:
    """``<data_dir>/muse/en-XX.txt`` for a language; a missing file lists the pairs that exist."""
    code = get_language(target_lang).code
    path = Path(data_dir) / "muse" / f"en-{code}.txt"
    if not path.is_file():
        available = sorted(p.stem.removeprefix("en-") for p in path.parent.glob("en-*.txt"))
        raise InputError(
            f"no MUSE dictionary for {code!r}",
            path=path,
            expected="one of: " + ", ".join(available) if available else "a muse/ folder of en-XX.txt files",
        )
    return path
