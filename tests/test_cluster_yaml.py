"""cluster.yaml: valid for Ray's autoscaler schema, and faithful to the project's cluster rules.

Two layers, each shown to reject a deliberately broken copy:

- Ray's own checks: the raw file against ``ray/autoscaler/ray-schema.json`` (the schema shipped in the
  installed ray package) with jsonschema, and ``prepare_config`` + ``validate_config`` — what ``ray up``
  does before it contacts AWS;
- the project's rules (`rule_violations`): a pinned ``rayproject/ray`` image (never ``ray-ml``) whose Ray
  version is pyproject.toml's pin, GPU worker types scaled from zero, the head's custom trial-driver
  resource, MLflow and the dashboard bound to 127.0.0.1, no ingress but SSH, the project installed with
  its pins, storage on S3.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster.yaml"
PYPROJECT = ROOT / "pyproject.toml"

# The custom resource the head node offers so trial drivers (each trial's Tune function) run there;
# orchestrator/sweep.py documents driver_resources={"CPU": 0, "trial_driver": 0.01}.
DRIVER_RESOURCE = "trial_driver"
LOOPBACK = ("127.0.0.1", "localhost")
WORLD = ("0.0.0.0/0", "::/0")
IMAGE_RE = re.compile(r"^rayproject/ray:(?P<ray>\d+\.\d+\.\d+)-py(?P<py>3\d+)-(?P<platform>gpu|cu\d+)$")


# --- helpers -----------------------------------------------------------------------------------------------


def load_cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())


def pinned(name: str) -> str:
    """The ``==`` version pyproject.toml pins for a dependency (extras allowed: ``ray[tune]==X``)."""
    for dep in pyproject()["project"]["dependencies"]:
        m = re.match(rf"^{re.escape(name)}(\[[^\]]*\])?==(?P<v>[\w.]+)$", dep.replace(" ", ""))
        if m:
            return m["v"]
    raise AssertionError(f"pyproject.toml does not pin {name}")


def ray_up_validate(config: dict) -> dict:
    """What `ray up` does with the file before contacting the cloud: defaults merged, then validated."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def all_commands(config: dict) -> list[tuple[str, str]]:
    """(section, command) for every shell command in the file."""
    out = []
    for key in (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    ):
        out += [(key, c) for c in config.get(key) or []]
    for name, node in (config.get("available_node_types") or {}).items():
        for key in ("initialization_commands", "worker_setup_commands"):
            out += [(f"{name}.{key}", c) for c in node.get(key) or []]
    return out


def flag_value(command: str, flag: str) -> str | None:
    m = re.search(rf"{re.escape(flag)}(?:=|\s+)[\"']?([^\s\"']+)", command)
    return m.group(1) if m else None


def images(config: dict) -> list[tuple[str, str]]:
    docker = config.get("docker") or {}
    out = [(k, docker[k]) for k in ("image", "head_image", "worker_image") if docker.get(k)]
    for name, node in (config.get("available_node_types") or {}).items():
        img = (node.get("docker") or {}).get("worker_image")
        if img:
            out.append((f"{name}.docker.worker_image", img))
    return out


