"""CLI verbs: `serve`, `demo`, and the `jobs` sub-app (list, add, run, pause, resume, delete)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.common import JsonOption, StoreOption, fail
from store.errors import ScalinglabError

PortOption = Annotated[int, typer.Option("--port", help="Dashboard port.")]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--host",
        "--address",
        help="Address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 shares "
        "the dashboard with the network, as in a container).",
        show_default=False,
    ),
]

jobs_app = typer.Typer(
    help="Scheduled fitting jobs (they run inside `scalinglab serve`).", no_args_is_help=True
)


def _store(path: Any) -> Any:
    from store import Store

    return Store(path)


JobTimeoutOption = Annotated[
    float,
    typer.Option(
        "--job-timeout",
        help="Seconds a scheduled fit may run before it is stopped and marked as an error.",
        min=1,
    ),
]


def serve(
    store: StoreOption = None,
    port: PortOption = 8501,
    address: AddressOption = None,
    no_scheduler: Annotated[
        bool,
        typer.Option(
            "--no-scheduler",
            help="Serve the dashboard only: scheduled jobs do not run here (another "
            "serve may run them).",
        ),
    ] = False,
    job_timeout: JobTimeoutOption = 1800.0,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            help="Sign-in: a TOML file with Streamlit's [auth] section (an OpenID provider) "
            "and [roles] (who is viewer, editor, admin); default $SCALINGLAB_AUTH, else off.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the dashboard and the job scheduler (Ctrl-C stops both). Exits 2, before
    starting anything, when the port is taken or the sign-in file is bad."""
    from app.server.serve import serve as run_serve

    try:
        code = run_serve(
            _store(store),
            port=port,
            address=address,
            scheduler=not no_scheduler,
            job_timeout_s=job_timeout,
            auth=auth,
        )
    except ScalinglabError as err:
        fail(str(err))
    raise typer.Exit(code)


def demo(
    store: StoreOption = None,
    port: PortOption = 8501,
    address: AddressOption = None,
    no_sweep: Annotated[bool, typer.Option("--no-sweep", help="Do not train.")] = False,
) -> None:
    """Set up the live demo (a CPU sweep on a known-entropy source, refit every minute)
    and serve the dashboard, printing the sweep's progress (runs done, step, loss).
    Never opens a browser: open the printed URL."""
    import threading

    from app.server import demo as demo_mod
    from app.server.serve import bound_address, check_port
    from app.server.serve import serve as run_serve

    try:
        check_port(port, bound_address(address))  # before the demo job or a sweep exist
        st = _store(store)
        job_id = demo_mod.ensure_demo_job(st)
        print(f"demo job {job_id}: {demo_mod.DEMO_JOB_NAME}")
        proc, message = (
            (None, "sweep skipped (--no-sweep)") if no_sweep else demo_mod.start_sweep(st)
        )
        print(message, flush=True)
        done = threading.Event()
        if proc is not None:
            demo_mod.watch_progress(st, proc, done)
        try:
            code = run_serve(
                st, port=port, address=address, children=[proc] if proc is not None else None
            )
        finally:
            done.set()
    except ScalinglabError as err:
        fail(str(err))
    raise typer.Exit(code)


