"""CLI verbs for the store: `import`, `runs` (and `runs set`), `export`, `info`, `ingest`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import JsonOption, StoreOption, fail
from store.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

ProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="Project name.", show_default=False)
]
RUN_COLUMNS = ("project", "run", "status", "params", "n_points", "last_step", "last_loss")


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input or a busy store: message on stderr, exit code 2, no traceback."""
    from store.errors import ScalinglabError

    try:
        yield
    except ScalinglabError as err:
        fail(str(err))


def open_store(path: Path | None) -> Store:
    from store.core import Store

    return Store(path)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records with NaN/NA as null and timestamps as ISO text."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _parse_mapping(items: list[str]) -> dict[str, str] | None:
    """`--map` values as {file column: canonical name}."""
    from store.errors import BadInputError

    mapping: dict[str, str] = {}
    for item in items:
        column, sep, name = item.rpartition("=")
        if not sep or not column.strip() or not name.strip():
            raise BadInputError(f"--map expects COLUMN=NAME, got {item!r}")
        mapping[column.strip()] = name.strip()
    return mapping or None


def import_(
    files: Annotated[
        list[str],
        typer.Argument(
            metavar="FILES...",
            help="CSV or Parquet files, or tracker runs: folders of TensorBoard event files "
            "or W&B offline runs, an MLflow store (mlruns/, an MLflow .db or "
            "sqlite:///path.db), trackio project databases (<project>.db or their folder).",
            show_default=False,
        ),
    ],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name.")] = "default",
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="auto, long, wandb, tensorboard or table (CSV or Parquet files); "
            "tensorboard-events, wandb-offline, mlflow or trackio (tracker runs; detected).",
        ),
    ] = "auto",
    bits: Annotated[
        bool, typer.Option("--bits", help="The loss column is in bits: convert to nats.")
    ] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="COLUMN=NAME: read a file column as a canonical one (repeatable; wins over "
            "the aliases). Map several columns to run when names repeat across a sweep.",
            show_default=False,
        ),
    ] = None,
    replicates: Annotated[
        str,
        typer.Option(
            "--replicates",
            help="refuse (default) or keep: rows identical but for the loss are repeated "
            "runs (seeds), kept as replicates '<run> rep<k>' of the run.",
        ),
    ] = "refuse",
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            metavar="TAG[=ROLE]",
            help="Tracker runs: read this tag (repeatable; instead of the detected loss, "
            "eval and LR tags), as ROLE: lr, tokens, flops or a split (train, eval).",
            show_default=False,
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            metavar="SPEC",
            help="The LR schedule of every run in the files, stored with the run (e.g. "
            "cosine:peak=3e-4,total=24000,warmup=2160,final=3e-5).",
        ),
    ] = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import loss curves or final-loss tables from CSV (all files, or none on bad input).
    Columns no canonical name claims are kept as run facts when constant within a run."""
    from store.importers import import_files
    from store.trackers.tags import parse_tag_options

    with user_errors():
        mapping = _parse_mapping(map_ or [])
        if schedule is not None:
            from fitting.schedules import ScheduleSpec

            schedule = str(ScheduleSpec.coerce(schedule))
        report = import_files(
            open_store(store),
            files,
            project=project,
            format=format,
            bits=bits,
            mapping=mapping,
            replicates=replicates,
            tags=parse_tag_options(tag),
            schedule=schedule,
        )
    if as_json:
        print_json(report.to_dict())
        return
    for item in report.files:
        if item.skipped:
            typer.echo(f"{item.file}: already imported into {project!r}, nothing to do")
            continue
        typer.echo(f"{item.file}: {item.format}, {item.runs} runs, {item.points} points")
        for warning in item.warnings:
            typer.echo(f"  note: {warning}")
    typer.echo(f"project {project!r}: +{report.runs} runs, +{report.points} points")


runs_app = typer.Typer(help="List runs with their facts and last point; `runs set` attaches facts.")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    project: ProjectOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List runs with their facts and last point (live inbox runs included)."""
    from store import queries

    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        frame = queries.list_runs(open_store(store), project=project)
    if as_json:
        print_json(frame_records(frame))
        return
    if frame.empty:
        typer.echo("no runs" + (f" in project {project!r}" if project else ""))
        return
    rows = [
        ["" if _missing(v) else _fmt(v) for v in row]
        for row in frame[list(RUN_COLUMNS)].itertuples(index=False)
    ]
    typer.echo(text_table(list(RUN_COLUMNS), rows, numeric=RUN_COLUMNS[3:]))


