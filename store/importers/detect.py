"""Telling the four accepted CSV layouts apart from the header alone."""

from __future__ import annotations

import re

from store.errors import BadInputError
from store.importers.aliases import canonical, normalise

FORMATS = ("long", "wandb", "tensorboard", "table")
WANDB_COLUMN = re.compile(r"^(?P<run>.+?) - (?P<metric>.+?)(?P<extra>__MIN|__MAX)?$")


def is_tensorboard(header: list[str]) -> bool:
    return [normalise(h) for h in header] == ["wall_time", "step", "value"]


def is_wandb(header: list[str]) -> bool:
    """`Step` plus at least one `<run> - <metric>` column."""
    rest = [h for h in header if canonical(h) != "step"]
    return len(rest) < len(header) and bool(rest) and all(WANDB_COLUMN.match(h) for h in rest)


def detect(header: list[str], file: str) -> str:
    """The format of a file with this header, or a clear error naming what is missing."""
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
            line=1,
        )
    if "step" in targets:
        return "long"
    if targets & {"params", "tokens", "flops", "encoder_params", "decoder_params"}:
        return "table"
    raise BadInputError(
        "cannot tell the format: a curve needs a 'step' column, a table of final losses "
        f"needs 'params', 'tokens' or 'flops'; found {header}",
        file=file,
        line=1,
    )
