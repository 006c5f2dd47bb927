"""EMS as a zero-shot method (``kind: ems``): logistic regression on frozen English EMS sentence
vectors, evaluated on every target language, with the metric keys of every other method.

``ems:`` of the method names the encoder: a checkpoint directory (`mosecrot ems train`), or an EMS
config (``cpu``, ``xtr_only``, a YAML path; default ``cpu``) that is trained here and cached on disk.
Either way the encoder must not have seen the run's evaluation verses: a trained config gets them
added to its exclusions, a checkpoint that lacks any of them is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mosecrot.cache import texts_fingerprint
from mosecrot.configschema import to_dict
from mosecrot.ems.checkpoint import EMSBundle, is_checkpoint, load_checkpoint
from mosecrot.ems.config import config_path, load_ems_config
from mosecrot.ems.data import task_exclusions
from mosecrot.ems.train import EMSHooks, train_ems
from mosecrot.errors import InputError
from mosecrot.tasks import canonical_task_name
from mosecrot.tasks.base import evaluation_ids
from mosecrot.text.bible import open_bible

if TYPE_CHECKING:
    from mosecrot.config import MethodConfig
    from mosecrot.methods import RunContext

log = logging.getLogger(__name__)
DEFAULT_CONFIG = "cpu"
_LOADED: dict[str, EMSBundle] = {}


def run_evaluation_ids(ctx: "RunContext") -> set[str]:
    """Verse ids of the run's dev/test data in every language (none for SIB-200: not Bible verses)."""
    if canonical_task_name(ctx.config.task.name) == "sib200":
        return set()
    return set().union(*(evaluation_ids(task) for task in ctx.prepared.tasks.values()))


def check_encoder_spec(spec: str, key: str = "methods.ems") -> None:
    """Cheap check of a method's ``ems:`` value (before any preparation): a checkpoint or a config."""
    if is_checkpoint(spec):
        return
    try:
        path = config_path(spec)
    except InputError as err:
        raise InputError(f"{err.message}, and not an EMS checkpoint directory", key=key,
                         expected=err.expected) from err
    if not path.is_file():
        raise InputError(f"{spec!r} is neither an EMS config file nor a checkpoint directory", key=key)


def _load(directory: Path) -> EMSBundle:
    key = str(directory.resolve())
    if key not in _LOADED:
        _LOADED[key] = load_checkpoint(directory)
    return _LOADED[key]


def resolve_encoder(ctx: "RunContext", spec: str | None) -> EMSBundle:
    """The EMS bundle a method names, checked against the run's evaluation verses."""
    spec = spec or DEFAULT_CONFIG
    needed = run_evaluation_ids(ctx)
    if is_checkpoint(spec):
        bundle = _load(Path(spec))
        leaked = sorted(needed - bundle.excluded_ids)
        if leaked:
            raise InputError(f"this EMS checkpoint may have trained on {len(leaked)} of the run's evaluation "
                             f"verses (e.g. {leaked[:3]})", path=spec, key="methods.ems",
                             expected="a checkpoint whose data.exclude_ids / bible_genre cover this task, or an "
                                      "EMS config name to train one here")
        return bundle
    cfg = load_ems_config(spec)
    if needed:  # add only what the config's own exclusions miss, so experiments share one encoder
        covered = set().union(*task_exclusions(cfg, open_bible(to_dict(cfg.bible)))[0].values())
        extra = needed - covered
        if extra:
            cfg.data.exclude_ids = sorted(extra | set(cfg.data.exclude_ids))
    key = {"config": cfg.fingerprint(), "max_steps": cfg.train.max_steps, "budget": cfg.train.time_budget_s}

    def build(d: Path) -> None:
        train_ems(cfg, EMSHooks(progress=ctx.hooks.progress), output_dir=d, cache=ctx.cache)

    directory = ctx.cache.get_or_build("ems_model", key, build, lambda d: d / cfg.name)
    return _load(directory)


def ems_vectors(ctx: "RunContext", bundle: EMSBundle, texts: list[str]) -> np.ndarray:
    key = {"ems": bundle.identity, "texts": texts_fingerprint(texts), "n": len(texts)}
    return ctx.cache.get_or_build("ems_vectors", key, lambda d: np.save(d / "x.npy", bundle.encode(texts)),
                                  lambda d: np.load(d / "x.npy"))


def run_ems(ctx: "RunContext", method: "MethodConfig", seed: int) -> dict[str, float]:
    """Logistic regression on frozen English EMS vectors, zero-shot on each target language."""
    from mosecrot.methods import _fit_predict

    bundle = resolve_encoder(ctx, method.ems)
    unseen = [lang for lang in ctx.targets if lang not in bundle.meta.get("languages", [])]
    if unseen:
        log.warning("EMS %s was not trained on %s: their vectors come from the shared vocabulary alone",
                    bundle.config.name, ", ".join(unseen))
    src, en = ctx.source, ctx.config.source_language

    def vec(split) -> np.ndarray:
        return ems_vectors(ctx, bundle, list(split["text"]))

    evals = {(s, en): (vec(src.splits[s]), src.splits[s]["label"]) for s in ("dev", "test") if s in src.splits}
    for lang in ctx.targets:
        task = ctx.prepared.tasks[lang]
        for s in ("dev", "test"):
            if s in task.splits:
                evals[(s, lang)] = (vec(task.splits[s]), task.splits[s]["label"])
    out = _fit_predict(vec(src.splits["train"]), src.splits["train"]["label"], evals, method.classifier_c, seed)
    out["ems_steps"] = float(bundle.meta.get("step", 0))
    return out


__all__ = ["resolve_encoder", "run_ems", "run_evaluation_ids"]
