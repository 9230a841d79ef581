"""The Law protocol: what every scaling law gives the fitting engine.

A law is a small stateless class (registered as an instance in `fitting.LAWS`). Its class
attributes are ``name``, ``formula``, ``description``, ``inputs`` (canonical columns besides
``loss``) and ``kind``: ``"points"`` (one row per model; `fitting.data` keeps each run's
final loss) or ``"curves"`` (every step of each run). The engine never looks inside a
law's formula; it only calls these methods:

- ``resolve(data, **options) -> dict``: fill in options that depend on the data and must be
  remembered for prediction (``power_law``'s ``x`` column, ``nmt``'s reference sizes,
  ``multilingual``'s family list). The engine stores the returned dict in
  ``FitResult.options`` and passes it back to ``parameters``/``prepare`` when predicting on
  new data, so the same law options always describe the same parameter vector.
- ``parameters(data, **options) -> list[Parameter]``: names, bounds, and whether the engine
  should optimise ``log(value)`` (positive parameters spanning decades).
- ``prepare(data, *, for_fit=True, **options) -> Prepared``: validate the frame and turn it
  into arrays. With ``for_fit=False`` (prediction) the ``loss`` column may be absent and
  ``y`` is then all NaN; every row of ``data`` must still map to one row of ``Prepared``
  (``FitResult.predict`` returns one value per row). Raise ``FitError`` on bad input.
- ``predict(theta, prep) -> (K, M)``: the law's loss for K parameter vectors (natural
  units, shape (K, P)) at the M rows. Must be vectorised over K.
- ``gradient(theta, prep) -> (K, M, P)``: d predict / d theta in natural units. The base
  class has a finite-difference fallback; real laws should give the analytic form.
- ``starts(prep) -> (K, P)``: the start grid in natural units (Chinchilla's 4,500 starts
  for ``chinchilla``). Values outside the bounds are clipped by the engine.
- ``guess(prep) -> (P,)``: one data-driven start (always tried besides the grid).
- ``blocks(prep)`` (optional): independent parameter blocks, see the method.
- ``example(rng) -> (true_params, frame)``: synthetic data with known parameters and small
  noise, used by the generic registry test (the fit must recover ``true_params`` within
  3 standard errors, and every analysis the law declares must run on it).

What a law can do is said on the law itself, never in a list of law names elsewhere: the
data loader, the analyses, the CLI and the dashboard ask these class attributes (the registry
test checks them for every law):

- ``irreducible``: the parameter that estimates the data's entropy (``L_inf``, ``E``,
  ``L0``), or None;
- ``sizes``: the inputs that say how big a model is (a what-if point gives these);
  ``x_columns``: the choices of an ``x`` option naming the law's one size column (then
  ``size_inputs(options)`` is that column alone); empty when the law has no such option;
- ``point_keys``: columns besides ``run`` that tell a run's points apart (one per family);
- ``takes_schedule``: the law reads each run's LR schedule (it predicts new schedules);
- ``rising``: the fitted column is a score that rises with size (no "rises with" doubt);
- ``analyses``: the names of the `fitting.analyses` it supports besides
  ``extrapolation_test`` (which every law supports). A law that lists
  ``compute_optimal``, ``size_for_reducible_loss``, ``optimal_encoder_decoder_split`` or
  ``optimal_sampling_ratios`` implements that analysis's hook (``compute_optimum``,
  ``reducible_size``, ``optimal_split``, ``sampling_terms``; ``loss_of_one_more_epoch``
  and ``optimal_epochs``: ``epochs_loss``); ``kl_decomposition`` needs
  ``irreducible``, ``schedule_curve`` needs ``takes_schedule``.

Rows and weights: the engine never drops rows from a ``Prepared``. Bootstrap resamples and
the extrapolation hold-out are expressed as per-row weights on the fit rows
(``fit_mask``), so curve laws whose features are cumulative over a run (LR area, momentum)
stay correct. ``groups`` names the run of each row (bootstrap resamples whole runs when
asked); ``scale`` is the size of each row (N, C, step...) for the extrapolation test, which
holds out the rows at the largest scale.

Parameters in theta follow the order of ``parameters()``; fixed values (``fix={"E": 0}``)
stay in theta for ``predict``/``gradient``, the engine just does not optimise them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.errors import FitError


@dataclass(frozen=True)
class Parameter:
    """One fitted quantity: its name (public contract), bounds and scale."""

    name: str
    lower: float
    upper: float
    log: bool = False  # positive and spanning decades: the engine optimises log(value)
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise ValueError(f"parameter {self.name}: lower bound must be below upper")
        if self.log and self.lower <= 0:
            raise ValueError(f"parameter {self.name}: log scale needs a positive lower bound")


@dataclass
class Prepared:
    """Validated arrays a law computes on; one entry per row of the input frame."""

    y: np.ndarray  # observed loss per row (NaN allowed where fit_mask is False)
    fit_mask: np.ndarray  # rows that are fit points (curve laws: LR-only rows are not)
    groups: np.ndarray  # run id per row (bootstrap resamples runs)
    scale: np.ndarray  # the "size" per row for the extrapolation test (N, C, step...)
    extra: dict[str, Any] = field(default_factory=dict)  # law-specific arrays (N, D, S1...)

    @property
    def n_rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_points(self) -> int:
        return int(np.count_nonzero(self.fit_mask))


class Law(ABC):
    """Base of every scaling law; see the module docstring for the protocol."""

    name: ClassVar[str]
    formula: ClassVar[str]
    description: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]]  # canonical columns needed besides loss
    # "points": one row per model (the data loader keeps each run's final loss);
    # "curves": every step of each run (the loader passes whole curves, LR rows included).
    kind: ClassVar[str] = "points"
    # What the law can do (see the module docstring); the defaults describe a law that can
    # do nothing beyond fitting, predicting and the extrapolation test.
    irreducible: ClassVar[str | None] = None
    sizes: ClassVar[tuple[str, ...]] = ()
    x_columns: ClassVar[tuple[str, ...]] = ()
    point_keys: ClassVar[tuple[str, ...]] = ()
    takes_schedule: ClassVar[bool] = False
    # The fitted quantity is a score that rises with size (BLEU), not a loss that falls.
    rising: ClassVar[bool] = False
    analyses: ClassVar[frozenset[str]] = frozenset()
    # Law options it reads besides the engine's and `x` (see x_columns): a job naming any
    # other option is refused when it is saved (`fitting.jobs.check_spec`).
    law_options: ClassVar[tuple[str, ...]] = ()

    def supports(self, analysis: str) -> bool:
        """Whether `fitting.analyses.<analysis>` applies to a fit of this law."""
        return analysis == "extrapolation_test" or analysis in self.analyses

    def size_inputs(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The columns a what-if point needs: the ``x`` option's column, else ``sizes``."""
        if self.x_columns:
            return (str((options or {}).get("x") or self.x_columns[0]),)
        return self.sizes

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        """Options completed from the data; stored with the fit and reused to predict."""
        return dict(options)

    @abstractmethod
    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        """The parameters, in theta order. ``data`` may be None once options are resolved."""

    @abstractmethod
    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        """Validate ``data`` and build the arrays; raise FitError on bad input."""

    @abstractmethod
    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        """Loss for each parameter vector: theta (K, P) -> (K, M)."""

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        """d predict / d theta, (K, M, P). Fallback: central finite differences."""
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        k, p = theta.shape
        out = np.empty((k, prep.n_rows, p))
        for j in range(p):
            h = 1e-6 * np.maximum(np.abs(theta[:, j]), 1e-3)
            up, down = theta.copy(), theta.copy()
            up[:, j] += h
            down[:, j] -= h
            out[:, :, j] = (self.predict(up, prep) - self.predict(down, prep)) / (2 * h[:, None])
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        """Start grid (K, P) in natural units. Default: the guess alone."""
        return self.guess(prep)[None, :]

    @abstractmethod
    def guess(self, prep: Prepared) -> np.ndarray:
        """One data-driven start (P,) in natural units."""

    @abstractmethod
    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        """Synthetic data with known true parameters and small noise."""

    def blocks(self, prep: Prepared) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Optional: independent (parameter indices, row mask) blocks whose objectives add
        up (e.g. one per language family), so the engine can pick the best start per
        block. None (the default) means the parameters are coupled."""
        return None

    # Hooks of the analyses the law lists in ``analyses`` (p: parameter values by name) ----

    def compute_optimum(self, p: Mapping[str, float], flops: np.ndarray) -> tuple[np.ndarray, ...]:
        """``compute_optimal``: (N_opt, D_opt, loss there) for each FLOP budget (C = 6 N D)."""
        raise self._unsupported("compute_optimal")

    def reducible_size(
        self, p: Mapping[str, float], reducible: np.ndarray, options: Mapping[str, Any]
    ) -> np.ndarray:
        """``size_for_reducible_loss``: the size (the ``x`` option's column, else params)
        whose reducible loss is ``reducible``."""
        raise self._unsupported("size_for_reducible_loss")

    def optimal_split(
        self, p: Mapping[str, float], budget: np.ndarray, options: Mapping[str, Any]
    ) -> tuple[np.ndarray, ...]:
        """``optimal_encoder_decoder_split``: (Ne, Nd, loss) for each budget N = Ne + Nd."""
        raise self._unsupported("optimal_encoder_decoder_split")

    def sampling_terms(
        self,
        p: Mapping[str, float],
        families: list[str],
        params: float | None,
        tokens: float | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``optimal_sampling_ratios``: each family's exponent gamma_i and loss scale c_i
        in L_i = c_i p_i^-gamma_i (c_i = 1 without a model size: normalised losses)."""
        raise self._unsupported("optimal_sampling_ratios")

    def epochs_loss(
        self, p: Mapping[str, float], params: np.ndarray, unique: np.ndarray, epochs: np.ndarray
    ) -> np.ndarray:
        """``loss_of_one_more_epoch`` / ``optimal_epochs``: the loss of ``params`` trained
        for ``epochs`` passes over ``unique`` tokens."""
        raise self._unsupported("loss_of_one_more_epoch")

    def _unsupported(self, analysis: str) -> FitError:
        return FitError(f"law {self.name!r} does not support {analysis}")

    def describe(self) -> dict[str, Any]:
        """Name, formula, inputs and parameters, for `scalinglab laws` and the UI."""
        try:
            params = [p.name for p in self.parameters(None)]
        except (FitError, TypeError, ValueError, KeyError):
            params = []  # parameters depend on the data (e.g. one set per family)
        return {
            "name": self.name,
            "formula": self.formula,
            "description": self.description,
            "inputs": list(self.inputs),
            "parameters": params,
        }


# Helpers shared by the laws ---------------------------------------------------------------


def grid(*axes: np.ndarray | list[float]) -> np.ndarray:
    """Cartesian product of 1-D axes as a (K, P) array (first axis varies slowest)."""
    return np.array(list(product(*[np.asarray(a, dtype=float) for a in axes])), dtype=float)


def require_columns(data: pd.DataFrame, columns: tuple[str, ...] | list[str], law: str) -> None:
    """FitError naming every missing input column."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise FitError(
            f"law {law!r} needs column(s) {', '.join(missing)}; "
            f"the data has {', '.join(map(str, data.columns))}"
        )


def positive_column(
    data: pd.DataFrame, column: str, law: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """A column as float64, which must be finite and > 0 on ``rows`` (default: all)."""
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    check = values if rows is None else values[rows]
    bad = ~np.isfinite(check) | (check <= 0)
    if bad.any():
        where = np.flatnonzero(bad)[0] if rows is None else np.flatnonzero(rows)[np.argmax(bad)]
        raise FitError(
            f"law {law!r}: column {column!r} must be a positive number on every row "
            f"({int(bad.sum())} bad value(s), first at row {int(where)})",
            column=column,
        )
    return values


def loss_column(
    data: pd.DataFrame, law: str, for_fit: bool, allow_missing: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(y, fit_mask) from the `loss` column; for prediction the column may be absent.

    Point laws fit every row, so a missing loss is an error; curve laws pass
    ``allow_missing=True`` (LR-only rows are not fit points)."""
    if "loss" not in data.columns:
        if for_fit:
            raise FitError(f"law {law!r} needs a 'loss' column to fit", column="loss")
        return np.full(len(data), np.nan), np.zeros(len(data), dtype=bool)
    y = pd.to_numeric(data["loss"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    mask = np.isfinite(y)
    if for_fit and not allow_missing and not mask.all():
        first = int(np.flatnonzero(~mask)[0])
        raise FitError(
            f"law {law!r}: loss is missing or not a number on {int((~mask).sum())} row(s), "
            f"first at row {first}",
            column="loss",
        )
    return y, mask


def group_ids(data: pd.DataFrame) -> np.ndarray:
    """Run id per row (the `run` column when present, else one run per row)."""
    if "run" in data.columns:
        return data["run"].astype(str).to_numpy()
    return np.arange(len(data)).astype(str)