def rule_violations(config: dict, text: str) -> list[str]:
    """Every broken project rule, as ``"rule-id: what is wrong"``; empty when the file is right."""
    bad: list[str] = []
    ray_pin, torch_pin = pinned("ray"), pinned("torch")
    node_types = config.get("available_node_types") or {}
    head_name = config.get("head_node_type")
    head = node_types.get(head_name) or {}
    head_res = head.get("resources") or {}

    # Image: rayproject/ray, pinned to pyproject's Ray, a GPU build for the project's Python; never ray-ml.
    found = images(config)
    if not found or "image" not in dict(found):
        bad.append("image: docker.image is not set (setup must run in the pinned container)")
    for where, img in found:
        m = IMAGE_RE.match(img)
        if "ray-ml" in img:
            bad.append(f"image: {where} is a ray-ml image ({img})")
        elif not m:
            bad.append(f"image: {where} {img!r} is not a pinned rayproject/ray:X.Y.Z-pyNNN-gpu tag")
        else:
            if m["ray"] != ray_pin:
                bad.append(f"image: {where} has Ray {m['ray']}, pyproject.toml pins ray=={ray_pin}")
            if m["py"] not in ("311", "312"):
                bad.append(f"image: {where} has py{m['py']}, pyproject.toml requires >=3.11,<3.13")

    # Node types: a CPU head with the trial-driver resource; GPU workers that scale from zero.
    if not head:
        bad.append(f"head: head_node_type {head_name!r} is not an available node type")
    if head_res.get("GPU", 0):
        bad.append("head: the head must be a CPU node (GPU > 0)")
    if not head_res.get(DRIVER_RESOURCE, 0) >= 1:
        bad.append(f"head: the head does not offer the custom resource {DRIVER_RESOURCE!r}")
    gpu_types = {n: t for n, t in node_types.items() if n != head_name and (t.get("resources") or {}).get("GPU", 0)}
    if not gpu_types:
        bad.append("gpu-workers: no worker node type with GPUs")
    for name, node in gpu_types.items():
        if node.get("min_workers") != 0:
            bad.append(f"gpu-workers: {name} has min_workers {node.get('min_workers')!r} (must be 0)")
    for name, node in node_types.items():
        if name != head_name and (node.get("resources") or {}).get(DRIVER_RESOURCE):
            bad.append(f"head: worker type {name} offers {DRIVER_RESOURCE!r} (trial drivers belong on the head)")

    commands = all_commands(config)
    # MLflow: a server started on the head, bound to loopback (reached by port forwarding only).
    mlflow = [(s, c) for s, c in commands if re.search(r"\bmlflow\s+(server|ui)\b", c)]
    if not any(s in ("head_setup_commands", "head_start_ray_commands") for s, _ in mlflow):
        bad.append("mlflow: no `mlflow server` started by the head's commands")
    for section, cmd in mlflow:
        if not section.startswith("head_"):
            bad.append(f"mlflow: an MLflow server in {section} (only the head runs one)")
        host = flag_value(cmd, "--host") or flag_value(cmd, "-h")
        if host not in LOOPBACK:
            bad.append(f"mlflow: the MLflow server in {section} binds {host!r}, not 127.0.0.1")
        if "sqlite:///" not in cmd:
            bad.append("mlflow: the MLflow server has no SQLite backend store")

    # Dashboard / job server on loopback; no command binds anything to all interfaces.
    heads = [c for s, c in commands if s == "head_start_ray_commands" and re.search(r"ray\s+start\b.*--head", c)]
    if not heads:
        bad.append("dashboard: no `ray start --head` in head_start_ray_commands")
    for cmd in heads:
        if flag_value(cmd, "--dashboard-host") not in LOOPBACK:
            bad.append(
                f"dashboard: `ray start --head` binds the dashboard to "
                f"{flag_value(cmd, '--dashboard-host')!r}, not 127.0.0.1"
            )
    for section, cmd in commands:
        if "0.0.0.0" in cmd or "::/0" in cmd:
            bad.append(f"dashboard: a command in {section} binds or opens 0.0.0.0: {cmd[:80]}")

    # Ingress: only SSH, and only the documented SSH may come from the whole internet.
    sg = (config.get("provider") or {}).get("security_group") or {}
    for rule in sg.get("IpPermissions") or []:
        ssh = rule.get("IpProtocol") == "tcp" and rule.get("FromPort") == 22 and rule.get("ToPort") == 22
        cidrs = [r.get("CidrIp") for r in rule.get("IpRanges") or []] + [
            r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or []
        ]
        if not ssh:
            bad.append(f"ingress: security_group.IpPermissions opens more than SSH: {rule}")
        elif any(c in WORLD for c in cidrs):
            bad.append(f"ingress: SSH from the whole internet in IpPermissions: {rule} (use your CIDR)")
    if not re.search(r"--port 22 --cidr", text):
        bad.append("ingress: the SSH-from-your-CIDR rule is not documented in cluster.yaml")

    # Setup: the project with its pins, from the synced working directory.
    setup = [c for s, c in commands if "setup_commands" in s]
    if not any(re.search(rf"pip install .*\btorch=={re.escape(torch_pin)}\b", c) for c in setup):
        bad.append(f"setup: torch=={torch_pin} (pyproject.toml's pin) is not installed by the setup commands")
    mounts = {remote for remote, local in (config.get("file_mounts") or {}).items() if local in (".", "./")}
    editable = [m for c in setup for m in re.findall(r"pip install .*-e [\"']?([^\s\"'\[]+)\[gpl\]", c)]
    if not editable:
        bad.append("setup: no `pip install -e PATH[gpl]` of the project")
    elif not set(editable) & mounts:
        bad.append(f"setup: the editable install ({editable}) is not the synced repository ({sorted(mounts)})")
    if any(re.search(r"pip install .*\bray(\[[^\]]*\])?(==|>=|\s|$)", c) for c in setup):
        bad.append("setup: the setup commands (re)install ray; the image pins it")

    # Storage on S3, documented with the flag the CLI takes.
    if not re.search(r"--storage-path s3://", text):
        bad.append("storage: `--storage-path s3://...` is not documented in cluster.yaml")
    return bad


