"""The allocation report as a saved record and as a job: Chinchilla's three approaches
(`fitting.analyses.allocation_report`) run on a stored selection and kept in the store.

A record is a row of the `fits` table whose law is ``ALLOCATION`` ("allocation", a name
no law may take) and whose ``result_json`` is ``{"kind": "allocation", "report": ...}``
(the report as `allocation_report` returns it, JSON-safe). Its ``options`` are the
report's options (`OPTION_KEYS`), its ``selection`` the rows it was run on. A job whose
``law`` is ``ALLOCATION`` makes one such record each time it runs (`fitting.jobs.run_job`).

Options (JSON object, every key optional): ``budgets`` (FLOP budgets, default Hoffmann et
al.'s 1e21 and 5.76e23), ``flops`` (``6ND``|``attention``|``logged``), ``params``
(``total``|``non_embedding``), ``law`` (Approach 3's law, one with ``compute_optimal``;
default the first whose inputs the data have), ``grouping``, ``bin_width``, ``bootstrap``,
``fit_bootstrap``, ``level``, ``seed`` (as `scalinglab allocate`'s).

Selection: ``runs``, ``splits``, ``finished`` and ``reduce`` (default ``all``: the curves
Approach 1 needs; ``final`` gives a table of final losses) as a fit job's, and ``where`` /
``exclude`` over the rows. ``split``, ``checkpoints`` and ``reduce="best"`` choose points
for one law's fit and are refused here.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fitting.errors import FitError
from store.errors import BadInputError, NotEnoughDataError

if TYPE_CHECKING:
    from store.core import Store

ALLOCATION = "allocation"
KIND = "allocation"
OPTION_KEYS = (
    "budgets",
    "flops",
    "params",
    "law",
    "grouping",
    "bin_width",
    "bootstrap",
    "fit_bootstrap",
    "level",
    "seed",
)
REFUSED_SELECTION = ("split", "checkpoints")


def is_allocation(law: Any) -> bool:
    """Whether a job's or a saved fit's law names the allocation report."""
    return law == ALLOCATION


def check_options(options: Any) -> dict[str, Any]:
    """An allocation job's options, checked as the report will read them (BadInputError
    naming the first bad one; nothing is run)."""
    from fitting.accounting import Accounting
    from fitting.analyses.isoflop import GROUPINGS
    from fitting.laws import LAWS, laws_supporting
    from store.jobs import validate_options

    opts = validate_options(options)
    unknown = sorted(set(opts) - set(OPTION_KEYS))
    if unknown:
        raise BadInputError(
            f"an allocation job takes no option {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(OPTION_KEYS)}"
        )
    budgets = opts.get("budgets")
    if budgets is not None:
        values = budgets if isinstance(budgets, list) else [budgets]
        if not values or not all(_positive(v) for v in values):
            raise BadInputError(f"'budgets' must be positive FLOP counts, got {budgets!r}")
        opts["budgets"] = [float(v) for v in values]
    Accounting.coerce({"flops": opts.get("flops", "6ND"), "params": opts.get("params", "total")})
    law = opts.get("law")
    if law is not None and (law not in LAWS or not LAWS[law].supports("compute_optimal")):
        able = ", ".join(laws_supporting("compute_optimal"))
        raise BadInputError(f"option 'law' (Approach 3) must be one of {able}, not {law!r}")
    if opts.get("grouping", "auto") not in GROUPINGS:
        raise BadInputError(f"'grouping' must be one of {', '.join(GROUPINGS)}")
    for key in ("bootstrap", "fit_bootstrap", "seed"):
        value = opts.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadInputError(f"{key!r} must be a whole number, 0 or more, got {value!r}")
    if not _positive(opts.get("bin_width", 0.1)):
        raise BadInputError(f"'bin_width' must be a positive number, got {opts['bin_width']!r}")
    level = opts.get("level", 0.95)
    if not _positive(level) or not level < 1:
        raise BadInputError(f"'level' must be between 0 and 1, got {level!r}")
    return opts


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def check_selection(selection: dict[str, Any]) -> dict[str, Any]:
    """The selection keys an allocation can honour; BadInputError for the others."""
    refused = [k for k in REFUSED_SELECTION if selection.get(k) not in (None, False)]
    if selection.get("reduce") == "best":
        refused.append("reduce='best'")
    if refused:
        raise BadInputError(
            f"an allocation job takes no selection {', '.join(refused)} (they pick one law's "
            "fit points): use 'splits' and 'reduce' ('all' or 'final')"
        )
    return selection


def select_frame(store: Store, project: str, selection: dict[str, Any]) -> pd.DataFrame:
    """The rows the report runs on: `fitting.jobs.select_data` (curves by default), then
    ``exclude`` and ``where``."""
    from fitting.jobs import select_data
    from fitting.selection import Selection
    from fitting.where import evaluate

    sel = check_selection(dict(selection))
    sel.setdefault("reduce", "all")
    frame = select_data(store, project, sel)
    if frame.empty:
        raise NotEnoughDataError(f"no data for an allocation in project {project!r} yet")
    filters = Selection.coerce({k: sel[k] for k in ("where", "exclude") if sel.get(k)})
    if filters.exclude:
        names = {n.strip() for item in filters.exclude for n in [item, *item.split(",")]}
        frame = frame[~frame["run"].astype(str).isin(names)]
    for text in filters.where:
        frame = frame[evaluate(text, frame).to_numpy()]
    if frame.empty:
        raise NotEnoughDataError(f"the selection leaves no rows of project {project!r}")
    return frame.reset_index(drop=True)


def compute(frame: pd.DataFrame, options: dict[str, Any]) -> dict[str, Any]:
    """The report on ``frame`` with a job's options; NotEnoughDataError when no approach
    could run yet (too few runs or budgets: a sweep still growing)."""
    from fitting.analyses.allocation_report import DEFAULT_BUDGETS, allocation_report

    opts = check_options(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what the approaches leave out is in their flags
        report = allocation_report(
            frame,
            opts.get("budgets") or DEFAULT_BUDGETS,
            accounting={"flops": opts.get("flops", "6ND"), "params": opts.get("params", "total")},
            law=opts.get("law"),
            grouping=opts.get("grouping", "auto"),
            bin_width=float(opts.get("bin_width", 0.1)),
            bootstrap=int(opts.get("bootstrap", 500)),
            fit_bootstrap=int(opts.get("fit_bootstrap", 200)),
            level=float(opts.get("level", 0.95)),
            seed=int(opts.get("seed", 0)),
        )
    if all("error" in a for a in report["approaches"]):
        why = "; ".join(f"{a['approach']}: {a['error']}" for a in report["approaches"])
        raise NotEnoughDataError(f"no allocation approach can run on this data yet ({why})")
    return report


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows a report saw (runs, sizes, losses)."""
    h = hashlib.sha256()
    h.update("\x1f".join(frame["run"].astype(str)).encode() if "run" in frame else b"")
    for column in ("step", "params", "tokens", "flops", "loss"):
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
            h.update(column.encode() + np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def save(
    store: Store,
    project: str,
    report: dict[str, Any],
    *,
    selection: dict[str, Any],
    options: dict[str, Any],
    frame: pd.DataFrame,
    job_id: int | None = None,
) -> int:
    """Save ``report`` as an allocation record; returns its fit id."""
    from fitting.engine import code_version
    from fitting.result import jsonable
    from store.fits import save_fit

    rows = {"rows": len(frame), "runs": int(frame["run"].nunique()) if "run" in frame else 0}
    return save_fit(
        store,
        project=project,
        law=ALLOCATION,
        result_json=json.dumps({"kind": KIND, "report": jsonable(report)}, allow_nan=False),
        selection={**selection, "report": rows},
        data_hash=data_hash(frame),
        options=options,
        code_version=code_version(),
        job_id=job_id,
    )


def run(
    store: Store,
    project: str,
    selection: dict[str, Any],
    options: dict[str, Any],
    job_id: int | None = None,
) -> int:
    """Select, compute and save: the new record's fit id."""
    frame = select_frame(store, project, selection)
    report = compute(frame, options)
    return save(
        store, project, report, selection=selection, options=options, frame=frame, job_id=job_id
    )


def report_of(record: dict[str, Any]) -> dict[str, Any]:
    """The report kept in a saved record (a `fits` row as a dict); FitError when the row
    is not an allocation record."""
    text = record.get("result_json")
    try:
        raw = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError as err:
        raise FitError(f"fit {record.get('id')} holds no readable report: {err}") from None
    if not is_allocation(record.get("law")) or not isinstance(raw, dict) or raw.get("kind") != KIND:
        raise FitError(f"fit {record.get('id')} is not an allocation report")
    return _decoded(raw["report"])


def load_report(store: Store, fit_id: int) -> dict[str, Any]:
    """The report saved under ``fit_id``."""
    from store.fits import load_fit

    return report_of(load_fit(store, int(fit_id)))


def _decoded(obj: Any) -> Any:
    """`fitting.result.jsonable`'s "inf"/"-inf"/"nan" strings back to floats."""
    if isinstance(obj, str) and obj in ("inf", "-inf", "nan"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _decoded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decoded(v) for v in obj]
    return obj


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What a list of saved fits shows of a record: a method line and short flags (an
    approach that could not run; how many flags each other approach raised)."""
    flags: list[str] = []
    ran = []
    for answer in report.get("approaches", []):
        name = str(answer.get("approach"))
        if "error" in answer:
            flags.append(f"{name}: not available")
            continue
        ran.append(name)
        count = len(answer.get("flags") or [])
        if count:
            flags.append(f"{name}: {count} flag{'s' if count > 1 else ''}")
    return {"method": f"allocation report ({', '.join(ran)})", "flags": flags}


def history(records: pd.DataFrame) -> pd.DataFrame:
    """One row per saved report (oldest first): its time and each approach's a and b with
    their intervals, to follow a job's answer as runs arrive."""
    rows = []
    for record in records.sort_values("created_at").to_dict("records"):
        try:
            report = report_of(record)
        except FitError:
            continue
        row: dict[str, Any] = {"fit_id": record["id"], "created_at": record["created_at"]}
        for answer in report["approaches"]:
            if "error" in answer:
                continue
            for key in ("a", "b"):
                name = f"{answer['approach']} {key}"
                row[name] = answer[key]
                row[f"{name} lo"], row[f"{name} hi"] = answer[f"{key}_interval"]
        rows.append(row)
    return pd.DataFrame(rows)
