"""Relative-representation mapping F: every token of a space becomes a weighted average of the
English PLM embeddings of its most similar anchors (MoSECroT).

``F(z) = sum_{j in kept(z)} w_zj * E_s[a_s_j]`` where similarities are measured *in z's own space*
against that space's anchor rows. Work is done in chunks of query rows, so memory is bounded by
``chunk_size x n_anchors`` plus the output, never ``n x m``: the chunk's similarity block is
sparsified (torch.topk), weighted, and combined with ``embedding_bag`` (a fused weighted gather of
anchor embeddings, no ``chunk x k x D`` intermediate) or, when every anchor is kept, one matmul.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mosecrot.errors import InputError, rebase_key, unknown_choice
from mosecrot.relative.similarity import NON_NEGATIVE_SIMILARITIES, get_similarity, iter_chunks
from mosecrot.relative.sparsify import check_k, get_sparsifier
from mosecrot.relative.weighting import NEGATIVES, check_tau, get_weighting

log = logging.getLogger(__name__)

Matrix = Tensor | np.ndarray


@dataclass
class RelativeConfig:
    """How relative representations become a mapping; defaults are the paper's (cosine, top-50, standard).

    ``negatives`` (read by "standard" weighting only): ``clip`` or ``shift`` negative similarities
    (`mosecrot.relative.weighting.standard`). None is "not chosen": a config that uses standard weighting
    with a similarity that can be negative is refused when it is loaded (`check_negatives`); from Python,
    None behaves as clip.
    """

    similarity: str = "cosine"  # a SIMILARITIES name
    sparsify: str = "topk"  # a SPARSIFIERS name
    k: int | str = 50  # topk: anchors kept per token, or "all"
    threshold: float = 0.0  # threshold: keep similarities >= this
    weighting: str = "standard"  # a WEIGHTINGS name
    tau: float = 1.0  # temperature of softmax / sparsemax / entmax15 (sim / tau)
    negatives: str | None = None  # standard weighting: clip | shift negative similarities (None: not chosen)
    csls_k: int = 10  # csls: neighbourhood size K of the hubness terms
    # Repaired geometry (Mu & Viswanath 2018, "all-but-the-top"): before similarities, subtract each space's
    # mean (computed over its whole vocabulary: the neighbourhood rows) and project out its top principal
    # components. Static and PLM input spaces are anisotropic; a few common directions dominate cosines.
    center: bool = False
    remove_pcs: int = 0  # how many top principal components to remove (implies centring)
    # F_t's temperature: "fixed" (tau, as F_s) or "entropy": the tau at which the mean entropy of F_t's weight
    # rows equals F_s's at ``tau`` (`calibrate_tau`), so both spaces spread their weight alike although their
    # similarity scales differ (temperature-based weightings only).
    tau_calibration: str = "fixed"
    chunk_size: int = 2048  # query rows per block: memory ~ chunk_size x n_anchors floats

    def validate(self, n_anchors: int | None = None, *, prefix: str | None = None) -> None:
        """Raise InputError on bad values; anchor-count checks run when ``n_anchors`` is given.
        ``prefix``: the dotted key this config was loaded under (errors name it)."""
        try:
            self._validate(n_anchors)
        except InputError as err:
            if prefix is None or prefix == "relative":
                raise
            raise rebase_key(err, "relative", prefix) from err

    def _validate(self, n_anchors: int | None) -> None:
        get_similarity(self.similarity)
        get_sparsifier(self.sparsify)
        get_weighting(self.weighting)
        check_k(self.k, n_anchors if self.sparsify == "topk" else None)
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise InputError(f"threshold must be a finite number, got {t!r}", key="relative.threshold")
        check_tau(self.tau)
        if self.negatives is not None and self.negatives not in NEGATIVES:
            raise unknown_choice("negatives", self.negatives, NEGATIVES, key="relative.negatives")
        _check_positive_int(self.csls_k, "relative.csls_k")
        if self.similarity == "csls" and n_anchors is not None and self.csls_k > n_anchors:
            raise InputError(
                f"csls_k={self.csls_k} is larger than the number of anchors ({n_anchors})",
                key="relative.csls_k",
                expected=f"csls_k <= {n_anchors}",
            )
        _check_positive_int(self.chunk_size, "relative.chunk_size")
        if not isinstance(self.center, bool):
            raise InputError(f"expected true or false, got {self.center!r}", key="relative.center")
        r = self.remove_pcs
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise InputError(f"expected an integer >= 0, got {r!r}", key="relative.remove_pcs")
        if self.tau_calibration not in TAU_CALIBRATIONS:
            raise unknown_choice(
                "tau calibration", self.tau_calibration, TAU_CALIBRATIONS, key="relative.tau_calibration"
            )
        if self.tau_calibration == "entropy" and self.weighting == "standard":
            raise InputError(
                "tau_calibration entropy calibrates a temperature, and standard weighting has none",
                key="relative.tau_calibration",
                expected="weighting softmax / sparsemax / entmax15, or tau_calibration fixed",
            )

    def check_negatives(self, prefix: str = "relative") -> None:
        """Refuse "standard" weighting over similarities that can be negative unless ``negatives`` says what
        happens to them (run when a config is loaded; ``prefix``: the dotted key of this config)."""
        if self.weighting != "standard" or self.negatives is not None or self.similarity in NON_NEGATIVE_SIMILARITIES:
            return
        raise InputError(
            f"standard weighting (the default) normalises similarities to sum 1, but {self.similarity} similarities "
            "can be negative and the weights cannot",
            key=f"{prefix}.weighting",
            expected=f"{prefix}.negatives: clip (negative similarities get weight 0, the behaviour before this "
            "option) or shift (a row's similarities minus its most negative kept one); or a similarity that is "
            "never negative (euclidean); or weighting softmax / sparsemax / entmax15",
        )


def _check_positive_int(value: object, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"expected a positive integer, got {value!r}", key=key)


@dataclass
class MappingDiagnostics:
    """Cheap per-mapping statistics for logging (means over tokens)."""

    n_tokens: int
    n_anchors: int
    mean_max_similarity: float  # how close each token's best anchor is
    zero_weight_fraction: float  # share of kept anchors that got weight exactly 0 (sparsemax/entmax)
    mean_support: float  # anchors with non-zero weight per token
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class MappingResult:
    matrix: Tensor  # n x D float32
    diagnostics: MappingDiagnostics


def _as_matrix(x: Matrix, key: str) -> Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise InputError(f"expected a 2-d matrix, got shape {tuple(t.shape)}", key=key)
    return t


def _check_inputs(space: Tensor, anchor_rows: Tensor, anchor_targets: Tensor) -> None:
    if anchor_rows.shape[0] == 0:
        raise InputError("no anchors", key="relative.anchor_rows", expected="at least one anchor row")
    if anchor_rows.shape[0] != anchor_targets.shape[0]:
        raise InputError(
            f"{anchor_rows.shape[0]} anchor rows but {anchor_targets.shape[0]} anchor targets",
            key="relative.anchor_targets",
            expected="one PLM embedding per anchor",
        )
    if space.shape[1] != anchor_rows.shape[1]:
        raise InputError(
            f"space has dimension {space.shape[1]} but anchor rows have {anchor_rows.shape[1]}",
            key="relative.anchor_rows",
            expected="anchor rows taken from the same space",
        )
    for name, t in (("anchor_rows", anchor_rows), ("anchor_targets", anchor_targets)):
        if not bool(torch.isfinite(t).all()):
            raise InputError("contains NaN or infinite values", key=f"relative.{name}")


def compute_mapping(
    space: Matrix,
    anchor_rows: Matrix,
    anchor_targets: Matrix,
    config: RelativeConfig | None = None,
    *,
    device: str | torch.device | None = None,
    neighbourhood: Matrix | None = None,
    anchor_weights: Sequence[float] | None = None,
) -> MappingResult:
    """Map every row of ``space`` (n x d) to PLM width D, with diagnostics.

    ``anchor_rows`` (m x d) are the anchors' rows *in the same space* (they define similarity);
    ``anchor_targets`` (m x D) are the anchors' English PLM embeddings (what gets averaged).
    ``neighbourhood`` (N x d, default ``space``): the rows a similarity's neighbourhood terms are computed
    over (CSLS's r_a), e.g. the whole static vocabulary when ``space`` is only the words being evaluated, so
    that no row depends on which other rows are mapped with it.
    ``anchor_weights`` (m, non-negative; `mosecrot.anchor_growth`): how much each anchor is trusted. A row's
    weights are multiplied by them and rescaled to the row's own total, so a distrusted anchor gives its share
    to the others kept for that row (for softmax this is softmax(sim / tau + log w)).
    The result lives on ``device`` (default CPU); ``space`` is moved there one chunk at a time.
    """
    cfg = config or RelativeConfig()
    space_t = _as_matrix(space, "relative.space")
    rows = _as_matrix(anchor_rows, "relative.anchor_rows")
    targets = _as_matrix(anchor_targets, "relative.anchor_targets")
    _check_inputs(space_t, rows, targets)
    neigh_t = space_t if neighbourhood is None else _as_matrix(neighbourhood, "relative.neighbourhood")
    if neigh_t.shape[1] != rows.shape[1]:
        raise InputError(
            f"neighbourhood has dimension {neigh_t.shape[1]} but anchor rows have {rows.shape[1]}",
            key="relative.neighbourhood",
            expected="rows of the same space as the anchors",
        )
    cfg.validate(rows.shape[0])
    trust = _anchor_trust(anchor_weights, rows.shape[0])
    repair = geometry_repair(neigh_t, cfg)
    if repair is not None:
        rows, neigh_t = repair(rows.float()), repair(neigh_t.float())
    dev = torch.device(device) if device is not None else torch.device("cpu")
    prepare = get_similarity(cfg.similarity)
    sparsify = get_sparsifier(cfg.sparsify)
    weigh = get_weighting(cfg.weighting)

    started = time.perf_counter()
    n, m = space_t.shape[0], rows.shape[0]
    out = torch.empty(n, targets.shape[1], dtype=torch.float32, device=dev)
    max_sim, kept_total, zero_total, support_total = 0.0, 0, 0, 0
    with torch.inference_mode():
        rows = rows.to(device=dev, dtype=torch.float32)
        targets = targets.to(device=dev, dtype=torch.float32)
        block = prepare(neigh_t, rows, chunk_size=cfg.chunk_size, csls_k=cfg.csls_k, device=dev)
        for start, chunk in iter_chunks(space_t, cfg.chunk_size, dev):
            if not bool(torch.isfinite(chunk).all()):
                bad = start + int((~torch.isfinite(chunk)).any(1).nonzero()[0])
                raise InputError(f"row {bad} contains NaN or infinite values", key="relative.space")
            if repair is not None:
                chunk = repair(chunk)
            selection = sparsify(block(chunk), cfg)
            weights = weigh(selection.values, cfg)
            if trust is not None:
                weights = _trusted(weights, trust.to(dev), selection.index)
            if selection.index is None:
                out[start : start + chunk.shape[0]] = weights @ targets
            else:
                out[start : start + chunk.shape[0]] = F.embedding_bag(
                    selection.index, targets, per_sample_weights=weights, mode="sum"
                )
            kept = torch.isfinite(selection.values)
            nonzero = weights > 0
            max_sim += float(selection.values.max(1).values.sum())
            kept_total += int(kept.sum())
            zero_total += int((kept & ~nonzero).sum())
            support_total += int(nonzero.sum())
    diagnostics = MappingDiagnostics(
        n_tokens=n,
        n_anchors=m,
        mean_max_similarity=max_sim / n if n else math.nan,
        zero_weight_fraction=zero_total / kept_total if kept_total else math.nan,
        mean_support=support_total / n if n else math.nan,
        seconds=time.perf_counter() - started,
    )
    log.info("relative mapping %s: %s", cfg, diagnostics)
    return MappingResult(out, diagnostics)


def _anchor_trust(anchor_weights: Sequence[float] | None, n_anchors: int) -> Tensor | None:
    if anchor_weights is None:
        return None
    trust = torch.as_tensor(list(anchor_weights), dtype=torch.float32)
    if trust.shape != (n_anchors,) or not bool(torch.isfinite(trust).all()) or bool((trust < 0).any()):
        raise InputError(
            f"{trust.numel()} anchor weights for {n_anchors} anchors",
            key="anchors.weights",
            expected="one finite non-negative weight per anchor",
        )
    return None if bool((trust == 1).all()) else trust


def _trusted(weights: Tensor, trust: Tensor, index: Tensor | None) -> Tensor:
    """Each row's weights times its anchors' trust, rescaled to the row's own total (rows whose kept anchors
    are all untrusted keep their weights)."""
    scaled = weights * (trust[index] if index is not None else trust[None, :])
    total, new_total = weights.sum(1, keepdim=True), scaled.sum(1, keepdim=True)
    return torch.where(new_total > 0, scaled * (total / new_total.clamp_min(1e-12)), weights)


def geometry_repair(reference: Tensor, cfg: RelativeConfig) -> Callable[[Tensor], Tensor] | None:
    """``x -> (x - mean) - (x - mean) U U^T`` with the mean and the top ``remove_pcs`` principal directions U of
    ``reference`` (the whole space); None when the config asks for neither centring nor removal."""
    if not cfg.center and not cfg.remove_pcs:
        return None
    ref = reference.float()
    mean = ref.mean(0)
    if cfg.remove_pcs:
        # Exact: the eigenvectors of the d x d covariance (d is a few hundred; no randomised PCA needed).
        centred = ref - mean
        _, vectors = torch.linalg.eigh(centred.double().T @ centred.double())
        u = vectors[:, -min(cfg.remove_pcs, ref.shape[1]) :].flip(1).float().contiguous()
    else:
        u = None

    def apply(x: Tensor) -> Tensor:
        y = x.float() - mean.to(x.device)
        if u is not None:
            uu = u.to(x.device)
            y = y - (y @ uu) @ uu.T
        return y

    return apply


TAU_CALIBRATIONS = ("fixed", "entropy")


def mean_weight_entropy(
    space: Tensor, anchor_rows: Tensor, cfg: RelativeConfig, neighbourhood: Tensor | None = None, sample: int = 2000
) -> float:
    """Mean entropy (nats) of the weight rows ``cfg`` gives an evenly spaced sample of ``space``'s rows."""
    neigh = space if neighbourhood is None else neighbourhood
    rows = space[:: max(1, space.shape[0] // sample)].float()
    repair = geometry_repair(neigh, cfg)
    anchors = anchor_rows.float()
    if repair is not None:
        rows, anchors, neigh = repair(rows), repair(anchors), repair(neigh.float())
    block = get_similarity(cfg.similarity)(neigh, anchors, chunk_size=cfg.chunk_size, csls_k=cfg.csls_k, device="cpu")
    with torch.inference_mode():
        weights = get_weighting(cfg.weighting)(get_sparsifier(cfg.sparsify)(block(rows), cfg).values, cfg)
        p = weights.clamp(min=0)
        p = p / p.sum(1, keepdim=True).clamp(min=1e-12)
        return float(-(p * torch.log(p.clamp(min=1e-30))).sum(1).mean())


def calibrate_tau(
    entropy: float, space: Tensor, anchor_rows: Tensor, cfg: RelativeConfig, neighbourhood: Tensor | None = None
) -> float:
    """The temperature at which ``space``'s mean weight entropy is ``entropy`` (bisection on log tau: the
    entropy of softmax / sparsemax / entmax rows grows with tau)."""
    lo, hi = math.log(1e-4), math.log(1e2)
    for _ in range(20):  # the log-tau interval shrinks to 2^-20 of its width: tau within 0.002% of the root
        mid = (lo + hi) / 2
        trial = replace(cfg, tau=math.exp(mid), tau_calibration="fixed")
        if mean_weight_entropy(space, anchor_rows, trial, neighbourhood) < entropy:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def build_mapping(
    space: Matrix,
    anchor_rows: Matrix,
    anchor_targets: Matrix,
    config: RelativeConfig | None = None,
    *,
    device: str | torch.device | None = None,
    neighbourhood: Matrix | None = None,
    anchor_weights: Sequence[float] | None = None,
) -> Tensor:
    """The mapping matrix F (n x D, float32) for every row of ``space``; see ``compute_mapping``."""
    return compute_mapping(
        space,
        anchor_rows,
        anchor_targets,
        config,
        device=device,
        neighbourhood=neighbourhood,
        anchor_weights=anchor_weights,
    ).matrix
