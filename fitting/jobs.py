"""Fitting jobs: run one saved fit specification against the store.

A job (a row of the store's `jobs` table) names a project, a law, a selection and fit
options. Running it loads the selection, fits, saves the result with the job's id and
records status, duration and error on the job. The scheduler in `app.server.scheduler` decides
*when*; this module only knows *how*.

Selection (JSON object, every key optional):
    runs:      list of run names (default: all runs of the project)
    splits:    list of splits (default: ["eval"] falling back to ["train"] when no eval)
    reduce:    "final" (one row per run and split: its last logged loss; the usual
               scaling-law table), "best" (the final losses, then the lowest among runs
               of the same N and D) or "all" (every point; for the LR-schedule laws)
    finished:  with reduce="final", keep only runs that are no longer running (default true)
    split, where, exclude, checkpoints: as `scalinglab fit`'s options (`fitting.selection`);
               the engine applies them to the loaded rows.

Grouping and constraints are fit options: ``group_by``, ``share`` (law options) and
``tie`` (an engine option), as in `fitting.fit`.

A job whose law is ``"allocation"`` (`fitting.analyses.allocation_record.ALLOCATION`)
computes Chinchilla's three allocation approaches instead of fitting one law, and saves
the report as a fit row of that name; its options and selection are that module's.

`add_job` is how a job is saved: it checks the law and the names of its options (what
only the fitting package knows) and then `store.jobs.add_job` checks the schedule, the
selection and the options' shape. `run_job` checks a stored job the same way first, so a
job written some other way fails with a message instead of fitting something else.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from store.errors import BadInputError, NotEnoughDataError, ScalinglabError

DEFAULT_SELECTION: dict[str, Any] = {
    "runs": None,
    "splits": None,
    "reduce": "final",
    "finished": True,
}
LIVE_STATUSES = ("running", "failed", "interrupted")  # their last loss is not final


def known_options(law: str) -> frozenset[str]:
    """The option names a job of `law` may pass to `fitting.fit`: the engine's plus the
    law's own (`x` when the law has a choice of x column)."""
    import fitting
    from fitting.constraints import GROUP_OPTIONS
    from fitting.result import ENGINE_KEYS

    spec = fitting.LAWS[law]
    given = ENGINE_KEYS | set(spec.law_options) | set(GROUP_OPTIONS)
    return given | ({"x"} if spec.x_columns else set())


