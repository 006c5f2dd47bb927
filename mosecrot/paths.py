"""Where data and caches live. Everything is overridable by environment variable or config key."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Real data beside the repository (../shared/data), or ``$MOSECROT_DATA_DIR``."""
    env = os.environ.get("MOSECROT_DATA_DIR")
    return Path(env).expanduser() if env else (REPO_ROOT.parent / "shared" / "data")


def cache_dir() -> Path:
    """Disk cache for vectors, dictionaries, anchors: ``$MOSECROT_CACHE_DIR`` or ~/.cache/mosecrot."""
    env = os.environ.get("MOSECROT_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mosecrot"
