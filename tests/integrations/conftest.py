"""A fresh store per test; no network while these tests run."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store
from tests.integrations.offline import OFFLINE, refusing_connect


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Offline switches set and internet connections refused, for this test only."""
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(socket.socket, "connect", refusing_connect(socket.socket.connect))
    monkeypatch.setattr(socket.socket, "connect_ex", refusing_connect(socket.socket.connect_ex))
    yield


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models train faster on one thread than on a busy machine's every core."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "store")
    s.ensure()
    return s
