"""Relative-representation mapping: exactness, weight properties, chunking invariance, CSLS, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosecrot.errors import InputError
from mosecrot.relative import (
    SIMILARITIES,
    SPARSIFIERS,
    WEIGHTINGS,
    RelativeConfig,
    build_mapping,
    compute_mapping,
)
from mosecrot.relative.similarity import prepare_csls
from mosecrot.relative.sparsify import row_topk, threshold, topk
from mosecrot.relative.weighting import entmax15, softmax, sparsemax, standard
from mosecrot.stitching import source_mapping

WEIGHT_FNS = {
    "standard": standard,
    "softmax": lambda v: softmax(v, 0.5),
    "sparsemax": lambda v: sparsemax(v, 0.5),
    "entmax15": lambda v: entmax15(v, 0.5),
}


def _data(n=60, d=12, m=15, D=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    space = torch.randn(n, d, generator=g)
    rows = space[torch.randperm(n, generator=g)[:m]]
    targets = torch.randn(m, D, generator=g)
    return space, rows, targets


def _dense_reference(space, rows, targets, cfg: RelativeConfig) -> torch.Tensor:
    """Full n x m similarity matrix in float64, dense mask, weights, one matmul."""
    x, a = space.double(), rows.double()
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(a, dim=1).T
    if cfg.similarity == "cosine":
        sims = cos
    elif cfg.similarity == "dot":
        sims = x @ a.T
    elif cfg.similarity == "euclidean":
        sims = 1 / (1 + torch.cdist(x, a))
    else:
        sims = _naive_csls(x, a, cfg.csls_k)
    if cfg.sparsify == "topk":
        keep = torch.zeros_like(sims, dtype=torch.bool)
        if cfg.k == "all":
            keep[:] = True
        else:
            keep.scatter_(1, sims.argsort(1, descending=True)[:, : cfg.k], True)
    else:
        keep = sims >= cfg.threshold
        keep[torch.arange(len(sims)), sims.argmax(1)] = True
    masked = sims.masked_fill(~keep, float("-inf")).float()
    weights = WEIGHTINGS[cfg.weighting](masked, cfg).double()
    return (weights @ targets.double()).float()


def _naive_csls(x, a, K):
    """Conneau et al. 2018 written out with Python loops."""
    n, m = len(x), len(a)
    cos = torch.empty(n, m, dtype=torch.float64)
    for i in range(n):
        for j in range(m):
            cos[i, j] = torch.dot(x[i], a[j]) / (x[i].norm() * a[j].norm())
    r_a = [sorted(cos[:, j].tolist(), reverse=True)[: min(K, n)] for j in range(m)]
    r_x = [sorted(cos[i].tolist(), reverse=True)[:K] for i in range(n)]
    out = torch.empty_like(cos)
    for i in range(n):
        for j in range(m):
            out[i, j] = 2 * cos[i, j] - np.mean(r_a[j]) - np.mean(r_x[i])
    return out


# --- exactness -----------------------------------------------------------------------------------


def test_k1_anchor_token_maps_exactly_to_its_own_embedding():
    g = torch.Generator().manual_seed(1)
    E_s = torch.randn(40, 16, generator=g)
    ids = [3, 7, 11, 20, 25, 39]
    F = source_mapping(E_s, ids, [], RelativeConfig(k=1))
    assert torch.equal(F[ids], E_s[ids])
    # a non-anchor token becomes the embedding of its nearest anchor (by cosine)
    cos = torch.nn.functional.normalize(E_s, dim=1) @ torch.nn.functional.normalize(E_s[ids], dim=1).T
    nearest = torch.tensor(ids)[cos.argmax(1)]
    assert torch.equal(F, E_s[nearest])


def test_k1_target_anchor_word_maps_to_english_anchor_embedding():
    g = torch.Generator().manual_seed(2)
    E_t = torch.randn(50, 10, generator=g)
    E_s_anchor = torch.randn(5, 7, generator=g)
    idx = np.array([4, 9, 17, 30, 44])
    F_t = build_mapping(E_t.numpy(), E_t.numpy()[idx], E_s_anchor, RelativeConfig(k=1))
    assert F_t.shape == (50, 7) and F_t.dtype == torch.float32
    assert torch.equal(F_t[idx], E_s_anchor)


@pytest.mark.parametrize("similarity", sorted(SIMILARITIES))
@pytest.mark.parametrize("weighting", sorted(WEIGHTINGS))
@pytest.mark.parametrize("sparsify,k,t", [("topk", 4, 0.0), ("topk", "all", 0.0), ("threshold", 50, 0.3)])
def test_mapping_matches_dense_reference(similarity, weighting, sparsify, k, t):
    space, rows, targets = _data()
    cfg = RelativeConfig(
        similarity=similarity, weighting=weighting, sparsify=sparsify, k=k, threshold=t, tau=0.5, csls_k=3, chunk_size=7
    )
    got = build_mapping(space, rows, targets, cfg)
    # euclidean via ||x||^2 - 2x.a + ||a||^2 in float32 loses ~sqrt(eps) near distance 0 (anchor to itself)
    tol = 3e-3 if similarity == "euclidean" else 1e-4
    torch.testing.assert_close(got, _dense_reference(space, rows, targets, cfg), atol=tol, rtol=tol)


# --- chunking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("similarity", sorted(SIMILARITIES))
@pytest.mark.parametrize(
    "sparsify,k,t",
    [("topk", 5, 0.0), ("topk", "all", 0.0), ("threshold", 50, 0.5), ("threshold", 50, -1.0), ("threshold", 50, 9.0)],
)
def test_chunked_equals_unchunked(similarity, sparsify, k, t):
    space, rows, targets = _data(n=53)
    base = dict(similarity=similarity, sparsify=sparsify, k=k, threshold=t, weighting="softmax", csls_k=4)
    small = build_mapping(space, rows, targets, RelativeConfig(**base, chunk_size=7))
    whole = build_mapping(space, rows, targets, RelativeConfig(**base, chunk_size=10_000))
    torch.testing.assert_close(small, whole, atol=1e-5, rtol=1e-5)


def _densify(sel, shape):
    if sel.index is None:
        return sel.values
    return torch.full(shape, float("-inf")).scatter_(1, sel.index, sel.values)


def test_threshold_dense_and_sparse_paths_agree():
    space, rows, targets = _data(n=40, m=40)
    sims = torch.nn.functional.normalize(space, dim=1) @ torch.nn.functional.normalize(rows, dim=1).T
    for t in (0.6, -0.2):  # few kept per row (top-s path) and most kept (dense path)
        sel = threshold(sims.clone(), t)
        assert (sel.index is None) == (t < 0)
        dense = _densify(sel, sims.shape)
        expected = sims.masked_fill(sims < t, float("-inf"))
        expected[torch.arange(40), sims.argmax(1)] = sims.max(1).values
        assert torch.equal(dense, expected)


@pytest.mark.parametrize("m,k", [(1000, 7), (1003, 50), (997, 1), (1009, 5), (120, 30)])
def test_pruned_row_topk_matches_torch_topk(m, k):
    g = torch.Generator().manual_seed(m)
    sims = torch.randn(33, m, generator=g)
    sims[:11] = (sims[:11] * 2).round()  # many ties
    sims[11:22, -1] = 100.0  # the best anchor in the last column (outside the strided groups when m % b)
    values, index = row_topk(sims, k)
    expected = torch.topk(sims, k, dim=1).values
    assert torch.equal(values, expected)
    assert torch.equal(torch.gather(sims, 1, index), values)
    assert all(len(set(row)) == k for row in index.tolist())


def test_threshold_nothing_passes_keeps_single_best():
    sims = torch.tensor([[0.1, 0.4, 0.2], [-0.5, -0.9, -0.1]])
    dense = _densify(threshold(sims, 0.9), sims.shape)
    assert torch.isfinite(dense).sum(1).tolist() == [1, 1]
    assert dense.argmax(1).tolist() == [1, 2]


# --- CSLS ----------------------------------------------------------------------------------------


def test_csls_matches_naive_reference():
    space, rows, _ = _data(n=23, d=6, m=8)
    block = prepare_csls(space, rows, chunk_size=5, csls_k=3, device=torch.device("cpu"))
    got = torch.cat([block(space[i : i + 5]) for i in range(0, 23, 5)])
    expected = _naive_csls(space.double(), rows.double(), 3)
    torch.testing.assert_close(got.double(), expected, atol=1e-5, rtol=1e-5)


# --- weightings ----------------------------------------------------------------------------------


def _random_blocks():
    g = torch.Generator().manual_seed(3)
    values = torch.randn(64, 20, generator=g)
    values[:8] = -values[:8].abs() - 0.1  # all-negative rows
    values[8:12] = 0.0  # all-zero rows
    values[12:20, 5:] = float("-inf")  # rows keeping only 5 entries
    values[20:24, 1:] = float("-inf")  # rows keeping one entry
    return values


@pytest.mark.parametrize("name", sorted(WEIGHT_FNS))
def test_weights_nonnegative_and_sum_to_one(name):
    values = _random_blocks()
    w = WEIGHT_FNS[name](values)
    assert torch.isfinite(w).all()
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(1), torch.ones(len(w)), atol=1e-5, rtol=0)
    assert (w[~torch.isfinite(values)] == 0).all(), "dropped entries must get weight 0"


def test_weighting_registry_covers_tested_functions():
    assert set(WEIGHTINGS) == set(WEIGHT_FNS)


def test_standard_clips_negatives_and_falls_back_to_uniform():
    w = standard(torch.tensor([[-1.0, -2.0, float("-inf")], [0.6, -0.5, 0.2], [0.0, 0.0, 0.0]]))
    expected = torch.tensor([[0.5, 0.5, 0.0], [0.75, 0.0, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    torch.testing.assert_close(w, expected)


def test_sparsemax_gives_exact_zeros_and_matches_formula():
    z = torch.tensor([[1.0, 0.8, 0.1, -1.0]])
    w = sparsemax(z, 1.0)
    # support {0, 1}: threshold (1.0 + 0.8 - 1) / 2 = 0.4 -> weights 0.6, 0.4
    assert w[0, 2].item() == 0.0 and w[0, 3].item() == 0.0
    torch.testing.assert_close(w, torch.tensor([[0.6, 0.4, 0.0, 0.0]]))
    assert (entmax15(torch.tensor([[3.0, 0.0, -1.0]]), 1.0)[0, 1:] == 0).all()


def test_softmax_temperature():
    z = torch.tensor([[1.0, 0.0]])
    torch.testing.assert_close(softmax(z, 0.5), torch.softmax(z / 0.5, dim=1))


# --- diagnostics and output type -----------------------------------------------------------------


def test_diagnostics_and_trainable_output():
    space, rows, targets = _data()
    result = compute_mapping(space, rows, targets, RelativeConfig(k=10, weighting="sparsemax", tau=0.05))
    d = result.diagnostics
    assert d.n_tokens == 60 and d.n_anchors == 15
    assert 0 < d.zero_weight_fraction < 1 and 1 <= d.mean_support < 10
    assert 0 < d.mean_max_similarity <= 1 + 1e-6
    # the matrix is an ordinary tensor (not an inference tensor): it can become a trained parameter
    p = torch.nn.Parameter(result.matrix)
    (p * 2).sum().backward()
    assert p.grad is not None


def test_empty_space():
    _, rows, targets = _data()
    assert build_mapping(torch.empty(0, 12), rows, targets, RelativeConfig(k=3)).shape == (0, 9)


# --- bad input -----------------------------------------------------------------------------------


def test_k_larger_than_anchors_names_both_numbers():
    space, rows, targets = _data(m=15)
    with pytest.raises(InputError) as err:
        build_mapping(space, rows, targets, RelativeConfig(k=16))
    assert err.value.key == "relative.k" and "16" in str(err.value) and "15" in str(err.value)
    with pytest.raises(InputError):
        topk(torch.zeros(2, 3), 4)


@pytest.mark.parametrize("k", [0, -3, 2.5, "some", True])
def test_bad_k(k):
    with pytest.raises(InputError, match="relative.k"):
        RelativeConfig(k=k).validate(10)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_bad_tau(tau):
    with pytest.raises(InputError, match="relative.tau"):
        RelativeConfig(weighting="softmax", k=5, tau=tau).validate(10)
    with pytest.raises(InputError, match="relative.tau"):
        softmax(torch.zeros(1, 2), tau)


@pytest.mark.parametrize(
    "field,kind,registry",
    [
        ("similarity", "similarity", SIMILARITIES),
        ("weighting", "weighting", WEIGHTINGS),
        ("sparsify", "sparsifier", SPARSIFIERS),
    ],
)
def test_unknown_names_list_valid_ones(field, kind, registry):
    with pytest.raises(InputError) as err:
        RelativeConfig(**{field: "nope"}).validate(10)
    msg = str(err.value)
    assert f"unknown {kind} 'nope'" in msg
    assert all(name in msg for name in registry)


def test_anchor_count_mismatch():
    space, rows, targets = _data(m=15)
    with pytest.raises(InputError, match="15 anchor rows but 14 anchor targets"):
        build_mapping(space, rows, targets[:14])


def test_dimension_mismatch():
    space, rows, targets = _data(d=12)
    with pytest.raises(InputError, match="dimension 12 but anchor rows have 11"):
        build_mapping(space, rows[:, :11], targets)


def test_other_bad_inputs():
    space, rows, targets = _data(m=15)
    with pytest.raises(InputError, match="relative.csls_k"):
        RelativeConfig(similarity="csls", k=5, csls_k=16).validate(15)
    with pytest.raises(InputError, match="relative.chunk_size"):
        RelativeConfig(k=5, chunk_size=0).validate(15)
    with pytest.raises(InputError, match="no anchors"):
        build_mapping(space, rows[:0], targets[:0], RelativeConfig(k=5))
    bad = space.clone()
    bad[33, 2] = float("nan")
    with pytest.raises(InputError, match="row 33"):
        build_mapping(bad, rows, targets, RelativeConfig(k=5, chunk_size=8))
