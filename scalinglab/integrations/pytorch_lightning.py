"""`ScalingLabLogger` for the older `pytorch_lightning` package (same logger, its base).

from scalinglab.integrations.pytorch_lightning import ScalingLabLogger
trainer = pytorch_lightning.Trainer(logger=ScalingLabLogger(project="sweep"))
"""

from __future__ import annotations

from scalinglab.integrations.lightning_logger import ScalingLabLoggerMixin
from store.trackers.optional import MissingExtraError

try:
    from pytorch_lightning.loggers import Logger
    from pytorch_lightning.utilities.rank_zero import rank_zero_only
except ImportError as err:  # not installed
    raise MissingExtraError(
        "this ScalingLabLogger needs the 'pytorch_lightning' package: "
        "pip install pytorch-lightning (or use scalinglab.integrations.lightning)"
    ) from err


class ScalingLabLogger(ScalingLabLoggerMixin, Logger):  # type: ignore[misc]
    __doc__ = ScalingLabLoggerMixin.__doc__
    framework = "pytorch_lightning"

    def _is_main(self) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0