def check_spec(law: Any, options: Any) -> dict[str, Any]:
    """A job's law and options as the fitting package sees them: BadInputError for an
    unknown law, an option name the law and the engine do not take, or an engine option
    value the engine refuses. Returns the options as a dict."""
    import fitting
    from fitting.analyses import allocation_record
    from fitting.engine import split_options
    from store.jobs import validate_options

    if allocation_record.is_allocation(law):
        return allocation_record.check_options(options)
    if law not in fitting.LAWS:
        raise BadInputError(f"unknown law {law!r}; known: {', '.join(sorted(fitting.LAWS))}")
    opts = validate_options(options)
    known = known_options(law)
    unknown = sorted(set(opts) - known)
    if unknown:
        raise BadInputError(
            f"law {law!r} takes no option {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    try:
        split_options(opts)  # FitError (a BadInputError) for a value it refuses
    except (TypeError, ValueError) as err:
        raise BadInputError(f"bad fit option value: {err}") from err
    return opts


def add_job(
    store: Any,
    *,
    name: str,
    project: str,
    law: str,
    selection: Any,
    options: Any,
    schedule: str,
    created_by: str | None = None,
) -> int:
    """Check the law and options, then save the job through `store.jobs.add_job` (which
    checks the rest); returns its id. Nothing is written when anything is refused."""
    from store import jobs

    opts = check_spec(law, options)
    check_selection(selection, law)
    return jobs.add_job(
        store,
        name=name,
        project=project,
        law=law,
        selection=selection,
        options=opts,
        schedule=schedule,
        created_by=created_by,
    )


# Selection keys the engine applies (`fitting.selection`) after `select_data` loads rows.
ENGINE_SELECTION = ("split", "where", "exclude", "checkpoints")


def check_selection(selection: Any, law: str | None = None) -> dict[str, Any]:
    """A job's selection checked as the fit (or, for `law` "allocation", the report) will
    read it: the store's checks, then the filters parsed (`fitting.where`) and the keys
    the engine applies."""
    from fitting.analyses import allocation_record
    from fitting.selection import Selection
    from fitting.where import parse
    from store.jobs import validate_selection

    sel = validate_selection(selection)
    if allocation_record.is_allocation(law):
        allocation_record.check_selection(sel)
    engine = _engine_selection(sel)
    for text in Selection.coerce(engine).where:
        parse(text)
    return sel


def _engine_selection(sel: dict[str, Any]) -> dict[str, Any]:
    out = {k: sel[k] for k in ENGINE_SELECTION if sel.get(k) not in (None, False, [], "")}
    if sel.get("reduce") == "best":
        out["reduce"] = "best"
    return out


def now_utc() -> datetime:
    """Naive UTC now: the store keeps timestamps without a zone."""
    return datetime.now(UTC).replace(tzinfo=None)


def final_losses(points: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, split): its final loss, by `fitting.data._final_rows`' rule: a
    run whose last logged loss is NaN has diverged and is left out (with a DataWarning),
    instead of standing in with an earlier loss."""
    import warnings

    from fitting.data import _final_rows
    from fitting.errors import DataWarning

    if points.empty:
        return points
    # Keyed by (run, split), each split of a run keeps its own final loss.
    picked, excluded = _final_rows(points, ["run", "split"])
    for name, why in excluded.items():
        warnings.warn(f"run {name!r} left out: {why}", DataWarning, stacklevel=2)
    out = picked.sort_values(["run", "split"], kind="stable").reset_index(drop=True)
    if excluded:
        out.attrs["excluded_runs"] = excluded
    return out


def select_data(store: Any, project: str, selection: dict[str, Any] | None) -> pd.DataFrame:
    """The canonical frame a job (or the Fit page) fits on."""
    from store import queries

    sel = {**DEFAULT_SELECTION, **(selection or {})}
    runs = sel.get("runs") or None
    splits = sel.get("splits") or None
    if sel.get("split") is not None and splits is None:
        # A named split is chosen by the engine among them all (`fitting.selection`).
        points = queries.points_frame(store, project=project, runs=runs)
    elif splits is None:
        # Prefer held-out losses. Ask for the plain eval split first: it is small, so a
        # project of long train curves never loads them all just to find its evals.
        points = queries.points_frame(store, project=project, runs=runs, splits=["eval"])
        if points.empty:
            points = queries.points_frame(store, project=project, runs=runs)
            named_eval = points["split"].astype(str).str.startswith("eval")
            # Named eval sets (eval/<family>), else a table of final losses ("train").
            points = points[named_eval] if named_eval.any() else points[points["split"] == "train"]
    else:
        points = queries.points_frame(store, project=project, runs=runs, splits=splits)
    if not points.empty:  # the runs' facts as columns, as `fitting.data.load_project` does
        from fitting.data import join_facts
        from store.runfacts import facts_frame

        points = join_facts(points, facts_frame(store, project, runs))
    if sel.get("reduce", "final") in ("final", "best") and not sel.get("checkpoints"):
        if sel.get("finished", True) and "status" in points.columns:
            live = points["status"].isin(LIVE_STATUSES)
            if len(points) and live.all():
                n_live = points.loc[live, "run"].nunique()
                raise NotEnoughDataError(
                    f"no finished runs yet in project {project!r} ({n_live} running or "
                    "failed): a fit on final losses waits for runs to finish"
                )
            points = points[~live]
        points = final_losses(points)
    return points.reset_index(drop=True)


def fit_selection(
    store: Any,
    project: str,
    law: str,
    selection: dict[str, Any] | None,
    options: dict[str, Any] | None,
    data: pd.DataFrame | None = None,
) -> tuple[Any, pd.DataFrame]:
    """Load the selection (unless `data`, already loaded, is given) and fit it:
    (FitResult, the frame it saw)."""
    import fitting

    if law not in fitting.LAWS:
        raise BadInputError(f"unknown law {law!r}; known: {', '.join(sorted(fitting.LAWS))}")
    if data is None:
        data = select_data(store, project, selection)
    if data.empty:
        raise NotEnoughDataError(f"no data to fit in project {project!r} for this selection")
    from fitting.engine import get_law, split_options
    from fitting.selection import select

    engine_selection = _engine_selection({**DEFAULT_SELECTION, **(selection or {})})
    # Selected here (not inside `fitting.fit`) so the caller gets the rows the fit saw,
    # and the saved fit states the rows used and dropped, whatever the selection.
    opts = dict(options or {})
    _, law_side = split_options(opts)
    law_side = {k: v for k, v in law_side.items() if k not in ("group_by", "share", "groups")}
    picked = select(get_law(law), data, engine_selection, **law_side)
    opts.update({k: v for k, v in picked.law_options.items() if k not in opts})
    result = fitting.fit(law, picked.frame, **opts)
    result.selection = {**picked.selection.to_dict(), "report": picked.report.to_dict()}
    return result, picked.frame


def run_job(store: Any, job_id: int) -> int:
    """Run one job now: fit (or compute the allocation report), save the result with the
    job id, record the outcome on the job.

    Returns the new fit's id. On failure the job gets status 'error' and the message in
    `last_error` (and the data version it failed on), and the error is raised again for
    the caller to report. Too little
    data yet (a sweep still running) is not a failure: status 'waiting', with the
    reason in `last_error`, and an on-new-data job tries again when the data changes.
    """
    from store import jobs, queries

    job = jobs.get_job(store, job_id)
    if job is None:
        raise BadInputError(f"no job with id {job_id}")
    started, t0 = now_utc(), time.perf_counter()
    jobs.update_job(store, job_id, status="running", last_run_at=started)
    version = None
    try:
        from fitting import persist
        from fitting.analyses import allocation_record

        version = str(queries.data_version(store, job["project"]))
        from store.jobs import validate_selection

        options = check_spec(job["law"], job.get("options"))
        if allocation_record.is_allocation(job["law"]):
            selection = check_selection(job.get("selection"), job["law"])
            fit_id = allocation_record.run(store, job["project"], selection, options, job_id)
        else:
            selection = validate_selection(job.get("selection")) or dict(DEFAULT_SELECTION)
            result, _ = fit_selection(store, job["project"], job["law"], selection, options)
            report = (result.selection or {}).get("report")
            if report:  # the saved fit keeps its selection and the rows it used and dropped
                selection = {**selection, "report": report}
            fit_id = persist.save_result(store, result, job["project"], selection, job_id=job_id)
    except NotEnoughDataError as err:
        jobs.update_job(
            store,
            job_id,
            status="waiting",
            last_error=str(err)[:2000],
            last_duration_s=time.perf_counter() - t0,
            last_data_version=version,
        )
        raise
    except Exception as err:
        message = str(err) if isinstance(err, ScalinglabError) else f"{type(err).__name__}: {err}"
        jobs.update_job(
            store,
            job_id,
            status="error",
            last_error=message[:2000],
            last_duration_s=time.perf_counter() - t0,
            # Recorded on failure too: an on-new-data job waits for new data before it
            # tries again, instead of failing on every poll.
            last_data_version=version,
        )
        raise
    jobs.update_job(
        store,
        job_id,
        status="ok",
        last_error=None,
        last_fit_id=int(fit_id),
        last_duration_s=time.perf_counter() - t0,
        last_data_version=version,
    )
    return int(fit_id)
