"""Similarity functions for relative representations, computed block-wise.

A similarity is a *prepare* function run once over the full matrices (normalise the anchors,
CSLS's hubness term r_a, ...) that returns a *block* function mapping one chunk of query rows
(c x d, float32, on the compute device) to its similarities with every anchor (c x m). Query
chunks are normalised inside the block function, never up front, so no n x d copy of the space
is ever made; the caller decides the chunk size, which bounds memory.

``space`` is what the neighbourhood terms are computed over: the rows being mapped by default, the
full static vocabulary for target words (`mosecrot.relative.compute_mapping`'s ``neighbourhood``), so
a word's row never depends on which other words are mapped with it.

Adding a similarity: write ``prepare_x(space, anchors, *, chunk_size, csls_k, device)`` and add
one line to ``SIMILARITIES`` (and to ``NON_NEGATIVE_SIMILARITIES`` if it is never negative).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from mosecrot.errors import lookup

BlockFn = Callable[[Tensor], Tensor]
"""Query chunk (c x d) -> similarities to all anchors (c x m)."""

_EPS = 1e-12  # zero rows normalise to zero vectors: cosine 0 with every anchor


def iter_chunks(space: Tensor, chunk_size: int, device: torch.device) -> Iterator[tuple[int, Tensor]]:
    """Yield ``(start, rows)`` with rows as float32 on ``device``; a float32 CPU space is not copied."""
    for start in range(0, space.shape[0], chunk_size):
        yield start, space[start : start + chunk_size].to(device=device, dtype=torch.float32)


def _normalise(x: Tensor) -> Tensor:
    return F.normalize(x, dim=1, eps=_EPS)


def prepare_cosine(space: Tensor, anchors: Tensor, *, chunk_size: int, csls_k: int, device: torch.device) -> BlockFn:
    """Cosine (the paper): anchors normalised once, each query chunk when it is used."""
    anchors_t = _normalise(anchors).T.contiguous()
    return lambda chunk: _normalise(chunk) @ anchors_t


def prepare_dot(space: Tensor, anchors: Tensor, *, chunk_size: int, csls_k: int, device: torch.device) -> BlockFn:
    """Raw dot product: keeps vector norms (e.g. frequency information in embedding norms)."""
    anchors_t = anchors.T.contiguous()
    return lambda chunk: chunk @ anchors_t


def prepare_euclidean(space: Tensor, anchors: Tensor, *, chunk_size: int, csls_k: int, device: torch.device) -> BlockFn:
    """``1 / (1 + ||x - a||)``: in (0, 1], 1 for identical vectors, decreasing with distance.

    Chosen over ``-||x - a||`` because it is positive, so "standard" weighting (normalise to sum 1)
    stays meaningful instead of clipping everything to zero. Distances come from
    ``||x||^2 - 2 x.a + ||a||^2`` (one matmul), clamped at 0 against cancellation; identical
    vectors may therefore score slightly below 1.
    """
    anchors_t = anchors.T.contiguous()
    anchor_sq = (anchors * anchors).sum(1)

    def block(chunk: Tensor) -> Tensor:
        sims = chunk @ anchors_t
        sims.mul_(-2).add_(anchor_sq).add_((chunk * chunk).sum(1, keepdim=True))
        return sims.clamp_(min=0).sqrt_().add_(1).reciprocal_()

    return block


def prepare_csls(space: Tensor, anchors: Tensor, *, chunk_size: int, csls_k: int, device: torch.device) -> BlockFn:
    """CSLS (Conneau et al. 2018): ``2 cos(x, a) - r_a - r_x``, penalising hub anchors.

    ``r_a`` = mean cosine of anchor a to its K nearest items of ``space`` (all n rows of the
    neighbourhood space: the whole PLM vocabulary for F_s, the whole static vocabulary for F_t; the
    anchor's own row included when it is one of them; K = min(csls_k, n)), found in one extra
    chunked pass that keeps a running top-K per anchor. ``r_x`` = mean cosine of x to its K
    nearest anchors, computed per chunk. r_x does not change a row's ranking but shifts its values,
    which matters for "standard" weighting.
    """
    anchors_t = _normalise(anchors).T.contiguous()
    k_a = min(csls_k, space.shape[0])
    best = torch.empty(0, anchors.shape[0], device=device)
    for _, chunk in iter_chunks(space, chunk_size, device):
        cos = _normalise(chunk) @ anchors_t
        merged = torch.cat([best, torch.topk(cos, min(k_a, cos.shape[0]), dim=0).values])
        best = torch.topk(merged, min(k_a, merged.shape[0]), dim=0).values
    r_a = best.mean(0) if k_a > 0 else torch.zeros(anchors.shape[0], device=device)

    def block(chunk: Tensor) -> Tensor:
        cos = _normalise(chunk) @ anchors_t
        r_x = torch.topk(cos, csls_k, dim=1).values.mean(1, keepdim=True)
        return cos.mul_(2).sub_(r_a).sub_(r_x)

    return block


SIMILARITIES: dict[str, Callable[..., BlockFn]] = {
    "cosine": prepare_cosine,
    "dot": prepare_dot,
    "euclidean": prepare_euclidean,
    "csls": prepare_csls,
}


NON_NEGATIVE_SIMILARITIES = frozenset({"euclidean"})
"""Similarities that are never negative; every other one (cosine, dot, csls, a plugin's) may be, so "standard"
weighting needs ``relative.negatives`` with it."""


def get_similarity(name: str) -> Callable[..., BlockFn]:
    """Look up a similarity's prepare function; unknown names list the valid ones."""
    return lookup(SIMILARITIES, "similarity", name, "relative.similarity")
