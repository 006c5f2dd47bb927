import pytest
import yaml

from mosecrot.config import EXPERIMENTS_DIR, ExperimentConfig, load_experiment
from mosecrot.configschema import apply_overrides, from_dict
from mosecrot.errors import InputError

MINIMAL = {"name": "t", "task": {"name": "bible-genre"}, "target_languages": ["de"]}


def _write(tmp_path, data):
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_experiment(str(_write(tmp_path, MINIMAL)))
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.anchors.scope == "pair" and cfg.vectors.training.dim == 100 and cfg.model == "minilm"


@pytest.mark.parametrize(
    "data,message",
    [
        ({**MINIMAL, "anchors": {"cout": 5}}, r"exp.yaml, key 'anchors.cout': unknown key \(expected one of: count,"),
        ({**MINIMAL, "anchors": {"count": "many"}}, r"key 'anchors.count': bad value 'many' \(expected int or 'all'\)"),
        ({**MINIMAL, "anchors": {"count": -3}}, r"anchors.count"),
        ({**MINIMAL, "anchors": {"strategy": "best"}}, r"unknown anchor strategy 'best'.*all, frequent, random"),
        ({**MINIMAL, "anchors": {"scope": "global"}}, r"key 'anchors.scope'.*'pair' or 'union'"),
        ({**MINIMAL, "target_languages": ["de", "xx"]}, r"key 'target_languages\[1\]'.*unknown language code 'xx'"),
        ({**MINIMAL, "vectors": {"training": {"dim": 0}}}, r"vectors.*dim"),
        ({"name": "t", "target_languages": ["de"]}, r"key 'task': missing required key"),
        ({**MINIMAL, "seeds": []}, r"key 'seeds'"),
        # Norwegian unquoted: YAML reads `no` as false; the error names the item and says to quote it
        ({**MINIMAL, "target_languages": ["de", False]}, r"key 'target_languages\[1\]': bad value False: YAML.*quote"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path, data, message):
    with pytest.raises(InputError, match=message):
        load_experiment(str(_write(tmp_path, data)))


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: t\ntask: [unclosed\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+: invalid YAML"):
        load_experiment(str(p))


def test_overrides_are_parsed_as_yaml_and_do_not_mutate():
    data = {"anchors": {"count": 5}}
    out = apply_overrides(data, ["anchors.count=all", "seeds=[1, 2]", "vectors.training.dim=50"])
    assert out == {"anchors": {"count": "all"}, "seeds": [1, 2], "vectors": {"training": {"dim": 50}}}
    assert data == {"anchors": {"count": 5}}
    with pytest.raises(InputError, match="KEY=VALUE"):
        apply_overrides({}, ["anchors.count"])


def test_unknown_experiment_lists_shipped_ones():
    with pytest.raises(InputError, match="no experiment named 'nope'.*quickstart"):
        load_experiment("nope")


@pytest.mark.parametrize("path", sorted(EXPERIMENTS_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_experiment_loads(path):
    cfg = load_experiment(str(path))
    assert cfg.name == path.stem and "${" not in str(from_dict.__name__) and cfg.target_languages


def test_exponent_floats_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads `1e-3` as a string; configs accept it as the number everyone means."""
    from mosecrot.config import load_experiment

    cfg = load_experiment("quickstart", ["training.learning_rate=1e-3"])
    assert cfg.training.learning_rate == 1e-3
    from mosecrot.configschema import read_yaml

    path = tmp_path / "x.yaml"
    path.write_text("a: 5E-5\nb: 2e\nc: '1e-3'\n")
    assert read_yaml(path) == {"a": 5e-5, "b": "2e", "c": "1e-3"}
