"""A content-addressed disk cache whose entries carry checksums.

An entry is a directory named by the hash of its key (a JSON-able mapping: text fingerprint,
hyper-parameters, code version). It is built in a temporary directory and renamed into place, so a
crash never leaves half an entry, and it holds a ``MANIFEST.json`` with the SHA-256 of every file.
Loading verifies the manifest: a corrupt or truncated entry is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

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


class CorruptEntry(Exception):
    pass


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
                return load(path)
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
        return load(path)
