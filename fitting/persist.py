"""Fits in the store: save a FitResult with its provenance, load it back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fitting.errors import FitError
from fitting.result import FitResult

if TYPE_CHECKING:
    from store.core import Store


def save_result(
    store: Store,
    result: FitResult,
    project: str,
    selection: dict[str, Any] | None = None,
    job_id: int | None = None,
    created_by: str | None = None,
) -> int:
    """Store ``result`` in the fits table (law, options, selection, data hash, code
    version, who saved it) and return its id. The selection is also recorded on the result."""
    from store.fits import save_fit

    if selection is not None:
        result.selection = dict(selection)
    return save_fit(
        store,
        project=project,
        law=result.law,
        result_json=result.to_json(),
        selection=result.selection,
        data_hash=result.data_hash,
        options=result.options,
        code_version=result.code_version,
        job_id=job_id,
        created_by=created_by,
    )


def load_result(store: Store, fit_id: int) -> FitResult:
    """The FitResult saved under ``fit_id`` (BadInputError when there is none)."""
    from fitting.analyses.allocation_record import is_allocation
    from store.fits import load_fit

    row = load_fit(store, int(fit_id))
    if is_allocation(row.get("law")):
        raise FitError(
            f"fit {fit_id} is an allocation report, not a law's fit: `scalinglab fits` lists "
            "it, the Predict page shows it"
        )
    text = row.get("result_json")
    if not text:
        raise FitError(f"fit {fit_id} has no stored result")
    return FitResult.from_json(text)
