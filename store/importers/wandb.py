"""Weights & Biases chart exports, in the shapes W&B writes them (every name quoted).

- x axis = step: `"Step","<run> - <metric>","<run> - <metric>__MIN","<run> - <metric>__MAX"`.
- another x axis: the first column is that metric (`epoch`, `tokens`, `_runtime`...) and
  each run brings its own `"<run> - _step"` (with `__MIN`/`__MAX`) beside its metrics:
  the run's `_step` is its step; an x that names tokens or flops fills that column of
  each point, any other x (epoch, runtime) is ignored with a note.
- grouped charts name series `Group: <name> - <metric>`: the run is `Group: <name>`,
  marked `grouped` (its curve is the mean of the group's runs, which matters to a fit's
  noise model).

`__MIN`/`__MAX` columns (the band W&B draws when it samples) are ignored. A loss metric
whose name says held-out (`val/loss`, `eval_loss`, ...) goes to split `eval`, another
loss to `train`; several loss metrics of one run become its splits. An LR metric (`lr`,
`learning_rate`, `train/lr`) becomes the train series' lr. Other metrics are ignored with
a note unless `--map COLUMN=loss` (or `=lr`) names them. A blank cell means the run did
not log at that row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from store.errors import BadInputError
from store.importers.aliases import canonical
from store.importers.csvread import read_typed
from store.importers.detect import metric_kind, split_wandb, wandb_x
from store.importers.frames import create_points, create_runs, loss_expr
from store.importers.scan import ScannedFile
from store.importers.steps import check_steps
from store.importers.validate import check_numbers
from store.sql import quote_ident, quote_text

GROUP_PREFIX = "Group: "
GROUPED = "mean of its runs"
X_TARGETS = ("step", "tokens", "flops")
SERIES_TARGETS = ("loss", "lr")


def classify(metric: str) -> tuple[str, str] | None:
    """('loss', split) or ('lr', 'train') for a metric name, None when neither."""
    kind = metric_kind(metric)
    return None if kind is None or kind[0] == "step" else kind


@dataclass
class Layout:
    """Which column plays which part in one export."""

    x: str
    x_as: str | None  # 'step', 'tokens', 'flops', or None: the x is ignored
    steps: dict[str, str] = field(default_factory=dict)  # run -> its `_step` column
    series: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # metrics neither loss nor lr
    bands: int = 0

    @property
    def used(self) -> dict[str, str]:
        """{column: canonical field} for every column the import reads."""
        used = {c: f for slot in self.series.values() for f, c in slot.items()}
        used.update({c: "step" for c in self.steps.values()})
        if self.x_as is not None:
            used[self.x] = self.x_as
        return used


def _x_target(x: str, mapping: dict[str, str]) -> str | None:
    target = mapping.get(x) or canonical(x) or canonical(x.rsplit("/", 1)[-1])
    return target if target in X_TARGETS else None


def layout(header: list[str], mapping: dict[str, str], file: str = "", line: int = 1) -> Layout:
    """Split a W&B header into its x column, per-run steps and (run, split) series."""
    x = wandb_x(header)
    if x is None:
        raise BadInputError(
            "expected a W&B export: an x column ('Step', or another metric with "
            f"'<run> - _step' columns) and '<run> - <metric>' columns; found {header}",
            file=file,
            line=line,
        )
    if x in mapping and mapping[x] not in X_TARGETS:
        raise BadInputError(
            f"--map can read the x column {x!r} as one of {list(X_TARGETS)}, not {mapping[x]!r}",
            file=file,
            line=line,
        )
    out = Layout(x=x, x_as=_x_target(x, mapping))
    # Columns the user mapped first: they win a (run, split) slot over the names alone.
    for column in sorted(header, key=lambda c: c not in mapping):
        if column == x:
            continue
        part = split_wandb(column)
        assert part is not None  # wandb_x checked every other column
        if part.extra:
            out.bands += 1
            continue
        kind = metric_kind(part.metric)
        target = mapping.get(column)
        if target is not None and target not in SERIES_TARGETS:
            raise BadInputError(
                f"--map can read the series {column!r} as one of {list(SERIES_TARGETS)}, "
                f"not {target!r}",
                file=file,
                line=line,
            )
        if target is None and kind is not None and kind[0] == "step":
            out.steps.setdefault(part.run, column)
            continue
        if target is not None:
            kind = (target, "eval" if classify(part.metric) == ("loss", "eval") else "train")
        slot = out.series.setdefault((part.run, kind[1]), {}) if kind else {}
        if kind is None or kind[0] in slot:
            out.ignored.append(column)
            continue
        slot[kind[0]] = column
    out.series = {key: slot for key, slot in out.series.items() if slot}
    out.ignored.sort(key=header.index)
    # The LR is logged once per run; attach it to the train series.
    for (run, split), slot in list(out.series.items()):
        if split != "train" and "lr" in slot:
            out.series.setdefault((run, "train"), {}).setdefault("lr", slot.pop("lr"))
    return out


def unused_columns(header: list[str], mapping: dict[str, str] | None = None) -> list[str]:
    """Series columns the import ignores (not a loss or an LR): what `--map` may name."""
    try:
        return list(layout(header, mapping or {}).ignored)
    except BadInputError:
        return []


def _notes(lay: Layout) -> list[str]:
    notes = []
    if lay.x_as is None:
        notes.append(
            f"x axis {lay.x!r} ignored (each run's '_step' is its step; only a tokens or "
            "flops x is kept)"
        )
    elif lay.x_as != "step":
        notes.append(f"x axis {lay.x!r} read as {lay.x_as}; each run's '_step' is its step")
    if lay.bands:
        notes.append(f"ignored {lay.bands} __MIN/__MAX columns")
    if lay.ignored:
        notes.append(
            "ignored columns (not a loss or an LR; --map COLUMN=loss reads one): "
            + ", ".join(repr(c) for c in lay.ignored)
        )
    groups = sorted({run for run, _ in lay.series if run.startswith(GROUP_PREFIX)})
    if groups:
        notes.append(
            f"grouped runs (each curve is the {GROUPED}; marked grouped): "
            + ", ".join(repr(g) for g in groups)
        )
    return notes


def parse_wandb(
    con: duckdb.DuckDBPyConnection,
    scanned: ScannedFile,
    mapping: dict[str, str],
    *,
    bits: bool,
    run_name: str,
) -> tuple[list[str], str]:
    """Load, validate and build `_points`/`_runs`; return (warnings, key column)."""
    del run_name
    name = scanned.path.name
    lay = layout(scanned.named, mapping, name, scanned.header_lines)
    if not any("loss" in slot for slot in lay.series.values()):
        raise BadInputError(
            "a W&B export needs at least one '<run> - <loss metric>' column; found "
            f"{scanned.named}",
            file=name,
            line=scanned.header_lines,
        )
    if lay.x_as != "step":
        missing = sorted({run for run, _ in lay.series} - set(lay.steps))
        if missing:
            raise BadInputError(
                f"the x axis {lay.x!r} is not the step, so every run needs its "
                f"'<run> - _step' column; none for {missing}",
                file=name,
                line=scanned.header_lines,
            )
    used = lay.used
    read_typed(con, scanned, {c for c, f in used.items() if f != "step"})
    # Each run's own step column must be there wherever that run logged a value.
    check_numbers(con, scanned, {c: f for c, f in used.items() if c not in lay.steps.values()})
    for run, column in lay.steps.items():
        values = [c for (r, _), slot in lay.series.items() if r == run for c in slot.values()]
        logged = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in values) or "FALSE"
        check_steps(con, scanned, column, required=logged)
    selects = []
    for (run, split), slot in lay.series.items():
        step = lay.x if lay.x_as == "step" else lay.steps[run]
        loss = loss_expr(slot["loss"], bits) if "loss" in slot else "NULL::DOUBLE"
        lr = quote_ident(slot["lr"]) if "lr" in slot else "NULL::DOUBLE"
        tokens = quote_ident(lay.x) if lay.x_as == "tokens" else "NULL::DOUBLE"
        flops = quote_ident(lay.x) if lay.x_as == "flops" else "NULL::DOUBLE"
        present = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in slot.values())
        selects.append(
            f"SELECT {quote_text(run)} AS run, {quote_text(split)} AS split, "
            f"CAST({quote_ident(step)} AS BIGINT) AS step, {tokens} AS tokens, "
            f"{flops} AS flops, {lr} AS lr, {loss} AS loss, NULL::VARCHAR AS family, "
            f"NULL::DOUBLE AS sampling_ratio, rowid AS _rec FROM _raw WHERE {present}"
        )
    create_points(con, " UNION ALL ".join(selects))
    # Runs in the file's column order (DISTINCT alone would follow DuckDB's threads).
    order = list(dict.fromkeys(run for run, _ in lay.series))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _run_names AS SELECT run FROM "
        "(SELECT unnest($names) AS run, generate_subscripts($names, 1) AS i) "
        "WHERE run IN (SELECT run FROM _points) ORDER BY i",
        {"names": order},
    )
    create_runs(con, scanned, "run", {}, source="_run_names")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _runs AS SELECT *, starts_with(run, ?) AS grouped "
        "FROM _runs ORDER BY rowid",
        [GROUP_PREFIX],
    )
    key = lay.x if lay.x_as == "step" else next(iter(lay.steps.values()))
    return _notes(lay), key
