"""CLI verb `fits`: the saved fits, newest first, with what each says about its doubts."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.common import JsonOption, StoreOption
from app.cli.store_cmds import text_table, user_errors

SELECTION_KEYS = ("runs", "split", "where", "exclude", "reduce", "group_by")


def describe_selection(selection: Any) -> str:
    """A saved fit's selection in one line: its source and the choices that narrowed it."""
    if isinstance(selection, str):
        try:
            selection = json.loads(selection)
        except json.JSONDecodeError:
            return selection
    if not isinstance(selection, dict):
        return "" if selection is None else str(selection)
    parts = [str(selection["file"])] if selection.get("file") else []
    for key in SELECTION_KEYS:
        value = selection.get(key)
        if value in (None, "", [], {}):
            continue
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        parts.append(f"{key}={text}")
    return "; ".join(parts) or "all runs"


def fit_row(record: dict[str, Any]) -> dict[str, Any]:
    """One listed fit: id, law, project, selection, date, method and flags."""
    from fitting.result import FitResult
    from store.errors import ScalinglabError

    row = {
        "id": int(record["id"]),
        "law": record["law"],
        "project": record["project"],
        "selection": describe_selection(record.get("selection")),
        "created_at": str(record.get("created_at") or ""),
        "job_id": None if record.get("job_id") is None else int(record["job_id"]),
    }
    from fitting.analyses import allocation_record

    if allocation_record.is_allocation(record["law"]):  # a saved allocation report
        try:
            return {**row, **allocation_record.summary(allocation_record.report_of(record))}
        except ScalinglabError:
            return {**row, "method": "", "flags": ["unreadable result"]}
    try:
        result = FitResult.from_json(record.get("result_json") or "{}")
    except (ScalinglabError, ValueError):
        return {**row, "method": "", "flags": ["unreadable result"]}
    return {**row, "method": result.method, "flags": result.flag_names()}


def fits(
    project: Annotated[
        str | None, typer.Option("--project", help="Only this project's fits.")
    ] = None,
    law: Annotated[str | None, typer.Option("--law", help="Only fits of this law.")] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List the saved fits: id, law, project, selection, date, interval method and flags."""
    from fitting.result import jsonable
    from store.core import Store
    from store.fits import list_fits

    with user_errors():
        frame = list_fits(Store(store), project=project, law=law)
        rows = [fit_row(rec) for rec in frame.to_dict("records")]
    if as_json:
        typer.echo(json.dumps(jsonable(rows), allow_nan=False))
        return
    if not rows:
        typer.echo("no saved fits" + (f" in project {project!r}" if project else ""))
        return
    headers = ["id", "law", "project", "selection", "created", "method", "flags"]
    table = [
        [
            str(r["id"]),
            r["law"],
            r["project"],
            r["selection"],
            r["created_at"][:19],
            r["method"],
            ", ".join(r["flags"]) or "-",
        ]
        for r in rows
    ]
    typer.echo(text_table(headers, table, numeric=("id",)))


def register(cli: typer.Typer) -> None:
    """Add `fits` to the command."""
    cli.command("fits")(fits)
