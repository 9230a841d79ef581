"""Tied and shared parameters: constraints the engine optimises under, not post-processing.

Tied (engine option ``tie``): ``tie="alpha=beta"`` (or a list of such texts, or a dict
``{"beta": "alpha"}``) makes beta equal to alpha throughout the fit: beta is not a free
parameter (AIC/BIC and the too-few-points rule count one), the optimiser moves alpha
alone and the Jacobian adds beta's column to alpha's. Gadre et al. 2024 fit this form
(one exponent for N and D). ``a=b=c`` ties b and c to a. The saved fit reports beta with
alpha's value, standard error and interval, marked "tied to alpha".

Groups (law options ``group_by`` and ``share``): `GroupedLaw` fits one copy of a law per
value of a column (per corpus, language, family) in one optimisation. Each group has its
own parameters, named ``<group>.<name>``, except the ``share``d ones, which are one
parameter common to every group (``share=["alpha", "beta"]``: one pair of exponents,
separate constants). Without ``share`` the groups are independent blocks (the optimiser
takes the best start of each group), which gives each group the fit it would get alone.
``fix`` and ``tie`` given with base names apply to every group. The fit stores
``group_by``, ``share`` and ``groups`` in its options, so predicting rebuilds the same law
(`bound_law`); a row to predict names its group in the ``group_by`` column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fitting.errors import FitError
from fitting.laws.base import Law, Parameter, Prepared

GROUP_OPTIONS = ("group_by", "share", "groups")


# --- ties -------------------------------------------------------------------------------


def parse_ties(value: Any) -> dict[str, str]:
    """``{dependent: source}`` from "a=b", "a=b=c", a list of those, or a dict."""
    if value is None or value == "" or value == [] or value == {}:
        return {}
    if isinstance(value, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    texts = [value] if isinstance(value, str) else list(value)
    out: dict[str, str] = {}
    for text in texts:
        if not isinstance(text, str):
            raise FitError(f"tie must be NAME=NAME text, got {text!r}")
        names = [n.strip() for n in text.split("=")]
        if len(names) < 2 or not all(names):
            raise FitError(f"tie expects NAME=NAME (e.g. alpha=beta), got {text!r}")
        for dependent in names[1:]:
            out[dependent] = names[0]
    return out


def tie_index(params: list[Parameter], ties: Mapping[str, str], fixed: Iterable[str]) -> Any:
    """(index map P -> P, bounds per parameter) for ``ties`` over ``params``: entry i is
    the parameter whose value i takes (itself when untied). FitError for an unknown
    name, a tie to itself, a cycle, a tied parameter also fixed, or incompatible scales."""
    names = [p.name for p in params]
    fixed = set(fixed)
    index = np.arange(len(params))
    bounds = {p.name: (p.lower, p.upper) for p in params}
    for dependent, source in ties.items():
        for name in (dependent, source):
            if name not in names:
                raise FitError(f"cannot tie {name!r}: the law has parameters {', '.join(names)}")
        if dependent == source:
            raise FitError(f"cannot tie {dependent!r} to itself")
        if dependent in fixed:
            raise FitError(f"{dependent!r} is both fixed and tied; give one of them")
    for dependent in ties:
        root, seen = ties[dependent], {dependent}
        while root in ties:
            if root in seen:
                raise FitError(f"the ties of {dependent!r} go round in a circle")
            seen.add(root)
            root = ties[root]
        i, j = names.index(dependent), names.index(root)
        if params[i].log != params[j].log:
            raise FitError(
                f"cannot tie {dependent!r} to {root!r}: one is fitted on a log scale, the other not"
            )
        index[i] = j
        lo = max(bounds[root][0], params[i].lower)
        hi = min(bounds[root][1], params[i].upper)
        if not lo < hi:
            raise FitError(f"cannot tie {dependent!r} to {root!r}: their bounds do not overlap")
        bounds[root] = (lo, hi)
    return index, bounds


# --- groups -----------------------------------------------------------------------------


@dataclass
class GroupedPrepared(Prepared):
    """A grouped law's rows: the arrays of every row, and each group's own `Prepared`."""

    parts: list[tuple[str, np.ndarray, Prepared]] = field(default_factory=list)
    index: dict[str, np.ndarray] = field(default_factory=dict)  # group -> theta entries
    n_params: int = 0


class GroupedLaw(Law):
    """A law fitted per group with some parameters shared; see the module docstring."""

    kind: ClassVar[str] = "points"

    def __init__(self, base: Law, group_by: str, share: Iterable[str] = ()) -> None:
        self.base = base
        self.group_by = str(group_by)
        self.share = tuple(dict.fromkeys(str(s) for s in share))
        # What the law can do is the base law's, but per group: its analyses take one
        # set of parameters, so a grouped fit supports only the extrapolation test.
        self.name = base.name  # type: ignore[misc]
        self.formula = f"{base.formula}, one per {self.group_by}"  # type: ignore[misc]
        self.description = base.description  # type: ignore[misc]
        self.inputs = (*base.inputs, self.group_by)  # type: ignore[misc]
        self.kind = base.kind  # type: ignore[misc]
        self.sizes = base.sizes  # type: ignore[misc]
        self.x_columns = base.x_columns  # type: ignore[misc]
        self.point_keys = base.point_keys  # type: ignore[misc]
        self.takes_schedule = base.takes_schedule  # type: ignore[misc]
        self.irreducible = (  # type: ignore[misc]
            base.irreducible if base.irreducible in self.share else None
        )
        self.analyses = frozenset()  # type: ignore[misc]
        self.law_options = (*base.law_options, *GROUP_OPTIONS)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"GroupedLaw({self.base.name!r}, {self.group_by!r}, share={list(self.share)})"

    def size_inputs(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        return self.base.size_inputs(_base_options(options or {}))

    def resolve(self, data: pd.DataFrame, **options: Any) -> dict[str, Any]:
        groups = options.get("groups")
        if groups is None:
            if self.group_by not in data.columns:
                raise FitError(f"no column {self.group_by!r} to group by", column=self.group_by)
            values = data[self.group_by].dropna().astype(str)
            groups = sorted(dict.fromkeys(values))
        if not groups:
            raise FitError(f"no value of {self.group_by!r} to group by")
        base_opts = self.base.resolve(data, **_base_options(options))
        names = [p.name for p in self.base.parameters(None, **base_opts)]
        unknown = [s for s in self.share if s not in names]
        if unknown:
            raise FitError(
                f"cannot share {unknown[0]!r}: law {self.base.name!r} has parameters "
                f"{', '.join(names)}"
            )
        return {
            **base_opts,
            "group_by": self.group_by,
            "share": list(self.share),
            "groups": [str(g) for g in groups],
        }

    def _layout(self, options: Mapping[str, Any]) -> tuple[list[Parameter], dict[str, Any]]:
        """The grouped parameters and, per group, the theta index of each base parameter."""
        base_params = self.base.parameters(None, **_base_options(options))
        groups = list(options.get("groups") or [])
        if not groups:
            raise FitError("a grouped law needs its groups (resolve it on the data first)")
        params: list[Parameter] = []
        shared: dict[str, int] = {}
        for p in base_params:
            if p.name in self.share:
                shared[p.name] = len(params)
                params.append(p)
        index: dict[str, np.ndarray] = {}
        for g in groups:
            cols = []
            for p in base_params:
                if p.name in shared:
                    cols.append(shared[p.name])
                else:
                    cols.append(len(params))
                    params.append(
                        Parameter(f"{g}.{p.name}", p.lower, p.upper, p.log, f"{p.doc} ({g})")
                    )
            index[g] = np.array(cols, dtype=int)
        return params, index

    def parameters(self, data: pd.DataFrame | None = None, **options: Any) -> list[Parameter]:
        if data is not None and not options.get("groups"):
            options = self.resolve(data, **options)
        return self._layout(options)[0]

    def prepare(self, data: pd.DataFrame, *, for_fit: bool = True, **options: Any) -> Prepared:
        if not options.get("groups"):
            options = self.resolve(data, **options)
        groups = [str(g) for g in options["groups"]]
        if self.group_by not in data.columns:
            raise FitError(
                f"the fit is one law per {self.group_by!r}: each row must name its group in "
                f"a {self.group_by!r} column (groups: {', '.join(groups)})",
                column=self.group_by,
            )
        labels = data[self.group_by].astype(str).where(data[self.group_by].notna(), None)
        unknown = sorted(set(labels.dropna()) - set(groups))
        if labels.isna().any() or unknown:
            what = repr(unknown[0]) if unknown else "no value"
            raise FitError(
                f"a row has {self.group_by} {what}, not one of the fitted groups "
                f"({', '.join(groups)})",
                column=self.group_by,
            )
        base_opts = _base_options(options)
        m = len(data)
        y = np.full(m, np.nan)
        mask = np.zeros(m, dtype=bool)
        run_ids = np.empty(m, dtype=object)
        scale = np.full(m, np.nan)
        group_index = np.zeros(m, dtype=np.int64)
        parts: list[tuple[str, np.ndarray, Prepared]] = []
        notes: list[str] = []
        values = labels.to_numpy()
        for k, g in enumerate(groups):
            rows = np.flatnonzero(values == g)
            if rows.size == 0:
                continue
            part = self.base.prepare(data.iloc[rows], for_fit=for_fit, **base_opts)
            y[rows], mask[rows], scale[rows] = part.y, part.fit_mask, part.scale
            run_ids[rows] = [f"{g}/{r}" for r in part.groups]
            group_index[rows] = k
            notes += [f"{self.group_by} {g}: {n}" for n in part.extra.get("notes") or []]
            parts.append((g, rows, part))
        extra: dict[str, Any] = {"group_index": group_index}
        if notes:
            extra["notes"] = notes
        from fitting.engine import data_hash

        extra["group_hashes"] = [f"{g}:{data_hash(p)}" for g, _, p in parts]
        params, index = self._layout(options)
        return GroupedPrepared(
            y, mask, run_ids.astype(str), scale, extra, parts, index, len(params)
        )

    def _index(self, prep: Prepared, n_params: int) -> dict[str, np.ndarray]:
        if not isinstance(prep, GroupedPrepared) or prep.n_params != n_params:
            raise FitError("grouped law: the parameters do not match the prepared data")
        return prep.index

    def _parts(self, prep: Prepared) -> list[tuple[str, np.ndarray, Prepared]]:
        if not isinstance(prep, GroupedPrepared):
            raise FitError("grouped law: data not prepared by it")
        return prep.parts

    def predict(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        index = self._index(prep, theta.shape[1])
        out = np.full((theta.shape[0], prep.n_rows), np.nan)
        for g, rows, part in self._parts(prep):
            out[:, rows] = self.base.predict(theta[:, index[g]], part)
        return out

    def gradient(self, theta: np.ndarray, prep: Prepared) -> np.ndarray:
        theta = np.atleast_2d(theta)
        index = self._index(prep, theta.shape[1])
        out = np.zeros((theta.shape[0], prep.n_rows, theta.shape[1]))
        for g, rows, part in self._parts(prep):
            grad = self.base.gradient(theta[:, index[g]], part)
            for j, col in enumerate(index[g]):
                out[:, rows, col] += grad[:, :, j]
        return out

    def starts(self, prep: Prepared) -> np.ndarray:
        parts = self._parts(prep)
        index = self._index(prep, _n_params(prep))
        grids = [np.atleast_2d(self.base.starts(part)) for _, _, part in parts]
        k = min(len(grid) for grid in grids)
        out = np.repeat(self.guess(prep)[None, :], k, axis=0)
        for (g, _, _), grid in zip(parts, grids, strict=True):
            out[:, index[g]] = grid[:k]
        return out

    def guess(self, prep: Prepared) -> np.ndarray:
        parts = self._parts(prep)
        n = _n_params(prep)
        index = self._index(prep, n)
        total, count = np.zeros(n), np.zeros(n)
        for g, _, part in parts:
            np.add.at(total, index[g], np.asarray(self.base.guess(part), dtype=float))
            np.add.at(count, index[g], 1.0)
        return total / np.maximum(count, 1.0)

    def blocks(self, prep: Prepared) -> list[tuple[np.ndarray, np.ndarray]] | None:
        if self.share:
            return None  # the shared parameters couple every group
        index = self._index(prep, _n_params(prep))
        out = []
        for g, rows, _ in self._parts(prep):
            mask = np.zeros(prep.n_rows, dtype=bool)
            mask[rows] = True
            out.append((index[g], mask))
        return out

    def example(self, rng: np.random.Generator) -> tuple[dict[str, float], pd.DataFrame]:
        truth, frame = self.base.example(rng)
        frames, out = [], {}
        for g in ("g1", "g2"):
            part = frame.assign(**{self.group_by: g})
            if "run" in part.columns:
                part["run"] = g + "/" + part["run"].astype(str)
            frames.append(part)
            for name, value in truth.items():
                out[name if name in self.share else f"{g}.{name}"] = value
        return out, pd.concat(frames, ignore_index=True)


def _n_params(prep: Prepared) -> int:
    if not isinstance(prep, GroupedPrepared):
        raise FitError("grouped law: data not prepared by it")
    return prep.n_params


def _base_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in GROUP_OPTIONS}


def bound_law(law: Law, options: Mapping[str, Any]) -> Law:
    """``law`` itself, or its `GroupedLaw` when the options name a ``group_by``."""
    group_by = options.get("group_by")
    if not group_by or isinstance(law, GroupedLaw):
        if options.get("share") and not group_by:
            raise FitError("share makes parameters common to groups: give group_by too")
        return law
    share = options.get("share") or ()
    if isinstance(share, str):
        share = [s.strip() for s in share.split(",") if s.strip()]
    return GroupedLaw(law, str(group_by), share)


def expand(law: Law, law_options: Mapping[str, Any], engine: dict[str, Any]) -> dict[str, Any]:
    """The engine options with ``fix`` and ``tie`` written over the law's real parameter
    names: a base name of a grouped law means that parameter of every group."""
    out = dict(engine)
    names = [p.name for p in law.parameters(None, **law_options)]
    groups = list(law_options.get("groups") or []) if isinstance(law, GroupedLaw) else []
    out["fix"] = {
        full: value
        for key, value in dict(out.get("fix") or {}).items()
        for full in _over_groups(key, names, groups)
    }
    ties = parse_ties(out.get("tie"))
    if ties:
        expanded: dict[str, str] = {}
        for dependent, source in ties.items():
            if dependent in names and source in names:
                expanded[dependent] = source
                continue
            for g in groups or [""]:
                dep = _in_group(dependent, g, names)
                src = _in_group(source, g, names)
                if expanded.get(dep, src) != src:
                    raise FitError(
                        f"cannot tie {dependent!r} to {source!r}: {dependent!r} is shared by "
                        f"the groups and {source!r} is not; share both or neither"
                    )
                expanded[dep] = src
        out["tie"] = expanded
    elif "tie" in out:
        out.pop("tie")
    return out


def _in_group(name: str, group: str, names: list[str]) -> str:
    """The parameter ``name`` means in ``group``: its own copy, else the shared one."""
    if group and f"{group}.{name}" in names:
        return f"{group}.{name}"
    return name  # a shared (or unknown: `tie_index` names it) parameter


def _over_groups(name: str, names: list[str], groups: list[str]) -> list[str]:
    if name in names or not groups:
        return [name]
    per_group = [f"{g}.{name}" for g in groups if f"{g}.{name}" in names]
    return per_group or [name]


def finish(result: Any, problem: Any) -> None:
    """A tied parameter reports its source's standard error and interval (it is the same
    number); a grouped fit records its groups' sizes in ``checks``."""
    ties = getattr(problem, "ties", None) or {}
    for dependent, source in ties.items():
        result.stderr[dependent] = result.stderr[source]
        result.intervals[dependent] = list(result.intervals[source])
    if ties:
        result.checks["tied"] = dict(ties)
    law = problem.law
    if isinstance(law, GroupedLaw) and isinstance(problem.prep, GroupedPrepared):
        result.checks["groups"] = {
            g: int(np.count_nonzero(part.fit_mask)) for g, _, part in problem.prep.parts
        }


def group_table(result: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(parameter names, one row per group: group, points, each parameter's value) of a
    grouped fit; shared parameters repeat on every row."""
    options = result.options
    groups = list(options.get("groups") or [])
    share = list(options.get("share") or [])
    sizes = result.checks.get("groups") or {}
    base_names: list[str] = []
    for name in result.params:
        head, _, tail = name.partition(".")
        base = tail if head in groups and tail else name
        if base not in base_names:
            base_names.append(base)
    rows = []
    for g in groups:
        row: dict[str, Any] = {"group": g, "points": int(sizes.get(g, 0))}
        for base in base_names:
            key = base if base in share or base in result.params else f"{g}.{base}"
            row[base] = result.params.get(key, result.params.get(f"{g}.{base}"))
        rows.append(row)
    return base_names, rows
