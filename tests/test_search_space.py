"""Search-space schema: shipped spaces load and sample valid trials; bad input fails by file and key.

Fast: no Ray, no data, no training (Optuna studies are in memory).
"""

from __future__ import annotations

import copy
import itertools
import pickle

import optuna
import pytest
import yaml

from mosecrot.config import load_experiment
from mosecrot.errors import InputError
from orchestrator.search_space import (
    SearchSpace,
    baseline_methods,
    define_by_run,
    grid_points,
    load_search_space,
    objective_value,
    optuna_sampler,
    report_value,
    space_names,
    trial_configs,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = ["quickstart", "paper_taxi1500", "explore_taxi1500", "explore_sib200", "ems"]
W, TAU, K, SP = ("method.stitch.relative." + x for x in ("weighting", "tau", "k", "sparsify"))


def _study(space: SearchSpace) -> optuna.Study:
    return optuna.create_study(sampler=optuna_sampler(space), direction=space.objective.mode + "imize")


def _ask(space: SearchSpace, n: int) -> list[dict]:
    study, sample, out = _study(space), define_by_run(space), []
    for i in range(n):
        trial = study.ask()
        assert sample(trial) is None  # the suggested values are the config; nothing extra to return
        out.append(dict(trial.params))
        study.tell(trial, float(i % 3))
    return out


def test_every_shipped_space_is_listed():
    assert set(SHIPPED) <= set(space_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_space_loads_and_samples_valid_trials(name):
    space = load_search_space(name)
    assert space.name == name and space.num_trials >= 1
    assert space.file == f"search_spaces/{name}.yaml" or space.file.endswith(f"search_spaces/{name}.yaml")
    for params in _ask(space, 5):
        exp, method = trial_configs(space, params)
        assert method.kind == space.method_data()["kind"] and exp.methods == [method]
        for key, value in params.items():  # every sampled value lands in the config it addresses
            if key.startswith("method.ems_set."):  # a dotted key of the EMS config (tests/test_ems_space.py)
                assert method.options.ems_set[key.removeprefix("method.ems_set.")] == value, key
                continue
            obj = method.options if key.startswith("method.") else exp
            for part in key.removeprefix("method.").split("."):
                obj = getattr(obj, part)
            assert obj == value, key
        if TAU in space.space:
            assert (TAU in params) == (method.options.stitch.relative.weighting in space.space[TAU].when[W])
        if K in space.space and SP in space.space:
            assert (K in params) == (method.options.stitch.relative.sparsify == "topk")
    # lr is target-supervised: a reference row, not a zero-shot baseline every sweep must carry
    assert {"own_tokenizer", "ls", "frozen_encoder"} <= {b.kind for b in baseline_methods(space)}


def test_shipped_protocols():
    quick = load_search_space("quickstart")
    assert quick.objective.protocol == "english-dev" and quick.objective.languages == ["en"]
    assert quick.report_languages == ["de", "sw"] and quick.num_trials == 6
    assert quick.searcher.kind == "optuna-tpe" and quick.searcher.seed == 0
    assert quick.base["training"]["epochs"] == 1
    assert quick.base["training"]["eval_target_splits"] == ["test"] and quick.base["training"]["group_by_length"]
    assert quick.base["training"]["eval_source_test"] is False
    for name in ("explore_taxi1500", "explore_sib200"):
        space = load_search_space(name)
        assert space.objective.protocol == "selection-languages-dev"
        assert space.objective.languages == ["de", "es", "ru"]
        assert not set(space.report_languages) & set(space.objective.languages)
        assert len(space.report_languages) == 9
        for key in (
            "anchors.count",
            "anchors.strategy",
            "method.stitch.relative.similarity",
            SP,
            K,
            "method.stitch.relative.threshold",
            W,
            TAU,
            "method.stitch.source_side",
            "method.stitch.embeddings",
        ):
            assert key in space.space, (name, key)
    explore = load_search_space("explore_taxi1500")
    epochs = load_experiment(explore.experiment).training.epochs
    if "training.epochs" in explore.fixed:
        epochs = explore.fixed["training.epochs"]
    # null max_t is resolved to the trial's epochs
    assert (explore.scheduler.kind, explore.scheduler.max_t) == ("asha", epochs)


def test_paper_grid_has_exactly_fifteen_points():
    space = load_search_space("paper_taxi1500")
    points = grid_points(space)
    assert len(points) == 15 == space.num_trials
    expected = {(w, k) for w, k in itertools.product(["standard", "softmax", "sparsemax"], [1, 10, 50, 100, "all"])}
    assert {(p[W], p[K]) for p in points} == expected
    for p in points:
        exp, method = trial_configs(space, p)
        rel = method.options.stitch.relative
        assert rel.similarity == "cosine" and rel.sparsify == "topk"
        assert (exp.anchors.scope, exp.anchors.count, exp.dictionary.kind) == ("pair", "all", "muse")
        assert exp.target_languages == ["de", "es", "zh"]
    # Optuna's GridSampler walks the same grid (optimize, not ask/tell: it stops the study after the last point).
    study, sample = _study(space), define_by_run(space)
    study.optimize(lambda trial: sample(trial) or 0.0, n_trials=15)
    assert sorted((t.params[W], str(t.params[K])) for t in study.trials) == sorted((w, str(k)) for w, k in expected)


def test_conditional_parameters_appear_only_when_active():
    space = load_search_space(
        "quickstart", ["searcher.kind=random", "searcher.constant_liar=null", "searcher.n_startup_trials=null"]
    )
    trials = _ask(space, 40)
    for p in trials:
        assert (TAU in p) == (p[W] in ("softmax", "sparsemax"))
        assert (K in p) == (p[SP] == "topk")
        assert ("method.stitch.relative.threshold" in p) == (p[SP] == "threshold")
    assert any(TAU in p for p in trials) and any(TAU not in p for p in trials)
    assert any(p.get(K) == "all" for p in trials) or any(isinstance(p.get(K), int) for p in trials)


def _write(tmp_path, data: dict, name: str = "x.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_grid_points_skip_inactive_conditionals(tmp_path):
    data = copy.deepcopy(BASE)
    data["searcher"] = {"kind": "grid"}
    data["num_trials"] = None
    data["space"] = {
        W: {"type": "categorical", "choices": ["standard", "softmax", "sparsemax"]},
        TAU: {"type": "float", "low": 0.01, "high": 1.0, "values": [0.1, 0.5], "when": {W: ["softmax", "sparsemax"]}},
        "anchors.count": {"type": "int", "low": 500, "high": 3000, "values": [500, 1000]},
    }
    space = load_search_space(_write(tmp_path, data))
    points = grid_points(space)
    assert len(points) == 2 * (1 + 2 + 2) == space.num_trials
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)
    assert all(TAU not in p for p in points if p[W] == "standard")
    with pytest.raises(InputError, match="conditional"):
        optuna_sampler(space)


def test_define_by_run_is_picklable_and_tpe_settings():
    space = load_search_space("quickstart")
    sample = pickle.loads(pickle.dumps(define_by_run(space)))  # Tune pickles the searcher to resume
    study = optuna.create_study(sampler=optuna_sampler(space), direction="maximize")
    trial = study.ask()
    sample(trial)
    assert "anchors.count" in trial.params and 500 <= trial.params["anchors.count"] <= 3000
    sampler = optuna_sampler(space)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._constant_liar is True and sampler._n_startup_trials == 3


def test_objective_and_report_values():
    space = load_search_space("explore_sib200")
    metrics = {f"dev_macro_f1.{lang}": v for lang, v in (("de", 0.3), ("es", 0.6), ("ru", 0.9))}
    metrics["dev_macro_f1.zh"] = 1.0  # not a selection language: must not count
    assert objective_value(space, metrics) == pytest.approx(0.6)
    metrics.update({f"test_macro_f1.{lang}": 0.1 * i for i, lang in enumerate(space.report_languages)})
    assert report_value(space, metrics) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="dev_macro_f1.ru"):
        objective_value(space, {"dev_macro_f1.de": 0.3, "dev_macro_f1.es": 0.6})
    quick = load_search_space("quickstart")
    assert objective_value(quick, {"dev_macro_f1.en": 0.75, "dev_macro_f1.de": 0.1}) == 0.75


def test_overrides_keep_dotted_keys_whole():
    space = load_search_space(
        "quickstart", ["fixed.training.epochs=2", "space.anchors.count.high=2000", "num_trials=3", "objective.mode=min"]
    )
    assert space.base["training"]["epochs"] == 2 and space.fixed["training.epochs"] == 2
    assert space.space["anchors.count"].high == 2000 and space.num_trials == 3
    assert space.objective.mode == "min"


def test_trial_configs_check_params():
    space = load_search_space("quickstart")
    good = {"anchors.count": 800, W: "standard", SP: "topk", K: "all"}
    exp, method = trial_configs(space, good)
    assert (exp.anchors.count, method.options.stitch.relative.k, exp.training.epochs) == (800, "all", 1)
    cases = [
        ({**good, "anchors.cout": 3}, "space.anchors.cout"),
        ({**good, TAU: 0.5}, f"space.{TAU}"),  # inactive: weighting is standard
        ({k: v for k, v in good.items() if k != K}, f"space.{K}"),  # active but missing
        ({**good, "anchors.count": 4000}, "space.anchors.count"),  # outside [low, high]
        ({**good, K: 7}, f"space.{K}"),  # not a choice
    ]
    for params, key in cases:
        with pytest.raises(InputError) as info:
            trial_configs(space, params)
        assert info.value.key == key and "search_spaces/quickstart.yaml" in str(info.value)


def test_unknown_space_name_lists_shipped():
    with pytest.raises(InputError) as info:
        load_search_space("quickstrat")
    assert "quickstart" in str(info.value) and "paper_taxi1500" in str(info.value)


BASE = {
    "name": "x",
    "experiment": "quickstart",
    "fixed": {"training.epochs": 1},
    "method": {"name": "mosecrot", "kind": "mosecrot", "stitch": {"relative": {"negatives": "clip"}}},
    "space": {
        "anchors.count": {"type": "int", "low": 500, "high": 3000, "log": True},
        W: {"type": "categorical", "choices": ["standard", "softmax", "sparsemax"]},
        TAU: {"type": "float", "low": 0.01, "high": 1.0, "log": True, "when": {W: ["softmax", "sparsemax"]}},
        SP: {"type": "categorical", "choices": ["topk", "threshold"]},
        K: {"type": "categorical", "choices": [1, 10, 50, 100, "all"], "when": {SP: ["topk"]}},
    },
    "searcher": {"kind": "optuna-tpe", "seed": 0, "constant_liar": True, "n_startup_trials": 3},
    "scheduler": {"kind": "none"},
    "num_trials": 6,
    "objective": {"metric": "macro_f1", "split": "dev", "languages": ["en"], "mode": "max", "protocol": "english-dev"},
    "report_languages": ["de", "fr", "sw"],
    "resources": {"workers_per_trial": 1, "cpus_per_worker": 0.5, "gpus_per_worker": 0},
    "baselines": ["ls", "own_tokenizer", "frozen_encoder", "lr"],
}


def _set(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _del(data, path):
    node = data
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]


SELECTION = {"protocol": "selection-languages-dev", "languages": ["de"]}
BAD = [
    # (id, [(path, value) or (path, DELETE)], expected key, a word of the message)
    ("typo-param", [(("space", "anchors.cout"), {"type": "int", "low": 1, "high": 5})], "space.anchors.cout", "count"),
    (
        "typo-method-param",
        [(("space", "method.stitch.relative.weigthing"), {"type": "categorical", "choices": ["softmax"]})],
        "space.method.stitch.relative.weigthing",
        "weighting",
    ),
    (
        "bad-choice",
        [(("space", W, "choices"), ["standard", "softmax", "sparsemax", "max"])],
        f"space.{W}.choices[3]",
        "max",
    ),
    ("float-into-int-field", [(("space", "anchors.count", "type"), "float")], "space.anchors.count.low", "int"),
    (
        "low-not-below-high",
        [(("space", TAU, "low"), 1.0), (("space", TAU, "high"), 0.5)],
        f"space.{TAU}.low",
        "low < high",
    ),
    ("log-low-zero", [(("space", "anchors.count", "low"), 0)], "space.anchors.count.low", "low > 0"),
    ("step-and-log", [(("space", TAU, "step"), 0.1)], f"space.{TAU}.step", "log"),
    ("categorical-no-choices", [(("space", SP, "choices"), [])], f"space.{SP}.choices", "non-empty"),
    ("categorical-with-low", [(("space", SP, "low"), 1)], f"space.{SP}.low", "int and float"),
    ("unknown-param-type", [(("space", SP, "type"), "choice")], f"space.{SP}.type", "categorical"),
    (
        "when-unknown-param",
        [(("space", TAU, "when"), {"method.stitch.relative.weigting": ["softmax"]})],
        f"space.{TAU}.when.method.stitch.relative.weigting",
        "not another parameter",
    ),
    (
        "when-non-categorical",
        [(("space", K, "when"), {"anchors.count": [500]})],
        f"space.{K}.when.anchors.count",
        "not categorical",
    ),
    (
        "when-value-not-a-choice",
        [(("space", TAU, "when"), {W: ["entmax15"]})],
        f"space.{TAU}.when.{W}[0]",
        "not a choice",
    ),
    (
        "when-cycle",
        [(("space", W, "when"), {SP: ["topk"]}), (("space", SP, "when"), {W: ["softmax"]})],
        f"space.{W}.when",
        "cycle",
    ),
    ("searched-and-fixed", [(("fixed", "anchors.count"), 1000)], "space.anchors.count", "both fixed"),
    (
        "reserved-param",
        [(("space", "target_languages"), {"type": "categorical", "choices": ["de"]})],
        "space.target_languages",
        "cannot be searched",
    ),
    ("typo-fixed", [(("fixed", "anchors.cout"), 3)], "fixed.anchors.cout", "count"),
    ("bad-fixed-value", [(("fixed", "training.epochs"), 0)], "fixed.training.epochs", ">= 1"),
    ("bad-method-kind", [(("method", "kind"), "mosecrott")], "method.kind", "mosecrot"),
    ("unknown-experiment", [(("experiment",), "quickstrat")], "experiment", "quickstart"),
    ("test-split-objective", [(("objective", "split"), "test")], "objective.split", "not honest"),
    ("english-dev-non-english", [(("objective", "languages"), ["de"])], "objective.languages", "[en]"),
    (
        "selection-overlaps-report",
        [(("objective",), {**SELECTION, "languages": ["de"]}), (("report_languages",), ["de", "fr"])],
        "report_languages[0]",
        "both",
    ),
    (
        "selection-not-target",
        [(("objective",), {**SELECTION, "languages": ["ja"]}), (("report_languages",), None)],
        "objective.languages[0]",
        "not a target language",
    ),
    (
        "selection-without-languages",
        [(("objective",), {"protocol": "selection-languages-dev"})],
        "objective.languages",
        "needs",
    ),
    (
        "selection-dev-not-evaluated",
        [
            (("objective",), {**SELECTION, "languages": ["de"]}),
            (("report_languages",), None),
            (("fixed", "training.eval_target_splits"), ["test"]),
        ],
        "fixed.training.eval_target_splits",
        "includes dev",
    ),
    (
        "report-test-not-evaluated",
        [(("fixed", "training.eval_target_splits"), ["dev"])],
        "fixed.training.eval_target_splits",
        "includes test",
    ),
    (
        "unknown-eval-split",
        [(("fixed", "training.eval_target_splits"), ["test", "train"])],
        "fixed.training.eval_target_splits",
        "dev, test",
    ),
    (
        "group-by-length-not-bool",
        [(("fixed", "training.group_by_length"), "yes")],
        "fixed.training.group_by_length",
        "bool",
    ),
    (
        "eval-source-test-not-bool",
        [(("fixed", "training.eval_source_test"), 0)],
        "fixed.training.eval_source_test",
        "bool",
    ),
    ("report-not-target", [(("report_languages",), ["de", "es"])], "report_languages[1]", "not a target language"),
    ("unknown-protocol", [(("objective", "protocol"), "english-test")], "objective.protocol", "english-dev"),
    ("bad-mode", [(("objective", "mode"), "maximize")], "objective.mode", "max"),
    ("unknown-searcher", [(("searcher", "kind"), "bayes")], "searcher.kind", "optuna-tpe"),
    (
        "constant-liar-with-random",
        [(("searcher", "kind"), "random"), (("searcher", "n_startup_trials"), None)],
        "searcher.constant_liar",
        "optuna-tpe only",
    ),
    ("tpe-without-seed", [(("searcher", "seed"), None)], "searcher.seed", "seed"),
    ("grid-with-float-param", [(("searcher",), {"kind": "grid"})], "space.anchors.count.values", "values"),
    (
        "values-without-grid",
        [(("space", "anchors.count", "values"), [500, 1000])],
        "space.anchors.count.values",
        "grid",
    ),
    ("no-num-trials", [(("num_trials",), None)], "num_trials", "num_trials"),
    ("zero-num-trials", [(("num_trials",), 0)], "num_trials", ">= 1"),
    ("unknown-scheduler", [(("scheduler", "kind"), "hyperband")], "scheduler.kind", "asha"),
    (
        "reduction-factor-1",
        [(("scheduler",), {"kind": "asha", "reduction_factor": 1})],
        "scheduler.reduction_factor",
        ">= 2",
    ),
    ("grace-period-0", [(("scheduler",), {"kind": "asha", "grace_period": 0})], "scheduler.grace_period", ">= 1"),
    ("negative-gpus", [(("resources", "gpus_per_worker"), -1)], "resources.gpus_per_worker", ">= 0"),
    ("zero-cpus", [(("resources", "cpus_per_worker"), 0)], "resources.cpus_per_worker", "> 0"),
    ("negative-workers", [(("resources", "workers_per_trial"), -1)], "resources.workers_per_trial", "0 for local mode"),
    ("unknown-baseline", [(("baselines",), ["ls", "mbert"])], "baselines[1]", "frozen_encoder"),
    ("mosecrot-baseline", [(("baselines",), ["mosecrot"])], "baselines[0]", "tuned method"),
    ("baseline-needs-model", [(("baselines",), [{"kind": "multilingual_plm"}])], "baselines[0].model", "model"),
    ("unknown-top-level-key", [(("trials",), 5)], "trials", "num_trials"),
    ("missing-name", [(("name",), "DELETE")], "name", "missing"),
]


@pytest.mark.parametrize("changes,key,word", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_key(tmp_path, changes, key, word):
    data = copy.deepcopy(BASE)
    for path, value in changes:
        if value == "DELETE":
            _del(data, path)
        else:
            _set(data, path, value)
    file = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_search_space(file)
    err = info.value
    assert err.key == key, str(err)
    assert err.path == str(file), str(err)
    assert str(err).startswith(f"{file}, key '{key}': "), str(err)
    assert word in str(err), str(err)


def test_base_is_valid(tmp_path):
    """The table above changes one thing at a time from this base, which must itself load."""
    space = load_search_space(_write(tmp_path, BASE))
    assert space.resources.cpus_per_worker == 0.5 and space.report_languages == ["de", "fr", "sw"]
    assert len(_ask(space, 2)) == 2


def test_yaml_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nspace:\n  a: {type: int\n")
    with pytest.raises(InputError) as info:
        load_search_space(path)
    assert info.value.path == str(path) and info.value.line is not None


def test_a_methods_own_training_and_anchors_are_searchable():
    from orchestrator.search_space.trials import build

    lr = "method.training.learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}"
    grow = "method.anchors.grow.identical: {type: categorical, choices: [true, false]}"
    space = load_search_space("quickstart", [f"space={{{lr}, {grow}}}"])
    _, method = build(space, {"method.training.learning_rate": 3e-5, "method.anchors.grow.identical": True})
    assert method.training == {"learning_rate": 3e-5} and method.anchors == {"grow": {"identical": True}}
    with pytest.raises(InputError, match=r"space\.method\.training\.learning_rat'.*method\.training has no"):
        load_search_space("quickstart", ["space={method.training.learning_rat: {type: float, low: 0.1, high: 1}}"])


def test_an_unquoted_norwegian_code_is_named_with_the_fix():
    with pytest.raises(InputError, match=r"key 'report_languages\[1\]': bad value False: YAML.*quote it"):
        load_search_space("quickstart", ["report_languages=[de, no]"])
