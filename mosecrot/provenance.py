"""What every run records about itself: code revision, package versions, data fingerprints."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from mosecrot.paths import REPO_ROOT

_PACKAGES = ("mosecrot", "torch", "transformers", "tokenizers", "datasets", "gensim", "eflomal", "numpy")


def git_revision() -> str:
    """HEAD commit, with ``-dirty`` when the work tree has uncommitted changes; ``unknown`` outside git."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_revision": git_revision(), "python": platform.python_version(), "packages": versions}
