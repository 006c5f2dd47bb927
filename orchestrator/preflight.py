"""Checks the commands run before any work: every one fails in seconds with an `InputError` naming the flag,
key, path or address, instead of hanging or failing with a traceback after minutes of work.

- `check_writable_dir`: an output or storage directory can be created and written (``--output-dir``,
  ``--storage-path``), without creating it;
- `check_ray_address`: a Ray cluster answers at ``--address`` (or ``$RAY_ADDRESS``), probed with a socket
  before ``ray.init`` (which retries an unreachable GCS for minutes and ignores SIGTERM meanwhile);
- `check_trials_fit`: one trial's Ray Train workers and Tune function fit on some node of the cluster
  (embedded Ray: this machine), else the trial would stay pending forever;
- `check_store_exists`: a SQLite MLflow store a read-only command (``report``) needs exists, so that it
  creates no empty store.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mosecrot.errors import InputError

GCS_PROBE_TIMEOUT_S = 3.0


def check_writable_dir(path: str | Path, flag: str) -> None:
    """``path`` is a writable directory, or can be created as one: its first existing ancestor is a writable
    directory and nothing on the way is a file. Creates nothing. ``flag`` names the option in the message."""
    target = Path(path).expanduser()
    probe = target if target.is_absolute() else Path.cwd() / target
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail
            raise InputError(f"{probe} is a dangling symbolic link", path=path, key=flag, expected="a directory")
        probe = probe.parent
    if not probe.is_dir():
        what = "a file, not a directory" if probe == target else f"under {probe}, which is a file"
        raise InputError(what, path=path, key=flag, expected="a writable directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "not writable" if probe == target else f"cannot be created: {probe} is not writable"
        raise InputError(what, path=path, key=flag, expected="a writable directory")


def ray_address(address: str | None) -> str | None:
    """The cluster ``ray.init`` will join: the flag, else ``$RAY_ADDRESS``, else None (embedded Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def split_address(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (or ``ray://HOST:PORT``) as (host, port); None for ``auto``/``local`` and forms Ray resolves
    itself."""
    text = address.strip()
    if "://" in text:
        scheme, _, text = text.partition("://")
        if scheme not in ("ray", "rays"):
            return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def check_ray_address(address: str | None, flag: str = "--address", timeout: float = GCS_PROBE_TIMEOUT_S) -> None:
    """A TCP connection to the cluster's GCS (or Ray client server) port succeeds within ``timeout`` seconds."""
    target = ray_address(address)
    if target is None:
        return
    hostport = split_address(target)
    if hostport is None:
        return  # auto/local: ray.init reports a missing cluster at once itself
    shown = flag if address else "$RAY_ADDRESS"
    try:
        with socket.create_connection(hostport, timeout=timeout):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise InputError(
            f"no Ray cluster answers at {target} ({reason} after at most {timeout:.0f} s)",
            key=shown,
            expected="HOST:PORT of a running Ray head (`ray start --head` prints it), 'auto' on a cluster node, "
            "or no --address for embedded Ray",
        ) from None


def trial_bundles(
    space: Any, driver_resources: Mapping[str, float] | None, worker_resources: Mapping[str, float] | None
) -> list[tuple[str, dict[str, float]]]:
    """What one trial asks of single nodes: each Ray Train worker (``resources.*_per_worker`` plus
    ``worker_resources``) and the trial's Tune function (``driver_resources``); in local mode the trial alone,
    holding the worker's share. Zero amounts are dropped."""
    from orchestrator.ray_tune import per_worker_resources

    worker = {k: float(v) for k, v in per_worker_resources(space).items()}
    for k, v in (worker_resources or {}).items():
        worker[k] = worker.get(k, 0.0) + float(v)
    driver = {k: float(v) for k, v in (driver_resources or {}).items()}
    if space.resources.local_mode:  # the trial's own process trains and holds what a Train worker would
        return [("the trial (local mode)", {k: v for k, v in worker.items() if v > 0})]
    return [
        ("a Ray Train worker", {k: v for k, v in worker.items() if v > 0}),
        ("the trial's Tune function", {k: v for k, v in driver.items() if v > 0}),
    ]


def check_trials_fit(
    space: Any,
    nodes: Sequence[Mapping[str, float]],
    driver_resources: Mapping[str, float] | None = None,
    worker_resources: Mapping[str, float] | None = None,
    where: str = "this machine",
) -> None:
    """Every bundle of one trial fits on some node (each node's total resources), else an InputError naming the
    resources key, the request and what the largest node has."""
    for what, bundle in trial_bundles(space, driver_resources, worker_resources):
        if not bundle or any(all(node.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items()) for node in nodes):
            continue
        missing = sorted({k for k, v in bundle.items() if not any(n.get(k, 0.0) + 1e-9 >= v for n in nodes)})
        key = {"CPU": "resources.cpus_per_worker", "GPU": "resources.gpus_per_worker"}.get(
            missing[0] if missing else "", "--driver-resources / $MOSECROT_WORKER_RESOURCES"
        )
        have = ", ".join(
            f"{k} {max((n.get(k, 0.0) for n in nodes), default=0.0):g}" for k in (missing or sorted(bundle))
        )
        ask = ", ".join(f"{k} {v:g}" for k, v in sorted(bundle.items()))
        raise InputError(
            f"{what} of each trial asks for {ask}, but no node of {where} has that much (largest: {have}); "
            "the trials would wait forever",
            key=key,
            expected="a request that fits one node, or a cluster (--address) with such nodes",
        )


def embedded_nodes(num_cpus: int | None = None) -> list[dict[str, float]]:
    """The one node an embedded ``ray.init`` would start here: its CPUs (``num_cpus``, else Ray's count) and GPUs."""
    cpus = float(num_cpus) if num_cpus is not None else float(_ray_cpu_count())
    node = {"CPU": cpus}
    gpus = _gpu_count()
    if gpus:
        node["GPU"] = float(gpus)
    return [node]


def live_nodes() -> list[dict[str, float]]:
    """Total resources of each alive node of the connected Ray cluster."""
    import ray

    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]


def _ray_cpu_count() -> int:
    try:  # Ray's own count honours cgroup (container) CPU limits
        from ray._private.utils import get_num_cpus

        return int(get_num_cpus())
    except Exception:  # a Ray without it: the CPUs this process may run on
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _gpu_count() -> int:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return 0
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:
        return 0


def check_store_exists(uri: str, flag: str = "--tracking-uri") -> None:
    """A read-only command must not create an MLflow store: a ``sqlite:///`` file (or ``file:`` directory) that
    does not exist is an error naming it."""
    path: Path | None = None
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :]).expanduser()
    elif uri.startswith("file:"):
        path = Path(urlparse(uri).path)
    elif "://" not in uri:
        path = Path(uri).expanduser()
    if path is not None and not path.exists():
        raise InputError(
            f"no MLflow store at {path}: nothing was logged there",
            path=path,
            key=flag,
            expected="the tracking URI the sweep logged to (mosecrot sweep --tracking-uri, $MLFLOW_TRACKING_URI)",
        )
