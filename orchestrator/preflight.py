"""Checks the commands run before any work: every one fails in seconds with an `InputError` naming the flag,
key, path or address, instead of hanging or failing with a traceback after minutes of work.

- `check_writable_dir`: an output or storage directory can be created and written (``--output-dir``,
  ``--storage-path``), without creating it;
- `check_ray_address`: a Ray cluster answers at ``--address`` (or ``$RAY_ADDRESS``), probed with a socket
  before ``ray.init`` (which retries an unreachable GCS for minutes and ignores SIGTERM meanwhile);
- `check_trials_fit`: one trial's Ray Train workers and Tune function fit on some node of the cluster
  (embedded Ray: this machine), else the trial would stay pending forever; `check_cluster_fit` on a connected
  cluster: some node alive or some node type its autoscaler may launch;
- `check_store_exists`: a SQLite MLflow store a read-only command (``report``) needs exists, so that it
  creates no empty store.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mosecrot.errors import InputError

log = logging.getLogger(__name__)
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


WORKER_FLAGS = "--worker-resources / $MOSECROT_WORKER_RESOURCES"
DRIVER_FLAGS = "--driver-resources / $MOSECROT_DRIVER_RESOURCES"


def trial_bundles(
    space: Any, driver_resources: Mapping[str, float] | None, worker_resources: Mapping[str, float] | None
) -> list[tuple[str, dict[str, float], dict[str, str]]]:
    """What one trial asks of single nodes: each Ray Train worker (``resources.*_per_worker``,
    ``resources.worker_resources`` and ``worker_resources``, which wins for a name both give) and the trial's Tune
    function (``driver_resources``); in local mode the trial alone, holding the worker's share. Zero amounts are
    dropped. Each bundle comes with the key or flag that asks for each of its resources."""
    from orchestrator.ray_tune import per_worker_resources

    worker = {k: float(v) for k, v in per_worker_resources(space).items()}
    keys = {name: f"resources.worker_resources.{name}" for name in space.resources.worker_resources}
    keys.update(CPU="resources.cpus_per_worker", GPU="resources.gpus_per_worker")
    for k, v in (worker_resources or {}).items():
        worker[k] = float(v)
        keys[k] = WORKER_FLAGS
    driver = {k: float(v) for k, v in (driver_resources or {}).items()}
    if space.resources.local_mode:  # the trial's own process trains and holds what a Train worker would
        return [("the trial (local mode)", {k: v for k, v in worker.items() if v > 0}, keys)]
    return [
        ("a Ray Train worker", {k: v for k, v in worker.items() if v > 0}, keys),
        ("the trial's Tune function", {k: v for k, v in driver.items() if v > 0}, dict.fromkeys(driver, DRIVER_FLAGS)),
    ]


def _fits(bundle: Mapping[str, float], node: Mapping[str, float]) -> bool:
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items())


def check_trials_fit(
    space: Any,
    nodes: Sequence[Mapping[str, float]],
    driver_resources: Mapping[str, float] | None = None,
    worker_resources: Mapping[str, float] | None = None,
    where: str = "this machine",
    names: Sequence[str] | None = None,
) -> None:
    """Every bundle of one trial fits on some node (each node's total resources), else an InputError naming the
    key that asks for the resource no node has enough of, the request and what the largest node has. ``names``:
    what to call each node in the message (a node type), else nothing."""
    for what, bundle, keys in trial_bundles(space, driver_resources, worker_resources):
        if not bundle or any(_fits(bundle, node) for node in nodes):
            continue
        missing = sorted({k for k, v in bundle.items() if not any(n.get(k, 0.0) + 1e-9 >= v for n in nodes)})
        # a resource no node has enough of names the key; else the bundle fits no node as a whole (the first key)
        blamed = missing or sorted(bundle)
        key = keys.get(blamed[0], WORKER_FLAGS)

        def largest(k: str) -> str:
            best = max(range(len(nodes)), key=lambda i: nodes[i].get(k, 0.0), default=None)
            amount = nodes[best].get(k, 0.0) if best is not None else 0.0
            named = f" ({names[best]})" if names and best is not None and amount > 0 else ""
            return f"{k} {amount:g}{named}"

        have = ", ".join(largest(k) for k in blamed)
        ask = ", ".join(f"{k} {v:g}" for k, v in sorted(bundle.items()))
        raise InputError(
            f"{what} of each trial asks for {ask}, but no node of {where} has that much (largest: {have}); "
            "the trials would wait forever",
            key=key,
            expected="a request that fits one node, or a cluster (--address) with such nodes",
        )


def check_cluster_fit(
    space: Any,
    driver_resources: Mapping[str, float] | None = None,
    worker_resources: Mapping[str, float] | None = None,
) -> None:
    """`check_trials_fit` on the connected Ray cluster: against the node types its autoscaler may launch and the
    nodes alive now, or the live nodes alone where it has no autoscaler (or its node types cannot be read here,
    which is logged)."""
    infos = _live_node_infos()
    nodes = [dict(n.get("Resources") or {}) for n in infos]
    names = [f"node {n.get('NodeManagerAddress', '?')}" for n in infos]
    found = autoscaler_node_types()
    if found is None:
        check_trials_fit(space, nodes, driver_resources, worker_resources, "the connected Ray cluster", names)
        return
    source, types = found
    if types is None:
        log.warning(
            "the Ray cluster has an autoscaler, but its node types cannot be read from here (%s): trials that "
            "no node type can hold are not refused before the sweep",
            source,
        )
        return
    check_trials_fit(
        space,
        [*types.values(), *nodes],
        driver_resources,
        worker_resources,
        f"the Ray cluster, nor any node type its autoscaler may launch ({source}),",
        [f"node type {t}" for t in types] + names,
    )


def autoscaler_node_types() -> tuple[str, dict[str, dict[str, float]] | None] | None:
    """The node types the connected cluster's autoscaler may launch, as ``(source, {type: resources})``: from the
    cluster config the autoscaler reported to the GCS (KubeRay, autoscaler v2), else from the autoscaling config
    file of its monitor process when that runs on this machine (``ray start --autoscaling-config``, ``ray up``'s
    head: a driver submitted with ``ray job submit``). ``(why, None)`` where the cluster may have an autoscaler
    whose node types cannot be read here; None where it has none (Ray's read-only autoscaler of a cluster of
    ``ray start`` nodes, embedded Ray)."""
    import json

    import ray
    import ray._private.state
    from ray._private import ray_constants

    try:
        config = ray._private.state.state.get_cluster_config()
    except Exception:
        config = None
    if config is not None and config.node_group_configs:
        types = {
            g.name or f"group {i}": {k: float(v) for k, v in g.resources.items()}
            for i, g in enumerate(config.node_group_configs)
            if g.max_count != 0
        }
        return "the cluster config in the GCS", types
    monitor = _local_monitor_args(ray.get_runtime_context().gcs_address)
    if monitor is not None:
        path = _option(monitor, "--autoscaling-config")
        if path is None:
            return None  # a monitor without a config runs Ray's read-only autoscaler: no node types to launch
        try:
            return path, node_types_of(yaml_load(Path(path).expanduser()))
        except Exception as err:  # a config the autoscaler reads but this check cannot: no refusal on a guess
            return f"{path}: {err}", None
    gcs = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]
    raw = gcs.internal_kv_get(ray_constants.DEBUG_AUTOSCALING_STATUS.encode(), None)
    try:
        report = (json.loads(raw) if raw else {}).get("autoscaler_report")
    except (ValueError, AttributeError):
        report = None
    if not isinstance(report, dict):
        return "its autoscaler runs on another machine and has not reported yet", None
    mapping = report.get("node_type_mapping") or {}
    if mapping and all(kind == f"node_{node}" for node, kind in mapping.items()):
        return None  # the read-only autoscaler names each node's type after the node
    return "its autoscaler runs on another machine", None


def _local_monitor_args(gcs_address: str) -> list[str] | None:
    """The arguments of the autoscaler's monitor process of the cluster at ``gcs_address``, if it runs on this
    machine."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.endswith("autoscaler/_private/monitor.py") or a.endswith("autoscaler/v2/monitor.py") for a in args):
            if _option(args, "--gcs-address") == gcs_address:
                return args
    return None


def _option(args: list[str], name: str) -> str | None:
    """The value of ``name`` in an argument list (``--name=VALUE`` or ``--name VALUE``)."""
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def yaml_load(path: Path) -> dict:
    import yaml

    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    return data


def node_types_of(config: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{type: resources}`` of an autoscaling config (cluster.yaml's ``available_node_types``), without the
    types capped at ``max_workers: 0`` other than the head's; CPU, GPU and memory a type does not list are
    detected by Ray at launch, so they count as unlimited here."""
    head = config.get("head_node_type")
    out = {}
    for name, spec in (config.get("available_node_types") or {}).items():
        spec = spec or {}
        if name != head and spec.get("max_workers", config.get("max_workers", 1)) == 0:
            continue
        resources = {k: float(v) for k, v in (spec.get("resources") or {}).items()}
        for detected in ("CPU", "GPU", "memory"):
            resources.setdefault(detected, float("inf"))
        out[str(name)] = resources
    return out


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
    return [dict(n.get("Resources") or {}) for n in _live_node_infos()]


def _live_node_infos() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


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
