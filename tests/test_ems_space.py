"""Tuning EMS through sweeps: an EMS method's ``ems_set`` and ``method.ems_set.<EMS key>`` search parameters.

Fast: no data, no Ray, no training (the config an EMS method would train is resolved and inspected).
"""

from __future__ import annotations

import itertools

import optuna
import pytest
import yaml

from mosecrot.configschema import from_dict
from mosecrot.ems.encoder import ems_training_config, encoder_cache_key
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig
from orchestrator.search_space import (
    SPACES_DIR,
    baseline_methods,
    define_by_run,
    load_search_space,
    optuna_sampler,
    trial_configs,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

P = "method.ems_set."
XTR, CON, TEMP = P + "loss.xtr_weight", P + "loss.contrastive_weight", P + "loss.temperature"
LAYERS, DMODEL, LR = P + "model.layers", P + "model.d_model", P + "train.learning_rate"
CENTER = "method.centering"


def _ems_method(**ems_set) -> MethodConfig:
    return from_dict(
        MethodConfig, {"name": "ems", "kind": "ems", "ems": "cpu", "ems_set": ems_set}, prefix="methods[0]"
    )


def _space_file(tmp_path, **changes):
    """A copy of search_spaces/ems.yaml with top-level changes, beside the shipped experiment."""
    data = yaml.safe_load((SPACES_DIR / "ems.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- the shipped space --------------------------------------------------------------------------------


def test_shipped_ems_space_loads_and_validates():
    space = load_search_space("ems")
    assert space.method_data()["kind"] == "ems" and space.method["ems"] == "cpu"
    assert {XTR, CON, TEMP, LAYERS, DMODEL} <= set(space.space)
    assert space.searcher.kind == "optuna-tpe" and space.searcher.seed == 0
    assert space.objective.protocol == "selection-languages-dev" and space.objective.languages == ["de"]
    assert space.report_languages == ["fr", "sw"]  # honest: disjoint from the selection language
    assert {b.kind for b in baseline_methods(space)} == {"own_tokenizer", "ls", "frozen_encoder"}
    assert space.space[DMODEL].choices == [128, 256, 384] and 0.0 in space.space[CON].choices
    assert 0.0 in space.space[XTR].choices  # both ablations are reachable
    # the fixed training budget is small and reaches the config every trial trains
    _, method = trial_configs(space, {CON: 0.0, LAYERS: 1, DMODEL: 128, LR: 3e-4, "method.centering": "language"})
    cfg = ems_training_config(method.options.ems, method.options.ems_set)
    # budgeted by steps, never by wall time (a busy node would train fewer steps)
    assert cfg.train.max_steps <= 1000 and cfg.train.time_budget_s is None and cfg.languages == ["de", "fr", "sw"]
    assert method.options.centering == "language"  # a classifier setting, sampled beside the training ones


def test_sampled_trials_are_valid_never_both_weights_zero_and_conditions_hold():
    space = load_search_space(
        "ems", ["searcher.kind=random", "searcher.constant_liar=null", "searcher.n_startup_trials=null"]
    )
    study, sample = optuna.create_study(sampler=optuna_sampler(space), direction="maximize"), define_by_run(space)
    seen = set()
    for i in range(40):
        trial = study.ask()
        sample(trial)
        params = dict(trial.params)
        study.tell(trial, float(i % 3))
        contrastive_on = params[CON] > 0
        assert (XTR in params) == contrastive_on and (TEMP in params) == contrastive_on
        _, method = trial_configs(space, params)
        cfg = ems_training_config(method.options.ems, method.options.ems_set)
        assert cfg.loss.xtr_weight > 0 or cfg.loss.contrastive_weight > 0
        seen.add((cfg.loss.xtr_weight > 0, cfg.loss.contrastive_weight > 0))
    assert seen == {(True, False), (False, True), (True, True)}  # XTR only, contrastive only, both


# --- bad keys -----------------------------------------------------------------------------------------


def test_misspelt_ems_key_fails_at_load_naming_the_key_and_the_valid_ones():
    with pytest.raises(InputError) as info:
        load_search_space("ems", ["space.method.ems_set.loss.temprature={type: float, low: 0.05, high: 0.2}"])
    err = info.value
    assert err.key == "space.method.ems_set.loss.temprature"
    assert "search_spaces/ems.yaml" in str(err)
    for name in ("contrastive_weight", "temperature", "xtr_weight"):
        assert name in err.expected
    with pytest.raises(InputError, match="key 'space.method.ems_set.modle.layers'.*has no 'modle'.*loss.*model"):
        load_search_space("ems", ["space.method.ems_set.modle.layers={type: int, low: 1, high: 3}"])


def test_misspelt_ems_key_in_a_method_names_methods_i_ems_set():
    with pytest.raises(InputError) as info:
        _ems_method(**{"loss.temprature": 0.05})
    assert info.value.key == "methods[0].ems_set.loss.temprature" and "temperature" in info.value.expected


def test_bad_ems_values_fail_at_load_by_parameter():
    with pytest.raises(InputError, match=r"key 'space.method.ems_set.model.d_model.choices\[1\]'.*not divisible"):
        load_search_space("ems", ["space.method.ems_set.model.d_model.choices=[128, 130]"])
    with pytest.raises(InputError, match=r"key 'space.method.ems_set.loss.temperature.low'.*must be positive"):
        load_search_space(
            "ems", ["space.method.ems_set.loss.temperature.log=false", "space.method.ems_set.loss.temperature.low=-0.1"]
        )


def test_ems_keys_need_an_ems_method_and_a_single_setting(tmp_path):
    path = _space_file(
        tmp_path,
        method={"name": "mosecrot", "kind": "mosecrot", "stitch": {"relative": {"negatives": "clip"}}},
        space={TEMP: {"type": "float", "low": 0.05, "high": 0.2}},
    )
    with pytest.raises(InputError, match=f"key 'space.{TEMP}'.*kind ems"):
        load_search_space(path)
    path = _space_file(tmp_path, space={P + "loss": {"type": "categorical", "choices": ["x"]}})
    with pytest.raises(InputError, match=f"key 'space.{P}loss'.*whole block"):
        load_search_space(path)
    with pytest.raises(InputError, match=r"key 'methods\[1\].ems_set'.*kind ems only"):
        from_dict(MethodConfig, {"name": "ls", "kind": "ls", "ems_set": {"loss.temperature": 0.1}}, prefix="methods[1]")


def test_a_checkpoint_cannot_take_ems_set(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")  # what is_checkpoint looks for; never loaded here
    with pytest.raises(InputError, match=r"key 'methods\[0\].ems_set'.*checkpoint.*cannot be overridden"):
        from_dict(
            MethodConfig,
            {"name": "ems", "kind": "ems", "ems": str(tmp_path), "ems_set": {"loss.temperature": 0.05}},
            prefix="methods[0]",
        )


# --- overrides reach the trained config ---------------------------------------------------------------


def test_trial_configs_apply_the_overrides_to_the_ems_config_that_is_trained(monkeypatch, tmp_path):
    import mosecrot.ems.encoder as ems_encoder

    space = load_search_space("ems")
    params = {CON: 1.0, XTR: 0.0, TEMP: 0.05, LAYERS: 3, DMODEL: 384, LR: 5e-4, CENTER: "none"}
    exp, method = trial_configs(space, params)
    assert exp.methods == [method] and method.kind == "ems"
    assert method.options.ems_set == {
        "languages": ["de", "fr", "sw"],
        "train.max_steps": 700,
        "train.checkpoint_every": 100000,
        "loss.contrastive_weight": 1.0,
        "loss.xtr_weight": 0.0,
        "loss.temperature": 0.05,
        "model.layers": 3,
        "model.d_model": 384,
        "train.learning_rate": 5e-4,
    }

    # What resolve_encoder hands train_ems (the cache's build function is run with train_ems replaced).
    trained, keys = [], []

    class Cache:
        def get_or_build(self, kind, key, build, load):
            keys.append(key)
            build(tmp_path)
            raise StopIteration  # stop before loading a checkpoint

    monkeypatch.setattr(ems_encoder, "train_ems", lambda cfg, *a, **k: trained.append(cfg))
    with pytest.raises(StopIteration):
        ems_encoder.resolve_encoder(method.options.ems, method.options.ems_set, set(), Cache())
    (cfg,) = trained
    assert (cfg.loss.contrastive_weight, cfg.loss.xtr_weight, cfg.loss.temperature) == (1.0, 0.0, 0.05)
    assert (cfg.model.layers, cfg.model.d_model, cfg.model.heads) == (3, 384, 4)  # heads from the cpu preset
    assert cfg.train.learning_rate == 5e-4 and cfg.train.max_steps == 700
    assert cfg.languages == ["de", "fr", "sw"]
    assert cfg.tokenizer.vocab_size == 16000 and cfg.train.batch_size == 128  # the rest is cpu.yaml
    assert keys == [encoder_cache_key(cfg)]


def test_the_encoder_cache_key_includes_every_override():
    base = encoder_cache_key(ems_training_config("cpu"))
    assert encoder_cache_key(ems_training_config("cpu", {})) == base
    keys = [
        encoder_cache_key(ems_training_config("cpu", s))
        for s in (
            {"loss.temperature": 0.05},
            {"loss.contrastive_weight": 1.0},
            {"model.layers": 3},
            {"model.d_model": 256},
            {"train.time_budget_s": 300},
            {"train.learning_rate": 1e-3},
            {"train.precision": "bf16"},
            {"languages": ["de", "fr", "sw"]},
        )
    ]
    assert base not in keys and len({str(k) for k in keys}) == len(keys)
    # the same setting, written flat or nested, is the same encoder
    assert encoder_cache_key(ems_training_config("cpu", {"loss": {"temperature": 0.05}})) == keys[0]


def test_a_later_override_wins():
    space = load_search_space("ems", ["method.ems_set.train.max_steps=20"])
    _, method = trial_configs(space, {CON: 0.0, LAYERS: 1, DMODEL: 128, LR: 3e-4, CENTER: "none"})
    assert ems_training_config(method.options.ems, method.options.ems_set).train.max_steps == 20


# --- both loss weights 0 ------------------------------------------------------------------------------


def test_both_loss_weights_zero_is_rejected():
    with pytest.raises(
        InputError, match=r"key 'methods\[0\].ems_set.loss.contrastive_weight'.*both loss weights are 0"
    ):
        _ems_method(**{"loss.xtr_weight": 0.0, "loss.contrastive_weight": 0.0})
    _ems_method(**{"loss.xtr_weight": 0.0})  # one ablation at a time is fine
    _ems_method(**{"loss.contrastive_weight": 0.0})
    space = load_search_space("ems")
    common = {LAYERS: 2, DMODEL: 256, LR: 3e-4}
    with pytest.raises(InputError, match=f"{XTR} is inactive"):  # the shipped space cannot express it
        trial_configs(space, {**common, CON: 0.0, XTR: 0.0})


def test_a_space_that_allows_both_weights_zero_fails_at_load(tmp_path):
    flat = {CON: {"type": "categorical", "choices": [1.0, 0.0]}, XTR: {"type": "categorical", "choices": [0.0, 1.0]}}
    with pytest.raises(
        InputError,
        match=r"key 'space.method.ems_set.loss.(xtr|contrastive)_weight.choices\[\d\]'"
        r".*both loss weights are 0",
    ):
        load_search_space(_space_file(tmp_path, space=flat))
    floats = {CON: {"type": "float", "low": 0.0, "high": 2.0}, XTR: {"type": "float", "low": 0.0, "high": 2.0}}
    with pytest.raises(InputError, match="both loss weights are 0"):
        load_search_space(_space_file(tmp_path, space=floats))
    # the shipped shape (xtr_weight only when the contrastive loss is on) loads: conditions are respected
    guarded = {
        CON: {"type": "categorical", "choices": [0.0, 1.0]},
        XTR: {"type": "categorical", "choices": [0.0, 1.0], "when": {CON: [1.0]}},
    }
    space = load_search_space(_space_file(tmp_path, space=guarded))
    for con, xtr in itertools.product([0.0, 1.0], [0.0, 1.0]):
        params = {CON: con, **({XTR: xtr} if con else {})}
        _, method = trial_configs(space, params)
        cfg = ems_training_config(method.options.ems, method.options.ems_set)
        assert cfg.loss.contrastive_weight + cfg.loss.xtr_weight > 0
