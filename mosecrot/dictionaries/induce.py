"""Bilingual dictionaries induced from parallel sentences with the eflomal word aligner.

Why: MUSE has no Swahili (and FreeDict is small and unranked), but the Bible is verse-aligned in
every language we use, so word alignment over it yields a ranked dictionary for any pair.

Steps: tokenise both sides with the project tokeniser (`get_tokenizer`), align with eflomal in both
directions, symmetrise the two link sets (intersection or grow-diag-final-and), count the aligned
``(english_word, target_word)`` pairs over the corpus, drop pairs involving punctuation and pairs
seen fewer than ``min_count`` times, and score each pair by

    score(e, t) = count(e, t) / sqrt(count(e) * count(t))

where ``count(e)`` and ``count(t)`` are corpus token frequencies and ``count(e, t)`` adds, per
sentence, min(number of ``e`` tokens linked to a ``t``, number of ``t`` tokens linked to an ``e``)
(symmetrised links may join one token to several, and this keeps count(e, t) <= min(count(e),
count(t))). The score is thus in (0, 1], 1 when the two words always occur and align together;
unlike the raw count it does not favour frequent function words, and unlike p(t | e) it also
penalises a target word that is linked to many English words. Pairs are ordered by score, then count.

eflomal seeds its sampler from ``/dev/urandom`` and has no seed option, so two runs can differ in
a few low-count pairs; `induce_from_bible` caches its result so a pipeline sees one dictionary.
"""

from __future__ import annotations

import inspect
import logging
import math
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from heapq import heappop, heappush
from importlib.metadata import version
from pathlib import Path

from tqdm import tqdm

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.dictionaries.base import BilingualDictionary
from mosecrot.errors import InputError, unknown_choice
from mosecrot.languages import get_language
from mosecrot.text.bible import Bible, with_neighbours
from mosecrot.text.tokenize import get_tokenizer, is_word

log = logging.getLogger(__name__)

Link = tuple[int, int]  # (source token index, target token index), as in Pharaoh "i-j"
SYMMETRIZATIONS = ("grow-diag-final-and", "intersection")
# Bump when the induction procedure changes, so cached dictionaries are rebuilt.
INDUCE_VERSION = 1
_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))


def parallel_pairs(source: Sequence[str], target: Sequence[str]) -> list[tuple[str, str]]:
    """Zip two sentence lists that must be line-aligned; different lengths are an `InputError`."""
    if len(source) != len(target):
        raise InputError(
            f"misaligned parallel input: {len(source)} source vs {len(target)} target sentences",
            expected="two lists of the same length, sentence i translating sentence i",
        )
    return list(zip(source, target, strict=True))


def parse_links(line: str) -> set[Link]:
    """Pharaoh-format links ``"0-0 1-2"`` -> {(0, 0), (1, 2)}."""
    return {(int(i), int(j)) for i, j in (link.split("-") for link in line.split())}


def intersect(forward: set[Link], reverse: set[Link]) -> set[Link]:
    """Links both directions agree on: high precision, low recall."""
    return forward & reverse


def grow_diag_final_and(forward: set[Link], reverse: set[Link]) -> set[Link]:
    """Koehn's grow-diag-final-and symmetrisation (Koehn et al. 2005; Moses ``symal``).

    No maintained Python library implements it (Moses and fast_align's ``atools`` are C++ tools), so
    it is written out here following Koehn's pseudo-code: start from the intersection; sweep the
    points in (i, j) order, adding union points that neighbour an aligned point (8-neighbourhood)
    and cover a still-unaligned word, until a sweep adds nothing; then add, from the forward and
    then the reverse links, points whose two words are both still unaligned.
    """
    union = forward | reverse
    alignment = forward & reverse
    aligned_src = {i for i, _ in alignment}
    aligned_tgt = {j for _, j in alignment}
    added = True
    while added:
        added = False
        # A sweep visits points in (i, j) order, including points it adds ahead of the current one.
        queue = sorted(alignment)  # a sorted list is a valid heap
        while queue:
            i, j = heappop(queue)
            for di, dj in _NEIGHBOURS:
                point = (i + di, j + dj)
                if (
                    point in union
                    and point not in alignment
                    and (point[0] not in aligned_src or point[1] not in aligned_tgt)
                ):
                    alignment.add(point)
                    aligned_src.add(point[0])
                    aligned_tgt.add(point[1])
                    added = True
                    if point > (i, j):
                        heappush(queue, point)
    for direction in (forward, reverse):
        for i, j in sorted(direction):
            if i not in aligned_src and j not in aligned_tgt:
                alignment.add((i, j))
                aligned_src.add(i)
                aligned_tgt.add(j)
    return alignment


