"""CLI verb `allocate`: Chinchilla's three compute-optimal allocation approaches side by side."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import JsonOption, StoreOption
from store.errors import BadInputError

HELP = """Compute-optimal N and D for FLOP budgets, three ways (Hoffmann et al. 2022).

Approach 1 (envelope): the lowest loss reached at each FLOP value across runs and the N
that reached it (loss curves; a table of final losses gives a coarser envelope per
compute bin). Approach 2 (IsoFLOP): a parabola in log N per compute budget; budgets whose
points do not surround the minimum are flagged and left out. Approach 3: a parametric law's
closed form. Each gives a (N_opt ∝ C^a), b (D_opt ∝ C^b), N_opt, D_opt and tokens per
parameter at every --budget, with intervals (bootstrap) and flags, under the FLOP and size
accounting it states. Hoffmann et al. report a = 0.50, 0.49, 0.46 on their runs.

Example: scalinglab allocate --csv examples/chinchilla_besiroglu2024.csv --budget 1e21
--budget 5.76e23"""


def _frame(csv: Path | None, project: str | None, store: Path | None, flops: str) -> Any:
    from fitting.data import load_project, read_file

    if (csv is None) == (project is None):
        raise BadInputError("give the data: --csv FILE or --project P (one of them)")
    if csv is not None:
        return read_file(csv)
    from store.core import Store

    frame = load_project(Store(store), project or "default")
    if flops == "attention" and "config" not in frame.columns:
        from store.queries import list_runs

        runs = list_runs(Store(store), project)
        if "config" in runs.columns:  # the model shape lives in the run's config JSON
            frame = frame.merge(runs[["run", "config"]], on="run", how="left")
    return frame


def _drop_highest(frame: Any, count: int) -> Any:
    """The frame without the ``count`` runs of highest final loss (Besiroglu et al.'s
    replication drops the 5 highest of the Chinchilla points)."""
    if count == 0:
        return frame
    if "run" not in frame.columns:
        raise BadInputError("--drop-highest needs runs to drop")
    final = frame.sort_values("step" if "step" in frame.columns else "loss").groupby("run")
    worst = final["loss"].last().sort_values().index[-count:]
    return frame[~frame["run"].isin(worst)]


def allocate(
    csv: Annotated[Path | None, typer.Option("--csv", help="A file the importer accepts.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Stored project.")] = None,
    budget: Annotated[
        list[float] | None,
        typer.Option("--budget", help="FLOP budget C; repeatable (default 1e21 and 5.76e23)."),
    ] = None,
    flops: Annotated[
        str,
        typer.Option(
            "--flops",
            help="FLOP count: 6ND, attention (6N + 6 n_layer n_ctx d_model per token, "
            "Kaplan et al.) or logged (the flops column).",
        ),
    ] = "6ND",
    params: Annotated[
        str, typer.Option("--params", help="N counts total or non_embedding parameters.")
    ] = "total",
    law: Annotated[
        str | None,
        typer.Option("--law", help="Approach 3's law (default: the first with an optimum)."),
    ] = None,
    grouping: Annotated[
        str,
        typer.Option(
            "--grouping",
            help="Approach 2's budgets: auto, exact, bins (of --bin-width decades) or "
            "checkpoints (Porian et al.: curves interpolated at fixed FLOP values).",
        ),
    ] = "auto",
    bin_width: Annotated[
        float, typer.Option("--bin-width", help="Compute bin width in decades.")
    ] = 0.1,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", help="Resamples for Approaches 1 and 2.")
    ] = 500,
    fit_bootstrap: Annotated[
        int, typer.Option("--fit-bootstrap", help="Bootstrap refits of Approach 3's law.")
    ] = 200,
    drop_highest: Annotated[
        int, typer.Option("--drop-highest", help="Leave out the runs of the K highest losses.")
    ] = 0,
    level: Annotated[float, typer.Option("--level", help="Interval level.")] = 0.95,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Keep the report in the store (with --project): a fit named 'allocation' "
            "that `scalinglab fits` lists and the Predict page shows.",
        ),
    ] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    from fitting.accounting import Accounting
    from fitting.analyses.allocation_report import allocation_report, format_report
    from fitting.laws import LAWS
    from fitting.result import jsonable

    accounting = Accounting.coerce({"flops": flops, "params": params})
    if law is not None and (law not in LAWS or not LAWS[law].supports("compute_optimal")):
        from fitting.laws import laws_supporting

        raise BadInputError(
            f"--law must be one of {', '.join(laws_supporting('compute_optimal'))}, not {law!r}"
        )
    from fitting.analyses.isoflop import GROUPINGS

    if grouping not in GROUPINGS:
        raise BadInputError(f"--grouping must be one of {', '.join(GROUPINGS)}, not {grouping!r}")
    if not 0 < level < 1:
        raise BadInputError(f"--level must be between 0 and 1, not {level!r}")
    if drop_highest < 0:
        raise BadInputError("--drop-highest must be 0 or more")
    if save and project is None:
        raise BadInputError("--save keeps the report with a stored project: give --project")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = _drop_highest(_frame(csv, project, store, flops), drop_highest)
        report = allocation_report(
            frame,
            budget or (1e21, 5.76e23),
            accounting=accounting,
            law=law,
            grouping=grouping,
            bin_width=bin_width,
            bootstrap=bootstrap,
            fit_bootstrap=fit_bootstrap,
            level=level,
            seed=seed,
        )
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            typer.echo(f"warning: {warning.message}", err=True)
    report["selection"] = {"file": str(csv)} if csv else {"project": project}
    if save:
        options = {
            "budgets": report["budgets"],
            "flops": flops,
            "params": params,
            "law": law,
            "grouping": grouping,
            "bin_width": bin_width,
            "bootstrap": bootstrap,
            "fit_bootstrap": fit_bootstrap,
            "level": level,
            "seed": seed,
        }
        selection = {"reduce": "all", "drop_highest": drop_highest, "source": "allocate"}
        _save(store, project or "default", frame, report, options, selection)
    if as_json:
        typer.echo(json.dumps(jsonable(report), default=str, allow_nan=False))
        return
    typer.echo(format_report(report))


def _save(
    store: Path | None,
    project: str,
    frame: Any,
    report: dict[str, Any],
    options: dict[str, Any],
    selection: dict[str, Any],
) -> None:
    """The report as an allocation record (`fitting.analyses.allocation_record`)."""
    from fitting.analyses import allocation_record
    from store.core import Store

    report["fit_id"] = allocation_record.save(
        Store(store),
        project,
        {k: v for k, v in report.items() if k != "selection"},
        selection=selection,
        options={k: v for k, v in options.items() if v is not None},
        frame=frame,
    )
    typer.echo(f"saved as fit {report['fit_id']} (law {allocation_record.ALLOCATION!r})", err=True)


def _reflowed(text: str) -> str:
    """Each paragraph on one line: the help formatter wraps them to the terminal."""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


def register(cli: typer.Typer) -> None:
    cli.command("allocate", help=_reflowed(HELP))(allocate)
