"""Jobs: scheduled fits (a saved fit spec plus a cron schedule or 'when new data arrives')
and allocation reports (Chinchilla's three approaches), their status, and the history of
each job's results."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import pandas as pd
import streamlit as st

from app.dashboard import access, figures, fitview, pageerrors, publish, store_access
from app.dashboard.safetext import md
from fitting.analyses import allocation_record
from fitting.analyses.allocation_record import ALLOCATION
from store.errors import BadInputError, ScalinglabError
from store.jobs import SUMMARY_COLUMNS

REFRESH_S = 5.0
SCHEDULES = {
    "every minute": "* * * * *",
    "every 5 minutes": "*/5 * * * *",
    "hourly": "0 * * * *",
    "daily": "0 3 * * *",
    "when new data arrives": "on-new-data",
    "custom cron": "",
}
LIST_COLUMNS = list(SUMMARY_COLUMNS)


KINDS = {"fit a law": "fit", "allocation report (three approaches)": ALLOCATION}
AUTO_LAW = "auto (first that fits the data)"


def create_form() -> None:
    import fitting
    from fitting.jobs import add_job
    from fitting.laws import DEFAULT_LAW, laws_supporting

    projects = store_access.projects(store_access.store_root())
    st.markdown("**New job**")
    # Outside the form: choosing the kind reruns the page, so the form shows its inputs only.
    kind = KINDS[st.radio("Kind", list(KINDS), horizontal=True, key="job-kind")]
    laws = sorted(fitting.LAWS)
    law, x, reduce = DEFAULT_LAW, None, "final"
    budgets, approach_law = "", AUTO_LAW
    with st.form("job-create", clear_on_submit=False):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Name", key="job-name")
        project = c2.selectbox("Project", projects, key="job-project")
        if kind == "fit":
            law = c3.selectbox("Law", laws, index=laws.index(DEFAULT_LAW), key="job-law")
        c4, c5, c6 = st.columns(3)
        when = c4.selectbox("Schedule", list(SCHEDULES), key="job-when")
        cron = c5.text_input("Cron (custom)", placeholder="*/10 * * * *", key="job-cron")
        boot = int(c6.number_input("Bootstrap resamples", 0, 2000, 100, 50, key="job-boot"))
        if kind == "fit":
            with_x = [n for n in laws if fitting.LAWS[n].x_columns]  # laws with an `x` option
            x_choices = list(dict.fromkeys(c for n in with_x for c in fitting.LAWS[n].x_columns))
            c7, c8 = st.columns(2)
            x = c7.selectbox(f"x ({', '.join(with_x)})", x_choices, key="job-x")
            reduce = c8.radio("Points", ["final", "all"], horizontal=True, key="job-reduce")
        else:
            st.caption(
                "Allocation report: every point of the runs (their curves), at these budgets."
            )
            c9, c10 = st.columns(2)
            budgets = c9.text_input(
                "FLOP budgets (comma-separated)", "1e21, 5.76e23", key="job-budgets"
            )
            approach_law = c10.selectbox(
                "Approach 3's law",
                [AUTO_LAW, *laws_supporting("compute_optimal")],
                key="job-alaw",
            )
        submitted = st.form_submit_button("Create job", disabled=not access.allowed("create_job"))
    if not submitted:
        return
    try:
        if kind == ALLOCATION:
            options = _allocation_options(budgets, approach_law, boot)
            selection: dict[str, Any] = {"reduce": "all"}
            title = f"allocation on {project}"
        else:
            options = {"bootstrap": boot} if boot else {}
            if fitting.LAWS[law].x_columns:
                options["x"] = x
            selection = {"reduce": reduce, "finished": reduce == "final"}
            title = f"{law} on {project}"
        user = access.require("create_job")
        # add_job checks the law, the option names, the schedule and the selection.
        job_id = add_job(
            store_access.get_store(),
            name=name.strip() or title,
            project=project or "",
            law=law if kind == "fit" else ALLOCATION,
            options=options,
            schedule=SCHEDULES[when] or cron,
            selection=selection,
            created_by=user.name,
        )
    except ScalinglabError as err:
        st.error(md(err))
        return
    access.audit("create_job", project=project, target=job_id, detail={"kind": kind})
    store_access.invalidate()
    st.success(f"Job {job_id} created.")


def _allocation_options(budgets: str, law: str, boot: int) -> dict[str, Any]:
    """An allocation job's options from the form (checked again by add_job)."""
    try:
        values = [float(v) for v in budgets.split(",") if v.strip()]
    except ValueError:
        raise BadInputError(f"FLOP budgets must be numbers, got {budgets!r}") from None
    options: dict[str, Any] = {"budgets": values}
    if law != AUTO_LAW:
        options["law"] = law
    if boot:
        options.update(bootstrap=boot, fit_bootstrap=boot)
    return options


def run_now(job: dict[str, Any]) -> str:
    """Under `serve` the one scheduler runs it (one instance at a time); on a bare
    `streamlit run` a background thread does, never the UI's script thread."""
    from store import jobs

    store = store_access.get_store()
    if job.get("status") == "running":
        return "already running"
    # A paused job is not the scheduler's to run: run it here, as on a bare server.
    if os.environ.get("SCALINGLAB_SCHEDULER") == "1" and not bool(job.get("paused")):
        jobs.update_job(store, int(job["id"]), next_run_at=None, last_data_version=None)
        return "queued for the scheduler"
    from fitting.jobs import run_job

    def work() -> None:
        # A failure is recorded on the job by run_job; the page shows it from there.
        with contextlib.suppress(Exception):
            run_job(store, int(job["id"]))

    threading.Thread(target=work, name=f"job-{job['id']}", daemon=True).start()
    return "started"


