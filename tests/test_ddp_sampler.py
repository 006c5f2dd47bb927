"""The run seed reaches the data order of every DDP rank: the hooks a Ray Train worker fine-tunes with
shard the training loader with a `DistributedSampler` seeded by the run seed (Ray's own
`prepare_data_loader` would use the sampler's default seed 0 for every run)."""

from types import SimpleNamespace

import pytest
import ray.train
import ray.train.torch
import torch

from mosecrot.training import EncodedSplit, TrainingConfig, train_loader
from orchestrator.ray_tune import worker_hooks


def _split(n: int = 64) -> EncodedSplit:
    return EncodedSplit([[5 + i % 7, 6] for i in range(n)], [i % 2 for i in range(n)])


def _rank_orders(monkeypatch, seed: int, world: int = 2) -> list[list[int]]:
    """The example order each of ``world`` simulated ranks sees in its first epoch."""
    orders = []
    for rank in range(world):
        context = SimpleNamespace(get_world_size=lambda: world, get_world_rank=lambda r=rank: r)
        monkeypatch.setattr(ray.train, "get_context", lambda c=context: c)
        monkeypatch.setattr(ray.train.torch, "get_device", lambda: torch.device("cpu"))
        # the process group of a real DDP run (a sampler built without num_replicas/rank asks it)
        monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: world)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, r=rank, **k: r)
        loader = train_loader(_split(), TrainingConfig(batch_size=4), seed, 0, worker_hooks(None, rank, local=False))
        sampler = loader.sampler
        assert isinstance(sampler, torch.utils.data.DistributedSampler)
        assert (sampler.num_replicas, sampler.rank) == (world, rank)
        sampler.set_epoch(0)
        orders.append(list(sampler))
    return orders


def test_ddp_data_order_varies_with_the_run_seed(monkeypatch):
    seed0, seed1 = _rank_orders(monkeypatch, 0), _rank_orders(monkeypatch, 1)
    assert seed0 != seed1, "two run seeds give the same DDP data order"
    assert seed0 == _rank_orders(monkeypatch, 0)  # and a seed gives the same order again
    for orders in (seed0, seed1):  # the ranks still split the examples between them
        assert sorted(orders[0] + orders[1]) == list(range(64))


@pytest.mark.parametrize("seed", [0, 3])
def test_one_process_keeps_its_own_seeded_shuffle(seed):
    loader = train_loader(_split(), TrainingConfig(batch_size=4), seed, 0)
    again = train_loader(_split(), TrainingConfig(batch_size=4), seed, 0)
    assert [b["labels"].tolist() for b in loader] == [b["labels"].tolist() for b in again]
