"""A sweep's finished trials read back from MLflow, checked against the current search space, and exported.

`load_sweep` finds the sweep (the latest ``kind=sweep`` parent run of the MLflow experiment named after the
space) and ranks its finished trials by the sweep's own selection objective (never by test); `check_revision`
fails when a trial ran on another revision of the experiment (a config fingerprint mismatch, naming the keys
that differ); `export_trial` writes a trial's configuration as an experiment file that ``mosecrot run``
accepts with any target languages. ``mosecrot confirm`` (`orchestrator.confirm`) reuses the first two.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mosecrot.config import ExperimentConfig, experiment_path
from mosecrot.configschema import (
    apply_settings,
    flatten,
    from_dict,
    holds_default,
    interpolate,
    read_yaml,
    to_dict,
)
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig, method_spec
from orchestrator.search_space import SearchSpace, trial_configs
from orchestrator.search_space.trials import active
from orchestrator.tracking import (
    CONFIG_ARTIFACT,
    KIND_TAG,
    PARENT_TAG,
    TRIAL_TAG,
    method_params,
    param_values,
    resolve_tracking_uri,
)

OBJECTIVE = "objective"  # `orchestrator.trial.OBJECTIVE` (not imported: it imports torch)
# Keys of a resolved config that say where things are on this machine, not what ran.
CONFIRM = "confirm"
CONFIRM_OF_TAG = "confirm_of"  # the confirmed trial's MLflow run id
CONFIRM_BASELINE_TAG = "confirm_baseline"  # a reference baseline re-run at a confirm seed: its name
# the confirmed trial's Tune id: not `trial_id`, which `SweepTracker.log_trial` looks a sweep's own trial runs up by
CONFIRM_TRIAL_TAG = "confirm_trial_id"
UNCOMPARED = ("experiment.cache_dir", "experiment.output_dir", "experiment.methods")
MAX_LISTED = 8  # differing keys named in a revision error


@dataclass
class Trial:
    """A finished trial of a sweep (one MLflow child run), ranked by the sweep's objective (1 = best)."""

    run_id: str
    trial_id: str
    name: str
    params: dict[str, Any]  # the sampled params, typed as the space's choices
    logged_params: dict[str, str]  # every MLflow param of the run (strings)
    metrics: dict[str, float]
    objective: float
    rank: int = 0


@dataclass
class Sweep:
    """A sweep read back from MLflow: its space (as loaded now), parent run and ranked finished trials."""

    space: SearchSpace
    uri: str
    client: Any
    experiment_id: str
    parent: Any  # the parent MLflow run
    trials: list[Trial] = field(default_factory=list)
    baselines: list[Any] = field(default_factory=list)  # FINISHED kind=baseline runs (MLflow runs)

    @property
    def parent_id(self) -> str:
        return self.parent.info.run_id

    def runs(self, filter_string: str) -> list[Any]:
        return list(self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=5000))


def typed_params(space: SearchSpace, logged: dict[str, str]) -> dict[str, Any]:
    """A trial's sampled params from its MLflow params (strings): each active key of the space, its value matched
    to the parameter's choices (``"10"`` -> 10, ``"all"`` stays ``"all"``) or parsed as YAML for numbers."""
    out: dict[str, Any] = {}
    for key, param in space.space.items():
        if key not in logged:
            continue
        text = logged[key]
        if param.type == "categorical":
            value = next(
                (c for c in param.choices or [] if str(c) == text or param_values({"x": c})["x"] == text), text
            )
        else:
            value = yaml.safe_load(text)
            if param.type == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
        out[key] = value
    return {k: v for k, v in out.items() if active(space.space[k], out)}


