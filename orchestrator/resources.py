"""The sweep's prepared resources on every node: the same vectors, dictionaries and anchors in every trial.

The driver prepares once (`orchestrator.sweep`) and puts `SweepResources` in Ray's object store: the task splits,
vectors and dictionaries themselves (what `mosecrot.prepare.SharedResources` holds), their fingerprints, and a
reference to the disk-cache entries the preparation used (fastText models with their subword n-grams, induced
dictionaries, English word counts, single-token ids), packed as arrays (`mosecrot.cache.DiskCache.pack`). A trial
on a node whose cache lacks an entry fetches the pack and installs the entries (`adopt`) before it prepares, so
it never rebuilds them (gensim with several workers and eflomal are not deterministic: a rebuild would give
other vectors and anchors); a node that holds one of them with other contents fails the trial
(`EntryMismatch`). After preparing, `check_fingerprints` compares what the trial uses with what the driver
prepared: a difference is a `ResourceMismatch`, never a silent rebuild.

`resource_fingerprints` names what a run used (``vectors.de``, ``dictionary.de``, ``anchors.de``): a trial
reports them (``fingerprint.*`` in its result, tags of its MLflow run), so any two trials can be checked to have
used the same resources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mosecrot.cache import DiskCache, PackedEntry, array_fingerprint, stable_hash, texts_fingerprint
from mosecrot.prepare import Prepared, SharedResources
from mosecrot.vectors import StaticVectors

log = logging.getLogger(__name__)
FINGERPRINT_PREFIX = "fingerprint."


class ResourceMismatch(RuntimeError):
    """A trial would use other resources than the sweep driver prepared."""


def vectors_fingerprint(vectors: StaticVectors) -> str:
    return stable_hash(
        {
            "words": texts_fingerprint(vectors.words),
            "matrix": array_fingerprint(vectors.matrix),
            "counts": array_fingerprint(vectors.counts) if vectors.counts is not None else None,
        }
    )


def resource_fingerprints(source: Prepared | SharedResources) -> dict[str, str]:
    """``{"vectors.de": ..., "dictionary.de": ..., "anchors.de": ...}`` of a preparation (anchors only for a
    `Prepared`); empty for task-only preparations."""
    out = {f"vectors.{lang}": vectors_fingerprint(v) for lang, v in source.vectors.items()}
    out.update(
        {
            f"dictionary.{lang}": texts_fingerprint([f"{s}\t{t}" for s, t in d.pairs])
            for lang, d in source.dictionaries.items()
        }
    )
    for lang, a in getattr(source, "anchors", {}).items():
        out[f"anchors.{lang}"] = stable_hash({"pairs": a.pairs, "ids": a.source_token_ids})
    return dict(sorted(out.items()))


@dataclass
class SweepResources(SharedResources):
    """`SharedResources` plus what makes them portable: the driver's cache root, the manifests of the cache
    entries its preparation used (``namespace/hash`` -> file digests), the entries themselves (a Ray
    ``ObjectRef`` to a list of `PackedEntry`, or the list) and the fingerprints of the vectors and
    dictionaries."""

    cache_root: str = ""
    entry_digests: dict[str, dict[str, str]] = field(default_factory=dict)
    entries: Any = None
    fingerprints: dict[str, str] = field(default_factory=dict)

    def usable_here(self) -> bool:
        """Files missing on this node come with the pack (`adopt` installs them)."""
        return self.entries is not None or super().usable_here()


def sweep_resources(shared: SharedResources, cache: DiskCache, used: list[Path], put: Any = None) -> SweepResources:
    """The driver's side: `shared` with the entries at `used` (`mosecrot.cache.record_entries` of its
    preparation) packed, and its fingerprints. ``put`` (``ray.put``) stores the pack apart, so a node fetches it
    only when its cache lacks an entry."""
    inside = [p for p in used if _under(p, cache.root)]
    packed = cache.pack(inside)
    entries = put(packed) if put is not None else packed
    log.info(
        "sweep resources: %d cache entries (%.1f MiB) available to trials on other nodes",
        len(packed),
        sum(e.size for e in packed) / 2**20,
    )
    fields = {f: getattr(shared, f) for f in SharedResources.__dataclass_fields__}
    return SweepResources(
        **fields,
        cache_root=str(cache.root.resolve()),
        entry_digests={e.relpath: e.digests for e in packed},
        entries=entries,
        fingerprints=resource_fingerprints(shared),
    )


def _under(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def adopt(shared: SharedResources | None, cache: DiskCache) -> list[str]:
    """A trial's side, before it prepares: install the sweep's cache entries this node lacks (fetching the pack
    only then), and point the vectors' subword models at this node's copies. Returns the installed entries.
    An entry this cache holds with other contents raises `mosecrot.cache.EntryMismatch`."""
    if not isinstance(shared, SweepResources) or shared.entries is None:
        return []
    states = {rel: cache.status(rel, digests) for rel, digests in shared.entry_digests.items()}
    installed: list[str] = []
    if any(state != "same" for state in states.values()):
        packed = _fetch(shared.entries)
        installed = cache.install(packed)  # raises EntryMismatch on "different"
        if installed:
            log.info("installed %d of the sweep driver's cache entries: %s", len(installed), ", ".join(installed))
    root = Path(shared.cache_root)
    for vectors in shared.vectors.values():
        sub = vectors.subwords
        path = getattr(sub, "path", None)
        if isinstance(path, Path) and not path.is_file() and _under(path, root):
            sub.path = cache.root / path.resolve().relative_to(root.resolve())  # type: ignore[union-attr]
    return installed


def _fetch(entries: Any) -> list[PackedEntry]:
    if isinstance(entries, list):
        return entries
    import ray

    return ray.get(entries)


def check_fingerprints(shared: SharedResources | None, used: dict[str, str], same_resources: bool) -> None:
    """Raise `ResourceMismatch` when a trial whose config has the driver's resource key (``same_resources``)
    uses vectors or dictionaries other than the driver's."""
    if isinstance(shared, SweepResources):
        check_expected(shared.fingerprints, used, same_resources)


def check_expected(expected: dict[str, str], used: dict[str, str], same_resources: bool) -> None:
    """`check_fingerprints` against the driver's fingerprints alone (a trial that could not fetch the
    resources and built its own: they must be the same ones, or the trial fails)."""
    if not same_resources:
        return
    differ = [k for k, v in expected.items() if used.get(k) != v]
    if differ:
        raise ResourceMismatch(
            "this trial's resources differ from the ones the sweep driver prepared: "
            + ", ".join(f"{k} {used.get(k)} != {expected[k]}" for k in differ)
        )


def fingerprint_metrics(fingerprints: dict[str, str]) -> dict[str, str]:
    """``fingerprint.vectors.de`` etc.: how a trial reports them (strings in its result; MLflow tags)."""
    return {FINGERPRINT_PREFIX + k: v for k, v in fingerprints.items()}


__all__ = [
    "FINGERPRINT_PREFIX",
    "ResourceMismatch",
    "SweepResources",
    "adopt",
    "check_expected",
    "check_fingerprints",
    "fingerprint_metrics",
    "resource_fingerprints",
    "sweep_resources",
]
