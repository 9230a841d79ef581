"""Telling the four accepted CSV layouts apart from the header alone."""

from __future__ import annotations

from dataclasses import dataclass

from store.errors import BadInputError
from store.importers.aliases import canonical, is_eval_loss, normalise

FORMATS = ("long", "wandb", "tensorboard", "table")
_SEPARATOR = " - "
_BAND = ("__MIN", "__MAX")


@dataclass(frozen=True)
class WandbColumn:
    """A W&B series column `<run> - <metric>[__MIN|__MAX]`, split into its parts."""

    run: str
    metric: str
    extra: str  # '', '__MIN' or '__MAX'


def metric_kind(metric: str) -> tuple[str, str] | None:
    """('loss', split), ('lr', 'train') or ('step', '') for a W&B metric name, else None."""
    target = canonical(metric)
    if target == "step":
        return "step", ""
    if target == "lr":
        return "lr", "train"
    if target == "loss" or normalise(metric).endswith("loss"):
        return "loss", "eval" if is_eval_loss(metric) else "train"
    return None


def split_wandb(column: str) -> WandbColumn | None:
    """Split a W&B column at the last " - " that leaves a known metric after it.

    Run names may contain " - " (`my run - v2 - train/loss` is run `my run - v2`); metric
    names practically never do, so the longest run name that leaves a known metric wins,
    else the last " - ". None when the column has no " - " with text on both sides.
    """
    base, extra = column, ""
    for band in _BAND:
        if base.endswith(band):
            base, extra = base[: -len(band)], band
            break
    parts = base.split(_SEPARATOR)
    splits = [
        (_SEPARATOR.join(parts[:i]), _SEPARATOR.join(parts[i:]))
        for i in range(len(parts) - 1, 0, -1)
    ]
    splits = [(run, metric) for run, metric in splits if run.strip() and metric.strip()]
    if not splits:
        return None
    run, metric = next(((r, m) for r, m in splits if metric_kind(m) is not None), splits[0])
    return WandbColumn(run.strip(), metric.strip(), extra)


def is_tensorboard(header: list[str]) -> bool:
    return [normalise(h) for h in header] == ["wall_time", "step", "value"]


def wandb_x(header: list[str]) -> str | None:
    """The x column of a W&B chart export with this header, or None if it is not one.

    One x column plus only `<run> - <metric>` columns: the x is `Step`, or another metric
    (`epoch`, `tokens`, `_runtime`...) when the runs bring their own `<run> - _step`.
    """
    others = [h for h in header if split_wandb(h) is None]
    if len(others) != 1 or len(header) < 2:
        return None
    x = others[0]
    if canonical(x) == "step":
        return x
    steps = (split_wandb(h) for h in header if h != x)
    has_steps = any(c is not None and metric_kind(c.metric) == ("step", "") for c in steps)
    return x if has_steps else None


def is_wandb(header: list[str]) -> bool:
    return wandb_x(header) is not None


def detect(header: list[str], file: str, line: int = 1) -> str:
    """The format of a file with this header, or a clear error naming what is missing
    (at ``line``, the header's line: after any leading '#' lines)."""
    if is_tensorboard(header):
        return "tensorboard"
    if is_wandb(header):
        return "wandb"
    targets = {canonical(h) for h in header}
    if "loss" not in targets:
        raise BadInputError(
            "cannot tell the format: expected a loss column (e.g. 'loss', 'val_loss', "
            "'train/loss'), a W&B export ('Step' and '<run> - <metric>' columns) or a "
            f"TensorBoard export ('Wall time, Step, Value'); found {header}",
            file=file,
            line=line,
        )
    if "step" in targets:
        return "long"
    if targets & {"params", "tokens", "flops", "encoder_params", "decoder_params"}:
        return "table"
    raise BadInputError(
        "cannot tell the format: a curve needs a 'step' column, a table of final losses "
        f"a size column ('params', 'tokens', 'flops', 'encoder_params' or "
        f"'decoder_params'); found {header}",
        file=file,
        line=line,
    )
