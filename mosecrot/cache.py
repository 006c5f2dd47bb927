"""A content-addressed disk cache whose entries carry checksums.

An entry is a directory named by the hash of its key (a JSON-able mapping: text fingerprint,
hyper-parameters, code version). It is built in a temporary directory and renamed into place, so a
crash never leaves half an entry, and it holds a ``MANIFEST.json`` with the SHA-256 of every file.
Loading verifies the manifest: a corrupt or truncated entry is reported and rebuilt, never used.

Entries travel: `record_entries` lists the entries a piece of code used (a sweep driver's preparation),
`pack_entries` reads them into memory (uint8 arrays, zero-copy in Ray's object store) and `install_entries`
writes them into another node's cache, so that node loads exactly the driver's vectors and dictionaries
instead of building its own (gensim with several workers and eflomal are not deterministic). An entry that
node already holds with other contents is an `EntryMismatch`, never silently kept or replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mosecrot.paths import cache_dir

log = logging.getLogger(__name__)
T = TypeVar("T")
MANIFEST = "MANIFEST.json"
# Bump when a cached format changes so old entries are not misread.
CACHE_FORMAT = 1


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hash of a JSON-able object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def texts_fingerprint(texts: list[str]) -> str:
    """Fingerprint of a corpus (order matters: it changes training)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def array_fingerprint(array: Any) -> str:
    """Fingerprint of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(np.asarray(array))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


class CorruptEntry(Exception):
    pass


class EntryMismatch(Exception):
    """This cache holds an entry under the same key as another cache, with other contents."""


# The entries `get_or_build` returned while a `record_entries` block of this thread/context runs.
_RECORDED: ContextVar[list[Path] | None] = ContextVar("mosecrot_cache_recorded", default=None)


@contextmanager
def record_entries() -> Iterator[list[Path]]:
    """Collect the path of every entry loaded or built by `DiskCache.get_or_build` inside the block (in this
    thread), in first-use order, each once."""
    recorded: list[Path] = []
    token = _RECORDED.set(recorded)
    try:
        yield recorded
    finally:
        _RECORDED.reset(token)


def _record(path: Path) -> None:
    recorded = _RECORDED.get()
    if recorded is not None and path not in recorded:
        recorded.append(path)


@dataclass
class PackedEntry:
    """One cache entry in memory: where it sits under a cache root (``namespace/hash``), its manifest, and its
    files as uint8 arrays."""

    relpath: str
    manifest: dict[str, Any]
    files: dict[str, np.ndarray]

    @property
    def digests(self) -> dict[str, str]:
        return dict(self.manifest["files"])

    @property
    def size(self) -> int:
        return sum(int(a.nbytes) for a in self.files.values())


def entry_digests(path: Path) -> dict[str, str] | None:
    """The file digests an entry's manifest lists, or None when the entry or its manifest is absent/unreadable."""
    try:
        return dict(json.loads((path / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DiskCache:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else cache_dir()

    def path_for(self, namespace: str, key: dict) -> Path:
        return self.root / namespace / stable_hash({"format": CACHE_FORMAT, **key})

    def verify(self, path: Path) -> None:
        manifest = path / MANIFEST
        if not manifest.is_file():
            raise CorruptEntry(f"{path}: no {MANIFEST}")
        try:
            files = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError) as err:
            raise CorruptEntry(f"{manifest}: unreadable manifest ({err})") from err
        for rel, digest in files.items():
            f = path / rel
            if not f.is_file():
                raise CorruptEntry(f"{f}: missing")
            if file_sha256(f) != digest:
                raise CorruptEntry(f"{f}: checksum mismatch")

    def add_files(self, path: Path, write: Callable[[Path], None]) -> None:
        """Add files to an existing entry: `write(tmp_dir)` writes them, then they are moved into the entry
        and the manifest is extended (atomically replaced), so they are verified like the rest.

        For derived files that later code versions store (a faster layout of the same data): the key and
        the existing files are unchanged, so entries built by older versions are upgraded, not rebuilt."""
        tmp = path.parent / f".{path.name}.add-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            write(tmp)
            manifest = json.loads((path / MANIFEST).read_text())
            for f in sorted(tmp.rglob("*")):
                if f.is_file():
                    rel = str(f.relative_to(tmp))
                    manifest["files"][rel] = file_sha256(f)
                    os.replace(f, path / rel)
            new = path / f".{MANIFEST}.{os.getpid()}-{time.monotonic_ns()}"
            new.write_text(json.dumps(manifest, indent=1, default=str))
            os.replace(new, path / MANIFEST)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get_or_build(
        self,
        namespace: str,
        key: dict,
        build: Callable[[Path], object],
        load: Callable[[Path], T],
    ) -> T:
        """Load the entry for `key`, building it with `build(tmp_dir)` if absent or corrupt."""
        path = self.path_for(namespace, key)
        if path.exists():
            try:
                self.verify(path)
                value = load(path)
                _record(path)
                return value
            except CorruptEntry as err:
                log.warning("cache entry corrupt, rebuilding: %s", err)
                shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
        tmp.mkdir()
        try:
            build(tmp)
            files = {str(p.relative_to(tmp)): file_sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / MANIFEST).write_text(
                json.dumps({"key": key, "files": files, "created": time.time()}, indent=1, default=str)
            )
            try:
                os.replace(tmp, path)
            except OSError:
                # Another process finished the same entry first: keep theirs.
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        value = load(path)
        _record(path)
        return value

    # --- entries that travel between caches -----------------------------------------------------------------

    def relpath(self, path: Path) -> str:
        """``namespace/hash`` of an entry path under this cache's root."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def pack(self, paths: list[Path]) -> list[PackedEntry]:
        """The entries at `paths` (under this root) in memory, verified first."""
        packed = []
        for path in paths:
            self.verify(path)
            manifest = json.loads((path / MANIFEST).read_text())
            files = {rel: np.frombuffer((path / rel).read_bytes(), dtype=np.uint8) for rel in sorted(manifest["files"])}
            packed.append(PackedEntry(self.relpath(path), manifest, files))
        return packed

    def status(self, relpath: str, digests: dict[str, str]) -> str:
        """``"same"`` (this cache holds the entry with these contents), ``"absent"`` (absent or corrupt: it can
        be installed) or ``"different"`` (held with other contents), by the manifests (the files are verified
        when the entry is loaded)."""
        path = self.root / relpath
        if not path.exists():
            return "absent"
        have = entry_digests(path)
        if have is None:
            return "absent"
        return "same" if have == digests else "different"

    def install(self, entries: list[PackedEntry]) -> list[str]:
        """Write `entries` into this cache where absent (atomically, with their own manifests); returns the
        installed relpaths. An entry held here with other contents raises `EntryMismatch`."""
        installed = []
        for entry in entries:
            state = self.status(entry.relpath, entry.digests)
            if state == "same":
                continue
            path = self.root / entry.relpath
            if state == "different":
                raise EntryMismatch(
                    f"cache entry {path} holds other contents than the entry it should equal "
                    f"({entry.relpath}, built elsewhere); remove it to receive the other one"
                )
            shutil.rmtree(path, ignore_errors=True)  # absent, or corrupt
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.in-{os.getpid()}-{time.monotonic_ns()}"
            try:
                tmp.mkdir()
                for rel, data in entry.files.items():
                    f = tmp / rel
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(data.tobytes())
                    if file_sha256(f) != entry.digests[rel]:
                        raise CorruptEntry(f"{entry.relpath}/{rel}: checksum mismatch in transit")
                (tmp / MANIFEST).write_text(json.dumps(entry.manifest, indent=1, default=str))
                try:
                    os.replace(tmp, path)
                except OSError:  # installed concurrently by another process of this node
                    shutil.rmtree(tmp, ignore_errors=True)
                    if self.status(entry.relpath, entry.digests) != "same":
                        raise EntryMismatch(
                            f"cache entry {path} was written concurrently with other contents"
                        ) from None
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            installed.append(entry.relpath)
        return installed
