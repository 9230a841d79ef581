"""Log any training loop's curve into a scalinglab store.

    import scalinglab
    run = scalinglab.init(project="sweep", run="n1e8", params=1.2e8, tokens_per_step=2**19)
    for step in range(steps):
        ...
        run.log({"loss": loss, "lr": lr}, step=step)
    run.finish()

Points go to the store's inbox as the trainers' do (`store.inbox.InboxWriter`): flushed
every 2 s, so a killed job loses only what came after the last flush. Never imports torch.
"""

from __future__ import annotations

from scalinglab.logger import Run, init

__all__ = ["Run", "init"]
