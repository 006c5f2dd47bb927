"""EMS as a zero-shot method (``kind: ems``): logistic regression on frozen English EMS sentence vectors
(`mosecrot.methods.probes.probe_english`), scored on every target language under the shared metric keys.

``ems:`` names the encoder (a checkpoint directory, or an EMS config trained here; default ``cpu``) and
``ems_set:`` overrides that config by dotted key; see `mosecrot.ems.encoder`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mosecrot.ems.config import setting_type
from mosecrot.ems.encoder import check_method_encoder, ems_vectors, resolve_encoder
from mosecrot.methods.context import RunContext
from mosecrot.methods.probes import SentenceProbeOptions, probe_english
from mosecrot.methods.spec import MethodSpec

log = logging.getLogger(__name__)


@dataclass
class EMSOptions(SentenceProbeOptions):
    ems: str | None = None  # a checkpoint directory, or an EMS config name/path trained in the run (default cpu)
    # Dotted overrides of that config before it is trained, e.g. {loss.temperature: 0.05, model.layers: 3,
    # train.max_steps: 500}; nested blocks ({loss: {temperature: 0.05}}) mean the same. Part of the trained
    # encoder's cache key. Its keys are EMS config fields (a sweep can search method.ems_set.loss.temperature).
    ems_set: dict[str, Any] = field(default_factory=dict, metadata={"settings": setting_type})

    def validate(self, prefix: str = "methods") -> None:
        super().validate(prefix)
        if self.ems or self.ems_set:
            self.ems_set = check_method_encoder(self.ems, self.ems_set, key=prefix)


def run_ems(ctx: RunContext, options: EMSOptions, seed: int) -> dict[str, float]:
    """Logistic regression on frozen English EMS vectors, zero-shot on each target language."""
    bundle = resolve_encoder(
        options.ems, options.ems_set, ctx.prepared.evaluation_ids, ctx.cache, progress=ctx.hooks.progress
    )
    unseen = [lang for lang in ctx.targets if lang not in bundle.meta.get("languages", [])]
    if unseen:
        log.warning(
            "EMS %s was not trained on %s: their vectors come from the shared vocabulary alone",
            bundle.config.name,
            ", ".join(unseen),
        )

    def encode(texts: list[str]) -> np.ndarray:
        return ems_vectors(ctx.cache, bundle, list(texts))

    # The centering offsets are measured on verses EMS was not tested on either (retrieval pairs, every task
    # it excluded); a classifier_c grid is chosen on English dev only.
    out = probe_english(ctx, options, encode, seed, exclude=bundle.excluded_ids)
    out["ems_steps"] = float(bundle.meta.get("step", 0))
    out["ems_time_capped"] = float(time_capped(bundle.meta, bundle.config.train.max_steps))
    if out["ems_time_capped"]:
        log.warning(
            "EMS %s stopped at step %d of max_steps %d (a wall-time cap, or an unfinished checkpoint): "
            "its rows are flagged ems_time_capped = 1, not the step-budgeted config",
            bundle.config.name,
            int(out["ems_steps"]),
            bundle.config.train.max_steps,
        )
    return out


def time_capped(meta: dict[str, Any], max_steps: int) -> bool:
    """Whether an encoder trained fewer steps than its config's budget: the opt-in ``train.time_budget_s`` cap
    ended it (``stopped_by``), or (a checkpoint from before that was recorded) it stopped short of max_steps."""
    return meta.get("stopped_by") == "time_budget" or int(meta.get("step", 0)) < max_steps


SPECS = (
    MethodSpec(
        "ems",
        run_ems,
        EMSOptions,
        deterministic=True,  # the encoder trains with its own config's seed, the lbfgs classifier ignores it
        summary="EMS sentence encoder trained here (or a checkpoint), logistic regression on English vectors",
    ),
)
