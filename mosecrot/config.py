"""The experiment config: one YAML file per experiment under ``experiments/``.

Everything an experiment needs to be rebuilt is here: the data part (`mosecrot.data_config.DataConfig`:
task, languages, Bible source, static vectors, dictionaries, anchors, model) and what runs on it (methods,
seeds, training); the resolved form is written beside every run. Strings may use ``${data_dir}``
(../shared/data or ``$MOSECROT_DATA_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mosecrot.configschema import apply_overrides, from_dict, interpolate, named_config_path, read_yaml
from mosecrot.data_config import DataConfig
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig
from mosecrot.paths import REPO_ROOT
from mosecrot.training import TrainingConfig

EXPERIMENTS_DIR = REPO_ROOT / "experiments"


@dataclass
class ExperimentConfig(DataConfig):
    seeds: list[int] = field(default_factory=lambda: [0])
    training: TrainingConfig = field(default_factory=TrainingConfig)
    methods: list[MethodConfig] = field(default_factory=list)  # empty: mosecrot.methods.default_methods()
    output_dir: str = "runs"

    def validate(self) -> None:
        super().validate()
        if not self.seeds:
            raise InputError("no seeds", key="seeds", expected="a non-empty list of integers")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise InputError("duplicate method name", key="methods", expected="unique names")


def experiment_path(name_or_path: str) -> Path:
    """``quickstart`` -> experiments/quickstart.yaml; paths pass through."""
    return named_config_path(name_or_path, EXPERIMENTS_DIR, "experiment")


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    path = experiment_path(name_or_path)
    data = apply_overrides(read_yaml(path), overrides or [])
    return from_dict(ExperimentConfig, interpolate(data), file=str(path))
