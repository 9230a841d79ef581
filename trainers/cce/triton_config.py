"""Block sizes for the Triton kernels: a fixed heuristic, overridable (tests, tuning).

Kept free of triton imports so the benchmark and tests can set configs anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class BlockConfig:
    """Tile shape and launch settings of one kernel."""

    block_n: int
    block_v: int
    block_d: int
    num_warps: int = 8
    num_stages: int = 3
    # Token blocks per swizzle group: backward, L2 reuse of weight tiles; forward, few
    # hidden tiles in flight at once (all of one group's vocab splits run together).
    group_n: int = 8
    vocab_splits: int = 0  # forward: programs sharing one token block's vocab; 0 = auto
    flatten: bool = False  # forward: one software-pipelined loop over vocab and D steps


# Starting points for Hopper (sm_90), chosen so that `python -m trainers.cce.codegen_check`
# shows no register spills; `bench/cce_bench.py` searches around them on a real GPU.
_FORWARD = BlockConfig(block_n=128, block_v=128, block_d=64, num_warps=8, num_stages=3)
_BACKWARD = BlockConfig(block_n=128, block_v=128, block_d=64, num_warps=8, num_stages=3)
# The exact-mode gradient kernel keeps more live values per tile: narrower vocab tiles.
_EXACT = BlockConfig(block_n=128, block_v=64, block_d=64, num_warps=4, num_stages=3)
# fp32 tiles take twice the shared memory and registers (ieee dots): halve N and D.
_FP32 = {"block_n": 64, "block_d": 32}

_override: dict[str, BlockConfig] = {}


def forward_config(dtype: torch.dtype) -> BlockConfig:
    if "forward" in _override:
        return _override["forward"]
    return _FORWARD if dtype != torch.float32 else replace(_FORWARD, **_FP32)


def backward_config(dtype: torch.dtype) -> BlockConfig:
    if "backward" in _override:
        return _override["backward"]
    return _BACKWARD if dtype != torch.float32 else replace(_BACKWARD, **_FP32)


def exact_config(dtype: torch.dtype) -> BlockConfig:
    if "exact" in _override:
        return _override["exact"]
    return _EXACT if dtype != torch.float32 else replace(_BACKWARD, **_FP32)


def preskip_compatible(forward: tuple[int, int], backward: tuple[int, int]) -> bool:
    """True when each backward tile (block_n, block_v) lies inside one forward tile, so
    the forward's tile maxima bound it: equal tiles, or forward tiles that are multiples."""
    return forward[0] % backward[0] == 0 and forward[1] % backward[1] == 0


@contextlib.contextmanager
def use_configs(
    forward: BlockConfig | None = None,
    backward: BlockConfig | None = None,
    exact: BlockConfig | None = None,
) -> Iterator[None]:
    """Run the kernels with these block sizes inside the `with` block."""
    saved = dict(_override)
    if forward is not None:
        _override["forward"] = forward
    if backward is not None:
        _override["backward"] = backward
    if exact is not None:
        _override["exact"] = exact
    try:
        yield
    finally:
        _override.clear()
        _override.update(saved)
