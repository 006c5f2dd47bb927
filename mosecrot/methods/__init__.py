"""Transfer methods and baselines, each kind a self-describing `MethodSpec` in one family module:

- `stitched`: ``mosecrot`` (relative-representation stitching) and ``ls`` (least-squares map);
- `finetuned`: ``own_tokenizer`` (the floor) and ``multilingual_plm`` (a multilingual encoder);
- `probes`: one sentence-vector classifier for ``frozen_encoder`` (e5) and ``lr`` (target-supervised);
- `ems`: ``ems`` (the EMS sentence encoder, through the probes' classifier).

`registry` maps kinds to specs and parses `MethodConfig`; `context` holds what a method runs in
(`RunContext`). The loop over methods and seeds is `mosecrot.loop.run_methods`.
"""

from mosecrot.methods.context import RunContext
from mosecrot.methods.registry import (
    METHODS,
    MethodConfig,
    default_methods,
    method_config,
    method_spec,
    needs_static,
    register,
)
from mosecrot.methods.spec import TARGET_SUPERVISED, ZERO_SHOT, MethodSpec, NoOptions

__all__ = [
    "METHODS",
    "TARGET_SUPERVISED",
    "ZERO_SHOT",
    "MethodConfig",
    "MethodSpec",
    "NoOptions",
    "RunContext",
    "default_methods",
    "method_config",
    "method_spec",
    "needs_static",
    "register",
]
