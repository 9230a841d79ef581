"""A clean stop on SIGINT / SIGTERM: finish the step, flush, checkpoint, say `interrupted`.

The first signal only sets a flag the training loop reads between steps, so the inbox
writer is never cut off mid-row and the run's last checkpoint matches its last flushed
point. The same signal again gives up on that and ends the process at once (the signal's
default action); the run then stays `running` until `trainers.runlock.mark_stale` or a
resume finds it. The other signal meanwhile is ignored: Ctrl-C reaches a sweep's workers
(and torchrun's) directly, and their parent then sends SIGTERM as well. Handlers can
only be installed from the main thread; elsewhere `StopRequest` is a flag nothing sets.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Use as `with StopRequest() as stop: ... if stop.requested: ...`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        """What a shell reports for a process ended by that signal (130 for Ctrl-C)."""
        return 128 + (self.signum or signal.SIGINT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if signum != self.signum:
                return
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