@jobs_app.command("list")
def jobs_list(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Jobs with their schedule, next and last run, status, duration and error."""
    from store import jobs

    frame = jobs.list_jobs(_store(store))
    cols = jobs.SUMMARY_COLUMNS
    frame = frame[[c for c in cols if c in frame.columns]]
    if as_json:
        print(frame.to_json(orient="records", date_format="iso"))
        return
    if frame.empty:
        print("no jobs")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*frame.columns)
    for row in frame.itertuples(index=False):
        table.add_row(*["" if _missing(v) else str(v) for v in row])
    Console(width=200).print(table)


def _missing(value: Any) -> bool:
    """None, NaN, NaT and pandas' NA alike (the store's empty cells)."""
    import pandas as pd

    return value is None or bool(pd.isna(value)) if not isinstance(value, str) else False


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            fail(f"--option expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _split_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


KINDS = ("fit", "allocation")


@jobs_app.command("add")
def jobs_add(
    name: Annotated[str, typer.Option("--name", help="A name for the job (shown in lists).")],
    project: Annotated[str, typer.Option("--project", help="The project whose runs it fits.")],
    law: Annotated[
        str | None,
        typer.Option(
            "--law",
            help="The law to fit (see `scalinglab laws`); with --kind allocation, Approach "
            "3's law (default: the first with a compute-optimal allocation).",
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="fit (one law) or allocation (Chinchilla's three compute-optimal "
            "approaches, as `scalinglab allocate`, saved as a fit named 'allocation').",
        ),
    ] = "fit",
    budget: Annotated[
        list[float] | None,
        typer.Option("--budget", help="allocation: a FLOP budget; repeatable."),
    ] = None,
    flops: Annotated[
        str | None, typer.Option("--flops", help="allocation: 6ND, attention or logged.")
    ] = None,
    params: Annotated[
        str | None, typer.Option("--params", help="allocation: total or non_embedding.")
    ] = None,
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            help="A five-field cron expression (minute hour day month weekday, e.g. "
            "'*/5 * * * *') or 'on-new-data' (whenever the project's data changes).",
        ),
    ] = "on-new-data",
    runs: Annotated[
        str | None, typer.Option("--runs", help="Comma-separated runs (default all).")
    ] = None,
    splits: Annotated[str | None, typer.Option("--splits", help="Comma-separated splits.")] = None,
    reduce: Annotated[
        str | None,
        typer.Option("--reduce", help="final | best | all (default final; allocation: all)."),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="The split to fit, as `fit --split`.")
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", metavar="EXPR", help="A filter, as `fit --where`; repeatable."),
    ] = None,
    exclude: Annotated[
        str | None, typer.Option("--exclude", metavar="RUN,...", help="Runs left out.")
    ] = None,
    checkpoints: Annotated[
        bool, typer.Option("--checkpoints", help="Every point as (N, D so far), as `fit`.")
    ] = False,
    group_by: Annotated[
        str | None, typer.Option("--group-by", metavar="COLUMN", help="One law per value.")
    ] = None,
    share: Annotated[
        str | None, typer.Option("--share", metavar="NAME,...", help="Common to the groups.")
    ] = None,
    tie: Annotated[
        list[str] | None, typer.Option("--tie", metavar="NAME=NAME", help="Equal parameters.")
    ] = None,
    x: Annotated[str | None, typer.Option("--x", help="x column for power_law.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="KEY=VALUE fit option.")
    ] = None,
    include_running: Annotated[
        bool,
        typer.Option(
            "--include-running",
            help="Also fit the last losses of runs still running or failed (default: "
            "finished runs only).",
        ),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Save a fit spec (or, with --kind allocation, an allocation report's) with a
    schedule; `scalinglab serve` runs it when due. The law, the option names, the schedule
    and the selection are checked first (exit 2, nothing saved, when one is wrong)."""
    from fitting.analyses.allocation_record import ALLOCATION
    from fitting.jobs import add_job

    if kind not in KINDS:
        fail(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    allocation = kind == "allocation"
    if not allocation and law is None:
        fail("a fit job needs --law (see `scalinglab laws`)")
    if not allocation and (budget or flops or params):
        fail("--budget, --flops and --params are for --kind allocation")
    reduce = reduce or ("all" if allocation else "final")
    if reduce not in ("final", "best", "all"):
        fail(f"--reduce must be 'final', 'best' or 'all', got {reduce!r}")
    selection = {
        "runs": _split_list(runs),
        "splits": _split_list(splits),
        "reduce": reduce,
        "finished": not include_running,
    }
    # The same vocabulary as `scalinglab fit` (fitting.selection), kept only when given.
    for key, value in (
        ("split", split),
        ("where", list(where or []) or None),
        ("exclude", _split_list(exclude)),
        ("checkpoints", checkpoints or None),
    ):
        if value is not None:
            selection[key] = value
    options = _parse_options(option or [])
    if x:
        options["x"] = x
    if group_by:
        options["group_by"] = group_by
        options["share"] = _split_list(share) or []
    elif share:
        fail("--share makes parameters common to groups: give --group-by too")
    if tie:
        options["tie"] = list(tie)
    if allocation:  # the report's options; Approach 3's law among them
        given = {"budgets": budget, "flops": flops, "params": params, "law": law}
        options.update({k: v for k, v in given.items() if v})
    try:
        job_id = add_job(
            _store(store),
            name=name,
            project=project,
            law=ALLOCATION if allocation else str(law),
            selection=selection,
            options=options,
            schedule=schedule,
        )
    except ScalinglabError as err:
        fail(str(err))
    print(f"job {job_id} added")


JobIdArgument = Annotated[
    int, typer.Argument(help="The job's id (see `scalinglab jobs list`).", show_default=False)
]


@jobs_app.command("run")
def jobs_run(job_id: JobIdArgument, store: StoreOption = None) -> None:
    """Run a job now, in this process, and print the new fit's (or report's) id."""
    from fitting.jobs import run_job

    try:
        fit_id = run_job(_store(store), job_id)
    except ScalinglabError as err:
        fail(f"job {job_id}: {err}")
    print(f"job {job_id}: fit {fit_id} saved")


def _set_paused(job_id: int, paused: bool, store: Any) -> None:
    from store import jobs

    st = _store(store)
    if jobs.get_job(st, job_id) is None:
        fail(f"no job with id {job_id}")
    jobs.update_job(st, job_id, paused=paused)
    print(f"job {job_id} {'paused' if paused else 'resumed'}")


@jobs_app.command("pause")
def jobs_pause(job_id: JobIdArgument, store: StoreOption = None) -> None:
    """Stop a job from running on its schedule (it can still be run by hand)."""
    _set_paused(job_id, True, store)


@jobs_app.command("resume")
def jobs_resume(job_id: JobIdArgument, store: StoreOption = None) -> None:
    """Put a paused job back on its schedule."""
    _set_paused(job_id, False, store)


@jobs_app.command("delete")
def jobs_delete(job_id: JobIdArgument, store: StoreOption = None) -> None:
    """Delete a job (its saved fits stay)."""
    from store import jobs

    st = _store(store)
    if jobs.get_job(st, job_id) is None:
        fail(f"no job with id {job_id}")
    jobs.delete_job(st, job_id)
    print(f"job {job_id} deleted")


def register(cli: typer.Typer) -> None:
    """Add `serve`, `demo` and `jobs` to the command."""
    cli.command("serve")(serve)
    cli.command("demo")(demo)
    cli.add_typer(jobs_app, name="jobs")
