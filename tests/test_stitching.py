"""Stitching on the real offline MiniLM: swapping embeddings, the word-level target tokenizer, LS, and
the training loop's determinism."""

import numpy as np
import pytest
import torch

from mosecrot.anchors import AnchorSet
from mosecrot.methods.context import load_classifier
from mosecrot.methods.stitched import least_squares_map
from mosecrot.plm import load_tokenizer
from mosecrot.relative import RelativeConfig
from mosecrot.stitching import (
    build_target_vocabulary,
    source_mapping,
    special_token_ids,
    swap_input_embeddings,
    target_mapping,
)
from mosecrot.training import EncodedSplit, TrainingConfig, evaluate, finetune, predict
from mosecrot.vectors import StaticVectors


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm")


def _body(model) -> dict[str, torch.Tensor]:
    emb = model.get_input_embeddings().weight
    return {k: v.detach().clone() for k, v in model.named_parameters() if v is not emb}


def _toy_vectors() -> StaticVectors:
    rng = np.random.default_rng(0)
    words = ["haus", "wasser", "könig", "gott", "liebe", "brot", "weg", "licht"]
    return StaticVectors(words, rng.normal(size=(len(words), 16)).astype(np.float32))


def test_swapping_target_embeddings_changes_predictions_but_not_the_body(tokenizer):
    torch.manual_seed(0)
    model = load_classifier("minilm", 4).eval()
    body = _body(model)
    vectors = _toy_vectors()
    vocab = build_target_vocabulary("de", ["haus wasser könig gott", "liebe brot weg licht"], vectors, tokenizer)
    ids = torch.tensor(vocab.encode(["haus wasser könig gott", "liebe brot weg licht"], 16))
    english = model.get_input_embeddings()
    specials = english.weight[vocab.plm_special_ids].detach()
    logits = []
    for seed in (1, 2):
        rows = torch.randn(len(vocab.words), english.weight.shape[1], generator=torch.Generator().manual_seed(seed))
        swap_input_embeddings(
            model, torch.cat([specials, rows]), trainable=False, padding_idx=vocab.tokenizer.pad_token_id
        )
        assert model.get_input_embeddings().weight.shape[0] == len(vocab.special_tokens) + len(vocab.words)
        with torch.no_grad():
            logits.append(model(input_ids=ids).logits)
    assert not torch.allclose(logits[0], logits[1]), "a different F_t must change the outputs"
    after = _body(model)
    assert body.keys() == after.keys()
    assert all(torch.equal(body[k], after[k]) for k in body), "the body must stay bit-identical"
    model.set_input_embeddings(english)
    assert model.get_input_embeddings() is english


def test_target_vocabulary_keeps_plm_specials_and_word_ids(tokenizer):
    vectors = _toy_vectors()
    vocab = build_target_vocabulary("de", ["Haus Wasser unbekanntwort"], vectors, tokenizer, oov="unk")
    assert vocab.special_tokens == [tokenizer.convert_ids_to_tokens(i) for i in special_token_ids(tokenizer)]
    ids = vocab.encode(["Haus Wasser unbekanntwort"], 16)[0]
    tok = vocab.tokenizer
    assert tok.convert_ids_to_tokens(ids) == [
        tokenizer.cls_token,
        "haus",
        "wasser",
        tokenizer.unk_token,
        tokenizer.sep_token,
    ]
    assert vocab.stats["oov_token_share"] == pytest.approx(1 / 3)
    skip = build_target_vocabulary("de", ["Haus Wasser unbekanntwort"], vectors, tokenizer, oov="skip")
    assert skip.tokenizer.convert_ids_to_tokens(skip.encode(["Haus unbekanntwort"], 16)[0])[1:-1] == ["haus"]


def test_k1_stitched_target_anchor_equals_english_anchor_row(tokenizer):
    """End to end through the stitching API: a target anchor word gets its English anchor's row."""
    model = load_classifier("minilm", 2)
    emb = model.get_input_embeddings().weight.detach()
    vectors = _toy_vectors()
    eng_ids = tokenizer.convert_tokens_to_ids(["house", "water", "king", "god", "love"])
    english, german = ["house", "water", "king", "god", "love"], ["haus", "wasser", "könig", "gott", "liebe"]
    pairs = list(zip(english, german, strict=True))
    anchors = AnchorSet("de", pairs, eng_ids, list(range(len(pairs))), "pair", "all")
    rel = RelativeConfig(k=1, weighting="standard")
    f_s = source_mapping(emb, eng_ids, special_token_ids(tokenizer), rel)
    assert torch.allclose(f_s[eng_ids], emb[eng_ids], atol=1e-6)
    vocab = build_target_vocabulary("de", ["haus wasser könig gott liebe brot"], vectors, tokenizer)
    f_t = target_mapping(vocab, vectors, anchors, emb[eng_ids], emb[vocab.plm_special_ids], rel)
    for word, eid in zip(anchors.target_words, eng_ids, strict=True):
        row = vocab.tokenizer.convert_tokens_to_ids(word)
        assert torch.allclose(f_t[row], emb[eid], atol=1e-6)


