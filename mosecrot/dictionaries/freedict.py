"""FreeDict English->X dictionaries in dictd format (``.index`` + ``.dict.dz`` or ``.dict``).

Format. Each ``.index`` line is ``headword<TAB>offset<TAB>length``; offset and length are numbers
written in dictd's base 64 (digits ``A-Z a-z 0-9 + /``, most significant digit first, no padding)
and address the *uncompressed* ``.dict`` text. ``.dict.dz`` is dictzip, a gzip file with a random
access table in its header, so plain gzip reads it whole. Entries are free text converted from TEI
(a headword line with IPA ``/.../`` and part of speech ``<n>``, then senses), and the layout varies by
dictionary: one sense per entry with several entries per headword (eng-deu, eng-swh), numbered
senses ``1. ...`` (eng-fra, eng-hin, eng-tur), numbered senses each followed by an English gloss
line (eng-jpn), Roman-numeral part-of-speech groups ``I.  <N> 1.  ...`` (eng-pol).

Sense rule (a convention, not a claim about the most common meaning):

- A headword's senses are its entries' senses in file order (the index lists the entries of one
  headword by ascending offset). A sense is a numbered line ``N. ...`` or a
  Roman-numeral group line; an entry without such lines has one sense, its first body line.
  Roman-numeral groups tagged ``Comp`` or ``Phras`` (eng-pol compounds and phrasal verbs such as
  ``II. <N Comp>bank holiday``) are other headwords and are skipped. Notes, example sentences
  (quoted), ``Synonym:``, ``see:`` lines and eng-jpn glosses are never senses.
- From a sense, ``<...>`` tags, ``[...]`` labels, ``(...)`` and ``{...}`` notes are removed, the rest
  is split at commas, semicolons and word-final periods (eng-tur ends senses with ``.`` and runs
  sub-entries on after ``. ``), and candidates are kept in the order listed.
- A candidate is usable when it is one word: one token of `get_tokenizer` holding a letter or digit
  (so ``vor sich gehen``, ``d'eau``, ``Farb…`` and Hindi ``~``-joined phrases are dropped); for
  languages written without spaces (Chinese, Japanese) any candidate without whitespace is one word.
  Headwords must be one English word too (multiword headwords such as ``a while`` are dropped).
- We take the first ``max_senses`` senses that have a usable candidate and, from each, the first
  ``max_translations_per_sense`` usable candidates. FreeDict sense order is not frequency order;
  in eng-deu it is even alphabetical by German (``house`` -> ``Geschlecht`` before ``Haus``), so
  "first sense" is a reproducible convention and the default ``max_senses=1`` yields noisier anchors
  than MUSE. Metadata entries (``00-database-*``) are skipped.
- ``sense_order="examples"`` first reorders a headword's senses by how many quoted example
  sentences they list (most first, ties in listed order), on the guess that lexicographers
  illustrate common senses more. Of the dictionaries checked only eng-deu and eng-hin have
  examples. On eng-deu it raised agreement of the chosen translation with MUSE en-de from 45.7% to
  49.4% of shared headwords (``house`` -> ``Haus``, ``time`` -> ``Zeit``); on eng-hin (one example
  per sense) it made no difference (39.7% vs 39.4% for en-hi); it changes nothing where no sense
  has examples.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import regex

from mosecrot.dictionaries.base import BilingualDictionary
from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import LANGUAGES, get_language
from mosecrot.text.tokenize import get_tokenizer, is_word, normalize

DICTD_DIR = Path("/usr/share/dictd")
DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(DICTD_B64)}
INDEX_LINE = "headword<TAB>offset<TAB>length, numbers in dictd base 64"

_HEADWORD = regex.compile(r"^\s*(.*?)(?=\s+[/<(\[]|\s*$)")
_ROMAN_GROUP = regex.compile(r"^\s*[IVXL]+\.\s+((?:<[^<>]*>\s*)*)(.*)$")
_SENSE_NUMBER = regex.compile(r"^\s*\d+\.(?:\s+|$)(.*)$")
_TRAILING_NUMBER = regex.compile(r"\s+\d+\.\s*$")  # eng-jpn: "いい, 良い 2." (next sense's number)
_BRACKETED = regex.compile(r"<[^<>]*>|\[[^\[\]]*\]|\([^()]*\)|\{[^{}]*\}")
_SPLIT = regex.compile(r"[,;]|\.(?=\s|$)")  # eng-tur ends senses with ". " and run-on sub-entries
_COMPOUND_TAG = regex.compile(r"Comp|Phras")
_EXAMPLE = regex.compile(r'^\s+"')
SENSE_ORDERS = ("listed", "examples")


def decode_dictd_number(text: str) -> int:
    """A dictd index number: base 64 in `DICTD_B64`, most significant digit first."""
    if not text:
        raise ValueError("empty dictd number")
    value = 0
    for ch in text:
        if ch not in _B64_VALUE:
            raise ValueError(f"{ch!r} is not a dictd base-64 digit")
        value = value * 64 + _B64_VALUE[ch]
    return value


def _resolve(path_or_prefix: str | Path) -> tuple[Path, Path]:
    """(index, dict) paths from a prefix or either file's path."""
    prefix = str(path_or_prefix)
    for suffix in (".index", ".dict.dz", ".dict"):
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
            break
    index = Path(prefix + ".index")
    if not index.is_file():
        raise InputError("dictd index not found", path=index, expected="a FreeDict .index file")
    for suffix in (".dict.dz", ".dict"):
        data = Path(prefix + suffix)
        if data.is_file():
            return index, data
    raise InputError(
        "dictd data not found", path=prefix + ".dict.dz", expected="a .dict.dz or .dict file beside the .index"
    )


