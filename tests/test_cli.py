"""CLI arguments that are parsed before any expensive work: errors name the flag, exit status 2."""

from __future__ import annotations

import pytest

from mosecrot.errors import InputError
from orchestrator.cli import build_parser, main
from orchestrator.sweep import resource_map


def test_driver_resources_parse_to_floats():
    flag = "--driver-resources"
    assert resource_map('{"CPU": 0, "trial_driver": 0.01}', flag) == {"CPU": 0.0, "trial_driver": 0.01}
    assert resource_map(None, flag) is None


@pytest.mark.parametrize("text", ["{bad", "[1, 2]", '{"CPU": -1}', '{"CPU": "one"}'])
def test_driver_resources_errors_name_the_flag(text):
    with pytest.raises(InputError, match="--driver-resources"):
        resource_map(text, "--driver-resources")


def test_sweep_with_bad_driver_resources_exits_2_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "quickstart", "--driver-resources", "{bad"]) == 2
    assert "--driver-resources" in capsys.readouterr().out
    assert not (tmp_path / "ray_results").exists() and not (tmp_path / "mlruns.db").exists()


def test_ui_command_is_registered_and_binds_loopback_by_default():
    args = build_parser().parse_args(["ui"])
    assert args.host == "127.0.0.1" and args.port == 5000 and args.func.__name__ == "cmd_ui"
