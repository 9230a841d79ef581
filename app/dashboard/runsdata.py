"""The Runs page's reads beyond the loss curve: each series' final point, and the LR.

Both run in DuckDB over the stored points plus the inbox shards not yet ingested (the
same source `store.downsample` reads), so a live run shows at once. Callers cache them
per data version (`store_access.final_points`, `store_access.lr_curves`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from store.errors import BadInputError
from store.pending import pending, points_source, with_inbox_retry

if TYPE_CHECKING:
    import pandas as pd

    from store.core import Store

X_COLUMNS = ("step", "tokens", "flops")
LR_BUCKETS = 100  # per run; each keeps 4 points (M4), so <= 400 points per run


def final_points(store: Store, project: str) -> pd.DataFrame:
    """One row per (run, split): the last step's loss, the last tokens and FLOPs logged,
    and how many points the series holds. A NaN last loss (a diverged run) stays NaN."""

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            source, params = points_source(pending(store, con))
            sql = f"""
                SELECT run, split, max(step) AS step, count(*) AS points,
                    arg_max(loss, step) AS loss,
                    arg_max(tokens, step) FILTER (WHERE tokens IS NOT NULL) AS tokens,
                    arg_max(flops, step) FILTER (WHERE flops IS NOT NULL) AS flops
                FROM {source} WHERE project = ? AND loss IS NOT NULL
                GROUP BY run, split ORDER BY run, split"""
            return con.execute(sql, [*params, project]).df()

    return with_inbox_retry(read)


def lr_curves(store: Store, project: str, runs: Sequence[str], x: str) -> pd.DataFrame:
    """The learning rate of each run against `x` (columns run, x, lr), at most
    4 * LR_BUCKETS points per run; empty when the runs log no LR.

    Buckets are equal in the mean of the log and the linear position of x, so warm-up
    keeps its detail on a log axis and the decay its detail on a linear one; each bucket
    keeps its first and last point and its lowest and highest LR (M4), so a step change
    and the warm-up's peak survive."""
    if x not in X_COLUMNS:
        raise BadInputError(f"x must be one of {X_COLUMNS}, got {x!r}")

    def read() -> pd.DataFrame:
        with store.connect(read_only=True) as con:
            source, params = points_source(pending(store, con))
            pos = (
                f"0.5 * (ln(1 + {x} - x0) / ln(1 + greatest(x1 - x0, 1e-12)) "
                f"+ ({x} - x0) / greatest(x1 - x0, 1e-12))"
            )
            sql = f"""
                WITH src AS (
                    SELECT run, {x}, lr FROM {source}
                    WHERE project = ? AND list_contains(?, run)
                        AND lr IS NOT NULL AND {x} IS NOT NULL),
                span AS (SELECT run, min({x}) AS x0, max({x}) AS x1 FROM src GROUP BY run),
                b AS (
                    SELECT src.run, src.{x}, src.lr,
                        least(floor({pos} * {LR_BUCKETS}), {LR_BUCKETS - 1}) AS bucket
                    FROM src JOIN span USING (run)),
                picks AS (
                    SELECT run, min({x}) AS x, arg_min(lr, {x}) AS lr FROM b GROUP BY run, bucket
                    UNION ALL
                    SELECT run, max({x}) AS x, arg_max(lr, {x}) AS lr FROM b GROUP BY run, bucket
                    UNION ALL
                    SELECT run, arg_min({x}, lr) AS x, min(lr) AS lr FROM b GROUP BY run, bucket
                    UNION ALL
                    SELECT run, arg_max({x}, lr) AS x, max(lr) AS lr FROM b GROUP BY run, bucket)
                SELECT DISTINCT run, x, lr FROM picks ORDER BY run, x"""
            return con.execute(sql, [*params, project, list(runs)]).df()

    return with_inbox_retry(read)


def single_point_runs(runs: pd.DataFrame) -> pd.Series:
    """Which runs are a final-loss table's rows, not curves: one point, or every point at
    step 0 (a (run, split, step) key is unique, so each split then holds one point)."""
    points = runs["n_points"].fillna(0).astype(float)
    last = runs["last_step"].astype(float)
    return (points <= 1) | last.isna() | (last <= 0)


def view_for(choice: str, runs: pd.DataFrame) -> str:
    """The view of `choice` (auto, curves, final): `auto` is `final` when at least half
    the runs are single points (a table of final losses), else `curves`."""
    if choice != "auto":
        return choice
    if len(runs) == 0:
        return "curves"
    return "final" if float(single_point_runs(runs).mean()) >= 0.5 else "curves"


def splits_by_preference(points: pd.DataFrame) -> list[str]:
    """The splits of a final-point frame, the one to show first: `eval`, then named eval
    sets (`eval/<set>`), then the others by name, `train` last."""

    def rank(name: str) -> tuple[int, str]:
        if name == "eval":
            return (0, name)
        if name.startswith("eval"):
            return (1, name)
        return (3 if name == "train" else 2, name)

    return sorted({str(s) for s in points["split"].dropna()}, key=rank)


def split_labels(splits: Sequence[str], width: int = 48) -> dict[str, str]:
    """Short, distinct labels for split names: the path folders all of them share are
    dropped (Gadre et al.'s `training/eval_data/...` sets), then long ones are cut at
    the front. The full names where that would make two alike."""
    parts = [name.split("/") for name in splits]
    common = 0
    while len(splits) > 1 and all(len(p) > common + 1 for p in parts):
        if len({p[common] for p in parts}) != 1:
            break
        common += 1
    labels = {}
    for name, p in zip(splits, parts, strict=True):
        label = "/".join(p[common:])
        labels[name] = label if len(label) <= width else f"…{label[-(width - 1) :]}"
    return labels if len(set(labels.values())) == len(labels) else {n: n for n in splits}


def final_table(points: pd.DataFrame, runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """One split's final points with the run's N: columns run, params, tokens, flops,
    loss, step, and `computed` (C = 6ND where no FLOPs were logged, D = C / 6N where no
    tokens were). Runs not in `runs` (filtered out) are dropped."""
    import numpy as np
    import pandas as pd

    rows = points[points["split"].astype(str) == split]
    facts = runs[["run", "params"]].astype({"run": str})
    out = rows.astype({"run": str}).merge(facts, on="run", how="inner")
    n = pd.to_numeric(out["params"], errors="coerce").astype(float)
    d = pd.to_numeric(out["tokens"], errors="coerce").astype(float)
    c = pd.to_numeric(out["flops"], errors="coerce").astype(float)
    c_from_nd = c.isna() & n.notna() & d.notna()
    d_from_nc = d.isna() & n.notna() & c.notna() & (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = c.where(~c_from_nd, 6.0 * n * d)
        d = d.where(~d_from_nc, c / (6.0 * n))
    return pd.DataFrame(
        {
            "run": out["run"],
            "params": n,
            "tokens": d,
            "flops": c,
            "loss": pd.to_numeric(out["loss"], errors="coerce").astype(float),
            "step": out["step"],
            "computed": c_from_nd | d_from_nc,
        }
    ).reset_index(drop=True)