def _read_data(path: Path) -> bytes:
    if path.suffix != ".dz":
        return path.read_bytes()
    try:
        with gzip.open(path) as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(
            f"unreadable dictzip file ({err})", path=path, expected="a gzip/dictzip-compressed .dict.dz"
        ) from err


def read_dictd(path_or_prefix: str | Path) -> list[tuple[str, str]]:
    """(index headword, entry text) in index order; an entry indexed twice is returned once."""
    index_path, data_path = _resolve(path_or_prefix)
    data = _read_data(data_path)
    entries: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    try:
        lines = index_path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise InputError(f"index is not valid UTF-8 ({err.reason})", path=index_path) from err
    for n, line in enumerate(lines, 1):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"{len(fields)} tab-separated fields", path=index_path, line=n, expected=INDEX_LINE)
        try:
            offset, length = decode_dictd_number(fields[1]), decode_dictd_number(fields[2])
        except ValueError as err:
            raise InputError(str(err), path=index_path, line=n, expected=INDEX_LINE) from err
        if offset + length > len(data):
            raise InputError(
                f"entry at {offset}+{length} runs past the end of {data_path.name} ({len(data)} bytes)",
                path=index_path,
                line=n,
                expected=INDEX_LINE,
            )
        if (offset, length) in seen:
            continue
        seen.add((offset, length))
        try:
            text = data[offset : offset + length].decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"entry is not valid UTF-8 ({err.reason})", path=index_path, line=n) from err
        entries.append((fields[0], text))
    return entries


def entry_headword(text: str) -> str:
    """The headword of an entry: its first line up to IPA, part of speech or a note."""
    first = text.lstrip("\n").split("\n", 1)[0]
    m = _HEADWORD.match(first)
    return m.group(1).strip() if m else ""


class Sense(NamedTuple):
    text: str
    examples: int  # quoted example sentences listed under it: a rough sign of common use


def entry_senses(text: str) -> list[Sense]:
    """The senses of one entry, in listed order (see the module docstring)."""
    body = text.lstrip("\n").split("\n")[1:]
    senses: list[Sense] = []
    in_compound = False
    numbered = False
    for line in body:
        group = _ROMAN_GROUP.match(line)
        number = None if group else _SENSE_NUMBER.match(line)
        if group:
            numbered = True
            in_compound = bool(_COMPOUND_TAG.search(group.group(1)))
            if not in_compound:
                inner = _SENSE_NUMBER.match(group.group(2))
                senses.append(Sense(inner.group(1) if inner else group.group(2), 0))
        elif number:
            numbered = True
            if not in_compound:
                senses.append(Sense(number.group(1), 0))
        elif _EXAMPLE.match(line) and senses and not in_compound:
            senses[-1] = senses[-1]._replace(examples=senses[-1].examples + 1)
    if numbered:
        return senses
    first = next((line for line in body if line.strip()), "")
    return [Sense(first, sum(1 for line in body if _EXAMPLE.match(line)))] if first else []


