"""Upload: drop CSV or Parquet files, or a zip of tracker runs, see the detected format and
a preview, map unknown columns, and import only when the user confirms. Nothing is
written before that.

Each file waits in a private folder of the store (`app.dashboard.staging`) and is imported only if
it still holds the bytes reviewed; a zip (a folder of TensorBoard event files, W&B offline
runs, an `mlruns/` store, trackio databases) is unpacked safely there and read by the same
tracker readers as `scalinglab import`, unpacked again from the checked bytes to import.
Every text from a file (its name, cells quoted in an error, warnings) is shown through
`safetext.md`, never as Markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app.dashboard import access, staging, store_access
from app.dashboard.safetext import md
from store.errors import ScalinglabError
from store.importers import FORMATS as IMPORT_FORMATS
from store.importers.aliases import ALIASES

FORMATS = ["auto", *IMPORT_FORMATS]
IGNORE = "(ignore)"
CANONICAL = [IGNORE, *ALIASES]  # exactly the columns the importer can map onto
STAGED_KEY = "upload-staged"  # session state: uploader file id -> staging.Staged
UNPACKED_KEY = "upload-unpacked"  # session state: staged zip's sha256 -> folder reviewed
FILE_TYPES = ["csv", "tsv", "txt", "parquet", "pq", "zip"]

Reviewed = tuple[staging.Staged, dict[str, str], bool]


def staged_files() -> dict[str, staging.Staged]:
    return st.session_state.setdefault(STAGED_KEY, {})


def stage(uploaded: Any) -> staging.Staged:
    """The upload's staged copy: written once per uploaded file, reused on reruns."""
    staged = staged_files()
    key = str(getattr(uploaded, "file_id", "") or uploaded.name)
    found = staged.get(key)
    if found is None or not found.path.exists():
        found = staging.stage(store_access.store_root(), uploaded.name, uploaded.getvalue())
        staged[key] = found
    return found


def drop_unlisted(files: list[Any]) -> None:
    """Remove the staged copies of files no longer in the uploader."""
    listed = {str(getattr(f, "file_id", "") or f.name) for f in files}
    staged = staged_files()
    for key in [k for k in staged if k not in listed]:
        staging.discard(staged.pop(key))


def raw_columns(path: Path) -> list[str]:
    """The header as the importer reads it (BOM, leading comments, TSV), or [] if unreadable."""
    from store.importers.scan import scan

    try:
        return list(scan(path).header)
    except ScalinglabError:
        return []


def editable_columns(path: Path, parsed: Any) -> list[tuple[str, str]]:
    """(column, what the importer reads it as) for the columns the mapping step offers.

    After a failed parse every column, preset to its alias, so the user can correct any
    of them; after a good one only the columns the import did not use, preset to ignore.
    """
    from store.importers.aliases import canonical

    header = raw_columns(path)
    if parsed is None:
        return [(c, canonical(c) or IGNORE) for c in header]
    unused = set(getattr(parsed, "unused", None) or [])
    return [(c, IGNORE) for c in header if c in unused]


def mapping_editor(path: Path, parsed: Any, key: str) -> dict[str, str]:
    """Let the user say what columns mean; returns only the choices that change a reading."""
    columns = editable_columns(path, parsed)
    if not columns:
        return {}
    if parsed is None:
        st.caption("How the importer reads each column: change one to read it otherwise.")
    else:
        st.caption("Columns not used: say what they hold (or leave them ignored).")
    out: dict[str, str] = {}
    cols = st.columns(min(4, len(columns)))
    for i, (column, preset) in enumerate(columns):
        target = cols[i % len(cols)].selectbox(
            md(column), CANONICAL, index=CANONICAL.index(preset), key=f"{key}-map-{column}"
        )
        if target not in (IGNORE, preset):
            out[column] = target
    return out


def show_parsed(parsed: Any) -> None:
    points, runs = parsed.points, parsed.runs
    st.success(
        f"Detected format: **{parsed.format}** · {len(runs)} run(s), {len(points):,} point(s)"
    )
    for warning in getattr(parsed, "warnings", []) or []:
        st.warning(md(warning))
    tab_points, tab_runs = st.tabs(["Points preview", "Runs"])
    tab_points.dataframe(points.head(50), hide_index=True, width="stretch")
    tab_runs.dataframe(runs, hide_index=True, width="stretch")


def parse_one(path: Path, fmt: str, bits: bool, mapping: dict[str, str] | None) -> Any:
    from store.importers import parse_file

    return parse_file(path, format=fmt, bits=bits, mapping=mapping or None)