# --- the file as shipped -----------------------------------------------------------------------------------


def test_cluster_yaml_matches_rays_schema():
    jsonschema.validate(load_cluster(), ray_schema())


def test_cluster_yaml_passes_ray_ups_validation():
    prepared = ray_up_validate(load_cluster())
    assert prepared["provider"]["type"] == "aws"
    # Defaults were merged (what `ray up` runs), and the global setup is part of the head's commands.
    assert prepared["head_setup_commands"][: len(load_cluster()["setup_commands"])] == load_cluster()["setup_commands"]


def test_cluster_yaml_follows_the_project_rules():
    assert rule_violations(load_cluster(), CLUSTER.read_text()) == []


def test_driver_resource_is_the_one_the_sweep_code_names():
    """The head's custom resource is the name orchestrator/sweep.py tells users to request."""
    sweep = (ROOT / "orchestrator" / "sweep.py").read_text()
    assert f'"{DRIVER_RESOURCE}"' in sweep
    head = load_cluster()["available_node_types"][load_cluster()["head_node_type"]]
    assert isinstance(head["resources"][DRIVER_RESOURCE], int)


def test_schema_comes_from_the_pinned_ray():
    """The schema (and image) is only as good as the Ray it comes from: the installed ray is the pin."""
    import ray

    assert ray.__version__ == pinned("ray")


# --- deliberately broken copies ----------------------------------------------------------------------------


def _set(path: str, value):
    def mutate(c: dict) -> None:
        *parents, last = path.split(".")
        node = c
        for p in parents:
            node = node[p]
        node[last] = value

    return mutate


def _del(path: str):
    def mutate(c: dict) -> None:
        *parents, last = path.split(".")
        node = c
        for p in parents:
            node = node[p]
        del node[last]

    return mutate


def _replace_in_commands(old: str, new: str, sections=("head_start_ray_commands",)):
    def mutate(c: dict) -> None:
        for s in sections:
            c[s] = [x.replace(old, new) for x in c[s]]

    return mutate


def _append(section: str, command: str):
    def mutate(c: dict) -> None:
        c[section] = [*(c.get(section) or []), command]

    return mutate


SCHEMA_BREAKS = {
    "fractional node resource": _set("available_node_types.head_cpu.resources.trial_driver", 0.5),
    "min_workers as a string": _set("available_node_types.gpu_1x_a10g.min_workers", "0"),
    "unknown top-level key": _set("max_worker", 10),
    "unknown docker key": _set("docker.imagee", "rayproject/ray:2.60.0-py311-gpu"),
    "node type without node_config": _del("available_node_types.gpu_4x_a10g.node_config"),
    "unknown security group key": _set("provider.security_group.Ingress", []),
}


@pytest.mark.parametrize("name", list(SCHEMA_BREAKS))
def test_a_broken_copy_fails_rays_validation(name):
    broken = load_cluster()
    SCHEMA_BREAKS[name](broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema())
    with pytest.raises(jsonschema.ValidationError):
        ray_up_validate(broken)


