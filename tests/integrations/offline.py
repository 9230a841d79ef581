"""No downloads and no network for the integration tests (their children included)."""

from __future__ import annotations

import os
import socket
from typing import Any

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
}


class NetworkUsed(RuntimeError):
    """A test tried to reach the network."""


def refusing_connect(real_connect: Any) -> Any:
    """`socket.connect` that refuses internet addresses (local sockets still connect)."""

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkUsed(f"a test connected to {address!r}")
        return real_connect(self, address)

    return connect


def forbid_network() -> None:
    """For a child process: the offline switches on, internet connections refused."""
    os.environ.update(OFFLINE)
    socket.socket.connect = refusing_connect(socket.socket.connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = refusing_connect(socket.socket.connect_ex)  # type: ignore[method-assign]
