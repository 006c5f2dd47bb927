"""Language centering for classifiers on frozen multilingual sentence vectors (``centering: language``).

A multilingual encoder's vectors carry a language component: the mean vector of German sentences is not
the mean of their English translations. A classifier trained on English vectors then sees every German
vector shifted by that offset. Centering removes it: each target vector is moved by ``mean_en - mean_lang``,
both means taken over the *same* Bible verses in the two languages (parallel, so the offset is the
language's alone, not a difference of topic or domain), and never over a verse the run evaluates on.
English vectors and the classifier are untouched, so this stays zero-shot: no target label is read, and
the target text used is unlabelled Bible text outside every evaluation set (Libovický et al. 2020 centre on
each language's own text; parallel verses make the offset cleaner with fewer sentences).

Measured (Taxi1500, 12 targets, C on English dev): mean target macro-F1 of the EMS cpu preset .389 -> .401,
of frozen e5 .548 -> .564; bible-genre: EMS .431 -> .437, e5 .498 -> .516; on
SIB-200 (FLORES sentences, far from the Bible) EMS .197 -> .201, e5 .796 -> .815.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import numpy as np

from mosecrot.errors import InputError
from mosecrot.text.bible import Bible, has_text, with_neighbours

CENTERING_CHOICES = ("none", "language")
DEFAULT_CENTERING_VERSES = 2000


def candidate_verses(bible: Bible, language: str, source_language: str, n: int) -> list[tuple[str, str, str]]:
    """``(verse id, language text, source text)`` of the first ``n`` verses with text in both, in a hash order
    (not the Bible's book order, so every book contributes). The candidates do not depend on the run, so
    their vectors are encoded once and served from the cache to every later run."""
    try:
        target, source = bible.texts(language), bible.texts(source_language)
    except InputError as err:
        raise InputError(
            f"centering: language needs Bible text in {language!r} and {source_language!r}: {err.message}",
            key="methods.centering",
            expected="centering: none for a language without a Bible edition",
        ) from err
    ids = [v for v in target if v in source and has_text(target[v]) and has_text(source[v])]
    ids.sort(key=lambda v: hashlib.sha256(v.encode()).hexdigest())
    return [(v, target[v], source[v]) for v in ids[:n]]


def language_offsets(
    encode: Callable[[list[str]], np.ndarray],
    bible: Bible,
    languages: Iterable[str],
    source_language: str,
    exclude: Iterable[str],
    n: int = DEFAULT_CENTERING_VERSES,
) -> dict[str, np.ndarray]:
    """``mean(encode(language verses)) - mean(encode(the same verses in the source language))`` per language,
    over the candidate verses (`candidate_verses`) outside ``exclude`` (the run's evaluation data) and their +-1
    neighbours (`with_neighbours`: an edition may merge an evaluated verse into one): those are encoded with the
    rest, for the cache, and then dropped, never averaged."""
    excluded = with_neighbours(exclude)
    out = {}
    for lang in languages:
        verses = candidate_verses(bible, lang, source_language, n)
        kept = np.array([v not in excluded for v, _, _ in verses], dtype=bool)
        if not kept.any():
            raise InputError(
                f"no {lang}-{source_language} Bible verse outside the evaluation sets to centre on",
                key="methods.centering",
                expected="centering: none, or more centering_verses",
            )
        target = np.asarray(encode([t for _, t, _ in verses]), dtype=np.float64)[kept]
        source = np.asarray(encode([s for _, _, s in verses]), dtype=np.float64)[kept]
        out[lang] = target.mean(0) - source.mean(0)
    return out


def centre(x: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Target vectors moved into the source language's region (``x - offset``), in ``x``'s dtype."""
    return (x - offset).astype(x.dtype, copy=False)
