"""Method kinds for tests, registered when ``$MOSECROT_PLUGINS`` names this module (with this directory on
PYTHONPATH): every process of a sweep, Ray workers included, imports it by name.

``toy`` is what a new method kind takes: one options dataclass, one run function, one `register` call. It
scores every scored split at ``score`` without training anything; ``fail: true`` makes it raise instead (a
failing trial, for the sweep's failure path).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mosecrot.errors import InputError
from mosecrot.methods import MethodSpec, RunContext, register
from mosecrot.metrics import split_metrics


class InjectedFault(RuntimeError):
    """Raised by ``toy`` with ``fail: true``."""


@dataclass
class ToyOptions:
    score: float = 0.5  # the macro-F1 and accuracy of every scored split
    fail: bool = False  # raise InjectedFault instead of scoring
    sleep: float = 0.0  # seconds to wait first (a trial that is still running when a test signals the sweep)

    def validate(self, prefix: str = "methods") -> None:
        if not 0.0 <= self.score <= 1.0:
            raise InputError(f"score {self.score} is not a probability", key=f"{prefix}.score", expected="0 to 1")


def run_toy(ctx: RunContext, options: ToyOptions, seed: int) -> dict[str, float]:
    if options.sleep > 0:
        time.sleep(options.sleep)
    if options.fail:
        raise InjectedFault(f"injected fault: a toy method with fail: true (seed {seed})")
    metrics: dict[str, float] = {}
    for lang in [ctx.config.source_language, *ctx.targets]:
        for split in ctx.scored_splits(lang):
            metrics.update(split_metrics(split, lang, {"macro_f1": options.score, "accuracy": options.score}))
    return metrics


register(MethodSpec("toy", run_toy, ToyOptions, summary="a constant score on every split (tests)"))
