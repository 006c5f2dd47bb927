"""The experiment config: one YAML file per experiment under ``experiments/``.

Everything an experiment needs to be rebuilt is here: the data part (`mosecrot.data_config.DataConfig`:
task, languages, Bible source, static vectors, dictionaries, anchors, model) and what runs on it (methods,
seeds, training); the resolved form is written beside every run. Strings may use ``${data_dir}``
(../shared/data or ``$MOSECROT_DATA_DIR``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from mosecrot.configschema import apply_overrides, from_dict, interpolate, named_config_path, read_yaml
from mosecrot.data_config import DataConfig
from mosecrot.errors import InputError, unknown_choice
from mosecrot.methods import MethodConfig
from mosecrot.methods.registry import method_anchors
from mosecrot.paths import REPO_ROOT
from mosecrot.training import TrainingConfig

EXPERIMENTS_DIR = REPO_ROOT / "experiments"


# What a run seed varies: ``fine-tuning`` (static vectors, dictionary induction and anchor sampling are built
# once and shared by every seed; only fine-tuning and the classifiers vary) or ``all`` (each seed prepares its own,
# with the run seed as `vectors.training.seed`, `dictionary.seed` and `anchors.seed`: `seeded_data_config`).
SEED_SCOPES = ("fine-tuning", "all")


@dataclass
class ExperimentConfig(DataConfig):
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_scope: str = "fine-tuning"  # fine-tuning | all (see SEED_SCOPES)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    methods: list[MethodConfig] = field(default_factory=list)  # empty: mosecrot.methods.default_methods()
    output_dir: str = "runs"

    def validate(self) -> None:
        super().validate()
        if not self.seeds:
            raise InputError("no seeds", key="seeds", expected="a non-empty list of integers")
        if self.seed_scope not in SEED_SCOPES:
            raise unknown_choice("seed scope", self.seed_scope, SEED_SCOPES, key="seed_scope")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise InputError("duplicate method name", key="methods", expected="unique names")
        for i, method in enumerate(self.methods):
            if method.anchors:
                key = f"methods[{i}].anchors"
                self.check_anchor_weights(method_anchors(self.anchors, method.anchors, key), key)


def seeded_data_config(cfg: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config that `prepare` builds seed ``seed``'s data from: ``cfg`` itself under ``seed_scope: fine-tuning``;
    under ``all`` a copy whose static-vector training, dictionary induction and anchor sampling use ``seed``."""
    if cfg.seed_scope == "fine-tuning":
        return cfg
    return replace(
        cfg,
        vectors=replace(cfg.vectors, training=replace(cfg.vectors.training, seed=seed)),
        dictionary=replace(cfg.dictionary, seed=seed),
        anchors=replace(cfg.anchors, seed=seed),
    )


def experiment_path(name_or_path: str) -> Path:
    """``quickstart`` -> experiments/quickstart.yaml; paths pass through."""
    return named_config_path(name_or_path, EXPERIMENTS_DIR, "experiment")


def load_experiment(name_or_path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    path = experiment_path(name_or_path)
    data = apply_overrides(read_yaml(path), overrides or [])
    return from_dict(ExperimentConfig, interpolate(data), file=str(path))
