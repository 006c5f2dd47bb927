"""Weightings: turn each row's kept similarities into non-negative weights summing to 1.

Input is a (c x s) block whose dropped entries are ``-inf`` (see ``sparsify``); every weighting
gives those weight exactly 0. Every row has at least one finite entry.

Adding a weighting: write ``f(values, ...) -> weights`` and add one line to ``WEIGHTINGS``
adapting the config to its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import entmax
import torch
from torch import Tensor

from mosecrot.errors import InputError, lookup


class WeightingParams(Protocol):
    """What a weighting reads of `mosecrot.relative.RelativeConfig`."""

    tau: float
    negatives: str | None


NEGATIVES = ("clip", "shift")
"""How "standard" weighting treats negative similarities (``relative.negatives``; see `standard`)."""


# entmax-family outputs are exactly 0 below max - 1 (sparsemax) or max - 2 (entmax-1.5); dropped
# entries are set below that instead of -inf, so the library never does arithmetic on infinities.
_SPARSE_FLOOR = 10.0


def check_tau(tau: float) -> None:
    """Temperatures must be positive (sim / tau)."""
    if not tau > 0:
        raise InputError(f"tau must be > 0, got {tau!r}", key="relative.tau", expected="a positive number")


def standard(values: Tensor, negatives: str = "clip") -> Tensor:
    """Similarities normalised to sum 1 (the paper's "standard"); weights must not be negative, so
    ``negatives`` says what happens to negative similarities (the paper does not say):

    - ``clip``: set to 0, so such anchors get no weight and a mix of signs cannot cancel into a
      near-zero denominator. With CSLS (often <= 0) or k = all, clipping decides most weights.
    - ``shift``: a row whose smallest kept similarity is negative is shifted up by that amount first
      (``s - min(row)``), so its least similar kept anchor gets weight 0 and the others keep their
      differences; rows without a negative similarity are unchanged (the same weights as clip).

    A row whose (clipped or shifted) similarities are all 0 gets uniform weights over its kept
    entries: the anchors were still its best, just not positively. Configs must choose ``negatives``
    whenever the similarity can be negative (`mosecrot.relative.RelativeConfig.check_negatives`).
    """
    if negatives not in NEGATIVES:
        raise InputError(f"unknown negatives {negatives!r}", key="relative.negatives", expected=" or ".join(NEGATIVES))
    if negatives == "shift":
        row_min = torch.where(torch.isfinite(values), values, torch.inf).amin(1, keepdim=True)
        values = values - row_min.clamp(max=0)  # dropped entries stay -inf
    pos = values.clamp(min=0)  # dropped entries (-inf) become 0 too
    total = pos.sum(1, keepdim=True)
    tiny = torch.finfo(values.dtype).tiny
    weights = pos.div_(total.clamp(min=tiny))
    degenerate = total <= tiny
    if bool(degenerate.any()):
        uniform = torch.isfinite(values).to(values.dtype)
        weights = torch.where(degenerate, uniform / uniform.sum(1, keepdim=True), weights)
    return weights


def softmax(values: Tensor, tau: float = 1.0) -> Tensor:
    """softmax(sim / tau): dense over the kept entries; small tau approaches arg-max."""
    check_tau(tau)
    return torch.softmax(values / tau, dim=1)


def _floor_dropped(scaled: Tensor) -> Tensor:
    row_max = scaled.max(1, keepdim=True).values
    return torch.where(torch.isfinite(scaled), scaled, row_max - _SPARSE_FLOOR)


def sparsemax(values: Tensor, tau: float = 1.0) -> Tensor:
    """sparsemax(sim / tau) (Martins & Astudillo 2016): exact zeros for anchors far below the best."""
    check_tau(tau)
    return entmax.sparsemax(_floor_dropped(values / tau), dim=1)


def entmax15(values: Tensor, tau: float = 1.0) -> Tensor:
    """1.5-entmax(sim / tau) (Peters et al. 2019): between softmax and sparsemax in sparsity."""
    check_tau(tau)
    return entmax.entmax15(_floor_dropped(values / tau), dim=1)


WEIGHTINGS: dict[str, Callable[[Tensor, WeightingParams], Tensor]] = {
    "standard": lambda values, cfg: standard(values, cfg.negatives or "clip"),
    "softmax": lambda values, cfg: softmax(values, cfg.tau),
    "sparsemax": lambda values, cfg: sparsemax(values, cfg.tau),
    "entmax15": lambda values, cfg: entmax15(values, cfg.tau),
}


def get_weighting(name: str) -> Callable[[Tensor, WeightingParams], Tensor]:
    """Look up a weighting; unknown names list the valid ones."""
    return lookup(WEIGHTINGS, "weighting", name, "relative.weighting")