def load_sweep(space: SearchSpace, tracking_uri: str | None = None) -> Sweep:
    """The sweep of ``space`` in the MLflow store: the latest parent run (not a baselines-only one), its finished
    trials ranked by the objective (ties: the earlier trial first) and its baselines. An InputError when the store,
    the sweep or a finished trial is missing."""
    from mlflow import MlflowClient

    from orchestrator.preflight import check_store_exists

    uri = resolve_tracking_uri(tracking_uri)
    check_store_exists(uri)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(space.name)
    if exp is None or exp.lifecycle_stage == "deleted":
        raise InputError(
            f"no sweep named {space.name!r} in {uri}",
            key="SWEEP",
            expected=f"a sweep logged to this store (mosecrot sweep {space.file or space.name}), or --tracking-uri",
        )
    parents = list(
        client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{KIND_TAG}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
    )
    sweeps = [p for p in parents if p.data.tags.get("baselines_only") != "true"]
    if not sweeps:
        raise InputError(f"MLflow experiment {space.name!r} in {uri} holds no sweep run (only baselines?)", key="SWEEP")
    sweep = Sweep(space, uri, client, exp.experiment_id, sweeps[0])
    children = sweep.runs(f"tags.`{PARENT_TAG}` = '{sweep.parent_id}'")
    objective, sign = "objective", 1 if space.objective.mode == "max" else -1
    finished = [
        r
        for r in children
        if r.data.tags.get(KIND_TAG) == "trial"
        and r.info.status == "FINISHED"
        and objective in r.data.metrics
        and r.data.tags.get("stopped_early") != "true"
    ]
    if not finished:
        counts = {
            s: sum(r.info.status == s for r in children if r.data.tags.get(KIND_TAG) == "trial")
            for s in ("FAILED", "RUNNING", "KILLED")
        }
        raise InputError(
            f"sweep {space.name!r} has no finished trial ("
            + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + (")" if any(counts.values()) else "no trial logged)")
            + ": nothing to select",
            key="SWEEP",
            expected="a sweep with at least one trial that ran to the end (mosecrot sweep ... --resume)",
        )
    finished.sort(key=lambda r: (-sign * r.data.metrics[objective], r.info.start_time or 0))
    for rank, r in enumerate(finished, 1):
        sweep.trials.append(
            Trial(
                run_id=r.info.run_id,
                trial_id=r.data.tags.get(TRIAL_TAG, r.info.run_id),
                name=r.info.run_name or r.info.run_id,
                params=typed_params(space, dict(r.data.params)),
                logged_params=dict(r.data.params),
                metrics=dict(r.data.metrics),
                objective=float(r.data.metrics[objective]),
                rank=rank,
            )
        )
    baselines = [r for r in children if r.data.tags.get(KIND_TAG) == "baseline" and r.info.status == "FINISHED"]
    if not baselines:  # logged on their own (mosecrot baselines SPACE): the baselines-only parent's
        for p in parents:
            if p.data.tags.get("baselines_only") == "true":
                baselines = sweep.runs(
                    f"tags.`{PARENT_TAG}` = '{p.info.run_id}' and tags.`{KIND_TAG}` = 'baseline' "
                    "and attributes.status = 'FINISHED'"
                )
                if baselines:
                    break
    sweep.baselines = baselines
    return sweep


# --- the revision check ------------------------------------------------------------------------------


