"""Under DDP (gloo, 2 CPU processes) the loss's gradients average like any other's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest

from trainers.cce import HAS_TRITON

_WORKER = textwrap.dedent(
    """
    import os, sys
    import torch, torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from trainers.cce import LinearCrossEntropy, capabilities, triton_supports
    from trainers.cce.triton_config import BlockConfig, use_configs

    rank = int(sys.argv[1])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    impls = ["torch"] + (["triton"] if triton_supports(torch.device("cpu")) else [])
    if rank == 0 and capabilities.HAS_TRITON:
        print("interpreter:", capabilities.interpreter_problem() or "ok", flush=True)
    small = BlockConfig(block_n=32, block_v=64, block_d=32, group_n=2)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 24, generator=gen)
    targets = torch.randint(0, 90, (2, 40), generator=gen)
    class Head(torch.nn.Module):
        def __init__(self, impl):
            super().__init__()
            self.out = torch.nn.Linear(24, 90)
            self.loss = LinearCrossEntropy(impl=impl, z_loss=1e-3)

        def forward(self, h, t):
            return self.loss(h, self.out.weight, t, self.out.bias)

    for impl in impls:
        torch.manual_seed(0)
        model = DDP(Head(impl))
        head = model.module.out
        with use_configs(small, small):
            # The loss runs inside the DDP module's forward, as in the trainers.
            model(x[rank], targets[rank]).backward()
        if rank == 0:
            single = torch.nn.Linear(24, 90)
            single.load_state_dict(head.state_dict())
            losses = [
                torch.nn.functional.cross_entropy(
                    x[r] @ single.weight.T + single.bias, targets[r]
                ) + 1e-3 * torch.logsumexp(x[r] @ single.weight.T + single.bias, -1)
                .square().mean()
                for r in range(2)
            ]
            (sum(losses) / 2).backward()
            torch.testing.assert_close(head.weight.grad, single.weight.grad)
            torch.testing.assert_close(head.bias.grad, single.bias.grad)
            print("ok", impl)
    # Wait for rank 0's check before leaving: a rank that tore gloo down while the other
    # still ran aborted ("terminate called without an active exception"), as
    # trainers.distributed.teardown says.
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_averages_gradients() -> None:
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    env.setdefault("TRITON_INTERPRET", "1")
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(rank)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "ok torch" in outs[0][0]
    if HAS_TRITON:
        # The Triton path runs under the interpreter wherever the interpreter works
        # (not Triton 3.6 with numpy >= 2.4: test_capabilities pins which is which).
        works = "interpreter: ok" in outs[0][0]
        assert works or "interpreter: InterpreterError" in outs[0][0], outs[0][0]
        assert ("ok triton" in outs[0][0]) == works, outs[0][0]
