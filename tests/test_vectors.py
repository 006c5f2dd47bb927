"""Tests of mosecrot.vectors: .vec parsing and its errors, gensim/fastText formats, training and cache."""

from __future__ import annotations

import logging
import random
import time

import numpy as np
import pytest

import mosecrot.vectors.train as train_mod
from mosecrot.cache import DiskCache
from mosecrot.errors import InputError
from mosecrot.text.bible import open_bible
from mosecrot.vectors import (
    StaticVectors,
    VectorTrainingConfig,
    load_vectors,
    load_vectors_for_languages,
    save_vectors_vec,
    train_language_vectors,
    train_vectors,
)

# Small, single-threaded (hence deterministic) settings so every training run takes well under a second.
TINY = VectorTrainingConfig(dim=16, epochs=5, min_count=2, window=3, bucket=2000, workers=1, sample=0.0)

CATS = ["kitten", "puppy"]
CARS = ["truck", "lorry"]
CAT_CONTEXT = ["sleeps", "purrs", "milk", "sofa", "whiskers", "naps", "cuddly", "basket"]
CAR_CONTEXT = ["engine", "wheels", "diesel", "highway", "garage", "tires", "honks", "parked"]


def synthetic_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Sentences where kitten/puppy share one set of contexts and truck/lorry another."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            word, context = rng.choice(CATS), CAT_CONTEXT
        else:
            word, context = rng.choice(CARS), CAR_CONTEXT
        words = rng.sample(context, 4)
        words.insert(rng.randrange(5), word)
        out.append(" ".join(words).capitalize() + ".")
    return out


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def spy_fit(monkeypatch) -> list[int]:
    """Count calls of the training step (not the loading step)."""
    calls: list[int] = []
    real = train_mod.fit_fasttext

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "fit_fasttext", counting)
    return calls


# ---------------------------------------------------------------- StaticVectors


def toy_vectors(counts=None) -> StaticVectors:
    words = ["a", "b", "c", "d"]
    matrix = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    return StaticVectors(words, matrix, counts=counts, source="toy")


