"""A Lightning fit with ScalingLabLogger that blocks at step STOP_AT (see children.py).

python -m tests.integrations.pl_child STORE block
"""

from __future__ import annotations

import sys

from tests.integrations.offline import forbid_network

forbid_network()

import lightning  # noqa: E402
import torch  # noqa: E402

from scalinglab.integrations.lightning import ScalingLabLogger  # noqa: E402
from tests.integrations import children  # noqa: E402
from tests.integrations.tiny_lightning import (  # noqa: E402
    TOKENS_PER_STEP,
    loaders,
    tiny_module,
    trainer_options,
)


class StopAt(lightning.Callback):  # type: ignore[misc]
    """Before the step after STOP_AT (its metrics logged): stop as `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def on_train_batch_start(self, trainer: object, module: object, *args: object) -> None:
        if trainer.global_step == children.STOP_AT + 1:  # type: ignore[attr-defined]
            children.stop(self.mode, module.seen)  # type: ignore[attr-defined]


def main(store: str, mode: str) -> None:
    torch.set_num_threads(1)
    logger = ScalingLabLogger(
        project="p", run=f"pl-{mode}", store=store, tokens_per_step=TOKENS_PER_STEP,
        flush_seconds=0.2,
    )  # fmt: skip
    trainer = lightning.Trainer(
        **trainer_options(val_check_interval=None, limit_val_batches=0),
        logger=logger,
        callbacks=[StopAt(mode)],
    )
    train, _ = loaders()
    trainer.fit(tiny_module(lightning.LightningModule), train)


if __name__ == "__main__":
    main(*sys.argv[1:])
