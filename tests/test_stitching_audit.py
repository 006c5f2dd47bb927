"""The relative-representation fixes of the audit in issue #20: each test failed before its fix.

1. a numeric ``anchors.count`` with ``strategy: all`` is an error naming the keys (it was silently ignored);
2. anchors are deduplicated on the PLM token id (MiniLM maps "café" and "cafe" to one row);
3. CSLS's target-side r_a runs over the full static vocabulary (F_t of a word never depends on which other
   words are evaluated);
4. "standard" weighting with similarities that can be negative needs ``stitch.relative.negatives``;
5. paper-literal tau = 1 rows beside the tau = 0.1 rows in the default methods;
6. pair scope records English dev per language group and their mean;
7. dead options: ``ls`` takes only the stitching options it reads.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mosecrot.anchors import AnchorSet, build_pair_anchors, build_union_anchors, eligible_pairs
from mosecrot.config import load_experiment
from mosecrot.errors import InputError
from mosecrot.methods import default_methods, method_config
from mosecrot.methods import stitched as stitched_mod
from mosecrot.plm import load_tokenizer, single_token_ids
from mosecrot.relative import RelativeConfig
from mosecrot.relative.weighting import standard
from mosecrot.stitching import build_target_vocabulary, target_mapping
from mosecrot.training import LoopHooks
from mosecrot.vectors import StaticVectors

# --- 1. anchors.count with strategy all ---------------------------------------------------------------


def test_a_numeric_anchor_count_with_strategy_all_is_refused_at_load():
    with pytest.raises(InputError, match=r"anchors\.count.*strategy.*frequent") as info:
        load_experiment("taxi1500", ["anchors.count=500"])
    assert "anchors.strategy" in str(info.value)
    # count: all stays valid with strategy all (the shipped experiments), a count with frequent too
    assert load_experiment("taxi1500", ["anchors.count=all"]).anchors.count == "all"
    assert load_experiment("taxi1500", ["anchors.strategy=frequent", "anchors.count=500"]).anchors.count == 500


def test_building_anchors_with_a_count_and_strategy_all_is_refused_too():
    plm, vocab = {"house": 1, "dog": 2}, {"haus", "hund"}
    with pytest.raises(InputError, match=r"anchors\.count"):
        build_pair_anchors("de", [("house", "haus"), ("dog", "hund")], plm, vocab, lambda w: 1, count=1)
    with pytest.raises(InputError, match=r"anchors\.count"):
        build_union_anchors({"de": [("house", "haus")]}, plm, count=1, strategy="all")


# --- 2. deduplication on PLM token ids ------------------------------------------------------------------


def test_anchors_are_deduplicated_on_the_plm_token_id_with_the_real_minilm_tokenizer():
    ids = single_token_ids(load_tokenizer("minilm"), ["café", "cafe", "house"])
    assert ids["café"] == ids["cafe"]  # uncased, accent-stripping: one row
    pairs = [("café", "kaffeehaus"), ("cafe", "café"), ("house", "haus")]
    vocab = {"kaffeehaus", "café", "haus"}
    kept = eligible_pairs(pairs, ids, vocab)
    assert kept == [("café", "kaffeehaus"), ("house", "haus")]  # one anchor per PLM row, the first one
    anchors = build_pair_anchors("de", pairs, ids, vocab, lambda w: 1)
    assert len(set(anchors.source_token_ids)) == len(anchors) == 2
    # union scope: two languages whose dictionaries spell the row differently share one English anchor
    union = build_union_anchors({"de": [("café", "kaffeehaus")], "fr": [("cafe", "café")]}, ids)
    assert union.source_token_ids == [ids["cafe"]]
    assert union.per_language["de"].source_positions == union.per_language["fr"].source_positions == [0]


# --- 3. CSLS target side over the full static vocabulary ----------------------------------------------


def test_csls_target_rows_do_not_depend_on_the_other_evaluated_words():
    rng = np.random.default_rng(0)
    words = [f"w{i:03d}" for i in range(120)]
    vectors = StaticVectors(words, rng.normal(size=(len(words), 12)).astype(np.float32))
    anchors = AnchorSet(
        "de", [(f"e{i}", words[i]) for i in range(0, 60, 3)], list(range(20)), list(range(20)), "pair", "all"
    )
    english = torch.from_numpy(rng.normal(size=(20, 8)).astype(np.float32))
    tok = load_tokenizer("minilm")
    rel = RelativeConfig(similarity="csls", k=5, weighting="softmax", tau=0.1, csls_k=4)

    def row_of(word: str, texts: list[str]) -> torch.Tensor:
        vocab = build_target_vocabulary("de", texts, vectors, tok, oov="skip")
        rows = target_mapping(vocab, vectors, anchors, english, torch.empty(0, 8), rel)
        return rows[vocab.words.index(word)]

    alone = row_of("w100", ["w100"])
    among = row_of("w100", [" ".join(words[60:])])
    assert torch.allclose(alone, among, atol=1e-6), (alone - among).abs().max()


# --- 4. standard weighting and negative similarities ----------------------------------------------------


@pytest.mark.parametrize("similarity", ["cosine", "dot", "csls"])
def test_standard_weighting_with_similarities_that_can_be_negative_needs_a_choice(similarity):
    with pytest.raises(InputError, match=r"stitch\.relative\.weighting.*negatives") as info:
        method_config("rr", "mosecrot", stitch={"relative": {"similarity": similarity, "weighting": "standard"}})
    assert info.value.key == "methods.stitch.relative.weighting"
    for choice in ("clip", "shift"):
        rr = method_config(
            "rr",
            "mosecrot",
            stitch={"relative": {"similarity": similarity, "weighting": "standard", "negatives": choice}},
        )
        assert rr.options.stitch.relative.negatives == choice


def test_standard_weighting_refusal_covers_the_default_weighting_and_bad_choices():
    with pytest.raises(InputError, match=r"stitch\.relative\.weighting"):
        method_config("rr", "mosecrot")  # the default weighting is standard, with cosine
    with pytest.raises(InputError, match=r"stitch\.relative\.negatives"):
        method_config("rr", "mosecrot", stitch={"relative": {"negatives": "abs"}})
    # euclidean similarities are positive; the other weightings take any sign
    method_config("rr", "mosecrot", stitch={"relative": {"similarity": "euclidean", "weighting": "standard"}})
    method_config("rr", "mosecrot", stitch={"relative": {"similarity": "csls", "weighting": "softmax"}})


def test_shift_makes_negative_rows_non_negative_and_leaves_positive_rows_alone():
    values = torch.tensor([[0.6, 0.2, float("-inf")], [0.5, -0.5, -1.5], [-0.2, -0.4, -0.6]])
    clip = standard(values)
    assert torch.allclose(clip[1], torch.tensor([1.0, 0.0, 0.0]))  # the earlier behaviour
    shift = standard(values, negatives="shift")
    assert torch.allclose(shift[0], torch.tensor([0.75, 0.25, 0.0]))  # no negative: unchanged
    assert torch.allclose(shift[0], clip[0])
    assert torch.allclose(shift[1], torch.tensor([2.0, 1.0, 0.0]) / 3)  # minus the row minimum (-1.5)
    assert torch.allclose(shift[2], torch.tensor([0.4, 0.2, 0.0]) / 0.6)


# --- 5. tau = 1 rows ------------------------------------------------------------------------------------


def test_default_methods_have_paper_literal_tau1_rows_after_the_tau_01_rows():
    methods = default_methods()
    names = [m.name for m in methods]
    assert names[:5] == ["rr-standard", "rr-softmax", "rr-sparsemax", "rr-softmax-tau1", "rr-sparsemax-tau1"]
    by = {m.name: m.options.stitch.relative for m in methods if m.kind == "mosecrot"}
    assert (by["rr-softmax"].tau, by["rr-sparsemax"].tau) == (0.1, 0.1)
    for name, weighting in (("rr-softmax-tau1", "softmax"), ("rr-sparsemax-tau1", "sparsemax")):
        assert (by[name].weighting, by[name].tau, by[name].k, by[name].similarity) == (weighting, 1.0, 50, "cosine")
    assert by["rr-standard"].negatives == "clip" and by["rr-original"].negatives == "clip"  # numbers unchanged


# --- 6. pair scope: English dev per language group -----------------------------------------------------


def test_pair_scope_records_english_dev_per_language_and_their_mean(monkeypatch):
    targets = ["de", "es"]
    anchors = {lang: AnchorSet(lang, [("a", "b")], [i + 1], [0], "pair", "all") for i, lang in enumerate(targets)}
    prepared = SimpleNamespace(union=None, anchors=anchors, vectors=dict.fromkeys(targets))
    dev = {(1,): 0.4, (2,): 0.6}  # the English model fine-tuned with each language's anchors

    def english_model(seed, model_name, f_s, emb_key, trainable):
        return SimpleNamespace(ids=tuple(f_s)), None

    def english_metrics(model, model_name, tokenizer, ft):
        score = dev[model.ids]
        ctx.predictions["test.en"] = list(model.ids)  # what RunContext.english_metrics keeps of English test
        return {"dev_macro_f1.en": score, "dev_loss.en": 1 - score, "best_epoch": 2 * score}

    ctx = SimpleNamespace(
        config=SimpleNamespace(model="minilm"),
        targets=targets,
        prepared=prepared,
        original_embeddings=lambda name: torch.zeros(4, 2),
        english_model=english_model,
        english_metrics=english_metrics,
        predictions={},
        hooks=LoopHooks(),
    )
    monkeypatch.setattr(stitched_mod, "load_tokenizer", lambda name: None)
    monkeypatch.setattr(stitched_mod, "special_token_ids", lambda tok: [])
    monkeypatch.setattr(stitched_mod, "cached_source_mapping", lambda ctx, orig, ids, specials, rel: list(ids))
    monkeypatch.setattr(
        stitched_mod, "with_target_embeddings", lambda ctx, model, lang, rows, st, tok: {f"test_macro_f1.{lang}": 0.1}
    )
    options = method_config("rr", "mosecrot", stitch={"relative": {"weighting": "softmax", "k": 1}}).options
    metrics = stitched_mod.run_mosecrot(ctx, options, seed=0)
    assert metrics["dev_macro_f1.en"] == pytest.approx(0.5)  # the mean the english-dev objective reads
    assert metrics["dev_macro_f1.en-de"] == pytest.approx(0.4) and metrics["dev_macro_f1.en-es"] == pytest.approx(0.6)
    assert metrics["dev_loss.en"] == pytest.approx(0.5) and metrics["best_epoch"] == pytest.approx(1.0)
    # each fine-tuning's English test predictions are kept under its own key, none overwritten
    assert ctx.predictions == {"test.en-de": [1], "test.en-es": [2]}


# --- 7. dead options -------------------------------------------------------------------------------------


def test_ls_takes_only_the_stitching_options_it_reads():
    for stitch in ({"relative": {"k": 10}}, {"source_side": "original"}, {"embeddings": "frozen"}):
        with pytest.raises(InputError, match=r"methods\.stitch\."):
            method_config("ls", "ls", stitch=stitch)
    ls = method_config("ls", "ls", stitch={"target_anchor_rows": "finetuned", "oov": "unk"})
    assert (ls.options.stitch.target_anchor_rows, ls.options.stitch.oov) == ("finetuned", "unk")
