"""Versification: an edition that merges an evaluated verse into its neighbour (verse N empty, its text at the
end of N-1, or N+1 taking N's text) must not let that text into anything the methods train on. Evaluation
verses are excluded with their +-1 neighbours (same book and chapter) from static-vector training, dictionary
induction, centering verses, EMS pairs and bible-genre's train selection."""

from types import SimpleNamespace

import numpy as np
import pytest

import mosecrot.dictionaries.induce as induce_module
import mosecrot.vectors.train as vectors_module
from mosecrot.centering import language_offsets
from mosecrot.dictionaries.induce import induce_from_bible
from mosecrot.tasks.bible_genre import bible_genre_ids
from mosecrot.text.bible import Bible, make_verse_id, parse_verse_id, with_neighbours
from mosecrot.vectors.train import VectorTrainingConfig, train_language_vectors

from memory_bible import DictSource

EVALUATED = "01001003"  # Genesis 1:3
SECRET = "lux facta est"  # its text, which an edition moved into Genesis 1:2


def merged_bible() -> Bible:
    """Genesis 1:1-6 and 2:1-2 in English and two German editions; the default German edition ("de1")
    merges the evaluated verse 1:3 into 1:2 (1:3 itself is empty there), the other keeps it apart."""
    ids = [make_verse_id(1, 1, v) for v in range(1, 7)] + [make_verse_id(1, 2, v) for v in (1, 2)]
    en = {v: f"english {v}" for v in ids} | {EVALUATED: "and there was light"}
    de2 = {v: f"deutsch {v}" for v in ids} | {EVALUATED: "und es ward Licht"}
    de1 = {v: f"vers {v}" for v in ids if v != EVALUATED} | {"01001002": f"vers 01001002 {SECRET}"}
    return Bible(DictSource("merged", {"en1": ("en", en), "de1": ("de", de1), "de2": ("de", de2)}))


def test_with_neighbours_widens_within_book_and_chapter():
    assert with_neighbours({"01001003"}) == {"01001002", "01001003", "01001004"}
    assert with_neighbours({"01001001"}) == {"01001001", "01001002"}  # no verse 0
    assert with_neighbours({"40002001", "40002002"}) == {"40002001", "40002002", "40002003"}
    # a chapter's last verse: the next id is widened (harmless, no such verse), never the next chapter's first
    assert "01002001" not in with_neighbours({"01001031"})
    assert with_neighbours(set()) == set()
    for v in with_neighbours({"66022021", "19119176"}):
        parse_verse_id(v)  # every widened id is a valid verse id


def test_vector_training_texts_lose_the_merged_neighbour(monkeypatch):
    seen: list[str] = []

    def fake_train(texts, language, config, cache=None, progress=True):
        seen.extend(texts)
        return SimpleNamespace(meta={})

    monkeypatch.setattr(vectors_module, "train_vectors", fake_train)
    vectors = train_language_vectors(merged_bible(), "de", {EVALUATED}, VectorTrainingConfig(), progress=False)
    assert seen and not [t for t in seen if SECRET in t], "the evaluated verse's text reached vector training"
    assert not [t for t in seen if "01001004" in t]  # the verse after it too
    assert "vers 01001001" in seen and "deutsch 01001005" in seen  # the rest of both editions is kept
    assert vectors.meta["n_excluded_ids"] == 1 and vectors.meta["n_excluded_ids_with_neighbours"] == 3


def test_induction_pairs_lose_the_merged_neighbour(monkeypatch):
    seen: list[tuple[str, str]] = []

    def fake_induce(pairs, target_lang, **kw):
        seen.extend(pairs)
        return SimpleNamespace(meta={})

    monkeypatch.setattr(induce_module, "induce_dictionary", fake_induce)
    induced = induce_from_bible(merged_bible(), "de", {EVALUATED}, progress=False)
    assert seen and not [p for p in seen if SECRET in p[1]], "the evaluated verse's text reached the aligner"
    assert ("english 01001001", "vers 01001001") in seen and ("english 01001005", "vers 01001005") in seen
    assert induced.meta["excluded_ids"] == 1 and induced.meta["excluded_ids_with_neighbours"] == 3


def test_centering_verses_lose_the_merged_neighbour():
    def encode(texts):  # a verse carrying the evaluated text moves the German mean far away
        return np.array([[100.0 if SECRET in t else 0.0] for t in texts])

    offsets = language_offsets(encode, merged_bible(), ["de"], "en", {EVALUATED}, n=100)
    assert offsets["de"][0] == pytest.approx(0.0), "the evaluated verse's text reached the centering offset"


def test_bible_genre_train_split_keeps_away_from_dev_and_test_neighbours():
    # 40 consecutive verses per chapter, a few chapters per book: many train candidates neighbour dev/test ones
    ids = [make_verse_id(b, c, v) for b in range(1, 67) for c in (1, 2) for v in range(1, 41)]
    bible = Bible(DictSource("genre", {"en1": ("en", {v: f"v {v}" for v in ids})}))
    split = bible_genre_ids(bible, seed=13, per_class={"train": 40, "dev": 5, "test": 10})
    evaluated = set(split["dev"]) | set(split["test"])
    near = with_neighbours(evaluated) & set(split["train"])
    assert not near, f"{len(near)} train verses neighbour a dev/test verse, e.g. {sorted(near)[:3]}"


def test_ems_training_pairs_lose_the_merged_neighbour():
    from mosecrot.ems.config import ems_config_from_dict
    from mosecrot.ems.data import build_ems_data

    ids = [make_verse_id(1, 1, v) for v in range(1, 61)]
    en = {v: f"english {v}" for v in ids}
    de = {v: f"vers {v}" for v in ids if v != EVALUATED} | {"01001002": f"vers 01001002 {SECRET}"}
    bible = Bible(DictSource("merged", {"en1": ("en", en), "de1": ("de", de)}))
    data = {"retrieval_test_size": 5, "taxi1500_path": None, "bible_genre": [], "exclude_ids": [EVALUATED]}
    cfg = ems_config_from_dict({"name": "tiny", "languages": ["de"], "data": data})
    built = build_ems_data(cfg, bible)
    assert not [t for t in built.train["de"].src if SECRET in t], "the evaluated verse's text reached EMS pairs"
    assert not {"01001002", "01001004"} & set(built.train["de"].ids)
    heldout = set(built.heldout["de"].ids)
    assert not with_neighbours(heldout) & set(built.train["de"].ids)  # retrieval test verses: the same rule
    assert built.excluded_ids >= with_neighbours({EVALUATED} | heldout)