SYMMETRIZERS = {"grow-diag-final-and": grow_diag_final_and, "intersection": intersect}


def _eflomal_line(tokens: list[str]) -> str:
    # eflomal splits on whitespace; a token never contains any after this (links map back by index).
    return " ".join("_".join(tok.split()) for tok in tokens) + "\n"


def align(source_tokens: list[list[str]], target_tokens: list[list[str]]) -> tuple[list[set[Link]], list[set[Link]]]:
    """Forward and reverse eflomal links (both as source-target index pairs) for tokenised pairs. eflomal runs
    quiet: its binary writes its iteration timings straight to the terminal (past any log capture), and the
    caller's tokenising bar and log line say what a reader needs."""
    import eflomal  # GPL-3, an optional dependency: imported only when a dictionary is induced

    with tempfile.TemporaryDirectory(prefix="mosecrot-eflomal-") as tmp:
        fwd_path, rev_path = Path(tmp) / "forward.links", Path(tmp) / "reverse.links"
        eflomal.Aligner().align(
            [_eflomal_line(toks) for toks in source_tokens],
            [_eflomal_line(toks) for toks in target_tokens],
            links_filename_fwd=str(fwd_path),
            links_filename_rev=str(rev_path),
            quiet=True,
        )
        forward = [parse_links(line) for line in fwd_path.read_text().splitlines()]
        reverse = [parse_links(line) for line in rev_path.read_text().splitlines()]
    if not len(forward) == len(reverse) == len(source_tokens):
        raise RuntimeError(f"eflomal wrote {len(forward)}/{len(reverse)} link lines for {len(source_tokens)} pairs")
    return forward, reverse


def induce_dictionary(
    pairs: Sequence[tuple[str, str]],
    target_lang: str,
    min_count: int = 3,
    min_score: float = 0.0,
    symmetrization: str = "grow-diag-final-and",
    lowercase: bool = True,
    progress: bool = True,
    source_lang: str = "en",
) -> BilingualDictionary:
    """A scored dictionary from aligned ``(english, target)`` sentences (see the module docstring)."""
    if symmetrization not in SYMMETRIZERS:
        raise unknown_choice("symmetrization", symmetrization, SYMMETRIZATIONS, key="symmetrization")
    if min_count < 1:
        raise InputError(f"min_count must be at least 1, got {min_count}", key="min_count", expected=">= 1")
    if not pairs:
        raise InputError("no sentence pairs to align", expected="a non-empty list of (english, target) pairs")
    for n, pair in enumerate(pairs, 1):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise InputError(
                f"misaligned input: item {n} is {pair!r:.80}",
                line=n,
                expected="(english sentence, target sentence) string pairs",
            )
    src_lang, tgt_lang = get_language(source_lang).code, get_language(target_lang).code
    tok_src, tok_tgt = get_tokenizer(src_lang, lowercase), get_tokenizer(tgt_lang, lowercase)

    src_tokens: list[list[str]] = []
    tgt_tokens: list[list[str]] = []
    for src, tgt in tqdm(pairs, desc="tokenising", disable=not progress, unit="pair"):
        s, t = tok_src(src), tok_tgt(tgt)
        if s and t:
            src_tokens.append(s)
            tgt_tokens.append(t)
    if not src_tokens:
        raise InputError(
            f"all {len(pairs)} sentence pairs are empty on one side after tokenisation",
            expected="sentences with words on both sides",
        )

    start = time.perf_counter()
    forward, reverse = align(src_tokens, tgt_tokens)
    align_seconds = time.perf_counter() - start
    log.info("eflomal aligned %d pairs in %.1f s", len(src_tokens), align_seconds)

    symmetrize = SYMMETRIZERS[symmetrization]
    links: Counter[tuple[str, str]] = Counter()
    src_freq: Counter[str] = Counter()
    tgt_freq: Counter[str] = Counter()
    for s, t, fwd, rev in zip(src_tokens, tgt_tokens, forward, reverse, strict=True):
        src_freq.update(s)
        tgt_freq.update(t)
        positions: dict[tuple[str, str], tuple[set[int], set[int]]] = {}
        for i, j in symmetrize(fwd, rev):
            if is_word(s[i]) and is_word(t[j]):
                src_pos, tgt_pos = positions.setdefault((s[i], t[j]), (set(), set()))
                src_pos.add(i)
                tgt_pos.add(j)
        for pair, (src_pos, tgt_pos) in positions.items():
            links[pair] += min(len(src_pos), len(tgt_pos))

    scored = []
    for (src_word, tgt_word), count in links.items():
        if count < min_count:
            continue
        score = count / math.sqrt(src_freq[src_word] * tgt_freq[tgt_word])
        if score >= min_score:
            scored.append((-score, -count, src_word, tgt_word))
    scored.sort()
    return BilingualDictionary(
        source_lang=src_lang,
        target_lang=tgt_lang,
        pairs=[(e, t) for _, _, e, t in scored],
        origin="induced",
        scores=[-neg for neg, _, _, _ in scored],
        meta={
            "aligner": f"eflomal {version('eflomal')}",
            "symmetrization": symmetrization,
            "min_count": min_count,
            "min_score": min_score,
            "lowercase": lowercase,
            "score": "count(e,t)/sqrt(count(e)*count(t))",
            "sentence_pairs": len(pairs),
            "sentence_pairs_aligned": len(src_tokens),
            "sentence_pairs_empty": len(pairs) - len(src_tokens),
            "align_seconds": round(align_seconds, 2),
        },
    )


