"""Anchors: bilingual word pairs (English PLM token, target static word) that relative
representations are measured against.

Eligibility (the paper's rule, made exact):
1. the English word is exactly one token of the PLM vocabulary (asked of the tokenizer itself);
2. the target word is in the static vocabulary (stored rows; subword-only words do not count);
3. one translation per target word: pairs are scanned in dictionary order (MUSE lists translations
   roughly by frequency, induced dictionaries by alignment score) and the first pair of each target
   word wins; with ``one_to_one`` (default) the first pair of each English *PLM token id* wins too, so
   no two anchors share an English embedding row (duplicate columns would double-weight one
   embedding). Deduplicating on the token id, not the English string, matters for uncased models:
   MiniLM lower-cases and strips accents, so "café" and "cafe" are one row and only the first of the
   two in dictionary order becomes an anchor.

Then ``count`` anchors are chosen by a named strategy (``ANCHOR_STRATEGIES``): ``frequent`` and
``random`` keep ``count`` of them; ``all`` keeps every one and takes only ``count: all`` (a number
with ``all`` is an error, `check_count`, never silently ignored). A count larger than what is
available is clamped (``on_shortfall="clamp"``, recorded as ``clamped`` in the anchor set's meta and
in every result) or refused (``on_shortfall="error"``).

Scopes:
- ``pair`` (the paper): one anchor set per language pair.
- ``union``: one English anchor list shared by all target languages, each language using the
  anchors it can translate, so F_s, and hence one English fine-tuning, serves every language.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field

from mosecrot.errors import InputError, unknown_choice

log = logging.getLogger(__name__)

Pair = tuple[str, str]


@dataclass
class AnchorSet:
    """Anchors of one target language: aligned lists, English token ids for the PLM side.

    ``source_positions[j]`` is the index of anchor j in the shared English list (``union`` scope);
    in ``pair`` scope it is simply ``range(len(pairs))``.
    """

    language: str
    pairs: list[Pair]
    source_token_ids: list[int]
    source_positions: list[int]
    scope: str
    strategy: str
    meta: dict = field(default_factory=dict)
    # How much each anchor is trusted (``anchors.weights``, `mosecrot.anchor_growth`); None: all alike.
    weights: list[float] | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def source_words(self) -> list[str]:
        return [s for s, _ in self.pairs]

    @property
    def target_words(self) -> list[str]:
        return [t for _, t in self.pairs]


def eligible_pairs(
    pairs: Sequence[Pair],
    source_token_ids: Mapping[str, int],
    target_vocab: Container[str],
    one_to_one: bool = True,
    where: str = "dictionary",
) -> list[Pair]:
    """Filter dictionary pairs by the eligibility rule in the module docstring (order kept)."""
    in_plm = [p for p in pairs if p[0] in source_token_ids]
    if pairs and not in_plm:
        raise InputError(
            f"no English word of the {len(pairs)} dictionary pairs is a single token of the PLM vocabulary",
            path=where,
            expected="a dictionary whose English side overlaps the model's vocabulary",
        )
    in_both = [p for p in in_plm if p[1] in target_vocab]
    if in_plm and not in_both:
        raise InputError(
            f"no target word of the {len(in_plm)} PLM-compatible pairs is in the static vocabulary",
            path=where,
            expected="a dictionary whose target side overlaps the static vectors' vocabulary "
            "(same language, same lower-casing and tokenisation)",
        )
    seen_t: set[str] = set()
    seen_rows: set[int] = set()  # PLM token ids: spellings the tokenizer merges are one row
    out = []
    for s, t in in_both:
        row = source_token_ids[s]
        if t in seen_t or (one_to_one and row in seen_rows):
            continue
        seen_t.add(t)
        seen_rows.add(row)
        out.append((s, t))
    return out


# --- strategies: (candidates, count, seed, frequency) -> chosen, each one function --------------


def _all(cands: list, count: int, seed: int, freq: Callable) -> list:
    return list(cands)


def _frequent(cands: list, count: int, seed: int, freq: Callable) -> list:
    # Stable sort: ties keep dictionary order.
    return sorted(cands, key=lambda c: -freq(c))[:count]


def _random(cands: list, count: int, seed: int, freq: Callable) -> list:
    chosen = set(random.Random(seed).sample(range(len(cands)), count))
    return [c for i, c in enumerate(cands) if i in chosen]  # dictionary order kept


ANCHOR_STRATEGIES: dict[str, Callable[[list, int, int, Callable], list]] = {
    "all": _all,
    "frequent": _frequent,
    "random": _random,
}


def check_count(count: int | str | None, strategy: str, prefix: str = "anchors") -> None:
    """A known strategy, and a count it uses: a positive integer with ``frequent`` / ``random``, ``all`` (or
    None) with any strategy. ``strategy: all`` keeps every anchor, so a number there is refused rather than
    silently ignored. Runs when a config is loaded (`mosecrot.data_config.AnchorConfig`) and again when anchors
    are chosen."""
    if strategy not in ANCHOR_STRATEGIES:
        raise unknown_choice("anchor strategy", strategy, list(ANCHOR_STRATEGIES), key=f"{prefix}.strategy")
    if count is None or count == "all":
        return
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise InputError(f"bad anchor count {count!r}", key=f"{prefix}.count", expected="a positive integer or 'all'")
    if strategy == "all":
        raise InputError(
            f"{prefix}.count={count} with {prefix}.strategy 'all', which keeps every anchor and would ignore the count",
            key=f"{prefix}.count",
            expected=f"{prefix}.strategy: frequent (the {count} most frequent anchors) or random (a seeded sample "
            f"of {count}) to keep {count} anchors, or {prefix}.count: all",
        )


def _resolve_count(count: int | str | None, available: int, on_shortfall: str, where: str) -> tuple[int, bool]:
    if count is None or count == "all":
        return available, False
    assert isinstance(count, int)  # check_count let through only positive ints besides "all"
    if count > available:
        if on_shortfall == "error":
            raise InputError(
                f"{count} anchors requested but only {available} are available for {where}",
                key="anchors.count",
                expected=f"at most {available}, or on_shortfall: clamp",
            )
        log.warning("anchors for %s: %d requested, clamped to the %d available", where, count, available)
        return available, True
    return count, False


def choose(
    cands: list, count: int | str | None, strategy: str, seed: int, freq: Callable, on_shortfall: str, where: str
) -> tuple[list, dict]:
    check_count(count, strategy)
    n, clamped = _resolve_count(count, len(cands), on_shortfall, where)
    chosen = ANCHOR_STRATEGIES[strategy](cands, n, seed, freq)
    meta = {"requested": count, "available": len(cands), "kept": len(chosen), "clamped": clamped}
    return chosen, meta


def build_pair_anchors(
    language: str,
    pairs: Sequence[Pair],
    source_token_ids: Mapping[str, int],
    target_vocab: Container[str],
    target_frequency: Callable[[str], int],
    count: int | str | None = "all",
    strategy: str = "all",
    seed: int = 0,
    one_to_one: bool = True,
    on_shortfall: str = "clamp",
    where: str = "dictionary",
) -> AnchorSet:
    """The paper's scope: one anchor set for English -> `language`."""
    elig = eligible_pairs(pairs, source_token_ids, target_vocab, one_to_one, where)
    chosen, meta = choose(elig, count, strategy, seed, lambda p: target_frequency(p[1]), on_shortfall, language)
    meta.update(dictionary_pairs=len(pairs), eligible=len(elig))
    return AnchorSet(
        language=language,
        pairs=chosen,
        source_token_ids=[source_token_ids[s] for s, _ in chosen],
        source_positions=list(range(len(chosen))),
        scope="pair",
        strategy=strategy,
        meta=meta,
    )


