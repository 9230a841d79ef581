"""`ScalingLabLogger`: a `lightning` Trainer's metrics and hyperparameters in a store.

    from scalinglab.integrations.lightning import ScalingLabLogger
    trainer = lightning.Trainer(max_steps=1000, logger=ScalingLabLogger(project="sweep"))

What each hook writes: `scalinglab.integrations.lightning_logger`. For the older
`pytorch_lightning` package use `scalinglab.integrations.pytorch_lightning`.
"""

from __future__ import annotations

from scalinglab.integrations.lightning_logger import ScalingLabLoggerMixin
from store.trackers.optional import MissingExtraError

try:
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers import Logger
except ImportError as err:  # the extra is not installed
    raise MissingExtraError(
        "ScalingLabLogger needs the 'lightning' package: pip install 'scalinglab[lightning]'"
    ) from err


class ScalingLabLogger(ScalingLabLoggerMixin, Logger):  # type: ignore[misc]
    __doc__ = ScalingLabLoggerMixin.__doc__
    framework = "lightning"

    def _is_main(self) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0
