"""Word tokenisation, one function per language family.

The same function splits text for static-vector training, dictionary induction, anchor matching and
evaluation, so a word means the same thing everywhere. Families:

- ``spaced``: scripts that delimit words with spaces. A word is a run of letters, combining marks and
  digits (marks matter: Devanagari vowel signs are not ``\\w`` in Python's ``re``) with internal
  hyphens kept; an apostrophe followed by a letter ends an elided clitic (``l'homme`` -> ``l'``,
  ``homme``), so the content word meets its dictionary entry; every other non-space character is a
  token of its own.
- ``chinese``: ``jieba`` segmentation (accurate mode, no HMM for new words so it is deterministic).
- ``japanese``: ``fugashi`` (MeCab) with the ``unidic-lite`` dictionary shipped on PyPI.

Lower-casing is a separate, explicit step (`normalize`) because the authors of MoSECroT name it as a
source of anchor noise: it is an option, on by default to match lower-cased MUSE dictionaries.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Callable

import regex

from mosecrot.errors import unknown_choice
from mosecrot.languages import get_language

_WORD_CHARS = r"\p{L}\p{M}\p{N}\u200c\u200d"  # zero-width (non-)joiners live inside Indic words
_WORD = regex.compile(
    rf"[{_WORD_CHARS}]+(?:-[{_WORD_CHARS}]+)*(?:['’](?=\p{{L}}))?|[^\s{_WORD_CHARS}]",
    regex.VERSION1,
)
_HAS_WORD_CHAR = regex.compile(r"[\p{L}\p{N}]")


def tokenize_spaced(text: str) -> list[str]:
    return _WORD.findall(text)


@functools.cache
def _jieba():
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize_chinese(text: str) -> list[str]:
    return [tok for tok in _jieba().lcut(text, HMM=False) if not tok.isspace()]


@functools.cache
def _mecab():
    import fugashi

    # fugashi finds the unidic-lite dictionary installed from PyPI; no system MeCab needed.
    return fugashi.Tagger()


def tokenize_japanese(text: str) -> list[str]:
    return [word.surface for word in _mecab()(text) if word.surface.strip()]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "spaced": tokenize_spaced,
    "chinese": tokenize_chinese,
    "japanese": tokenize_japanese,
}


def normalize(text: str, lowercase: bool = True) -> str:
    """NFC-normalise (so dictionary and corpus spellings meet) and optionally lower-case."""
    text = unicodedata.normalize("NFC", text)
    return text.lower() if lowercase else text


def get_tokenizer(language: str, lowercase: bool = True) -> Callable[[str], list[str]]:
    """The word tokeniser of a language: ``normalize`` then its family's splitter."""
    family = get_language(language).tokenizer
    if family not in TOKENIZERS:
        raise unknown_choice("tokenizer family", family, list(TOKENIZERS))
    split = TOKENIZERS[family]

    def tokenize(text: str) -> list[str]:
        return split(normalize(text, lowercase))

    tokenize.__name__ = f"tokenize_{language}_{family}{'_lower' if lowercase else ''}"
    return tokenize


def is_word(token: str) -> bool:
    """True for tokens holding a letter or digit (punctuation tokens are not counted as words)."""
    return bool(_HAS_WORD_CHAR.search(token))
