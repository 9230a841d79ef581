"""Run facts from a tracker's hyperparameters (MLflow params, a trackio config).

The W&B reader's mapping decides the canonical ones (`params`, `tokens`, `peak_lr`,
`batch_size`, and the whole set as `config`); every other scalar becomes a run fact of
its own name, so `--where` and `--group-by` can use it. MLflow keeps params as text:
numbers are read back as numbers (`store.runfacts.parse_value`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from store.runfacts import MAX_NAME, RESERVED, parse_value
from store.schema import RUN_FACT_COLUMNS
from store.trackers.wandb_offline import config_facts


def param_facts(params: Mapping[str, Any]) -> dict[str, Any]:
    """{fact: value} for one run's hyperparameters (`_`-prefixed keys are the tracker's)."""
    values = {
        str(key): parse_value(value) if isinstance(value, str) else value
        for key, value in params.items()
        if not str(key).startswith("_")
    }
    facts = config_facts(values)
    for key, value in values.items():
        if key in facts or not _extra_fact(key, value):
            continue
        if set(config_facts({key: value})) - {"config"}:
            continue  # already read as a canonical fact (n_params -> params, ...)
        facts[key] = value
    return facts


def _extra_fact(key: str, value: Any) -> bool:
    """A scalar whose name is free: not a point's column, not the run's bookkeeping."""
    if not key.strip() or len(key.strip()) > MAX_NAME or key.strip() != key:
        return False
    if key in RESERVED or key in ("tokens", "flops"):
        return False  # the run's training tokens/FLOPs come only from the mapping above
    if key in RUN_FACT_COLUMNS and key != "seed":
        return False
    if key == "seed":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    return not isinstance(value, float) or math.isfinite(value)
