import pytest

from mosecrot.anchors import build_pair_anchors, build_union_anchors, eligible_pairs
from mosecrot.errors import InputError
from mosecrot.plm import load_tokenizer, single_token_ids

PLM = {"house": 1, "dog": 2, "cat": 3, "tree": 4, "god": 5}
FREQ = {"haus": 50, "hund": 10, "katze": 30, "baum": 5, "gott": 100}.get


def test_eligibility_rule_one_translation_per_target_and_source():
    pairs = [
        ("house", "haus"),
        ("home", "haus"),
        ("house", "heim"),
        ("dog", "hund"),
        ("dog", "köter"),
        ("cat", "katze"),
        ("unicorn", "einhorn"),
        ("tree", "xyz"),
    ]
    vocab = {"haus", "heim", "hund", "köter", "katze", "einhorn"}
    assert eligible_pairs(pairs, PLM, vocab) == [("house", "haus"), ("dog", "hund"), ("cat", "katze")]
    many = eligible_pairs(pairs, PLM, vocab, one_to_one=False)
    assert many == [("house", "haus"), ("house", "heim"), ("dog", "hund"), ("dog", "köter"), ("cat", "katze")]


def test_no_overlap_with_plm_or_target_vocab_is_a_clear_error():
    with pytest.raises(InputError, match="en-xx.txt.*single token of the PLM"):
        eligible_pairs([("zzz", "a")], PLM, {"a"}, where="en-xx.txt")
    with pytest.raises(InputError, match="en-xx.txt.*not in the static vocabulary|no target word"):
        eligible_pairs([("dog", "a")], PLM, {"b"}, where="en-xx.txt")


@pytest.mark.parametrize(
    "strategy,expected",
    [
        ("frequent", [("god", "gott"), ("house", "haus")]),
        ("all", None),
    ],
)
def test_strategies(strategy, expected):
    pairs = [("house", "haus"), ("dog", "hund"), ("cat", "katze"), ("god", "gott")]
    a = build_pair_anchors(
        "de", pairs, PLM, set(FREQ.__self__), FREQ, count=2 if strategy != "all" else "all", strategy=strategy
    )
    if expected:
        assert a.pairs == expected
    else:
        assert a.pairs == pairs
    assert a.source_token_ids == [PLM[s] for s, _ in a.pairs]


def test_random_is_seeded_and_keeps_dictionary_order():
    pairs = [(w, t) for w, t in zip(PLM, ["haus", "hund", "katze", "baum", "gott"], strict=True)]
    vocab = {t for _, t in pairs}
    a = build_pair_anchors("de", pairs, PLM, vocab, FREQ, count=3, strategy="random", seed=1)
    b = build_pair_anchors("de", pairs, PLM, vocab, FREQ, count=3, strategy="random", seed=1)
    c = build_pair_anchors("de", pairs, PLM, vocab, FREQ, count=3, strategy="random", seed=7)
    assert a.pairs == b.pairs and len(a) == 3
    assert [pairs.index(p) for p in a.pairs] == sorted(pairs.index(p) for p in a.pairs)
    assert any(
        x.pairs != a.pairs
        for x in [c]
        + [build_pair_anchors("de", pairs, PLM, vocab, FREQ, count=3, strategy="random", seed=s) for s in range(2, 6)]
    )


def test_shortfall_clamps_and_records_or_errors():
    pairs = [("house", "haus"), ("dog", "hund")]
    a = build_pair_anchors("de", pairs, PLM, {"haus", "hund"}, FREQ, count=10, strategy="frequent")
    assert len(a) == 2 and a.meta["clamped"] and a.meta["requested"] == 10
    with pytest.raises(InputError, match="10 anchors requested but only 2"):
        build_pair_anchors(
            "de", pairs, PLM, {"haus", "hund"}, FREQ, count=10, strategy="frequent", on_shortfall="error"
        )
    with pytest.raises(InputError, match="unknown anchor strategy 'best'.*all, frequent, random"):
        build_pair_anchors("de", pairs, PLM, {"haus", "hund"}, FREQ, strategy="best")


def test_union_scope_shares_one_english_list():
    elig = {
        "de": [("house", "haus"), ("dog", "hund"), ("god", "gott")],
        "fr": [("house", "maison"), ("cat", "chat"), ("god", "dieu")],
        "sw": [("god", "mungu")],
    }
    u = build_union_anchors(elig, PLM, count=3, strategy="frequent", source_frequency={"dog": 5, "cat": 9}.get)
    # god: 3 languages, house: 2, then cat (more frequent in English) before dog.
    assert u.source_words == ["god", "house", "cat"]
    de = u.per_language["de"]
    assert de.pairs == [("house", "haus"), ("god", "gott")]
    assert [u.source_words[i] for i in de.source_positions] == ["house", "god"]
    assert u.per_language["sw"].source_positions == [0]
    assert u.source_token_ids == [PLM[w] for w in u.source_words]


def test_single_token_ids_with_real_minilm_tokenizer():
    tok = load_tokenizer("minilm")
    ids = single_token_ids(tok, ["house", "House", "unbelievably", "[CLS]", "qwxzv"])
    assert ids["house"] == ids["House"]  # uncased model
    assert "[CLS]" not in ids and "qwxzv" not in ids


def test_model_path_without_tokenizer(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="model directory has no tokenizer"):
        load_tokenizer(str(tmp_path))


def test_single_token_ids_match_the_tokenizer_call_and_its_disk_cache(tmp_path):
    """The Rust-backend path (a copy without MiniLM's pad-to-128) answers as ``tokenizer(words)`` does; the
    disk-cached answer is the same, and a different word list is a different entry."""
    from mosecrot.cache import DiskCache
    from mosecrot.plm import tokenizer_fingerprint
    from mosecrot.prepare import cached_single_token_ids

    tok = load_tokenizer("minilm")
    words = ["house", "House", "unbelievably", "[CLS]", "qwxzv", "gott", "é", "a b", "the", "running"]
    fp = tokenizer_fingerprint(tok)
    unique = sorted(set(words))
    enc = tok(unique, add_special_tokens=False)["input_ids"]  # also resets the backend's padding state
    special = tok.all_special_ids
    expected = {w: ids[0] for w, ids in zip(unique, enc, strict=True) if len(ids) == 1 and ids[0] not in special}
    assert single_token_ids(tok, words) == expected and tokenizer_fingerprint(tok) == fp
    cache = DiskCache(tmp_path)
    assert cached_single_token_ids(tok, words, cache) == expected
    assert cached_single_token_ids(tok, list(reversed(words)), cache) == expected  # same entry, loaded
    assert len(list((tmp_path / "single_token_ids").iterdir())) == 1
    assert cached_single_token_ids(tok, ["house"], cache) == {"house": expected["house"]}
    assert len(list((tmp_path / "single_token_ids").iterdir())) == 2
