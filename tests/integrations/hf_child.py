"""A Trainer run with ScalingLabCallback that stops at step STOP_AT (see children.py).

python -m tests.integrations.hf_child STORE block|raise|sigint
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.integrations.offline import forbid_network

forbid_network()

import torch  # noqa: E402
from transformers import PrinterCallback, Trainer, TrainerCallback  # noqa: E402

from scalinglab.integrations.transformers import ScalingLabCallback  # noqa: E402
from tests.integrations import children  # noqa: E402
from tests.integrations.tiny_hf import SEQ_LEN, Tokens, tiny_gpt2, training_args  # noqa: E402


class StopAt(TrainerCallback):  # type: ignore[misc]
    """At the start of the step after STOP_AT (its log written): stop as `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == children.STOP_AT:
            children.stop(self.mode, state.log_history)


def main(store: str, mode: str) -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        callback = ScalingLabCallback(
            project="p", run=f"hf-{mode}", store=store, seq_len=SEQ_LEN, flush_seconds=0.2
        )
        trainer = Trainer(
            model=tiny_gpt2(),
            args=training_args(Path(out)),
            train_dataset=Tokens(256, seed=1),
            eval_dataset=Tokens(16, seed=2),
            callbacks=[callback, StopAt(mode)],
        )
        trainer.remove_callback(PrinterCallback)  # stdout is for the test
        trainer.train()


if __name__ == "__main__":
    main(*sys.argv[1:])