def current_config(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """The experiment and method the current space gives ``params`` (as a trial's ``config.resolved.yaml``)."""
    exp, method = trial_configs(space, params)
    return {"method": method.to_config(), "experiment": to_dict(exp)}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(json.loads(json.dumps({k: config.get(k) for k in ("method", "experiment")}, default=str)))
    return {k: v for k, v in flat.items() if not k.startswith(UNCOMPARED)}


def fingerprint(config: dict[str, Any]) -> str:
    """A short hash of a resolved trial config, machine paths (cache, output) left out."""
    text = json.dumps(_comparable(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def added_at_default(ran: dict[str, Any], now: dict[str, Any], kind: str) -> set[str]:
    """Keys of ``now`` that the logged config lacks and that hold their schema's default: options added to the
    tool after the sweep ran, which leave what the trial did unchanged (so a sweep survives an upgrade)."""
    out = set()
    for key in set(now) - set(ran):
        section, _, dotted = key.partition(".")
        if section == "experiment":
            schema: Any = ExperimentConfig
        elif section == "method" and kind:
            schema = method_spec(kind).options
        else:
            continue
        if holds_default(schema, dotted, now[key]):
            out.add(key)
    return out


def _differences(logged: dict[str, Any], now: dict[str, Any]) -> list[str]:
    keys = sorted(set(logged) | set(now))
    return [
        f"{k}: ran {logged.get(k, '(absent)')!r}, now {now.get(k, '(absent)')!r}"
        for k in keys
        if logged.get(k) != now.get(k)
    ]


def logged_config(sweep: Sweep, trial: Trial) -> dict[str, Any] | None:
    """The trial's ``config.resolved.yaml`` (None when it logged none: older sweeps)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = sweep.client.download_artifacts(trial.run_id, CONFIG_ARTIFACT, tmp)
            data = yaml.safe_load(Path(path).read_text())
        except Exception:
            return None
    return data if isinstance(data, dict) else None


def check_revision(sweep: Sweep, trial: Trial) -> str:
    """Fail when ``trial`` ran on another revision of the experiment than the current space gives: its logged
    ``config.resolved.yaml`` against `current_config` (by fingerprint; the error names the keys that differ); a
    trial without that artifact is compared by its MLflow params (method options and sampled keys) and the
    parent run's ``fixed.*`` params. Returns the config fingerprint."""
    space = sweep.space
    unknown = sorted(k for k in trial.logged_params if not k.startswith("method.") and k not in space.space)
    where = f"trial {trial.name!r} ({trial.trial_id}) of sweep {space.name!r}"
    fix = "the search space and --set overrides the sweep ran with, or a new sweep"
    if unknown:
        raise InputError(
            f"{where} searched {', '.join(unknown)}, which the current search space does not: another revision",
            key="SWEEP",
            expected=fix,
        )
    try:
        now = current_config(space, trial.params)
    except InputError as err:
        raise InputError(f"{where} no longer builds with the current space: {err}", key="SWEEP", expected=fix) from None
    logged = logged_config(sweep, trial)
    if logged is not None:
        ran, cur = _comparable(logged), _comparable(now)
        added = added_at_default(ran, cur, str(now["method"].get("kind", "")))
        diffs = _differences(ran, {k: v for k, v in cur.items() if k not in added})
        what = f"config fingerprint {fingerprint(logged)} != {fingerprint(now)}"
    else:
        method = space.method_data()
        fixed_method = {k: v for k, v in method.items() if k not in ("name", "kind")}
        expected = param_values(
            {**method_params({"name": method["name"], "kind": method["kind"], **fixed_method}), **trial.params}
        )
        ran = {k: v for k, v in trial.logged_params.items() if k.startswith("method.") or k in space.space}
        diffs = _differences(ran, expected)
        parent_fixed = {k: v for k, v in sweep.parent.data.params.items() if k.startswith("fixed.")}
        diffs += _differences(parent_fixed, param_values({f"fixed.{k}": v for k, v in space.fixed.items()}))
        what = "its MLflow params differ (the trial logged no config.resolved.yaml)"
    if diffs:
        listed = "; ".join(diffs[:MAX_LISTED]) + (
            f"; and {len(diffs) - MAX_LISTED} more" if len(diffs) > MAX_LISTED else ""
        )
        raise InputError(f"{where} ran on another experiment revision ({what}): {listed}", key="SWEEP", expected=fix)
    return fingerprint(now)


# --- confirm records (`orchestrator.confirm` writes them) ---


def confirm_runs(sweep: Sweep) -> list[Any]:
    """Every ``kind=confirm`` run under the sweep's parent (any status)."""
    return sweep.runs(f"tags.`{PARENT_TAG}` = '{sweep.parent_id}' and tags.`{KIND_TAG}` = '{CONFIRM}'")


def finished_pairs(runs: list[Any]) -> dict[tuple[str, int], Any]:
    """(trial id, seed) -> its FINISHED confirm run."""
    return {
        (r.data.tags[CONFIRM_TRIAL_TAG], int(r.data.tags["seed"])): r
        for r in runs
        if r.info.status == "FINISHED" and CONFIRM_TRIAL_TAG in r.data.tags and "seed" in r.data.tags
    }


def confirm_winner(sweep: Sweep) -> tuple[Trial, float, list[int]] | None:
    """The confirmed trial with the best mean objective over its confirm seeds (among those confirmed with the
    most seeds), with that mean and its seeds; None when the sweep was never confirmed."""
    pairs = finished_pairs(confirm_runs(sweep))
    by_trial: dict[str, list[tuple[int, float]]] = {}
    for (trial_id, seed), run in pairs.items():
        if OBJECTIVE in run.data.metrics:
            by_trial.setdefault(trial_id, []).append((seed, run.data.metrics[OBJECTIVE]))
    trials = {t.trial_id: t for t in sweep.trials}
    by_trial = {k: v for k, v in by_trial.items() if k in trials}
    if not by_trial:
        return None
    most = max(len(v) for v in by_trial.values())
    sign = 1 if sweep.space.objective.mode == "max" else -1
    best = max(
        (k for k, v in by_trial.items() if len(v) == most),
        key=lambda k: (sign * statistics.fmean(o for _, o in by_trial[k]), -trials[k].rank),
    )
    return trials[best], statistics.fmean(o for _, o in by_trial[best]), sorted(s for s, _ in by_trial[best])


# --- export --------------------------------------------------------------------------------------------


def experiment_data(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    """The trial's experiment as a file: the sweep's base experiment as written (``${data_dir}`` kept), ``fixed``
    and the params applied, ``methods`` = the tuned method with its options."""
    exp_file = space.experiment_file if Path(space.experiment_file or "").is_file() else None
    data = read_yaml(exp_file or experiment_path(space.experiment))
    for key, value in space.fixed.items():
        data = apply_settings(data, {key: value})
    data.pop("methods", None)
    method = space.method_data()
    for key, value in params.items():
        if key.startswith("method."):
            method = apply_settings(method, {key[len("method.") :]: value})
        else:
            data = apply_settings(data, {key: value})
    data["methods"] = [method]
    return data


def select(sweep: Sweep, rank: int | None) -> tuple[Trial, str, list[int] | None]:
    """The trial to export and why: ``--rank R`` (the R-th by the sweep's objective); without it the confirm
    winner (best mean objective over its confirm seeds, `confirm_winner`) when the sweep was
    confirmed, else rank 1. The third value: the confirm seeds of a confirm winner (the exported file runs them),
    else None (the sweep's seeds)."""
    if rank is not None:
        if rank < 1 or rank > len(sweep.trials):
            raise InputError(
                f"rank {rank} is not a finished trial of sweep {sweep.space.name!r}",
                key="--rank",
                expected=f"1 to {len(sweep.trials)} (its finished trials)",
            )
        return sweep.trials[rank - 1], f"rank {rank} of {len(sweep.trials)} finished trials by the objective", None
    winner = confirm_winner(sweep)
    if winner is not None:
        trial, mean, seeds = winner
        return (
            trial,
            (
                f"the confirm winner: best mean objective {mean:.4f} over seeds {','.join(map(str, seeds))} "
                f"(rank {trial.rank} of {len(sweep.trials)} by the single-run objective)"
            ),
            seeds,
        )
    return sweep.trials[0], f"rank 1 of {len(sweep.trials)} finished trials by the objective", None


def header(sweep: Sweep, trial: Trial, why: str, fp: str) -> str:
    space, obj = sweep.space, sweep.space.objective
    lines = [
        f"Exported by `mosecrot export` from sweep {space.name!r} (search space {space.file}, MLflow {sweep.uri},",
        f"parent run {sweep.parent_id}, git revision {sweep.parent.data.tags.get('git_revision', '?')}).",
        f"Trial {trial.name!r} ({trial.trial_id}, run {trial.run_id}): {why}.",
        f"Selection protocol {obj.protocol}: objective {obj.split}_{obj.metric} on {', '.join(obj.languages or [])} "
        f"({obj.mode}) = {trial.objective:.4f}; config fingerprint {fp}.",
    ]
    report = trial.metrics.get("report_mean")
    if report is not None:
        lines.append(
            f"Report languages {', '.join(space.report_languages or [])}: mean test {obj.metric} {report:.4f}."
        )
    lines.append("Run it on other languages: mosecrot run THIS_FILE --set 'target_languages=[fr, sw]'")
    return "".join(f"# {line}\n" for line in lines)


def export_trial(sweep: Sweep, out: str | Path, rank: int | None = None) -> dict[str, Any]:
    """Write the selected trial (`select`) as an experiment file at ``out`` and return ``{"path", "trial",
    "why", "fingerprint"}``. The file is checked before it is written: it loads, and its method is the trial's."""
    trial, why, seeds = select(sweep, rank)
    fp = check_revision(sweep, trial)
    data = experiment_data(sweep.space, trial.params)
    data["name"] = Path(out).stem
    if seeds is not None:
        data["seeds"] = list(seeds)
    loaded = from_dict(ExperimentConfig, interpolate(data))
    _, method = trial_configs(sweep.space, trial.params)
    if loaded.methods[0].to_config() != method.to_config():  # pragma: no cover - a bug, not bad input
        raise RuntimeError(
            f"the exported method {loaded.methods[0].to_config()} is not the trial's {method.to_config()}"
        )
    path = Path(out)
    if path.is_dir():
        raise InputError("is a directory", path=path, key="-o", expected="a YAML file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = header(sweep, trial, why, fp) + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return {"path": path, "trial": trial, "why": why, "fingerprint": fp}


def trial_method(sweep: Sweep, trial: Trial) -> MethodConfig:
    return trial_configs(sweep.space, trial.params)[1]


__all__ = [
    "Sweep",
    "Trial",
    "check_revision",
    "current_config",
    "experiment_data",
    "export_trial",
    "fingerprint",
    "load_sweep",
    "select",
    "typed_params",
]