@runs_app.command("set")
def runs_set(
    items: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN NAME=VALUE...]",
            help="A run and its facts, e.g. r1 params=1.2e8 tokens=2.4e9 family=en.",
            show_default=False,
        ),
    ] = None,
    project: Annotated[str, typer.Option("--project", "-p", help="Project name.")] = "default",
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="A facts table keyed by a 'run' column, one fact a column."),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Attach facts to stored runs: N (params), D (tokens: the run's training tokens),
    family, schedule, or any named fact for --where and --group-by."""
    from store.runfacts import read_facts_csv, set_facts

    with user_errors():
        if csv is not None and items:
            raise BadInputError("give RUN NAME=VALUE... or --csv FILE, not both")
        if csv is not None:
            facts = read_facts_csv(csv)
        else:
            if not items or len(items) < 2:
                raise BadInputError("give a run and at least one NAME=VALUE (or --csv FILE)")
            run, pairs = items[0], items[1:]
            values: dict[str, str] = {}
            for pair in pairs:
                name, sep, value = pair.partition("=")
                if not sep or not name.strip() or not value.strip():
                    raise BadInputError(f"expected NAME=VALUE, got {pair!r}")
                values[name.strip()] = value.strip()
            facts = {run: values}
        for values in facts.values():
            if "schedule" in values:
                from fitting.schedules import ScheduleSpec

                values["schedule"] = str(ScheduleSpec.coerce(values["schedule"]))
        count = set_facts(open_store(store), project, facts)
    typer.echo(f"project {project!r}: {count} fact(s) set on {len(facts)} run(s)")


def text_table(headers: list[str], rows: list[list[str]], numeric: tuple[str, ...] = ()) -> str:
    """Aligned plain-text columns that never cut a value, whatever the terminal's width
    or a pipe: a project or run name identifies its row, so it is always shown whole."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(width) if name in numeric else cell.ljust(width)
            for name, cell, width in zip(headers, cells, widths, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def export(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file, .csv or .parquet.", show_default=False)
    ],
    runs: Annotated[
        list[str] | None,
        typer.Option("--runs", help="Runs to export (repeat or comma-separate; default all)."),
    ] = None,
    project: ProjectOption = None,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export points (long canonical format, with run facts) to CSV or Parquet."""
    from store import queries

    names = [n.strip() for item in runs or [] for n in item.split(",") if n.strip()] or None
    with user_errors():
        n = queries.export(open_store(store), out, project=project, runs=names)
    if as_json:
        print_json({"out": str(out), "rows": n})
    else:
        typer.echo(f"wrote {n} points to {out}")


def info(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Store location, size on disk, row counts (live inbox runs included), schema
    version, and the inbox shards moved to the quarantine (with why)."""
    with user_errors():
        data = store_info(open_store(store))
    if as_json:
        print_json(data)
        return
    quarantined = data.pop("quarantined")
    for key, value in data.items():
        typer.echo(f"{key:>16}: {value}")
    typer.echo(f"{'quarantined':>16}: {len(quarantined)}")
    for item in quarantined:
        typer.echo(f"{'':>18}{item['shard']}: {item['reason']}")


def store_info(st: Store) -> dict[str, Any]:
    """What `info` shows; does not create a store that is not there yet.

    `projects`, `runs` and `points` count what `runs` lists: the tables plus the inbox
    shards not yet ingested (a live run counts as soon as it has logged).
    """
    from store import quarantine, queries, shards

    st.check_root()
    files = [p for p in st.root.rglob("*") if p.is_file()] if st.root.exists() else []
    data: dict[str, Any] = {
        "store": str(st.root),
        "database": str(st.db_path),
        "exists": st.db_path.exists(),
        "size_bytes": sum(p.stat().st_size for p in files),
        "inbox_shards": len(shards.list_shards(st.inbox_dir, shards.POINTS_PREFIX))
        + len(shards.list_shards(st.inbox_dir, shards.FACTS_PREFIX)),
        "uploads": len(list(st.uploads_dir.glob("*"))) if st.uploads_dir.exists() else 0,
    }
    tables = ("projects", "runs", "points", "fits", "jobs")
    if not data["exists"]:
        data.update({"schema_version": None, **{t: 0 for t in tables}})
        return {**data, "quarantined": quarantine.list_quarantined(st.root)}
    runs = queries.list_runs(st)
    with st.connect(read_only=True) as con:
        from store.schema import current_version

        data["schema_version"] = current_version(con)
        named = {row[0] for row in con.execute("SELECT project FROM projects").fetchall()}
        for table in ("fits", "jobs"):
            row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            data[table] = int(row[0]) if row else 0
    data["projects"] = len(named | set(runs["project"]))
    data["runs"] = len(runs)
    data["points"] = int(runs["n_points"].sum()) if len(runs) else 0
    return {**_ordered(data, tables), "quarantined": quarantine.list_quarantined(st.root)}


def _ordered(data: dict[str, Any], last: tuple[str, ...]) -> dict[str, Any]:
    """`data` with the keys in `last` moved to the end, in that order."""
    head = {k: v for k, v in data.items() if k not in last}
    return {**head, **{k: data[k] for k in last}}


def ingest(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Move finished inbox shards (live runs) into the tables; safe to repeat."""
    from dataclasses import asdict

    from store.ingest import ingest_inbox

    with user_errors():
        report = ingest_inbox(open_store(store))
    if as_json:
        print_json(asdict(report))
    else:
        typer.echo(
            f"ingested {report.points} points from {report.point_shards} shards "
            f"({report.fact_shards} fact shards) in {report.seconds:.2f} s"
        )
        if report.quarantined:
            typer.echo(
                f"quarantined {len(report.quarantined)} bad shards (see `scalinglab info`): "
                + ", ".join(report.quarantined)
            )


def register(cli: typer.Typer) -> None:
    """Add this module's verbs to the command."""
    cli.command("import")(import_)
    cli.add_typer(runs_app, name="runs")
    cli.command("export")(export)
    cli.command("info")(info)
    cli.command("ingest")(ingest)