@dataclass
class UnionAnchors:
    """One English anchor list and, per language, the anchors it can translate."""

    source_words: list[str]
    source_token_ids: list[int]
    per_language: dict[str, AnchorSet]
    meta: dict = field(default_factory=dict)


def build_union_anchors(
    eligible: Mapping[str, list[Pair]],
    source_token_ids: Mapping[str, int],
    count: int | str | None = "all",
    strategy: str = "all",
    seed: int = 0,
    source_frequency: Callable[[str], int | None] | None = None,
    on_shortfall: str = "clamp",
) -> UnionAnchors:
    """Shared English anchors over several languages (``eligible`` from `eligible_pairs` per language).

    Candidates are PLM rows (token ids) eligible in at least one language, each named by its English
    spelling that comes first in the order below (spellings the tokenizer merges, "café"/"cafe" in an
    uncased model, are one candidate with their frequencies summed), ordered by how many languages can
    translate them (most first), then by ``source_frequency`` (English corpus frequency), then
    alphabetically, so the list is deterministic. ``frequent`` takes the head of that order; ``random``
    samples it with ``seed``.
    """
    freq = (lambda w: source_frequency(w) or 0) if source_frequency else (lambda w: 0)
    spellings: dict[int, set[str]] = {}
    langs_of: dict[int, int] = {}
    for pairs in eligible.values():
        rows = set()
        for s, _ in pairs:
            spellings.setdefault(source_token_ids[s], set()).add(s)
            rows.add(source_token_ids[s])
        for row in rows:
            langs_of[row] = langs_of.get(row, 0) + 1
    name = {row: min(words, key=lambda w: (-freq(w), w)) for row, words in spellings.items()}
    row_freq = {row: sum(freq(w) for w in words) for row, words in spellings.items()}
    ordered_rows = sorted(langs_of, key=lambda r: (-langs_of[r], -row_freq[r], name[r]))
    chosen_rows, meta = choose(
        ordered_rows, count, strategy, seed, lambda r: langs_of[r] * 10**12 + row_freq[r], on_shortfall, "union"
    )
    position = {row: i for i, row in enumerate(chosen_rows)}
    per_language = {}
    for lang, pairs in eligible.items():
        kept = [(s, t) for s, t in pairs if source_token_ids[s] in position]
        per_language[lang] = AnchorSet(
            language=lang,
            pairs=kept,
            source_token_ids=[source_token_ids[s] for s, _ in kept],
            source_positions=[position[source_token_ids[s]] for s, _ in kept],
            scope="union",
            strategy=strategy,
            meta={
                "eligible": len(pairs),
                "kept": len(kept),
                "union_size": len(chosen_rows),
                **{k: meta[k] for k in ("requested", "clamped")},
            },
        )
    return UnionAnchors(
        source_words=[name[r] for r in chosen_rows],
        source_token_ids=list(chosen_rows),
        per_language=per_language,
        meta={**meta, "languages": sorted(eligible)},
    )
