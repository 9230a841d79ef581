"""Data parallelism through `torchrun`: read the environment, set up and tear down DDP.

`torchrun --nproc-per-node K -m trainers ...` sets RANK / WORLD_SIZE / LOCAL_RANK; we use
NCCL on GPUs (one device per process) and gloo on CPU. Only rank 0 writes to the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world=world, local_rank=local, device=dev)


def mean_across(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Average a scalar over ranks (a sync point: only call when logging needs it)."""
    if info.active:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world
    return value


def mean_and_any(value: torch.Tensor, flag: bool, info: DistInfo) -> tuple[float, bool]:
    """A scalar's mean over ranks and whether any rank raised `flag`, in one all-reduce
    (ranks must agree on the step where a signalled run stops)."""
    if not info.active:
        return value.item(), flag
    value = value.detach().float()
    both = torch.stack([value, value.new_full((), float(flag))])
    dist.all_reduce(both, op=dist.ReduceOp.SUM)
    total, raised = both.tolist()
    return total / info.world, raised > 0


def teardown(info: DistInfo, *, finished: bool = True) -> None:
    """Leave the process group. After a finished run, wait for every rank first: rank 0
    evaluates and writes after the last step, and a rank that tore gloo down meanwhile
    was seen to abort ("terminate called without an active exception")."""
    if info.active and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