def test_static_vectors_lookup_and_similarity():
    v = toy_vectors()
    assert len(v) == 4 and v.dim == 2 and "a" in v and "z" not in v
    assert not v.has_subwords and v.oov_vector("z") is None
    np.testing.assert_array_equal(v.vector("c"), [0, 1])
    with pytest.raises(KeyError):
        v.vector("z")
    sims = v.most_similar("a", k=2)
    assert [w for w, _ in sims] == ["b", "c"]  # itself excluded, cosine order
    assert sims[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert len(v.most_similar("a", k=10)) == 3


def test_frequency_uses_counts_or_file_order():
    ranked = toy_vectors()
    assert [ranked.frequency(w) for w in "abcdz"] == [4, 3, 2, 1, 0]
    counted = toy_vectors(counts=[5, 50, 7, 1])
    assert counted.frequency("b") == 50 and counted.frequency("z") == 0


def test_constructor_rejects_misaligned_inputs():
    with pytest.raises(ValueError):
        StaticVectors(["a", "b"], np.zeros((3, 2)))
    with pytest.raises(ValueError):
        StaticVectors(["a", "a"], np.zeros((2, 2)))
    with pytest.raises(ValueError):
        StaticVectors(["a", "b"], np.zeros((2, 2)), counts=[1])


# ---------------------------------------------------------------- .vec files


@pytest.mark.parametrize("name", ["v.vec", "v.vec.gz", "v.txt"])
def test_vec_round_trip(tmp_path, name):
    rng = np.random.default_rng(0)
    words = ["the", "l'", "naïve", "日本", "co-op", "a\u00a0b"]  # NBSP is part of a word, not a separator
    original = StaticVectors(words, rng.normal(size=(len(words), 7)).astype(np.float32))
    path = tmp_path / name
    save_vectors_vec(original, path)
    loaded = load_vectors(path)
    assert loaded.words == words
    np.testing.assert_array_equal(loaded.matrix, original.matrix)  # %.9g round-trips float32
    assert loaded.counts is None and loaded.frequency("the") > loaded.frequency("co-op")
    assert load_vectors(path, limit=2).words == words[:2]


def test_vec_accepts_trailing_spaces_blank_lines_and_tabs(tmp_path):
    path = write(tmp_path / "ft.vec", "3 3 \nfoo 1 2 3 \n\nbar 4 5 6 \nbaz\t7  8 9\r\n")
    v = load_vectors(path)
    assert v.words == ["foo", "bar", "baz"]
    np.testing.assert_array_equal(v.vector("bar"), [4, 5, 6])


MALFORMED = {
    "bad_header": ("three 3\nfoo 1 2 3\n", 1, "'<count> <dim>'"),
    "header_one_field": ("300\nfoo 1 2 3\n", 1, "'<count> <dim>'"),
    "header_zero_dim": ("1 0\nfoo\n", 1, "'<count> <dim>'"),
    "ragged_row": ("3 3\nfoo 1 2 3\nbar 1 2\nbaz 1 2 3\n", 3, "3 values"),
    "long_row": ("2 3\nfoo 1 2 3\nbar 1 2 3 4\n", 3, "3 values"),
    "non_numeric": ("2 3\nfoo 1 2 3\nbar 1 x7 3\n", 3, "'x7'"),
    "non_finite": ("2 3\nfoo 1 2 3\nbar 1 nan 3\n", 3, "finite"),
    "too_few_rows": ("5 3\nfoo 1 2 3\nbar 1 2 3\n", 1, "5 rows"),
    "too_many_rows": ("1 3\nfoo 1 2 3\nbar 1 2 3\n", 3, "count of 1"),
    "bad_utf8": (b"2 3\nfoo 1 2 3\nb\xffr 1 2 3\n", 3, "UTF-8"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_vec_names_file_and_line(tmp_path, case):
    content, line, snippet = MALFORMED[case]
    path = tmp_path / f"{case}.vec"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError) as err:
        load_vectors(path)
    assert err.value.line == line
    assert f"{case}.vec:{line}" in str(err.value)
    assert snippet in str(err.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_vec_file(tmp_path, content):
    path = write(tmp_path / "empty.vec", content)
    with pytest.raises(InputError, match="empty") as err:
        load_vectors(path)
    assert "empty.vec" in str(err.value)


def test_duplicate_words_keep_first_and_warn(tmp_path, caplog):
    path = write(tmp_path / "dup.vec", "4 2\nfoo 1 1\nbar 2 2\nfoo 3 3\nbar 4 4\n")
    with caplog.at_level(logging.WARNING, logger="mosecrot.vectors.io"):
        v = load_vectors(path)
    assert v.words == ["foo", "bar"]
    np.testing.assert_array_equal(v.vector("foo"), [1, 1])
    assert v.meta["n_duplicates"] == 2
    assert "2 duplicate words" in caplog.text


def test_load_rejects_missing_file_unknown_suffix_and_bad_limit(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_vectors(tmp_path / "nope.vec")
    with pytest.raises(InputError, match="format"):
        load_vectors(write(tmp_path / "v.csv", "1 1\na 1\n"))
    assert load_vectors(tmp_path / "v.csv", format="vec").words == ["a"]
    with pytest.raises(InputError, match="limit"):
        load_vectors(tmp_path / "v.csv", format="vec", limit=0)
    with pytest.raises(InputError, match="vector format"):
        load_vectors(tmp_path / "v.csv", format="glove")


def test_inconsistent_dimensions_name_both_files(tmp_path):
    de = write(tmp_path / "de_vectors.vec", "1 3\nhaus 1 2 3\n")
    sw = write(tmp_path / "sw_vectors.vec", "1 4\nnyumba 1 2 3 4\n")
    with pytest.raises(InputError, match="inconsistent") as err:
        load_vectors_for_languages({"de": de, "sw": sw})
    assert "de_vectors.vec" in str(err.value) and "sw_vectors.vec" in str(err.value)
    assert "3" in str(err.value) and "4" in str(err.value)
    with pytest.raises(InputError, match="dimension 4") as err:
        load_vectors_for_languages({"de": de}, expected_dim=4)
    assert "de_vectors.vec" in str(err.value)
    both = load_vectors_for_languages({"de": de, "de2": de}, expected_dim=3)
    assert set(both) == {"de", "de2"} and both["de"].dim == 3


def test_inconsistent_dimensions_detected_across_formats(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=5)
    kv.add_vectors(["x", "y"], np.ones((2, 5), dtype=np.float32))
    kv.save(str(tmp_path / "five.kv"))
    vec = write(tmp_path / "three.vec", "1 3\nhaus 1 2 3\n")
    with pytest.raises(InputError, match="inconsistent") as err:
        load_vectors_for_languages({"de": vec, "fr": tmp_path / "five.kv"})
    assert "five.kv" in str(err.value) and "three.vec" in str(err.value)


# ---------------------------------------------------------------- gensim and fastText binary formats


@pytest.fixture(scope="module")
def tiny_fasttext():
    from gensim.models import FastText

    sentences = [s.lower().rstrip(".").split() for s in synthetic_corpus(200)]
    model = FastText(vector_size=12, min_count=2, epochs=3, bucket=1000, workers=1, seed=0)
    model.build_vocab(corpus_iterable=sentences)
    model.train(corpus_iterable=sentences, total_examples=model.corpus_count, epochs=model.epochs)
    return model


@pytest.mark.parametrize("kind", ["model", "kv", "bin"])
def test_fasttext_files_keep_subword_vectors(tmp_path, tiny_fasttext, kind):
    from gensim.models.fasttext import save_facebook_model

    path = tmp_path / f"ft.{kind}"
    if kind == "model":
        tiny_fasttext.save(str(path))
    elif kind == "kv":
        tiny_fasttext.wv.save(str(path))
    else:
        save_facebook_model(tiny_fasttext, str(path))
    v = load_vectors(path)
    assert v.has_subwords and v.dim == 12 and "kitten" in v
    assert "kittens" not in v
    oov = v.vector("kittens")  # unseen: composed from character n-grams
    assert oov.shape == (12,) and np.any(oov)
    np.testing.assert_allclose(oov, tiny_fasttext.wv["kittens"], rtol=1e-5, atol=1e-6)
    assert v.most_similar("kittens", k=3)
    assert v.frequency("kitten") == tiny_fasttext.wv.get_vecattr("kitten", "count")
    limited = load_vectors(path, limit=3)
    assert limited.words == v.words[:3] and limited.has_subwords


def test_plain_keyed_vectors_have_no_subwords(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["x", "y"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    kv.save(str(tmp_path / "plain.kv"))
    v = load_vectors(tmp_path / "plain.kv")
    assert v.words == ["x", "y"] and not v.has_subwords
    with pytest.raises(KeyError):
        v.vector("unseen")


@pytest.mark.parametrize("name", ["junk.bin", "junk.kv", "junk.model"])
def test_unreadable_binary_files_are_input_errors(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x01 definitely not a model")
    with pytest.raises(InputError) as err:
        load_vectors(tmp_path / name)
    assert name in str(err.value)


# ---------------------------------------------------------------- training


def test_config_validation_names_the_key():
    VectorTrainingConfig().validate()
    for bad, key in [
        (dict(dim=0), "vectors.dim"),
        (dict(epochs=-1), "vectors.epochs"),
        (dict(min_count=True), "vectors.min_count"),
        (dict(sg=2), "vectors.sg"),
        (dict(min_n=4, max_n=3), "vectors.max_n"),
        (dict(sample=1.5), "vectors.sample"),
        (dict(workers=0), "vectors.workers"),
        (dict(window=2.5), "vectors.window"),
        (dict(seed=-1), "vectors.seed"),
    ]:
        with pytest.raises(InputError) as err:
            VectorTrainingConfig(**bad).validate()
        assert err.value.key == key, bad
    with pytest.raises(InputError) as err:
        VectorTrainingConfig(dim=-3).validate("vectors.training")
    assert err.value.key == "vectors.training.dim"


def test_training_rejects_empty_corpus_before_training(tmp_path, monkeypatch):
    calls = spy_fit(monkeypatch)
    cache = DiskCache(tmp_path / "cache")
    with pytest.raises(InputError, match="no text"):
        train_vectors([], "en", TINY, progress=False)
    with pytest.raises(InputError, match="no tokens"):
        train_vectors(["   ", ""], "en", TINY, cache=cache, progress=False)
    with pytest.raises(InputError) as err:
        train_vectors(["every word is unique here"], "en", TINY, cache=cache, progress=False)
    assert err.value.key == "vectors.min_count"
    assert calls == []
    assert not any((tmp_path / "cache" / "vectors").iterdir())  # no entry, no leftover temp dir


def test_train_uses_shared_tokenizer_and_counts(monkeypatch):
    v = train_vectors(["L'homme voit l'arbre."] * 3, "fr", TINY, progress=False)
    assert {"l'", "homme", "arbre", "."} <= set(v.words)  # the clitic split of get_tokenizer("fr")
    assert v.frequency("l'") == 6 and v.frequency("homme") == 3
    assert v.meta["n_sentences"] == 3 and v.meta["n_tokens"] == 18
    assert v.has_subwords


def test_most_similar_finds_words_sharing_contexts():
    v = train_vectors(
        synthetic_corpus(),
        "en",
        VectorTrainingConfig(dim=24, epochs=15, min_count=2, window=5, bucket=2000, workers=1, sample=0.0),
        progress=False,
    )
    for word, partner in [("kitten", "puppy"), ("truck", "lorry")]:
        assert v.most_similar(word, k=1)[0][0] == partner, (word, v.most_similar(word, k=5))
    other = set(CARS + CAR_CONTEXT)
    assert not other & {w for w, _ in v.most_similar("kitten", k=5)}


def test_training_cache_hit_and_corruption_rebuild(tmp_path, monkeypatch):
    cache = DiskCache(tmp_path / "cache")
    calls = spy_fit(monkeypatch)
    texts = synthetic_corpus(300)
    first = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    entries = list((tmp_path / "cache" / "vectors").iterdir())
    assert calls == [1] and len(entries) == 1 and (entries[0] / "vectors.kv").is_file()

    second = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    assert calls == [1]  # loaded, not retrained
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert second.has_subwords and second.meta["n_sentences"] == 300
    assert second.frequency("kitten") == first.frequency("kitten") > 0

    kv = entries[0] / "vectors.kv"
    data = bytearray(kv.read_bytes())
    data[len(data) // 2] ^= 0xFF
    kv.write_bytes(bytes(data))
    rebuilt = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    assert calls == [1, 1]  # the corrupt entry was rebuilt, not used
    np.testing.assert_array_equal(rebuilt.matrix, first.matrix)  # workers=1 is deterministic

    train_vectors(texts, "en", VectorTrainingConfig(**{**vars(TINY), "dim": 8}), cache=cache, progress=False)
    train_vectors(texts[:-1], "en", TINY, cache=cache, progress=False)
    assert calls == [1, 1, 1, 1]  # config and corpus are part of the key


def test_cached_vectors_load_without_gensim_and_old_entries_are_upgraded(tmp_path, monkeypatch):
    import json
    import pickle

    from mosecrot.vectors.train import MATRIX_FILE, WORDS_FILE, CachedSubwords

    cache = DiskCache(tmp_path / "cache")
    texts = synthetic_corpus(300)
    trained = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    (entry,) = list((tmp_path / "cache" / "vectors").iterdir())
    loaded = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    assert isinstance(loaded.subwords, CachedSubwords) and not loaded.subwords.loaded  # gensim not loaded
    assert loaded.words == trained.words
    np.testing.assert_array_equal(loaded.matrix, trained.matrix)
    oov = "kittenzz"
    np.testing.assert_allclose(loaded.vector(oov), trained.vector(oov), rtol=1e-6)  # loads the model now
    assert len(pickle.dumps(loaded.subwords)) < 500  # ships its path, not the model

    # an entry written before the fast layout: loaded through gensim once, then upgraded in place
    manifest = json.loads((entry / "MANIFEST.json").read_text())
    for name in (WORDS_FILE, MATRIX_FILE):
        (entry / name).unlink()
        del manifest["files"][name]
    (entry / "MANIFEST.json").write_text(json.dumps(manifest))
    old = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    np.testing.assert_array_equal(old.matrix, trained.matrix)
    assert {WORDS_FILE, MATRIX_FILE} <= set(json.loads((entry / "MANIFEST.json").read_text())["files"])
    cache.verify(entry)  # the added files are checksummed like the rest
    again = train_vectors(texts, "en", TINY, cache=cache, progress=False)
    assert isinstance(again.subwords, CachedSubwords)
    np.testing.assert_array_equal(again.matrix, trained.matrix)


def test_train_language_vectors_excludes_evaluation_verses(tmp_path):
    texts = synthetic_corpus(300)
    texts[:40] = ["Secretword appears only in test verses secretword."] * 40
    (tmp_path / "vref.txt").write_text("".join(f"GEN 1:{i + 1}\n" for i in range(len(texts))))
    (tmp_path / "eng-test.txt").write_text("\n".join(texts) + "\n")
    bible = open_bible({"source": "ebible", "path": str(tmp_path)})
    excluded = [f"01001{i + 1:03d}" for i in range(40)] + ["66022099"]  # one id not in the Bible
    v = train_language_vectors(bible, "en", excluded, TINY, progress=False)
    assert "secretword" not in v and "kitten" in v
    assert v.meta["n_sentences"] == 259  # verse 41, beside an evaluated one, is left out too
    assert v.meta["n_excluded_ids"] == 41 and v.meta["n_excluded_verses"] == 41
    assert v.meta["n_excluded_ids_with_neighbours"] == 41 + 3  # 1-41, and 66022098-100


@pytest.mark.slow
def test_real_bible_language_vectors(request, tmp_path):
    """Train on the Swahili Bible and print neighbours (run with ``-m slow``)."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow: run with -m slow")
    try:
        texts = open_bible().monolingual("sw")
    except InputError as err:
        pytest.skip(str(err))
    start = time.perf_counter()
    v = train_vectors(texts, "sw", VectorTrainingConfig(dim=100, epochs=5), cache=DiskCache(tmp_path))
    print(f"\nsw: {len(texts)} verses, {len(v)} words x {v.dim}, {time.perf_counter() - start:.1f} s")
    for word in ["mungu", "mfalme", "maji", "mwana", "nchi"]:
        print(word, [(w, round(s, 2)) for w, s in v.most_similar(word, k=6)])
    assert v.meta["n_sentences"] == len(texts) and len(v) > 5000
    kings = {"daudi", "sulemani", "hezekia", "yehoshafati", "zedekia", "sedekia", "ahabu", "farao", "yosia"}
    assert kings & {w for w, _ in v.most_similar("mfalme", k=10)}
