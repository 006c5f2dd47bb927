"""Which EMS encoder a method reads: a trained checkpoint, or an EMS config trained here (and cached on disk).

``spec`` names a checkpoint directory (`mosecrot ems train`) or an EMS config (``cpu``, ``xtr_only``, a YAML
path; default ``cpu``); ``ems_set`` (configs only) overrides that config by dotted key
(``{loss.temperature: 0.05, model.layers: 3}``): the overrides are part of the trained config, hence of its
cache key, so every setting trains its own encoder. Either way the encoder must not have seen the run's
evaluation verses: a trained config gets them added to its exclusions, a checkpoint that lacks any of them
is refused. Used by ``kind: ems`` (`mosecrot.methods.ems`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.configschema import from_dict, interpolate, read_yaml
from mosecrot.ems.checkpoint import EMSBundle, is_checkpoint, load_checkpoint
from mosecrot.ems.config import EMSConfig, apply_settings, config_path, load_ems_config, normalize_settings
from mosecrot.ems.data import task_exclusions
from mosecrot.ems.losses import OBJECTIVE_VERSION
from mosecrot.ems.train import EMSHooks, train_ems
from mosecrot.errors import InputError
from mosecrot.text.bible import NEIGHBOUR_RADIUS, with_neighbours

DEFAULT_CONFIG = "cpu"
_LOADED: dict[str, EMSBundle] = {}


def check_encoder_spec(spec: str, key: str = "methods.ems") -> None:
    """Cheap check of a method's ``ems:`` value (before any preparation): a checkpoint or a config."""
    if is_checkpoint(spec):
        return
    try:
        path = config_path(spec)
    except InputError as err:
        raise InputError(f"{err.message}, and not an EMS checkpoint directory", key=key, expected=err.expected) from err
    if not path.is_file():
        raise InputError(f"{spec!r} is neither an EMS config file nor a checkpoint directory", key=key)


def check_method_encoder(spec: str | None, ems_set: dict[str, Any], key: str = "methods") -> dict[str, Any]:
    """Cheap check of a ``kind: ems`` method's ``ems`` and ``ems_set`` (no data is read): the spec exists, the
    overrides name EMS config fields and build a valid config. Returns ``ems_set`` with dotted keys."""
    if spec:
        check_encoder_spec(spec, key=f"{key}.ems")
    if not ems_set:
        return {}
    if spec and is_checkpoint(spec):
        raise InputError(
            f"{spec!r} is a trained checkpoint: its config cannot be overridden",
            key=f"{key}.ems_set",
            expected="no ems_set, or ems: an EMS config name/path (trained in the run)",
        )
    ems_training_config(spec, ems_set, key=key)
    return normalize_settings(ems_set, key=f"{key}.ems_set")


def ems_training_config(spec: str | None, ems_set: dict[str, Any] | None = None, key: str = "methods") -> EMSConfig:
    """The EMS config a method trains (before the run's evaluation verses are added to its exclusions): the
    config ``spec`` (default cpu) with ``ems_set`` applied. An error the overrides cause names
    ``KEY.ems_set.FIELD`` (``methods[0].ems_set.loss.temperature``)."""
    spec = spec or DEFAULT_CONFIG
    if not ems_set:
        return load_ems_config(spec)
    where = f"{key}.ems_set"
    settings = normalize_settings(ems_set, key=where)
    path = config_path(spec)
    base = read_yaml(path)
    try:
        return from_dict(EMSConfig, interpolate(apply_settings(base, settings)))
    except InputError as err:
        load_ems_config(spec)  # the config file itself is broken: that error, by file and key
        field = err.key or next(iter(settings))
        raise InputError(
            f"{err.message} (EMS config {spec!r} with ems_set {settings})",
            key=f"{where}.{field}",
            expected=err.expected,
        ) from None


def encoder_cache_key(cfg: EMSConfig) -> dict[str, Any]:
    """What decides a trained encoder: the config fingerprint (data, tokenizer, model, losses, optimisation:
    every ``ems_set`` override lands in one of them) and the training budget."""
    key: dict[str, Any] = {
        "config": cfg.fingerprint(),
        "max_steps": cfg.train.max_steps,
        "budget": cfg.train.time_budget_s,
        "objective": OBJECTIVE_VERSION,
        "exclusion": f"neighbours-{NEIGHBOUR_RADIUS}",  # encoders cached before neighbours were excluded: rebuilt
    }
    if cfg.train.precision != "fp32":  # not in the fingerprint (a checkpoint may resume in another precision)
        key["precision"] = cfg.train.precision
    return key


def _load(directory: Path) -> EMSBundle:
    key = str(directory.resolve())
    if key not in _LOADED:
        _LOADED[key] = load_checkpoint(directory)
    return _LOADED[key]


def resolve_encoder(
    spec: str | None, ems_set: dict[str, Any] | None, needed: set[str], cache: DiskCache, progress: bool = False
) -> EMSBundle:
    """The EMS bundle ``spec`` names, checked against ``needed``: the verse ids the run evaluates on (trained
    configs exclude them, checkpoints must have excluded them)."""
    spec = spec or DEFAULT_CONFIG
    if is_checkpoint(spec):
        if ems_set:
            raise InputError(
                f"{spec!r} is a trained checkpoint: its config cannot be overridden",
                key="methods.ems_set",
                expected="no ems_set, or an EMS config name to train here",
            )
        bundle = _load(Path(spec))
        # evaluation verses with their +-1 neighbours (an edition may merge a verse into one): a checkpoint from
        # before neighbours were excluded is refused, not trusted
        leaked = sorted(with_neighbours(needed) - bundle.excluded_ids)
        if leaked:
            raise InputError(
                f"this EMS checkpoint may have trained on {len(leaked)} of the run's evaluation "
                f"verses (e.g. {leaked[:3]})",
                path=spec,
                key="methods.ems",
                expected="a checkpoint whose data.exclude_ids / bible_genre cover this task, or an "
                "EMS config name to train one here",
            )
        return bundle
    cfg = ems_training_config(spec, ems_set)
    if needed:  # add only what the config's own exclusions miss, so experiments share one encoder
        covered = set().union(*task_exclusions(cfg, cfg.bible.open())[0].values())
        extra = needed - covered
        if extra:
            cfg.data.exclude_ids = sorted(extra | set(cfg.data.exclude_ids))
    key = encoder_cache_key(cfg)

    def build(d: Path) -> None:
        train_ems(cfg, EMSHooks(progress=progress), output_dir=d, cache=cache)

    directory = cache.get_or_build("ems_model", key, build, lambda d: d / cfg.name)
    return _load(directory)


def ems_vectors(cache: DiskCache, bundle: EMSBundle, texts: list[str]) -> np.ndarray:
    """The encoder's sentence vectors of ``texts``, cached on disk by the weights' identity and the texts."""
    key = {"ems": bundle.identity, "texts": texts_fingerprint(texts), "n": len(texts)}
    return cache.get_or_build(
        "ems_vectors", key, lambda d: np.save(d / "x.npy", bundle.encode(texts)), lambda d: np.load(d / "x.npy")
    )
