"""FLOP and size accounting: what "N" and "C" mean in a fit or an allocation answer.

Two choices, stored with a fit (engine option ``accounting``) and stated in every answer:

- ``params``: ``total`` (every parameter, the default) or ``non_embedding`` (Kaplan et al.
  2020's N, from the ``params_non_embedding`` column; Porian et al. 2024 trace part of the
  Kaplan/Chinchilla disagreement to this choice).
- ``flops``: ``6ND`` (C = 6 N D, the default, Hoffmann et al. 2022), ``attention`` (C = (6 N +
  6 n_layer n_ctx d_model) D: the attention term of Kaplan et al. 2020, per training token)
  or ``logged`` (the ``flops`` column as the trainer or the file recorded it).

`Accounting.apply(frame)` rewrites ``params`` (keeping the original as ``params_total``) and
``flops`` accordingly, so a law and an allocation see the same N and C. The model shape for
``attention`` comes from columns ``n_layer``/``n_layers``, ``n_ctx``/``context`` and
``d_model``, or from a run's ``config`` JSON (``config["model"]`` as the trainers write it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fitting.errors import FitError

FLOPS = ("6ND", "attention", "logged")
PARAMS = ("total", "non_embedding")
SHAPE_ALIASES = {
    "n_layer": ("n_layer", "n_layers", "layers"),
    "n_ctx": ("n_ctx", "context", "seq_len"),
    "d_model": ("d_model",),
}


@dataclass(frozen=True)
class Accounting:
    """How N and C are counted; see the module docstring."""

    flops: str = "6ND"
    params: str = "total"

    def __post_init__(self) -> None:
        if self.flops not in FLOPS:
            raise FitError(f"FLOP accounting must be one of {', '.join(FLOPS)}, not {self.flops!r}")
        if self.params not in PARAMS:
            raise FitError(
                f"parameter accounting must be one of {', '.join(PARAMS)}, not {self.params!r}"
            )

    @classmethod
    def coerce(cls, value: Accounting | Mapping[str, Any] | str | None) -> Accounting:
        """From an Accounting, a dict (``{"flops": ..., "params": ...}``), a text
        ``"flops=attention,params=non_embedding"`` or None (the default)."""
        if value is None:
            return cls()
        if isinstance(value, Accounting):
            return value
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for item in filter(None, (p.strip() for p in value.split(","))):
                key, sep, val = item.partition("=")
                if not sep:
                    raise FitError(f"accounting expects KEY=VALUE pairs, got {item!r}")
                pairs[key.strip()] = val.strip()
            value = pairs
        unknown = sorted(set(value) - {"flops", "params"})
        if unknown:
            raise FitError(f"accounting takes flops and params, not {', '.join(unknown)}")
        return cls(**{k: str(v) for k, v in value.items()})

    def to_dict(self) -> dict[str, str]:
        return {"flops": self.flops, "params": self.params}

    def describe(self) -> str:
        """The sentence an answer states."""
        n = (
            "N counts non-embedding parameters"
            if self.params == "non_embedding"
            else "N counts all parameters"
        )
        c = {
            "6ND": "C = 6 N D",
            "attention": "C = (6 N + 6 n_layer n_ctx d_model) D (Kaplan et al.'s attention term)",
            "logged": "C is the logged flops column",
        }[self.flops]
        return f"{c}; {n}"

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with ``params`` and ``flops`` counted this way (a copy)."""
        out = frame.copy()
        if "params" in out.columns:
            out["params_total"] = out["params"]
        if self.params == "non_embedding":
            if "params_non_embedding" not in out.columns:
                raise FitError(
                    "non-embedding accounting needs a params_non_embedding column",
                    column="params_non_embedding",
                )
            values = _numbers(out["params_non_embedding"])
            if not (np.isfinite(values) & (values > 0)).all():
                raise FitError(
                    "non-embedding accounting: params_non_embedding is missing or not positive "
                    f"on {int((~(np.isfinite(values) & (values > 0))).sum())} row(s)",
                    column="params_non_embedding",
                )
            out["params"] = values
        if self.flops == "logged":
            if "flops" not in out.columns or not np.isfinite(_numbers(out["flops"])).any():
                raise FitError("logged FLOP accounting needs a flops column", column="flops")
            return out
        if "params" not in out.columns or "tokens" not in out.columns:
            return out  # nothing to count C from (e.g. a law of steps only)
        out["flops"] = self.per_token(out) * _numbers(out["tokens"])
        return out

    def per_token(self, frame: pd.DataFrame) -> np.ndarray:
        """Training FLOPs per token of each row (``params`` already counted this way)."""
        n = _numbers(frame["params"])
        if self.flops != "attention":
            return 6.0 * n
        shape = model_shape(frame)
        return 6.0 * n + 6.0 * shape["n_layer"] * shape["n_ctx"] * shape["d_model"]


def model_shape(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """n_layer, n_ctx and d_model per row, from columns or a ``config`` JSON column."""
    out: dict[str, np.ndarray] = {}
    configs = _configs(frame) if "config" in frame.columns else None
    for key, aliases in SHAPE_ALIASES.items():
        column = next((a for a in aliases if a in frame.columns), None)
        values = _numbers(frame[column]) if column else np.full(len(frame), np.nan, dtype=float)
        if configs is not None:
            from_config = np.array(
                [_first(c, aliases) for c in configs], dtype=float
            )  # the trainers' config["model"]
            values = np.where(np.isfinite(values), values, from_config)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            raise FitError(
                f"Kaplan FLOP accounting needs the model shape: {key} is unknown on "
                f"{int(bad.sum())} row(s) (give a {aliases[0]} column or the runs' config)",
                column=key,
            )
        out[key] = values
    return out


def _configs(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for raw in frame["config"].tolist():
        try:
            value = json.loads(raw) if isinstance(raw, str) else (raw or {})
        except json.JSONDecodeError:
            value = {}
        value = value if isinstance(value, dict) else {}
        model = value.get("model") if isinstance(value.get("model"), dict) else {}
        out.append({**value, **model})
    return out


def _first(config: Mapping[str, Any], keys: tuple[str, ...]) -> float:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return float("nan")


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def per_token_model(frame: pd.DataFrame, accounting: Accounting) -> Any:
    """FLOPs per token as a function of N (for turning a budget C and an N into D).

    ``6ND``: exactly 6 N. Otherwise a line in log-log through each run's own count (the
    attention share shrinks as models grow), which is exact for one shape family."""
    if accounting.flops == "6ND":
        return lambda n: 6.0 * np.asarray(n, dtype=float)
    n = _numbers(frame["params"])
    fpt = _numbers(frame["flops"]) / _numbers(frame["tokens"])
    ok = np.isfinite(n) & np.isfinite(fpt) & (n > 0) & (fpt > 0)
    if ok.sum() < 1:
        raise FitError("cannot count FLOPs per token: no row has params, tokens and flops")
    ln, lf = np.log(n[ok]), np.log(fpt[ok])
    if np.ptp(ln) == 0:
        slope, icpt = 1.0, float(np.mean(lf - ln))
    else:
        slope, icpt = np.polyfit(ln, lf, 1)
    return lambda m: np.exp(icpt + slope * np.log(np.asarray(m, dtype=float)))
