"""CLI verbs for the fitting engine: `laws`, `fit`, `predict`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import JsonOption, StoreOption, with_late_help
from store.errors import BadInputError


def _parse_pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    """NAME=VALUE pairs from a repeated option; BadInputError naming the bad one."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BadInputError(f"{flag} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def _floats(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise BadInputError(
            f"{what}: {text!r} is not a number (or comma-separated numbers)"
        ) from None


def _dump(obj: Any) -> str:
    """Strict JSON: non-finite numbers are the strings "inf", "-inf", "nan", as in a saved
    fit (`FitResult.to_json`); anything else JSON lacks is written as its text."""
    from fitting.result import jsonable

    return json.dumps(jsonable(obj), default=str, allow_nan=False)


def _parameter_names(law: Any) -> str:
    """A law's parameter names; for a law whose names come from the data (one set per
    family), the pattern its example data give, e.g. ``<family>.E``."""
    names = law.describe()["parameters"]
    if names:
        return ", ".join(names)
    import numpy as np

    _, frame = law.example(np.random.default_rng(0))
    names = [p.name for p in law.parameters(frame, **law.resolve(frame))]
    heads = dict.fromkeys(n.partition(".")[0] for n in names)
    tails = dict.fromkeys(n.partition(".")[2] for n in names)
    if all("." in n for n in names) and len(names) == len(heads) * len(tails):
        key = law.point_keys[0] if law.point_keys else "group"
        return ", ".join(f"<{key}>.{tail}" for tail in tails)
    return ", ".join(names)


def _fix_help() -> str:
    from fitting.laws import LAWS

    return "Parameters by law: " + "; ".join(
        f"{name}: {_parameter_names(law)}" for name, law in LAWS.items()
    )


def _x_help() -> str:
    from fitting.laws import LAWS

    return "; ".join(
        f"{name}: {', '.join(law.x_columns)}" for name, law in LAWS.items() if law.x_columns
    )


def _at_help() -> str:
    from fitting.laws import LAWS

    parts = []
    for name, law in LAWS.items():
        if law.takes_schedule:
            columns = "step (with --schedule)"
        elif law.x_columns:
            columns = f"the fit's x column ({', '.join(law.x_columns)})"
        else:
            columns = ", ".join(law.inputs)
        if law.supports("compute_optimal"):
            columns += ", or flops alone (the compute-optimal N and D)"
        parts.append(f"{name}: {columns}")
    return "Columns by law: " + "; ".join(parts) + "."


def _schedule_help() -> str:
    from fitting.laws import LAWS
    from fitting.schedules import DECAY_SHAPES, KINDS

    laws = ", ".join(name for name, law in LAWS.items() if law.takes_schedule)
    return (
        f"For {laws}. KIND:KEY=VALUE,... with KIND one of {', '.join(KINDS)}; keys peak, "
        f"total, warmup, final, decay, shape ({', '.join(DECAY_SHAPES)}), milestones "
        "(;-separated steps), gamma. E.g. cosine:peak=3e-4,total=2000 (then "
        ",warmup=100,final=3e-5 as needed)."
    )


def laws(as_json: JsonOption = False) -> None:
    """List the scaling laws: names, formulas, inputs and parameters."""
    from fitting.laws import LAWS

    described = [law.describe() for law in LAWS.values()]
    if as_json:
        typer.echo(_dump(described))
        return
    for d, law in zip(described, LAWS.values(), strict=True):
        params = _parameter_names(law)
        typer.echo(f"{d['name']:<14} {d['formula']}")
        typer.echo(f"{'':<14} inputs: {', '.join(d['inputs'])}; parameters: {params}")


def _load_frame(
    law: Any,
    csv: Path | None,
    project: str | None,
    runs: str | None,
    store: Path | None,
    law_opts: dict[str, Any],
    selection: Any = None,
    importer: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(the selected rows, what the saved fit records of them): the source, the
    selection (`fitting.selection`) and its report of rows used and dropped."""
    from fitting.data import load_project, read_file
    from fitting.selection import describe, select

    if csv is None and project is None and runs is None:
        raise BadInputError("give the data: --csv FILE or --project P [--runs R,...]")
    if csv is not None and runs is not None:
        raise BadInputError("--runs selects runs of a stored project; it cannot be used with --csv")
    if csv is None and importer:
        raise BadInputError("--map and --bits read a --csv file; a stored project is read as is")
    if csv is not None:
        frame = read_file(csv, **(importer or {}))
        source: dict[str, Any] = {"file": str(csv), **(importer or {})}
    else:
        from store.core import Store

        run_list = [r.strip() for r in runs.split(",") if r.strip()] if runs else None
        frame = load_project(Store(store), project or "default", run_list)
        source = {"project": project or "default", "runs": run_list}
    selected = select(law, frame, selection, **law_opts)
    law_opts.update(selected.law_options)
    return selected.frame, describe(selected, source)


def _selection_from(
    split: str | None,
    where: list[str] | None,
    exclude: list[str] | None,
    reduce: str | None,
    checkpoints: bool,
    group_by: str | None,
) -> Any:
    from fitting.selection import Selection

    names = [item.strip() for item in exclude or [] if item.strip()]
    return Selection(
        split=split,
        where=tuple(where or ()),
        exclude=tuple(names),
        reduce=reduce,
        checkpoints=checkpoints,
        group_by=group_by,
    )


def _schedules(items: list[str] | None, frame: Any) -> dict[str, str]:
    """--schedule RUN=SPEC pairs, each spec checked and each run present in the data."""
    from fitting.schedules import ScheduleSpec

    out: dict[str, str] = {}
    runs = set(frame["run"].astype(str)) if "run" in frame.columns else set()
    for run, spec in _parse_pairs(items, "--schedule").items():
        if run not in runs:
            listed = ", ".join(sorted(runs)[:8])
            raise BadInputError(f"--schedule: no run {run!r} in the data (runs: {listed})")
        out[run] = str(ScheduleSpec.coerce(spec))
    return out


def fit(
    law: Annotated[str, typer.Argument(help="Law name (see `scalinglab laws`).")],
    csv: Annotated[Path | None, typer.Option("--csv", help="A file the importer accepts.")] = None,
    project: Annotated[str | None, typer.Option("--project", help="Stored project.")] = None,
    runs: Annotated[str | None, typer.Option("--runs", help="Comma-separated run names.")] = None,
    x: Annotated[
        str | None, typer.Option("--x", help="The size column, for a law of one size.")
    ] = None,
    fix: Annotated[
        list[str] | None,
        typer.Option(
            "--fix", metavar="NAME=VALUE", help="Hold a parameter at a value; repeatable."
        ),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap", help="Bootstrap refits (default 400 when the intervals are bootstrap)."
        ),
    ] = None,
    loss: Annotated[str, typer.Option("--loss", help="huber or ls.")] = "huber",
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    intervals: Annotated[
        str,
        typer.Option(
            "--intervals",
            help="auto (bootstrap for laws of final losses, robust sandwich for curve laws), "
            "bootstrap, sandwich, profile (lmfit) or curvature.",
        ),
    ] = "auto",
    delta: Annotated[
        float, typer.Option("--delta", help="Huber threshold on the residuals.")
    ] = 1e-3,
    residuals: Annotated[
        str,
        typer.Option("--residuals", help="log (log L residuals) or linear (loss residuals)."),
    ] = "log",
    resample: Annotated[
        str,
        typer.Option(
            "--resample",
            help="Bootstrap unit: auto (runs when 5 or more, else points), runs, points.",
        ),
    ] = "auto",
    holdout_factor: Annotated[
        float,
        typer.Option(
            "--holdout-factor",
            help="--extrapolation holds out the points within this factor of the largest scale.",
        ),
    ] = 1.5,
    level: Annotated[float, typer.Option("--level", help="Interval level.")] = 0.95,
    extrapolation: Annotated[
        bool, typer.Option("--extrapolation", help="Also run the extrapolation test.")
    ] = False,
    split: Annotated[
        str | None,
        typer.Option(
            "--split",
            metavar="NAME",
            help="The split to fit (exact name, a /-part of it, or a unique part), "
            "required when the data hold several.",
        ),
    ] = None,
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where",
            metavar="EXPR",
            help='Keep the rows where EXPR holds, e.g. "loss < 4.5", "tokens >= 5*params", '
            "\"train_dataset == 'c4'\" (columns and run facts; and/or/not, in (...), "
            "log/exp/sqrt/abs); repeatable (all must hold).",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", metavar="RUN,...", help="Leave these runs out; repeatable."),
    ] = None,
    reduce: Annotated[
        str | None,
        typer.Option(
            "--reduce",
            metavar="final|best|all",
            help="final (each run's final loss; default for laws of final losses), best "
            "(the lowest final loss among runs of the same N and D) or all (every point).",
        ),
    ] = None,
    checkpoints: Annotated[
        bool,
        typer.Option(
            "--checkpoints", help="Every logged point of each run as an (N, D so far) point."
        ),
    ] = False,
    group_by: Annotated[
        str | None,
        typer.Option("--group-by", metavar="COLUMN", help="Fit one law per value of COLUMN."),
    ] = None,
    share: Annotated[
        str | None,
        typer.Option(
            "--share",
            metavar="NAME,...",
            help="With --group-by: parameters common to every group (one fit, in the engine).",
        ),
    ] = None,
    tie: Annotated[
        list[str] | None,
        typer.Option(
            "--tie",
            metavar="NAME=NAME",
            help="Hold parameters equal (e.g. alpha=beta), counted as one; repeatable.",
        ),
    ] = None,
    schedule: Annotated[
        list[str] | None,
        typer.Option(
            "--schedule",
            metavar="RUN=SPEC",
            help="The exact LR schedule of a run, for the curve laws; repeatable.",
        ),
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map", metavar="SRC=CANON", help="With --csv: name a column (e.g. ent_dev=loss)."
        ),
    ] = None,
    bits: Annotated[
        bool, typer.Option("--bits", help="With --csv: the loss is in bits (converted to nats).")
    ] = False,
    save: Annotated[bool, typer.Option("--save", help="Store the fit in the fits table.")] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Fit a law to a CSV file or to stored runs; print the parameters (or JSON)."""
    # Submodule imports (not `fitting.fit`): they work even where the package is installed
    # as a namespace (a stale editable install).
    from fitting.engine import fit as run_fit
    from fitting.engine import get_law

    law_obj = get_law(law)
    law_opts: dict[str, Any] = {"x": x} if x is not None else {}
    if x is not None and not law_obj.x_columns:
        from fitting.laws import LAWS

        with_x = ", ".join(name for name, known in LAWS.items() if known.x_columns)
        raise BadInputError(f"--x only applies to {with_x}")
    fixed = {k: _floats(v, f"--fix {k}")[0] for k, v in _parse_pairs(fix, "--fix").items()}
    chosen = _selection_from(split, where, exclude, reduce, checkpoints, group_by)
    importer: dict[str, Any] = {}
    if mapping:
        importer["mapping"] = _parse_pairs(mapping, "--map")
    if bits:
        importer["bits"] = True
    if share and not group_by:
        raise BadInputError("--share makes parameters common to groups: give --group-by too")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame, selection = _load_frame(
            law_obj, csv, project, runs, store, law_opts, chosen, importer
        )
    if as_json:  # the text report shows them with the fit
        for warning in caught:
            typer.echo(f"warning: {warning.message}", err=True)
    if schedule:
        if not law_obj.takes_schedule:
            raise BadInputError(f"--schedule is for the curve laws; {law!r} takes no schedule")
        law_opts["schedules"] = _schedules(schedule, frame)
    if group_by:
        law_opts["group_by"] = group_by
        law_opts["share"] = [n.strip() for n in (share or "").split(",") if n.strip()]
    extra: dict[str, Any] = {"tie": list(tie)} if tie else {}
    result = run_fit(
        law_obj,
        frame,
        fix=fixed,
        bootstrap=bootstrap,
        loss=loss,
        seed=seed,
        intervals=intervals,
        delta=delta,
        residuals=residuals,
        resample=resample,
        holdout_factor=holdout_factor,
        level=level,
        extrapolation=extrapolation,
        **extra,
        **law_opts,
    )
    result.selection = selection
    fit_id = None
    if save:
        from fitting.persist import save_result
        from store.core import Store

        fit_id = save_result(Store(store), result, project or "default", selection)
    if as_json:
        typer.echo(_dump(_fit_summary(result, fit_id)))
        return
    for line in _selection_lines(selection):
        typer.echo(line)
    typer.echo(result.report())
    for note in result.checks.get("notes") or []:  # what the law assumed (an interpolated LR)
        typer.echo(f"note: {note}")
    if group_by:
        for line in _group_lines(result):
            typer.echo(line)
    if fit_id is not None:
        typer.echo(f"saved as fit {fit_id}")


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    """The data a fit saw: its source and the selection's report (rows used, dropped)."""
    from fitting.selection import SelectionReport

    report = SelectionReport(**(selection.get("report") or {"rows_in": 0}))
    source = selection.get("file") or f"project {selection.get('project')!r}"
    chosen = []
    for key in ("split", "where", "exclude", "reduce", "group_by"):
        values = selection.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            chosen.append(f"--{key.replace('_', '-')} {value}")
    if selection.get("checkpoints"):
        chosen.append("--checkpoints")
    head = f"source: {source}" + (f" ({'; '.join(chosen)})" if chosen else "")
    return [head, *report.lines()]


def _group_lines(result: Any) -> list[str]:
    """A table of the groups' answers: points, parameters, and for a law with a
    compute-optimal allocation, N_opt and D/N at 1e21 FLOPs."""
    from fitting.constraints import group_table
    from fitting.laws import LAWS

    names, rows = group_table(result)
    law = LAWS[result.law]
    optimal = law.supports("compute_optimal")
    group_by = result.options.get("group_by")
    shared = ", ".join(result.options.get("share") or []) or "none"
    lines = [f"one fit per {group_by} (shared: {shared})"]
    head = f"{group_by!s:<22}{'points':>7}" + "".join(f"{n:>12}" for n in names)
    if optimal:
        head += f"{'N_opt@1e21':>12}{'D/N@1e21':>10}"
    lines.append(head)
    for row in rows:
        line = f"{row['group']:<22}{row['points']:>7}" + "".join(f"{row[n]:>12.5g}" for n in names)
        if optimal:
            import numpy as np

            n_opt, d_opt, _ = law.compute_optimum({n: row[n] for n in names}, np.array([1e21]))
            line += f"{float(n_opt[0]):>12.4g}{float(d_opt[0] / n_opt[0]):>10.2f}"
        lines.append(line)
    return lines


def _fit_summary(result: Any, fit_id: int | None) -> dict[str, Any]:
    """The `fit --json` object: the whole FitResult (so `predict` takes it back), the
    method of its intervals in words, its flags, and the saved fit's id."""
    from dataclasses import asdict

    out = {**asdict(result), "method": result.method_text(), "flags": result.flag_names()}
    if fit_id is not None:
        out["fit_id"] = fit_id
    return out


def _load_result(ref: str, store: Path | None) -> tuple[Any, int | None]:
    from fitting.result import FitResult

    if ref.strip() == "-":  # `fit --json | predict -`
        import sys

        return FitResult.from_json(_json_text(sys.stdin.read())), None
    if ref.strip().isdigit():
        from fitting.persist import load_result
        from store.core import Store

        return load_result(Store(store), int(ref)), int(ref)
    path = Path(ref)
    if path.exists():
        return FitResult.from_json(_json_text(path.read_text())), None
    if ref.lstrip().startswith("{"):
        return FitResult.from_json(_json_text(ref)), None
    raise BadInputError(f"{ref!r} is neither a fit id, a JSON file, fit JSON nor - (stdin)")


def _json_text(text: str) -> dict[str, Any]:
    """Fit JSON (a saved result or `fit --json` output) as a dict; BadInputError if not."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInputError(f"not valid fit JSON: {err}") from None
    if not isinstance(raw, dict):
        raise BadInputError("not a fit result: the JSON is not an object")
    return raw


def _at_frame(at: dict[str, str]) -> Any:
    import numpy as np
    import pandas as pd

    cols: dict[str, Any] = {}
    for name, value in at.items():
        if name in ("family", "run", "split"):
            cols[name] = value.split(",")
        else:
            cols[name] = _floats(value, f"--at {name}")
    n = max(len(v) for v in cols.values())
    for name, values in cols.items():
        if len(values) not in (1, n):
            raise BadInputError(f"--at {name}: give one value or {n} values")
        cols[name] = list(np.repeat(values, n)) if len(values) == 1 else values
    return pd.DataFrame(cols)


def predict(
    fit_ref: Annotated[
        str,
        typer.Argument(metavar="FIT_ID_OR_JSON", help="A saved fit id, a JSON file, or fit JSON."),
    ],
    at: Annotated[
        list[str] | None,
        typer.Option(
            "--at",
            metavar="COLUMN=VALUE[,VALUE...]",
            help="Where to predict; repeatable, one per input column.",
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule", metavar="SPEC", help="Predict the loss curve of this LR schedule."
        ),
    ] = None,
    level: Annotated[float, typer.Option("--level", help="Band level.")] = 0.95,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Predict the loss of a fitted law at new sizes (or under a new LR schedule)."""
    from fitting.laws import supports

    result, fit_id = _load_result(fit_ref, store)
    points = _parse_pairs(at, "--at")
    if schedule is not None:
        out = _schedule_prediction(result, schedule, points, level)
    elif not points:
        raise BadInputError("give --at COLUMN=VALUE (e.g. --at params=1e9 --at tokens=2e10)")
    elif set(points) == {"flops"} and supports(result.law, "compute_optimal"):
        from fitting.analyses import compute_optimal

        out = {
            "compute_optimal": compute_optimal(
                result, _floats(points["flops"], "--at flops"), level
            )
        }
    else:
        frame = _at_frame(points)
        pred = result.predict(frame)
        bands = result.bands(frame, level)
        (lo, hi), (p_lo, p_hi) = bands["confidence"], bands["prediction"]
        out = {
            "rows": frame.to_dict(orient="list"),
            "loss": pred,
            "lo": lo,
            "hi": hi,
            "pred_lo": p_lo,
            "pred_hi": p_hi,
            "flags": {"beyond_data": result.beyond_data(frame)},
        }
    out = {
        "law": result.law,
        "fit_id": fit_id,
        "level": level,
        "method": result.method_text(),
        "bands": {"lo/hi": "confidence band (the law)", "pred_lo/pred_hi": "prediction band"},
        "fit_flags": result.flag_names(),
        **out,
    }
    if as_json:
        typer.echo(_dump(out))
        return
    _print_prediction(out)


def _schedule_prediction(
    result: Any, spec: str, points: dict[str, str], level: float
) -> dict[str, Any]:
    """Predicted curve under a new schedule (the curve laws' analysis)."""
    try:
        from fitting.analyses.schedule_curve import schedule_curve
    except ImportError:
        raise BadInputError("schedule predictions are not available in this build") from None
    steps = [int(s) for s in _floats(points["step"], "--at step")] if "step" in points else None
    curve = schedule_curve(result, spec, steps=steps, level=level)
    return {"schedule": spec, "curve": curve.to_dict(orient="list")}


def _print_prediction(out: dict[str, Any]) -> None:
    import numpy as np

    from fitting.result import beyond_text

    pct = f"{100 * out['level']:g}%"
    typer.echo(f"{pct} intervals: {out['method']}")
    for flag in out.get("fit_flags") or []:
        typer.echo(f"warning: the fit is flagged: {flag} (see `scalinglab fit` for why)")
    if "compute_optimal" in out:
        co = out["compute_optimal"]

        def cell(key: str, i: int, fmt: str) -> str:
            lo, hi = co[f"{key}_lo"][i], co[f"{key}_hi"][i]
            return f"{co[key][i]:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

        for i, c in enumerate(co["flops"]):
            typer.echo(
                f"C={c:.4g}: N_opt {cell('N_opt', i, '.4g')}  D_opt {cell('D_opt', i, '.4g')}  "
                f"tokens/param {cell('tokens_per_param', i, '.3g')}  "
                f"loss {cell('loss', i, '.4f')}  a {cell('a', i, '.3f')}  b {cell('b', i, '.3f')}"
            )
        flags = beyond_text((co.get("flags") or {}).get("beyond_data") or {})
        if flags:
            typer.echo(f"warning: {flags}")
        return
    if "curve" in out:
        curve = out["curve"]
        n = len(curve["step"])
        typer.echo(
            f"{'step':>8} {'lr':>10} {'loss':>9}   {'confidence band':^21}   "
            f"{'prediction band':^21}"
        )
        for i in sorted(set(np.linspace(0, n - 1, min(n, 40)).astype(int).tolist())):
            typer.echo(
                f"{curve['step'][i]:8d} {curve['lr'][i]:10.3g} {curve['loss'][i]:9.5f}   "
                f"[{curve['lo'][i]:9.5f}, {curve['hi'][i]:9.5f}]   "
                f"[{curve['pred_lo'][i]:9.5f}, {curve['pred_hi'][i]:9.5f}]"
            )
        return
    rows = out["rows"]
    for i, value in enumerate(out["loss"]):
        where = ", ".join(
            f"{k}={v[i]:.4g}" if isinstance(v[i], float) else f"{k}={v[i]}" for k, v in rows.items()
        )
        typer.echo(
            f"{where}: loss {value:.5f}  confidence [{out['lo'][i]:.5f}, {out['hi'][i]:.5f}]  "
            f"prediction [{out['pred_lo'][i]:.5f}, {out['pred_hi'][i]:.5f}]"
        )
    flags = beyond_text((out.get("flags") or {}).get("beyond_data") or {})
    if flags:
        typer.echo(f"warning: {flags}")


def register(cli: typer.Typer) -> None:
    """Add `laws`, `fit` and `predict` to the command."""
    cli.command("laws")(laws)
    cli.command("fit", cls=with_late_help(x=_x_help, fix=_fix_help))(fit)
    cli.command("predict", cls=with_late_help(at=_at_help, schedule=_schedule_help))(predict)