def actions(job: dict[str, Any]) -> None:
    from store import jobs

    c1, c2, c3 = st.columns(3)
    jid = int(job["id"])
    if c1.button("Run now", key=f"job-run-{jid}", disabled=not access.allowed("run_job")):
        access.require("run_job")
        st.toast(f"Job {jid}: {run_now(job)}")
        access.audit("run_job", project=job["project"], target=jid)
    paused = bool(job.get("paused"))
    if c2.button(
        "Resume" if paused else "Pause",
        key=f"job-pause-{jid}",
        disabled=not access.allowed("edit_job"),
    ):
        access.require("edit_job")
        jobs.update_job(store_access.get_store(), jid, paused=not paused)
        access.audit("edit_job", project=job["project"], target=jid, detail={"paused": not paused})
        store_access.invalidate()
        st.rerun()
    if c3.button("Delete", key=f"job-delete-{jid}", disabled=not access.allowed("delete")):
        access.require("delete")
        jobs.delete_job(store_access.get_store(), jid)
        access.audit("delete", project=job["project"], target=jid, detail={"what": "job"})
        store_access.invalidate()
        st.rerun()


def history(job: dict[str, Any]) -> None:
    # Keyed by the job's last fit, so a fit that just landed shows at once.
    fits = store_access.fits(
        store_access.store_root(), job_id=int(job["id"]), version=job.get("last_fit_id")
    )
    if fits is None or len(fits) == 0:
        st.info("No fits from this job yet.")
        return
    if allocation_record.is_allocation(job.get("law")):
        allocation_history(job, fits)
        return
    at = _prediction_point(job)
    hist = fitview.history_frame(fits, at)
    params = [c for c in hist.columns if f"{c} lo" in hist.columns and c != "prediction"]
    choices = (["prediction"] if "prediction" in hist.columns else []) + params
    value = st.selectbox("Plot over the job's history", choices, key=f"job-hist-{job['id']}")
    title = None
    if value == "prediction" and at is not None:
        title = "predicted loss at " + ", ".join(f"{k}={v:.3g}" for k, v in at.iloc[0].items())
    st.plotly_chart(
        figures.history_figure(hist, value, lo=f"{value} lo", hi=f"{value} hi", title=title),
        key=f"job-hist-fig-{job['id']}",
    )
    st.dataframe(hist, hide_index=True, width="stretch")


def allocation_history(job: dict[str, Any], records: pd.DataFrame) -> None:
    """An allocation job's reports: the latest in full, and a and b of each approach over
    the job's runs (the answer settling, or not, as runs arrive)."""
    from app.dashboard import predictions

    latest = records.sort_values("id").to_dict("records")[-1]
    report = allocation_record.report_of(latest)
    st.caption(
        f"Latest report (fit {latest['id']}, {latest['created_at']}): "
        f"{report['accounting_text']}; intervals at {report['level']:.0%}."
    )
    st.dataframe(predictions.allocation_table(report), hide_index=True, width="stretch")
    hist = allocation_record.history(records)
    values = [c for c in hist.columns if f"{c} lo" in hist.columns]
    if not values:
        return
    value = st.selectbox("Plot over the job's history", values, key=f"job-ahist-{job['id']}")
    fig = figures.history_figure(hist, value, lo=f"{value} lo", hi=f"{value} hi")
    publish.chart(fig, key=f"job-ahist-fig-{job['id']}", name=f"job {job['id']} {value}")
    st.dataframe(hist, hide_index=True, width="stretch")


def _prediction_point(job: dict[str, Any]) -> pd.DataFrame | None:
    """Where to track the job's prediction: 10x the largest run of its project."""
    runs = store_access.runs(store_access.store_root(), job["project"])
    x = store_access.json_field(job.get("options")).get("x", "params")
    if runs is None or len(runs) == 0 or x not in ("params", "tokens", "flops"):
        return None
    col = {"params": "params", "tokens": "last_tokens", "flops": "last_flops"}[x]
    biggest = pd.to_numeric(runs[col], errors="coerce").max()
    return None if pd.isna(biggest) else pd.DataFrame({x: [float(biggest) * 10.0]})


def job_list() -> None:
    frame = store_access.jobs(store_access.store_root())
    if frame is None or len(frame) == 0:
        st.info("No jobs yet: create one above, or run `scalinglab demo`.")
        return
    st.dataframe(
        frame[[c for c in LIST_COLUMNS if c in frame.columns]], hide_index=True, width="stretch"
    )
    labels = {int(r["id"]): f"{r['id']}: {r['name']}" for r in frame.to_dict("records")}
    jid = st.selectbox("Job", list(labels), format_func=labels.get, key="job-selected")
    job = frame[frame["id"] == jid].to_dict("records")[0]
    if isinstance(job.get("last_error"), str) and job["last_error"]:
        if job.get("status") == "waiting":
            st.info(f"Waiting for data: {md(job['last_error'])}")
        else:
            st.error(f"Last error: {md(job['last_error'])}")
    actions(job)
    history(job)


def main() -> None:
    st.title("Jobs")
    st.caption(
        "Scheduled fits run inside `scalinglab serve`; their fits land in the store "
        "with the job's id, so a prediction can be followed as runs finish."
    )
    with st.expander("Create a job", expanded=False):
        create_form()
    st.fragment(pageerrors.guarded(job_list), run_every=REFRESH_S)()


main()
