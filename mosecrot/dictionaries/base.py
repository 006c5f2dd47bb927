"""The one bilingual-dictionary type every source (MUSE, FreeDict, induced) produces.

Pairs are ``(english_word, target_word)`` in a meaningful order: file order for MUSE (which lists
translations roughly by frequency), headword order for FreeDict, score order for induced
dictionaries. Keeping the order lets callers take "the first translation" without re-ranking.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from mosecrot.errors import InputError

PAIRS_FILE = "pairs.tsv"
META_FILE = "dictionary.json"


@dataclass
class BilingualDictionary:
    source_lang: str
    target_lang: str
    pairs: list[tuple[str, str]]
    origin: str  # "muse", "freedict" or "induced": where the pairs came from
    scores: list[float] | None = None  # one per pair where the source ranks pairs (induced)
    meta: dict = field(default_factory=dict)  # provenance: file, counts dropped, parameters

    def __post_init__(self) -> None:
        if self.scores is not None and len(self.scores) != len(self.pairs):
            raise ValueError(f"{len(self.scores)} scores for {len(self.pairs)} pairs")

    def __len__(self) -> int:
        return len(self.pairs)

    def source_words(self) -> list[str]:
        """Distinct English words, in order of first appearance."""
        return list(dict.fromkeys(en for en, _ in self.pairs))

    def target_words(self) -> list[str]:
        """Distinct target words, in order of first appearance."""
        return list(dict.fromkeys(tgt for _, tgt in self.pairs))

    def translations_of(self, en: str) -> list[str]:
        """Translations of one English word, in dictionary order (empty if absent)."""
        return [tgt for src, tgt in self.pairs if src == en]

    def _subset(self, indices: list[int], **meta) -> BilingualDictionary:
        return replace(
            self,
            pairs=[self.pairs[i] for i in indices],
            scores=None if self.scores is None else [self.scores[i] for i in indices],
            meta={**self.meta, **meta},
        )

    def filter(self, keep_pair: Callable[[str, str], bool]) -> BilingualDictionary:
        """A new dictionary with the pairs for which ``keep_pair(en, tgt)`` is true, order kept."""
        kept = [i for i, (en, tgt) in enumerate(self.pairs) if keep_pair(en, tgt)]
        return self._subset(kept, filtered_from=len(self.pairs))

    def sample(self, n: int, seed: int) -> BilingualDictionary:
        """``n`` pairs drawn without replacement (reproducible by seed), in dictionary order."""
        if not 0 <= n <= len(self.pairs):
            raise InputError(
                f"cannot sample {n} pairs from a {self.origin} dictionary of {len(self.pairs)}",
                key="n",
                expected=f"0 <= n <= {len(self.pairs)}",
            )
        chosen = sorted(random.Random(seed).sample(range(len(self.pairs)), n))
        return self._subset(chosen, sampled_from=len(self.pairs), sample_seed=seed)

    def save(self, directory: str | Path) -> None:
        """Write ``pairs.tsv`` (en, target[, score]) and ``dictionary.json`` (the rest)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / PAIRS_FILE, "w", encoding="utf-8") as f:
            for i, (en, tgt) in enumerate(self.pairs):
                row = [en, tgt] + ([repr(self.scores[i])] if self.scores is not None else [])
                f.write("\t".join(row) + "\n")
        header = {
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "origin": self.origin,
            "has_scores": self.scores is not None,
            "meta": self.meta,
        }
        (directory / META_FILE).write_text(json.dumps(header, ensure_ascii=False, indent=1, default=str))

    @classmethod
    def load(cls, directory: str | Path) -> BilingualDictionary:
        """Read what `save` wrote."""
        directory = Path(directory)
        header = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        pairs: list[tuple[str, str]] = []
        scores: list[float] = []
        with open(directory / PAIRS_FILE, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != (3 if header["has_scores"] else 2):
                    raise InputError(
                        "malformed saved dictionary row",
                        path=directory / PAIRS_FILE,
                        line=n,
                        expected="english<TAB>target[<TAB>score]",
                    )
                pairs.append((fields[0], fields[1]))
                if header["has_scores"]:
                    scores.append(float(fields[2]))
        return cls(
            source_lang=header["source_lang"],
            target_lang=header["target_lang"],
            pairs=pairs,
            origin=header["origin"],
            scores=scores if header["has_scores"] else None,
            meta=header["meta"],
        )
