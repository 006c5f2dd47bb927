"""The `mosecrot` command."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from mosecrot.errors import InputError
from orchestrator import output
from orchestrator.console import console
from orchestrator.console import table as _table
from orchestrator.ems_cli import add_ems_commands
from orchestrator.preflight import check_store_exists, check_writable_dir

INSPECT_WORDS = ("god", "water", "king", "love", "house")


def preflight_experiment(cfg, output_dir: str | None, command: str) -> None:
    """Before `prepare`/`run` do any work: the output directory is writable (``--output-dir``, else the
    config's ``output_dir``) and the methods' options fit the anchors (`mosecrot.preflight`)."""
    from mosecrot.preflight import check_methods_against_anchors

    check_writable_dir(output_dir or cfg.output_dir, "--output-dir" if output_dir else "output_dir")
    check_methods_against_anchors(cfg)


def _interrupted(args: argparse.Namespace, stop) -> int:
    """A sweep stopped by a signal: one line, the MLflow parent run KILLED, and the command that continues it."""
    flags = [f"--storage-path {args.storage_path}" if args.storage_path else ""]
    flags += [f"--tracking-uri {args.tracking_uri}" if args.tracking_uri else ""]
    flags += [f"--address {args.address}" if args.address else ""]
    flags += [f"--set {s!r}" for s in args.set]
    cmd = " ".join(["mosecrot sweep", args.space, "--resume", *[f for f in flags if f]])
    import ray

    if ray.is_initialized():  # now: the workers' last log lines come before the message, not after it
        ray.shutdown()
    console.print(
        f"interrupted ({stop.signal_name}): the sweep's MLflow parent run is marked KILLED; continue it with: {cmd}",
        highlight=False,
        markup=False,
    )
    return 143 if stop.signal_name == "SIGTERM" else 130


def cmd_prepare(args: argparse.Namespace) -> int:
    from mosecrot.config import load_experiment
    from mosecrot.methods import default_methods, needs_static
    from mosecrot.prepare import prepare, write_report

    cfg = load_experiment(args.experiment, args.set)
    preflight_experiment(cfg, args.output_dir, "prepare")
    prepared = prepare(cfg, static=needs_static(cfg.methods or default_methods()), progress=not args.no_progress)
    columns = [
        "language",
        "text",
        "train",
        "dev",
        "test",
        "dropped",
        "vectors",
        "vocab",
        "dictionary",
        "dict_pairs",
        "anchors",
        "test_coverage",
    ]
    console.print(
        _table(
            f"prepare {cfg.name}: task {cfg.task.name}, anchors {cfg.anchors.scope}/"
            f"{cfg.anchors.strategy}/{cfg.anchors.count}",
            prepared.rows,
            columns,
        )
    )
    if not prepared.static:
        kinds = ", ".join(sorted({m.kind for m in cfg.methods}))
        console.print(
            f"no method of {cfg.name} reads static vectors ({kinds}): only the task splits were "
            "prepared (no vectors, dictionaries or anchors)"
        )
    if prepared.union is not None:
        console.print(
            f"union anchors: {len(prepared.union.source_words)} English words shared by "
            f"{len(prepared.union.per_language)} languages"
        )
    if args.inspect:
        _inspect(prepared)
    out = write_report(prepared, Path(args.output_dir or cfg.output_dir) / "prepare" / cfg.name)
    console.print(f"report: {out}   ({prepared.timings['total']:.0f} s)")
    return 0


def _inspect(prepared) -> None:
    """Sanity printout: 10 random anchors per language and neighbours of 5 translated words."""
    for lang, anchors in prepared.anchors.items():
        sample = random.Random(0).sample(anchors.pairs, min(10, len(anchors.pairs)))
        console.print(f"[bold]{lang}[/] random anchors: " + ", ".join(f"{s}→{t}" for s, t in sample))
    for lang, vectors in prepared.vectors.items():
        translations = dict(prepared.anchors[lang].pairs)
        for en in INSPECT_WORDS:
            word = translations.get(en)
            if word is None:
                continue
            nn = ", ".join(f"{w} {s:.2f}" for w, s in vectors.most_similar(word, 5))
            console.print(f"  {lang} {word} ({en}): {nn}")


def print_table(table, title: str) -> None:
    """A merged results table (`orchestrator.report`): rows methods, columns languages and means."""
    from orchestrator.report import explanation, header, row_cells

    compact = len(table.languages) > 4  # a dozen languages stay one line per method in a terminal
    columns = header(table, compact)
    rows = [dict(zip(columns, row_cells(table, row, compact), strict=True)) for row in table.rows]
    console.print(_table(title, rows, columns, left=("method", "supervision")))
    if compact:
        console.print("Language cells: means over seeds; their spread and intervals are in report.md.", highlight=False)
    for line in explanation(table):
        console.print(line, highlight=False)


def _bars(args: argparse.Namespace) -> bool:
    """Progress bars: in a terminal only (none in log files), unless --no-progress."""
    return not args.no_progress and sys.stderr.isatty()


def cmd_run(args: argparse.Namespace) -> int:
    from mosecrot.config import load_experiment
    from mosecrot.run import run_experiment
    from mosecrot.tasks import get_task

    cfg = load_experiment(args.experiment, args.set)
    preflight_experiment(cfg, args.output_dir, "run")
    report = run_experiment(
        cfg,
        progress=_bars(args),
        output_dir=args.output_dir,
        resume=args.resume,
        on_directory=lambda d: output.attach_log_file(d / "run.log"),
        only=[n.strip() for n in args.methods.split(",")] if args.methods is not None else None,
    )
    assert report.directory is not None  # run_experiment always writes a run directory
    paper = get_task(cfg.task.name).reference or None
    table = _write_tables([report.directory], report.directory, paper)
    print_table(table, f"{cfg.name}: {cfg.task.name} test macro-F1, seeds {cfg.seeds}")
    console.print(
        f"results: {report.directory / 'results.json'}  report.md  report.csv  run.log"
        f"   ({report.timings['total']:.0f} s)"
    )
    return 0


def _write_tables(runs: list, out_dir: Path | None, paper: dict | None):
    from orchestrator.report import merge_runs, to_csv, to_markdown

    table = merge_runs(runs, paper)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "report.md").write_text(to_markdown(table))
        (Path(out_dir) / "report.csv").write_text(to_csv(table))
    return table


def cmd_table(args: argparse.Namespace) -> int:
    from mosecrot.tasks import get_task
    from orchestrator.report import load_results

    task = load_results(args.runs[0])["task"]
    paper = None if args.no_paper else get_task(task).reference or None
    table = _write_tables(args.runs, args.output_dir, paper)
    print_table(table, f"{table.task}: {table.metric} ({len(args.runs)} runs)")
    for src in table.sources:
        t = src.get("training") or {}
        console.print(
            f"  {src['experiment']} (anchors {src['anchors']}, seeds {src['seeds']}, "
            f"epochs {t.get('epochs')}, max_length {t.get('max_length')}, batch {t.get('batch_size')}"
            f"{'' if src['complete'] else ', INCOMPLETE'}): wall {src['timings_s']} s  {src['path']}",
            highlight=False,
        )
    if args.output_dir:
        console.print(f"wrote {Path(args.output_dir) / 'report.md'} and report.csv")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from mosecrot.compare import compare_runs

    out = compare_runs(args.a, args.b, split=args.split, n_resamples=args.resamples)
    a, b = out["a"]["method"], out["b"]["method"]
    rows = [
        {
            "language": lang,
            f"A {a}": f"{r['a']:.3f} [{r['a_ci'][0]:.2f}, {r['a_ci'][1]:.2f}]",
            f"B {b}": f"{r['b']:.3f} [{r['b_ci'][0]:.2f}, {r['b_ci'][1]:.2f}]",
            "A - B": f"{r['difference']:+.3f} [{r['difference_ci'][0]:+.2f}, {r['difference_ci'][1]:+.2f}]",
            "P(A > B)": f"{r['p_a_beats_b']:.2f}",
            "items": str(r["n_items"]),
        }
        for lang, r in out["rows"].items()
    ]
    sides = [f"{x} = {out[k]['spec']} (seeds {out[k]['seeds']})" for x, k in (("A", "a"), ("B", "b"))]
    title = f"{out['metric']}: {' vs '.join(sides)}"
    console.print(_table(title, rows, list(rows[0]), left=("language",)))
    console.print(
        f"95% percentile bootstrap over test items ({out['bootstrap']['n_resamples']} paired resamples; the mean "
        "resamples each language)."
        + (f" Skipped (items differ): {', '.join(out['skipped'])}." if out["skipped"] else ""),
        highlight=False,
    )
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1))
        console.print(f"wrote {args.output}")
    return 0


def _space(args: argparse.Namespace):
    from orchestrator.search_space import load_search_space

    return load_search_space(args.space, args.set)


def cmd_sweep(args: argparse.Namespace) -> int:
    from orchestrator.report import sweep_report, write_report
    from orchestrator.sweep import SweepInterrupted, resource_map, run_sweep, summary_lines
    from orchestrator.tracking import ui_command

    space = _space(args)
    driver = resource_map(args.driver_resources, "--driver-resources")
    worker = resource_map(args.worker_resources, "--worker-resources")
    out_dir = Path(args.output_dir or "runs") / "sweeps" / space.name
    check_writable_dir(out_dir, "--output-dir")
    log_file = out_dir / "sweep.log"  # opened by run_sweep once its checks passed (bad input writes nothing)
    try:
        results = run_sweep(
            space,
            tracking_uri=args.tracking_uri,
            storage_path=args.storage_path,
            resume=args.resume,
            address=args.address,
            baselines=not args.no_baselines,
            progress=_bars(args),
            driver_resources=driver,
            worker_resources=worker,
            dashboard=args.dashboard,
            log_file=log_file,
        )
    except SweepInterrupted as stop:
        return _interrupted(args, stop)
    import ray

    if ray.is_initialized():  # now: the workers' last log lines arrive here, not in the middle of the report
        ray.shutdown()
    for line in summary_lines(space, results, args.tracking_uri, tie=args.no_report):  # else the report says it
        console.print(line, highlight=False, markup=False)
    if not args.no_report:
        report = sweep_report(
            space.name,
            args.tracking_uri,
            objective="objective",
            mode=space.objective.mode,
            languages=list(space.report_languages or []),
        )
        _print_report(report)
        paths = write_report(report, Path(args.output_dir or "runs") / "sweeps" / space.name)
        console.print(f"report: {paths['markdown']}  {paths['csv']}  {paths['png']}", highlight=False)
    console.print(f"open the MLflow UI: {ui_command(space.name, args.tracking_uri)}", highlight=False, markup=False)
    console.print(f"log (Ray, MLflow, Optuna, trial workers): {log_file}", highlight=False, markup=False)
    return 1 if results.num_errors else 0


def cmd_baselines(args: argparse.Namespace) -> int:
    from mosecrot.metrics import metric_key
    from orchestrator.baselines import log_baselines
    from orchestrator.tracking import resolve_tracking_uri, ui_command

    space = _space(args)
    uri = resolve_tracking_uri(args.tracking_uri)
    out = log_baselines(space, tracking_uri=uri, progress=not args.no_progress and sys.stderr.isatty())
    langs = list(space.report_languages or [])
    rows = []
    for name, m in out.items():
        keys = {lang: metric_key("test", "macro_f1", lang) for lang in langs}
        rows.append(
            {
                "baseline": name,
                **{lang: f"{m[k]:.3f}" if k in m else "–" for lang, k in keys.items()},
                "mean": f"{m['report_mean']:.3f}" if "report_mean" in m else "–",
            }
        )
    console.print(
        _table(f"{space.name} baselines: test macro-F1", rows, ["baseline", *langs, "mean"], left=("baseline",))
    )
    if not out:
        console.print("every baseline was already logged for this sweep name")
    console.print(
        f"MLflow: {uri}   open the UI: {ui_command(space.name, args.tracking_uri)}", highlight=False, markup=False
    )
    return 0


def _width(rows: list[dict], columns: list[str]) -> int:
    """The width a table of ``rows`` needs: its widest cell per column, one space between columns."""
    return sum(max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) + 1 for c in columns)


def print_languages(records: list[dict], languages: list[str], title: str, name: str = "method") -> None:
    """Per-language cells of each row (keyed by ``name``), readable from 2 to 40 languages: a column per
    language where they fit the terminal, else a row per language and a column per row."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}".replace("0.", ".", 1)
        return "–" if value is None else str(value)

    named = [(str(r[name]), r) for r in records]
    rows = [{name: n, **{lang: cell(r.get(lang)) for lang in languages}} for n, r in named]
    if _width(rows, [name, *languages]) <= console.width:
        console.print(_table(title, rows, [name, *languages], left=(name,)))
        return
    by_language = [{"language": lang, **{n: cell(r.get(lang)) for n, r in named}} for lang in languages]
    console.print(_table(title, by_language, ["language", *[n for n, _ in named]], left=("language",)))


def _print_wide(title: str, rows: list[dict], columns: list[str], languages: list[str], left: tuple, name: str) -> None:
    """One table where it fits the terminal; else its other columns, then the languages (`print_languages`)."""
    if _width(rows, columns) <= console.width:
        console.print(_table(title, rows, columns, left=left))
        return
    console.print(_table(title, rows, [c for c in columns if c not in languages], left=left))
    print_languages(rows, languages, "per language", name=name)


def _print_report(report: dict, trials: bool = False) -> None:
    """The best-per-method table; with ``trials`` also every finished trial with its searched params."""
    from orchestrator.report import trial_columns

    def shown(records: list[dict], columns: list[str]) -> list[dict]:
        return [
            {
                c: f"{r[c]:.3f}" if isinstance(r.get(c), float) else ("–" if r.get(c) is None else str(r[c]))
                for c in columns
            }
            for r in records
        ]

    unc = report.get("uncertainty")
    extra = ["seeds", "mean 95% CI", *[f"P(>{r})" for r in unc["references"]]] if unc else []
    languages = list(report["languages"])
    columns = ["method", "kind", "supervision", "configuration", "objective", *languages, "mean", *extra]
    objective = report.get("objective_name") or "objective"
    title = (
        f"{report['experiment']}: {report['metric']} on the target test sets (best trial per method by the "
        f"objective = {objective}, beside the baselines)"
    )
    left = ("method", "kind", "supervision", "configuration")
    _print_wide(title, shown(report["rows"], columns), columns, languages, left, "method")
    for warning in report.get("warnings", []):
        console.print(f"WARNING {warning}", highlight=False, markup=False)
    if unc:
        console.print(
            f"mean 95% CI: percentile bootstrap over test items ({unc['n_resamples']} resamples); P(>X): share of "
            "paired resamples in which the row beats baseline X; seeds: det. = the seed changes nothing.",
            highlight=False,
        )
    if report.get("tie"):
        console.print(report["tie"], highlight=False, markup=False)  # it begins with "WARNING:"
    if trials and report.get("trials"):
        columns = trial_columns(report)[:-1]
        console.print(
            _table(
                f"every finished trial ({len(report['trials'])}), best objective first",
                shown(report["trials"], columns),
                columns,
                left=tuple(report["searched"]),
            )
        )


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.report import sweep_report, write_report
    from orchestrator.tracking import resolve_tracking_uri, ui_command

    name, mode, langs = args.sweep, "max", None
    args.space = args.sweep
    try:  # a search-space name or path gives the sweep name, mode and report languages
        space = _space(args)
        name, mode, langs = space.name, space.objective.mode, list(space.report_languages or [])
    except InputError:
        if args.set:
            raise
    check_store_exists(resolve_tracking_uri(args.tracking_uri))  # a missing sweep creates no store
    check_writable_dir(Path(args.output_dir or "runs") / "sweeps" / name, "--output-dir")
    report = sweep_report(name, args.tracking_uri, mode=mode, languages=langs)
    _print_report(report, trials=args.trials)
    paths = write_report(report, Path(args.output_dir or "runs") / "sweeps" / name)
    orc, selected = report.get("oracle") or {}, next((r for r in report["rows"] if r["kind"] == "trial"), None)
    if orc.get("mean") is not None and selected is not None and selected.get("mean") is not None:
        console.print(
            f"selection regret: {orc['mean'] - selected['mean']:.3f} on the mean (oracle, not a result: best trial "
            f"per language on its test set, {orc['mean']:.3f}; selected {selected['mean']:.3f})",
            highlight=False,
        )
    if report.get("stopped"):
        console.print(f"{len(report['stopped'])} trial(s) stopped early by ASHA (listed in report.md)", highlight=False)
    plots = "  ".join(str(paths[k]) for k in ("png", "scores_png", "importance_png") if k in paths)
    console.print(f"report: {paths['markdown']}  {paths['csv']}  {paths['trials_csv']}  {plots}", highlight=False)
    console.print(f"open the MLflow UI: {ui_command(name, args.tracking_uri)}", highlight=False, markup=False)
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    """The sweep's best trials re-run with every seed (in this process), logged as kind=confirm runs; the table."""
    from orchestrator.confirm import confirm_table, parse_seeds, run_confirm, table_cells, table_columns, write_table

    seeds = parse_seeds(args.seeds)
    args.space = args.sweep
    space = _space(args)
    out_dir = Path(args.output_dir or "runs") / "sweeps" / space.name
    check_writable_dir(out_dir, "--output-dir")
    say = lambda line: console.print(line, highlight=False, markup=False)  # noqa: E731
    done = run_confirm(
        space, args.tracking_uri, args.top, seeds, progress=_bars(args), say=say, log_file=out_dir / "confirm.log"
    )
    for note in done["notes"]:
        say(f"note: {note}")
    say(
        f"confirm: {done['ran']} (trial, seed) run(s) now, {done['skipped']} already logged; "
        f"LS and floor at the confirm seeds: {done['baselines_ran']} run(s) now"
    )
    table = confirm_table(done["sweep"], done["trials"], seeds)
    title = f"{space.name}: confirm, seeds {args.seeds or '0,1,2'}"
    _print_wide(title, table_cells(table), table_columns(table), list(table["languages"]), ("row", "kind"), "row")
    paths = write_table(table, out_dir, done["notes"], client=done["sweep"].client)
    say(f"confirm table: {paths['markdown']}  {paths['csv']}  {paths['json']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The selected trial's configuration as an experiment file for `mosecrot run`."""
    from orchestrator.export import export_trial, load_sweep

    args.space = args.sweep
    space = _space(args)
    check_writable_dir(Path(args.output).parent, "-o")
    out = export_trial(load_sweep(space, args.tracking_uri), args.output, args.rank)
    trial = out["trial"]
    console.print(
        f"exported {trial.name!r} ({out['why']}; objective {trial.objective:.4f}) to {out['path']}\n"
        f"run it: mosecrot run {out['path']} --set 'target_languages=[...]'",
        highlight=False,
        markup=False,
    )
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Open a sweep's runs in the MLflow UI, in model-training mode, on the store the sweeps write to (the same
    resolution as `mosecrot sweep`): starts ``mlflow ui`` (loopback), prints the address and opens a browser
    where there is one."""
    from orchestrator.tracking import resolve_tracking_uri, ui_target, ui_url

    uri = resolve_tracking_uri(args.tracking_uri)
    if uri.startswith(("http://", "https://")):
        experiment, view = ui_target(uri, args.sweep)
        console.print(f"MLflow server {uri}: {ui_url(uri, experiment, view)}", highlight=False, markup=False)
        return 0
    check_store_exists(uri)
    experiment, view = ui_target(uri, args.sweep)
    url = ui_url(f"http://{args.host}:{args.port}", experiment, view)
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_bin) if mlflow_bin.exists() else "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port), "--workers", "1"]  # one user: one worker
    console.print(f"MLflow UI on {uri}: {url}", highlight=False, markup=False)
    if args.sweep and experiment is None:
        console.print(f"(no sweep named {args.sweep!r} in this store: the experiments list)", highlight=False)
    return _serve_ui(cmd, url, browser=not args.no_browser)


def _serve_ui(cmd: list[str], url: str, browser: bool) -> int:
    """Run the UI server until Ctrl-C or SIGTERM; open ``url`` in a browser once it answers (where there is a
    browser). The server runs in its own process group (``mlflow ui`` starts uvicorn and job consumers), stopped
    whole when this command stops, so no server outlives it."""
    import contextlib
    import signal
    import subprocess
    import threading
    import time
    import urllib.request
    import webbrowser

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    proc = subprocess.Popen(cmd, start_new_session=True)

    def open_when_up() -> None:
        health = url.split("/#", 1)[0] + "/health"
        for _ in range(120):
            if proc.poll() is not None:
                return
            try:
                with urllib.request.urlopen(health, timeout=1):  # noqa: S310 (our own loopback server)
                    break
            except OSError:
                time.sleep(0.5)
        else:
            return
        with contextlib.suppress(Exception):
            webbrowser.open(url)

    if browser and (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform == "darwin"):
        threading.Thread(target=open_when_up, daemon=True).start()
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=60)  # MLflow's server takes some seconds to shut down
        except subprocess.TimeoutExpired:
            return -signal.SIGKILL
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (job consumers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mosecrot", description=__doc__)
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show everything in the terminal: libraries' logs, the output of trial workers, Tune's trial tables "
        "(by default they go only to the command's log file)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def experiment_command(name: str, help: str, example: str, output_help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help)
        c.add_argument("experiment", help="experiment name (experiments/NAME.yaml) or a YAML path")
        c.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override a config key, e.g. --set {example} (repeatable)",
        )
        c.add_argument("--output-dir", help=output_help)
        c.add_argument("--no-progress", action="store_true", help="no progress bars")
        return c

    p = experiment_command(
        "prepare",
        "build and cache tasks, static vectors, dictionaries and anchors",
        "anchors.count=500",
        "where prepare.json goes (default: the config's output_dir)",
    )
    p.add_argument("--inspect", action="store_true", help="print sample anchors and nearest neighbours")
    p.set_defaults(func=cmd_prepare)

    r = experiment_command(
        "run",
        "run an experiment: every method x seed, per-language table and JSON",
        "training.epochs=1",
        "root of run directories (default: the config's output_dir)",
    )
    r.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run (runs/NAME/STAMP) of the same config, or extend a finished one "
        "with more seeds (--set 'seeds=[0,1,2]') or methods: finished seed x method records are kept",
    )
    r.add_argument(
        "--methods",
        metavar="NAME,...",
        help="run only these methods of the experiment now (comma-separated names); "
        "the run stays incomplete until a --resume runs the rest",
    )
    r.set_defaults(func=cmd_run)

    tb = sub.add_parser(
        "table",
        help="one per-language table from several `mosecrot run` directories "
        "(e.g. pair- and union-anchor runs), with the paper's numbers",
    )
    tb.add_argument("runs", nargs="+", help="run directories (runs/NAME/STAMP) or their results.json")
    tb.add_argument("--output-dir", help="also write report.md and report.csv here")
    tb.add_argument("--no-paper", action="store_true", help="leave out the published numbers")
    tb.set_defaults(func=cmd_table)

    cp = sub.add_parser(
        "compare",
        help="paired bootstrap of one run's method against another's, item by item (e.g. two runs' rr-softmax)",
    )
    cp.add_argument("a", metavar="RUN_A:METHOD", help="a run directory (runs/NAME/STAMP) and a method name in it")
    cp.add_argument("b", metavar="RUN_B:METHOD", help="the run and method to compare with (may be the same run)")
    cp.add_argument("--split", default="test", choices=["dev", "test"], help="which split's items (default: test)")
    cp.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    cp.add_argument("-o", "--output", help="also write the comparison as JSON here")
    cp.set_defaults(func=cmd_compare)

    def space_options(command: argparse.ArgumentParser, name: str, help: str) -> argparse.ArgumentParser:
        """The sweep's name or file, its ``--set`` overrides and the MLflow store: every sweep command has them."""
        command.add_argument(name, help=help)
        command.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a search-space key, e.g. --set num_trials=2 (repeatable)",
        )
        command.add_argument(
            "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlruns.db)"
        )
        return command

    sw = space_options(
        sub.add_parser("sweep", help="run (or --resume) a sweep: Ray Tune + Optuna over Ray Train trials, in MLflow"),
        "space",
        "search space name (search_spaces/NAME.yaml) or a YAML path",
    )
    sw.add_argument("--storage-path", help="Tune/Train storage: a local dir (default ./ray_results), NFS or s3://")
    sw.add_argument(
        "--resume", action="store_true", help="continue the sweep at STORAGE/NAME; finished trials are not rerun"
    )
    sw.add_argument("--address", help="Ray cluster address (auto, HOST:PORT); default: embedded local Ray")
    sw.add_argument(
        "--dashboard",
        action="store_true",
        help="start the Ray dashboard (http://127.0.0.1:8265) with embedded Ray; off by default, as it "
        "slows a small machine's start and takes CPU from the trials",
    )
    sw.add_argument(
        "--driver-resources",
        metavar="JSON",
        help='resources each trial\'s Tune function reserves, e.g. \'{"CPU": 0, "trial_driver": 0.01}\' '
        "to keep trial drivers on the head node of cluster.yaml (default: no CPU)",
    )
    sw.add_argument(
        "--worker-resources",
        metavar="JSON",
        help="custom resources added to each Train worker's request, e.g. '{\"fake_gpu\": 1}'; win over "
        "resources.worker_resources of the space for a name both give, and replace $MOSECROT_WORKER_RESOURCES",
    )
    sw.add_argument("--no-baselines", action="store_true", help="do not run/log the baselines")
    sw.add_argument("--no-report", action="store_true", help="do not print/write the report after the sweep")
    sw.add_argument("--output-dir", help="root of the report directory (default: runs/sweeps/NAME)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bars")
    sw.set_defaults(func=cmd_sweep)

    b = space_options(
        sub.add_parser("baselines", help="run a sweep's baselines once and log them to MLflow (kind=baseline)"),
        "space",
        "search space name or YAML path",
    )
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(func=cmd_baselines)

    rp = space_options(
        sub.add_parser(
            "report", help="best configuration per method against the baselines, per language (markdown, CSV, PNG)"
        ),
        "sweep",
        "the sweep: a search space name/path, or an MLflow experiment name",
    )
    rp.add_argument("--output-dir", help="root of the report directory (default: runs/sweeps/NAME)")
    rp.add_argument(
        "--trials",
        action="store_true",
        help="also print every finished trial with its searched params (always in report.md, trials.csv)",
    )
    rp.set_defaults(func=cmd_report, space=None)

    cf = space_options(
        sub.add_parser(
            "confirm",
            help="re-run a sweep's N best trials with every seed (in this process, no Ray), log them (kind=confirm) "
            "and write the confirm table; resumable",
        ),
        "sweep",
        "the sweep's search space name or YAML path (with the --set it ran with)",
    )
    cf.add_argument("--top", type=int, default=3, help="how many of the best finished trials (default 3)")
    cf.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
    cf.add_argument("--output-dir", help="root of the report directory (default: runs/sweeps/NAME)")
    cf.add_argument("--no-progress", action="store_true", help="no progress bars")
    cf.set_defaults(func=cmd_confirm, space=None)

    ex = space_options(
        sub.add_parser(
            "export", help="write a sweep's selected configuration as an experiment file for `mosecrot run`"
        ),
        "sweep",
        "the sweep's search space name or YAML path (with the --set it ran with)",
    )
    ex.add_argument(
        "--rank",
        type=int,
        help="the R-th best trial by the sweep's objective (default: the confirm winner if the sweep was "
        "confirmed, else rank 1)",
    )
    ex.add_argument("-o", "--output", required=True, metavar="FILE.yaml", help="the experiment file to write")
    ex.set_defaults(func=cmd_export, space=None)

    ui = sub.add_parser("ui", help="open a sweep's runs in the MLflow UI (model-training view, loopback by default)")
    ui.add_argument("sweep", nargs="?", help="sweep name (default: the sweep logged last)")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (default as for sweep)")
    ui.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")
    ui.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: not exposed)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)

    add_ems_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    output.configure(args.verbose)
    try:
        return args.func(args)
    except InputError as err:
        console.print(f"[red]error:[/] {err}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[red]interrupted[/]", highlight=False)
        return 130
    finally:
        output.reset()


if __name__ == "__main__":
    sys.exit(main())