_INDUCE_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(induce_dictionary).parameters.items()
    if p.default is not inspect.Parameter.empty and name != "source_lang"
}


def _induction_options(kw: dict) -> dict:
    """``kw`` completed with `induce_dictionary`'s defaults, so equal settings give equal cache keys."""
    for name in kw:
        if name not in _INDUCE_DEFAULTS:
            raise unknown_choice("induction option", name, list(_INDUCE_DEFAULTS))
    return {**_INDUCE_DEFAULTS, **kw}


def induce_from_bible(
    bible: Bible,
    target_lang: str,
    exclude_ids: Iterable[str],
    source_lang: str = "en",
    cache: DiskCache | None = None,
    seed: int = 0,
    **kw,
) -> BilingualDictionary:
    """Induce from the verses both default editions have, never from ``exclude_ids`` (evaluation) nor their +-1
    neighbours (`with_neighbours`: a neighbour may hold a merged evaluation verse's text in one of the editions).

    ``kw`` goes to `induce_dictionary`. With a cache the result is stored under a key made of the
    verse pairs actually used and the parameters, so a different exclusion set is a different entry.
    ``seed`` names the induction run (eflomal cannot be seeded): another value aligns again and is cached apart.
    """
    options = _induction_options(kw)
    if isinstance(exclude_ids, str):
        raise InputError(
            "exclude_ids must be a collection of verse ids, not one string",
            key="exclude_ids",
            expected="e.g. a set of 8-digit BBCCCVVV ids",
        )
    evaluation = set(exclude_ids)
    exclude = with_neighbours(evaluation)
    source_texts, target_texts = bible.texts(source_lang), bible.texts(target_lang)
    shared = set(source_texts) & set(target_texts)
    ids = sorted(shared - exclude)
    pairs = [(source_texts[v], target_texts[v]) for v in ids]
    bible_meta = {
        "bible": bible.fingerprint(),
        "source_edition": bible.resolve(source_lang).code,
        "target_edition": bible.resolve(target_lang).code,
        "verses_shared": len(shared),
        "excluded_ids": len(evaluation),
        "excluded_ids_with_neighbours": len(exclude),
        "excluded_ids_shared": len(shared & exclude),
        "verse_pairs_used": len(ids),
        "seed": seed,
    }

    def build() -> BilingualDictionary:
        if not pairs:
            raise InputError(
                f"no verses shared by the {source_lang} and {target_lang} editions "
                f"outside the {len(exclude)} excluded ids (evaluation verses and their neighbours)",
                key="exclude_ids",
            )
        found = induce_dictionary(pairs, target_lang, source_lang=source_lang, **options)
        found.meta.update(bible_meta)
        return found

    if cache is None:
        return build()
    params = {k: v for k, v in options.items() if k != "progress"}
    key = {
        "what": "induced-dictionary",
        "version": INDUCE_VERSION,
        "source_lang": get_language(source_lang).code,
        "target_lang": get_language(target_lang).code,
        "verses": texts_fingerprint([f"{v}\t{s}\t{t}" for v, (s, t) in zip(ids, pairs, strict=True)]),
        "params": params,
        "seed": seed,
    }
    return cache.get_or_build("dictionaries", key, lambda tmp: build().save(tmp), BilingualDictionary.load)