def sense_candidates(sense: str) -> list[str]:
    """Translation candidates of one sense: bracketed material removed, split at , ; and final ``.``."""
    text = _TRAILING_NUMBER.sub("", sense)
    while True:
        stripped = _BRACKETED.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    return [c.strip() for c in _SPLIT.split(text) if c.strip()]


def _word_checker(lang: str, lowercase: bool) -> Callable[[str], str | None]:
    """A function returning the normalised single word a candidate is, or None."""
    tokenize = get_tokenizer(lang, lowercase)
    spaced = get_language(lang).tokenizer == "spaced"

    def one_word(candidate: str) -> str | None:
        if spaced:
            tokens = tokenize(candidate)
            return tokens[0] if len(tokens) == 1 and is_word(tokens[0]) else None
        word = normalize(candidate.strip(), lowercase)
        return word if word and not any(ch.isspace() for ch in word) and is_word(word) else None

    return one_word


def read_freedict(
    path_or_prefix: str | Path,
    target_lang: str,
    lowercase: bool = True,
    max_senses: int | None = 1,
    max_translations_per_sense: int | None = 1,
    sense_order: str = "listed",
) -> BilingualDictionary:
    """Word pairs from a FreeDict dictionary under the sense rule of the module docstring.

    ``None`` for a limit means no limit. Pairs follow the index's headword order.
    """
    if sense_order not in SENSE_ORDERS:
        raise unknown_choice("FreeDict sense order", sense_order, SENSE_ORDERS, key="sense_order")
    limits = {"max_senses": max_senses, "max_translations_per_sense": max_translations_per_sense}
    for name, limit in limits.items():
        if limit is not None and limit < 1:
            raise InputError(f"{name} must be at least 1 or None", key=name, expected=">= 1")
    code = get_language(target_lang).code
    english_word = _word_checker("en", lowercase)
    target_word = _word_checker(code, lowercase)

    senses_by_headword: dict[str, list[Sense]] = {}
    n_entries = 0
    for index_headword, text in read_dictd(path_or_prefix):
        headword = entry_headword(text)
        if index_headword.startswith("00database") or headword.startswith("00-database"):
            continue
        n_entries += 1
        en = english_word(headword)
        if en is not None:
            senses_by_headword.setdefault(en, []).extend(entry_senses(text))

    pairs: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for en, senses in senses_by_headword.items():
        if sense_order == "examples":
            senses = sorted(senses, key=lambda sense: -sense.examples)  # stable: ties keep listed order
        taken = 0
        for sense in senses:
            if max_senses is not None and taken >= max_senses:
                break
            words = list(dict.fromkeys(w for w in map(target_word, sense_candidates(sense.text)) if w))
            if not words:
                continue
            taken += 1
            for word in words[:max_translations_per_sense]:
                if (en, word) not in seen:
                    seen.add((en, word))
                    pairs.append((en, word))
    if not pairs:
        raise InputError(
            "no single-word translations found",
            path=str(path_or_prefix),
            expected="a FreeDict English->X dictionary in dictd format",
        )
    return BilingualDictionary(
        source_lang="en",
        target_lang=code,
        pairs=pairs,
        origin="freedict",
        meta={
            "path": str(path_or_prefix),
            "lowercase": lowercase,
            "max_senses": max_senses,
            "max_translations_per_sense": max_translations_per_sense,
            "sense_order": sense_order,
            "entries": n_entries,
            "single_word_headwords": len(senses_by_headword),
            "headwords_without_translation": len(senses_by_headword) - len({en for en, _ in pairs}),
        },
    )


def freedict_path(target_lang: str, root: str | Path = DICTD_DIR) -> Path:
    """The dictd prefix ``<root>/freedict-eng-XXX`` of a language; says which apt package is missing."""
    lang = get_language(target_lang)
    if lang.freedict is None:
        known = [code for code, info in LANGUAGES.items() if info.freedict]
        raise InputError(
            f"no FreeDict dictionary is known for {lang.code!r}", expected="one of: " + ", ".join(sorted(known))
        )
    prefix = Path(root) / f"freedict-eng-{lang.freedict}"
    if not prefix.with_name(prefix.name + ".index").is_file():
        raise InputError(
            f"FreeDict English-{lang.name} dictionary is not installed",
            path=prefix.with_name(prefix.name + ".index"),
            expected=f"`apt-get install dict-freedict-eng-{lang.freedict}`",
        )
    return prefix