def test_least_squares_recovers_a_known_linear_map():
    rng = np.random.default_rng(3)
    a_t = rng.normal(size=(400, 30))
    w_true = rng.normal(size=(30, 12))
    w = least_squares_map(a_t, a_t @ w_true + 1e-4 * rng.normal(size=(400, 12)))
    assert np.abs(w - w_true).max() < 1e-3
    with pytest.raises(Exception, match="paired anchor rows"):
        least_squares_map(a_t, a_t[:10] @ w_true)


def _tiny_data(tokenizer, n: int = 24):
    texts = [
        f"the {w} is good" if i % 2 else f"the {w} is bad"
        for i, w in enumerate(["house", "water", "king", "bread", "light", "road"] * (n // 6))
    ]
    ids = tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    return EncodedSplit(ids, [i % 2 for i in range(len(texts))])


def test_finetune_is_deterministic_on_cpu_and_metrics_cover_the_whole_split(tokenizer):
    data = _tiny_data(tokenizer)
    cfg = TrainingConfig(epochs=1, batch_size=8, max_steps=2, device="cpu")
    states = []
    for _ in range(2):
        model = load_classifier("minilm", 2, seed=7)
        ft = finetune(model, data, data, cfg, seed=7, pad_id=tokenizer.pad_token_id)
        states.append(ft.best_state)
        assert ft.steps == 2 and ft.examples_per_second > 0
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    metrics = evaluate(model, data, tokenizer.pad_token_id, batch_size=5)  # batches that do not divide n
    assert metrics["n"] == len(data) and 0 <= metrics["macro_f1"] <= 1


def test_predict_batches_by_length_but_returns_each_example_in_split_order(tokenizer):
    torch.manual_seed(0)
    model = load_classifier("minilm", 3, seed=3).eval()
    texts = [
        "a very long verse " * 6,
        "short",
        "in the beginning god created the heaven and the earth",
        "and god said",
        "let there be light " * 3,
        "amen",
    ]
    ids = [tokenizer(t, truncation=True, max_length=40)["input_ids"] for t in texts]
    split = EncodedSplit(ids, [0, 1, 2, 0, 1, 2])
    pred, loss = predict(model, split, tokenizer.pad_token_id, batch_size=2)
    one_by_one = [
        predict(model, EncodedSplit([row], [lab]), tokenizer.pad_token_id, batch_size=1)
        for row, lab in zip(ids, split.labels, strict=True)
    ]
    assert pred.tolist() == [int(p[0]) for p, _ in one_by_one]
    assert loss == pytest.approx(float(np.mean([loss for _, loss in one_by_one])), rel=1e-4)


def test_group_by_length_pads_less_and_sees_every_example_once_per_epoch(tokenizer, monkeypatch):
    import mosecrot.training as training

    rng = np.random.default_rng(0)
    ids = [
        [101] + [1000 + int(t) for t in rng.integers(0, 50, size=int(n))] + [102] for n in rng.integers(2, 60, size=256)
    ]
    data = EncodedSplit(ids, [i % 2 for i in range(len(ids))])
    seen: dict[bool, list[tuple[int, int]]] = {}
    for grouped in (False, True):
        batches = seen.setdefault(grouped, [])
        collate = training.make_collate(tokenizer.pad_token_id)

        def spy(pad_id, _batches=batches, _collate=collate):
            def inner(batch):
                out = _collate(batch)
                _batches.append((out["input_ids"].numel(), len(batch)))
                return out

            return inner

        monkeypatch.setattr(training, "make_collate", spy)
        cfg = TrainingConfig(epochs=1, batch_size=8, device="cpu", group_by_length=grouped, learning_rate=1e-5)
        finetune(
            load_classifier("minilm", 2, seed=1),
            data,
            EncodedSplit(ids[:8], [0, 1] * 4),
            cfg,
            seed=1,
            pad_id=tokenizer.pad_token_id,
        )
    train_batches = {g: b[:32] for g, b in seen.items()}  # 256 / 8 training batches, then dev evaluation
    assert all(sum(n for _, n in b) == 256 for b in train_batches.values())
    real = sum(len(row) for row in ids)
    padding = {g: sum(cells for cells, _ in b) - real for g, b in train_batches.items()}
    assert padding[True] < 0.5 * padding[False]


def test_frozen_embeddings_stay_frozen_while_the_body_learns(tokenizer):
    data = _tiny_data(tokenizer)
    model = load_classifier("minilm", 2)
    emb = model.get_input_embeddings().weight.detach().clone()
    swap_input_embeddings(model, emb, trainable=False, padding_idx=tokenizer.pad_token_id)
    body = _body(model)
    finetune(
        model,
        data,
        data,
        TrainingConfig(epochs=1, batch_size=8, max_steps=2, device="cpu"),
        seed=0,
        pad_id=tokenizer.pad_token_id,
    )
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert any(not torch.equal(body[k], v) for k, v in _body(model).items())