RULE_BREAKS = {
    "ray-ml image": ("image:", _set("docker.image", "rayproject/ray-ml:2.60.0-py311-gpu")),
    "unpinned image": ("image:", _set("docker.image", "rayproject/ray:latest-gpu")),
    "image with another Ray": ("image:", _set("docker.image", "rayproject/ray:2.59.0-py311-gpu")),
    "image with another Python": ("image:", _set("docker.image", "rayproject/ray:2.60.0-py310-gpu")),
    "ray-ml worker image": ("image:", _set("docker.worker_image", "rayproject/ray-ml:2.60.0-py311-gpu")),
    "no image": ("image:", _del("docker.image")),
    "GPU workers kept warm": ("gpu-workers:", _set("available_node_types.gpu_1x_a10g.min_workers", 1)),
    "GPU min_workers left implicit": ("gpu-workers:", _del("available_node_types.gpu_4x_a10g.min_workers")),
    "no GPU worker type": (
        "gpu-workers:",
        lambda c: [c["available_node_types"].pop(n) for n in ("gpu_1x_a10g", "gpu_4x_a10g")],
    ),
    "head without the driver resource": ("head:", _del("available_node_types.head_cpu.resources.trial_driver")),
    "driver resource renamed": (
        "head:",
        lambda c: c["available_node_types"]["head_cpu"].__setitem__("resources", {"CPU": 2, "head_driver": 64}),
    ),
    "GPU head": ("head:", _set("available_node_types.head_cpu.resources.GPU", 1)),
    "driver resource on a worker": ("head:", _set("available_node_types.gpu_1x_a10g.resources.trial_driver", 8)),
    "MLflow on all interfaces": ("mlflow:", _replace_in_commands("--host 127.0.0.1", "--host 0.0.0.0")),
    "MLflow without --host": ("mlflow:", _replace_in_commands("--host 127.0.0.1", "")),
    "no MLflow server": (
        "mlflow:",
        lambda c: c.__setitem__(
            "head_start_ray_commands", [x for x in c["head_start_ray_commands"] if "mlflow" not in x]
        ),
    ),
    "MLflow on a worker": (
        "mlflow:",
        _append(
            "worker_setup_commands", "nohup mlflow server --host 127.0.0.1 --backend-store-uri sqlite:////tmp/m.db &"
        ),
    ),
    "dashboard on all interfaces": (
        "dashboard:",
        _replace_in_commands("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0"),
    ),
    "dashboard host left to the default": ("dashboard:", _replace_in_commands("--dashboard-host=127.0.0.1", "")),
    "a port opened to the world": (
        "ingress:",
        _set(
            "provider.security_group.IpPermissions",
            [{"IpProtocol": "tcp", "FromPort": 8265, "ToPort": 8265, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        ),
    ),
    "MLflow port opened to a CIDR": (
        "ingress:",
        _set(
            "provider.security_group.IpPermissions",
            [{"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 5000, "IpRanges": [{"CidrIp": "203.0.113.7/32"}]}],
        ),
    ),
    "SSH from the world in the config": (
        "ingress:",
        _set(
            "provider.security_group.IpPermissions",
            [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        ),
    ),
    "torch unpinned": ("setup:", _replace_in_commands("torch==2.13.0", "torch", sections=("setup_commands",))),
    "another torch": ("setup:", _replace_in_commands("torch==2.13.0", "torch==2.12.0", sections=("setup_commands",))),
    "project not installed": (
        "setup:",
        lambda c: c.__setitem__("setup_commands", [x for x in c["setup_commands"] if "-e " not in x]),
    ),
    "editable install of another path": (
        "setup:",
        _replace_in_commands('-e "/home/ray/mosecrot[gpl]"', '-e "/tmp/other[gpl]"', sections=("setup_commands",)),
    ),
    "ray reinstalled": ("setup:", _append("setup_commands", "pip install -q ray[default]==2.59.0")),
}

TEXT_BREAKS = {
    "SSH CIDR undocumented": ("ingress:", lambda t: t.replace("--port 22 --cidr", "--port 22 --source-cidr")),
    "S3 storage undocumented": ("storage:", lambda t: t.replace("--storage-path s3://", "--storage-path /mnt/")),
}


@pytest.mark.parametrize("name", list(RULE_BREAKS))
def test_a_broken_copy_breaks_a_project_rule(name):
    rule, mutate = RULE_BREAKS[name]
    broken = load_cluster()
    mutate(broken)
    violations = rule_violations(broken, CLUSTER.read_text())
    assert any(v.startswith(rule) for v in violations), (name, violations)


@pytest.mark.parametrize("name", list(TEXT_BREAKS))
def test_a_broken_text_breaks_a_documentation_rule(name):
    rule, mutate = TEXT_BREAKS[name]
    violations = rule_violations(load_cluster(), mutate(CLUSTER.read_text()))
    assert any(v.startswith(rule) for v in violations), (name, violations)


# --- the dress rehearsal: cluster_rehearsal.yaml keeps cluster.yaml's node types ---------------------------
#
# tests/test_cluster_rehearsal.py runs a sweep on Ray's fake multi-node autoscaler with cluster_rehearsal.yaml
# (docs/cluster.md, "Dress rehearsal"). It rehearses cluster.yaml only while the two files have the same node
# types: the head's resources, each worker type's name, resources (GPU -> the custom resource fake_gpu) and
# min_workers; the rehearsal caps each type at 2 nodes (the one-GPU type launches 2) and idles them out within a
# minute.

REHEARSAL = ROOT / "cluster_rehearsal.yaml"
FAKE_HEAD_TYPE = "ray.head.default"  # the fake provider gives the head node this type, whatever the file says
FAKE_GPU = "fake_gpu"
REHEARSAL_MAX_NODES = 2
FAKE_PROVIDER_FLAGS = ("use_node_id_as_ip", "disable_node_updaters", "disable_launch_config_check", "launch_multiple")


def load_rehearsal() -> dict:
    return yaml.safe_load(REHEARSAL.read_text())


def rehearsal_drift(cluster: dict, rehearsal: dict) -> list[str]:
    """Every way the rehearsal file differs from cluster.yaml's node types or from a fake cluster that runs on
    one machine, as ``"rule-id: what is wrong"``; empty when the two are in step."""
    bad: list[str] = []
    provider = rehearsal.get("provider") or {}
    if provider.get("type") != "fake_multinode":
        bad.append(f"provider: type {provider.get('type')!r}, not fake_multinode")
    for flag in FAKE_PROVIDER_FLAGS:
        if provider.get(flag) is not True:
            bad.append(f"provider: {flag} is not true")

    c_types, r_types = cluster.get("available_node_types") or {}, rehearsal.get("available_node_types") or {}
    c_head = c_types.get(cluster.get("head_node_type")) or {}
    if rehearsal.get("head_node_type") != FAKE_HEAD_TYPE:
        bad.append(f"head: head_node_type {rehearsal.get('head_node_type')!r}, the fake provider's is {FAKE_HEAD_TYPE}")
    r_head = r_types.get(FAKE_HEAD_TYPE) or {}
    if r_head.get("resources") != c_head.get("resources"):
        bad.append(f"head: resources {r_head.get('resources')} differ from cluster.yaml's {c_head.get('resources')}")
    if r_head.get("max_workers", 0) != 0:
        bad.append("head: the head type has max_workers > 0")

    c_workers = {n: t for n, t in c_types.items() if n != cluster.get("head_node_type")}
    r_workers = {n: t for n, t in r_types.items() if n != FAKE_HEAD_TYPE}
    if set(c_workers) != set(r_workers):
        bad.append(
            f"types: only in cluster.yaml {sorted(set(c_workers) - set(r_workers))}, "
            f"only in the rehearsal {sorted(set(r_workers) - set(c_workers))}"
        )
    for name in sorted(set(c_workers) & set(r_workers)):
        c, r = c_workers[name], r_workers[name]
        expected = {(FAKE_GPU if k == "GPU" else k): v for k, v in (c.get("resources") or {}).items()}
        if r.get("resources") != expected:
            bad.append(f"resources: {name} offers {r.get('resources')}, cluster.yaml's as {FAKE_GPU}: {expected}")
        if r.get("min_workers") != c.get("min_workers"):
            bad.append(
                f"scaling: {name} has min_workers {r.get('min_workers')!r}, cluster.yaml {c.get('min_workers')!r}"
            )
        cap = min(c.get("max_workers", REHEARSAL_MAX_NODES), REHEARSAL_MAX_NODES)
        if not 0 <= r.get("max_workers", -1) <= cap:
            bad.append(f"scaling: {name} has max_workers {r.get('max_workers')!r} (0 to {cap} on one machine)")
    # The type one-GPU trials need (the rehearsal's test submits those) must be launchable, up to 2 nodes.
    one_gpu = [n for n, t in r_workers.items() if (t.get("resources") or {}).get(FAKE_GPU) == 1]
    if not any(r_workers[n].get("max_workers", 0) == REHEARSAL_MAX_NODES for n in one_gpu):
        bad.append(f"scaling: no one-{FAKE_GPU} worker type the autoscaler may launch {REHEARSAL_MAX_NODES} of")
    if not 1 <= rehearsal.get("max_workers", 0) <= REHEARSAL_MAX_NODES:
        bad.append(f"scaling: max_workers {rehearsal.get('max_workers')!r} (1 to {REHEARSAL_MAX_NODES})")
    idle = rehearsal.get("idle_timeout_minutes")
    if not isinstance(idle, int | float) or not 0 < idle <= 1 or idle >= cluster.get("idle_timeout_minutes", 0):
        bad.append(f"idle: idle_timeout_minutes {idle!r} (a test waits for it: more than 0, at most 1)")
    for section, cmd in all_commands(rehearsal):
        bad.append(f"commands: {section} runs {cmd[:60]!r} (fake nodes run no commands)")
    return bad


def test_rehearsal_matches_rays_schema():
    jsonschema.validate(load_rehearsal(), ray_schema())


def test_rehearsal_keeps_cluster_yamls_node_types():
    assert rehearsal_drift(load_cluster(), load_rehearsal()) == []


def _add_gpu_8x(c: dict) -> None:
    c["available_node_types"]["gpu_8x_a100"] = {
        "min_workers": 0,
        "max_workers": 1,
        "resources": {"CPU": 96, "GPU": 8},
        "node_config": {"InstanceType": "p4d.24xlarge"},
    }


# (file to break, rule the break must trip, mutation)
DRIFTS = {
    "a GPU type added to cluster.yaml only": ("cluster", "types:", _add_gpu_8x),
    "a GPU type's GPU count changed in cluster.yaml": (
        "cluster",
        "resources:",
        _set("available_node_types.gpu_4x_a10g.resources.GPU", 8),
    ),
    "the head's trial_driver changed in cluster.yaml": (
        "cluster",
        "head:",
        _set("available_node_types.head_cpu.resources.trial_driver", 32),
    ),
    "the rehearsal asks for real GPUs": (
        "rehearsal",
        "resources:",
        _set("available_node_types.gpu_1x_a10g.resources", {"CPU": 4, "GPU": 1}),
    ),
    "a rehearsal worker type kept up": (
        "rehearsal",
        "scaling:",
        _set("available_node_types.gpu_1x_a10g.min_workers", 1),
    ),
    "the one-GPU rehearsal type never launched": (
        "rehearsal",
        "scaling:",
        _set("available_node_types.gpu_1x_a10g.max_workers", 0),
    ),
    "a rehearsal type allowed more than 2 nodes": (
        "rehearsal",
        "scaling:",
        _set("available_node_types.gpu_4x_a10g.max_workers", 3),
    ),
    "the rehearsal's idle timeout as long as the cluster's": ("rehearsal", "idle:", _set("idle_timeout_minutes", 10)),
    "a setup command in the rehearsal": ("rehearsal", "commands:", _append("setup_commands", "pip install -e .")),
    "the rehearsal on AWS": ("rehearsal", "provider:", _set("provider.type", "aws")),
    "the rehearsal's head named like cluster.yaml's": ("rehearsal", "head:", _set("head_node_type", "head_cpu")),
}


@pytest.mark.parametrize("name", list(DRIFTS))
def test_a_drifted_copy_breaks_the_rehearsal_rules(name):
    which, rule, mutate = DRIFTS[name]
    cluster, rehearsal = load_cluster(), load_rehearsal()
    mutate(cluster if which == "cluster" else rehearsal)
    drift = rehearsal_drift(cluster, rehearsal)
    assert any(v.startswith(rule) for v in drift), (name, drift)
