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
# shows no register spills under both Triton 3.6 (the GPU machine's) and the newest
# (tests/trainers/cce/test_gpu_codegen.py checks both); `bench/cce_bench.py --tune`
# searches around them on a real GPU.
_FORWARD = BlockConfig(block_n=128, block_v=128, block_d=64, num_warps=8, num_stages=3,
                       group_n=16)  # fmt: skip
_BACKWARD = BlockConfig(block_n=128, block_v=128, block_d=64, num_warps=8, num_stages=3)
# The exact-mode gradient kernel keeps more live values per tile: narrower vocab tiles
# (4 warps spilled 136 B under Triton 3.6).
_EXACT = BlockConfig(block_n=128, block_v=64, block_d=64, num_warps=8, num_stages=3)
# fp32 tiles take twice the shared memory and registers (ieee dots): smaller tiles. The
# backward's 64 x 128 spilled 5.5 KB under Triton 3.6; the forward's 64 x 128 tiles
# contain its 64 x 64 ones, so pre-skipping still applies.
_FORWARD_FP32 = replace(_FORWARD, block_n=64, block_d=32)
_BACKWARD_FP32 = replace(_BACKWARD, block_n=64, block_v=64, block_d=32)
_EXACT_FP32 = replace(_BACKWARD, block_n=64, block_d=32)

# What `bench/cce_bench.py --tune` tries on a GPU (tests/trainers/cce/test_gpu_codegen.py
# compiles each for sm_90a: within Hopper's 227 KiB of shared memory per block, no
# spills). Forward tiles could be coarser than backward ones (`preskip_compatible`), but
# 128 x 256 and 256 x 128 forward tiles spill 0.7-3 KB under both Triton versions.
FORWARD_CANDIDATES = [
    _FORWARD,
    replace(_FORWARD, flatten=True),  # plain losses only (see triton_forward.forward_stats)
    replace(_FORWARD, num_stages=4),
    replace(_FORWARD, group_n=8),
    replace(_FORWARD, group_n=32),
    replace(_FORWARD, group_n=1024),  # effectively unswizzled: every token block at once
]
BACKWARD_CANDIDATES = [
    _BACKWARD,
    replace(_BACKWARD, num_stages=4),
    replace(_BACKWARD, group_n=16),
    BlockConfig(64, 128, 64, num_warps=4, num_stages=3, group_n=8),
    BlockConfig(128, 64, 64, num_warps=4, num_stages=3, group_n=8),
    BlockConfig(64, 64, 128, num_warps=4, num_stages=3, group_n=8),
]

_override: dict[str, BlockConfig] = {}


def forward_config(dtype: torch.dtype) -> BlockConfig:
    if "forward" in _override:
        return _override["forward"]
    return _FORWARD if dtype != torch.float32 else _FORWARD_FP32


def backward_config(dtype: torch.dtype) -> BlockConfig:
    if "backward" in _override:
        return _override["backward"]
    return _BACKWARD if dtype != torch.float32 else _BACKWARD_FP32


def exact_config(dtype: torch.dtype) -> BlockConfig:
    if "exact" in _override:
        return _override["exact"]
    return _EXACT if dtype != torch.float32 else _EXACT_FP32


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