def unpacked_for_review(staged: staging.Staged) -> Path:
    """The staged zip's unpacked folder, unpacked once per upload (reruns reuse it)."""
    folders = st.session_state.setdefault(UNPACKED_KEY, {})
    found = folders.get(staged.sha256)
    if found is None or not Path(found).exists():
        found = folders[staged.sha256] = staging.unpack(staged)
    return Path(found)


def review_zip(staged: staging.Staged, bits: bool) -> Reviewed:
    """Unpack and read a zip of tracker runs (detected), show what was found."""
    from store.trackers import parse_runs

    try:
        parsed = parse_runs(unpacked_for_review(staged), bits=bits)
    except ScalinglabError as err:
        st.error(f"Cannot import: {md(err)}")
        return staged, {}, False
    show_parsed(parsed)
    return staged, {}, True


def review(uploaded: Any, fmt: str, bits: bool) -> Reviewed:
    """Parse the staged copy of one file, show what was found; (staged, mapping, ok)."""
    staged = stage(uploaded)
    path = staged.path
    key = f"up-{staged.sha256[:16]}"
    st.subheader(md(uploaded.name))
    if staging.is_zip(path):
        return review_zip(staged, bits)
    parsed, error = None, None
    try:
        parsed = parse_one(path, fmt, bits, None)
    except ScalinglabError as err:
        error = err
    mapping = mapping_editor(path, parsed, key)
    if mapping:
        try:
            parsed, error = parse_one(path, fmt, bits, mapping), None
        except ScalinglabError as err:
            parsed, error = None, err
    if error is not None:
        st.error(f"Cannot import: {md(error)}")
        return staged, mapping, False
    show_parsed(parsed)
    return staged, mapping, True


def main() -> None:
    st.title("Upload")
    st.write(
        "Drop CSV or Parquet files: long format (run, step, loss...), a W&B or TensorBoard "
        "export, or a table with one row per model; or a zip of a runs folder (TensorBoard "
        "event files, W&B offline runs, an MLflow mlruns/ store, trackio databases). "
        "Nothing is stored until you confirm. The format is detected for zips."
    )
    files = st.file_uploader(
        "CSV, Parquet or zip files", type=FILE_TYPES, accept_multiple_files=True, key="upload-files"
    )
    c1, c2, c3 = st.columns([2, 2, 1])
    project = c1.text_input("Project", value="uploads", key="upload-project").strip()
    fmt = c2.selectbox("Format", FORMATS, key="upload-format")
    bits = c3.checkbox(
        "Loss in bits", key="upload-bits", help="Convert bits/token to nats/token on import."
    )
    drop_unlisted(files or [])
    if not files:
        return
    reviewed = [review(f, fmt, bits) for f in files]
    ok = all(r[2] for r in reviewed)
    if not project:
        st.error("Give the project a name.")
        ok = False
    if not ok:
        st.info("Fix the errors above (or remove those files) to import.")
        return
    if st.button(
        f"Import {len(reviewed)} file(s) into project '{md(project)}'",
        type="primary",
        key="upload-confirm",
    ):
        do_import(project, fmt, bits, reviewed)


def do_import(project: str, fmt: str, bits: bool, reviewed: list[Reviewed]) -> None:
    """Import each reviewed file from its staged copy, after checking it still holds the
    bytes reviewed; a staged copy is removed once imported."""
    from store.importers import import_files
    from store.trackers.write import Archive

    store = store_access.get_store()
    user = access.require("upload")  # server side, right before the write
    total_runs = total_points = 0
    try:
        for staged, _, _ in reviewed:  # every file as reviewed, before any is imported
            staging.verify(staged)
        for staged, mapping, _ in reviewed:
            if staging.is_zip(staged.path):
                # Unpacked again from the bytes just checked, never from the review's copy.
                report = import_files(
                    store,
                    [staging.unpack(staged)],
                    project=project,
                    bits=bits,
                    imported_by=user.name,
                    # The unpacked folder goes after the import: the zip stays in the store.
                    archive=Archive(staged.path, staged.sha256, staged.name),
                )
            else:
                report = import_files(
                    store,
                    [staged.path],
                    project=project,
                    format=fmt,
                    bits=bits,
                    mapping=mapping or None,
                    imported_by=user.name,
                )
            total_runs += int(report.runs)
            total_points += int(report.points)
            staging.discard(staged)
            access.audit(
                "upload",
                project=project,
                target=staged.name,
                detail={"runs": int(report.runs), "points": int(report.points)},
            )
    except ScalinglabError as err:
        st.error(f"Import failed, nothing from that file was written: {md(err)}")
        return
    finally:
        store_access.invalidate()
    st.success(f"Imported into '{md(project)}': {total_runs} run(s), {total_points:,} point(s).")


main()
