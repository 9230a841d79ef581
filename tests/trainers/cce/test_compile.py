"""The Triton path is a registered custom op: torch.compile traces it, never silently
wrong; `torch.library.opcheck` validates its schema, fake and autograd registrations."""

from __future__ import annotations

import pytest
import torch

from tests.trainers.cce.cases import NO_TRITON_REASON
from trainers.cce import capabilities, linear_cross_entropy
from trainers.cce.triton_config import BlockConfig, use_configs

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
pytestmark = pytest.mark.skipif(
    not capabilities.triton_supports(torch.device(DEVICE)),
    reason=NO_TRITON_REASON,
)
SMALL = BlockConfig(block_n=32, block_v=64, block_d=32, vocab_splits=2, group_n=2)


def _inputs(n: int = 45, d: int = 20, v: int = 70) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=gen)
    weight = torch.randn(v, d, generator=gen) / d**0.5
    bias = torch.randn(v, generator=gen) * 0.1
    targets = torch.randint(0, v, (n,), generator=gen)
    targets[::4] = -100
    return tuple(t.to(DEVICE) for t in (hidden, weight, bias, targets))


def test_opcheck_forward_and_backward() -> None:
    from trainers.cce import op

    hidden, weight, bias, targets = _inputs()
    with use_configs(SMALL, SMALL):
        args = (
            hidden.requires_grad_(), weight.requires_grad_(), bias.requires_grad_(),
            targets, -100, 3.0, 1e-3, 0.1, False, True, True,
        )  # fmt: skip
        torch.library.opcheck(op.cce_forward, args)
        plain = (*args[:9], False, False)  # no ordering, d_weight in the input dtype
        torch.library.opcheck(op.cce_forward, plain)
        n = hidden.shape[0]
        lse = torch.randn(n, device=DEVICE)
        back_args = (
            hidden.detach(), weight.detach(), bias.detach(), targets, lse,
            torch.full((2, 2), 1e4, device=DEVICE),  # a tile max no tile can be skipped with
            torch.randperm(70, device=DEVICE).to(torch.int32),  # a vocabulary ordering
            torch.rand(n, device=DEVICE), torch.rand(n, device=DEVICE),
            -100, 0.0, 0.0, 0.1, False, True, [True, True, True],
        )  # fmt: skip
        torch.library.opcheck(op.cce_backward, back_args)


class _Head(torch.nn.Module):
    def __init__(self, d: int, v: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(d, d)
        self.out = torch.nn.Linear(d, v)

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.gelu(self.proj(x))
        return linear_cross_entropy(
            h, self.out.weight, targets, bias=self.out.bias, softcap=5.0, z_loss=1e-3,
            impl="triton",
        )  # fmt: skip


def test_compiled_model_matches_eager() -> None:
    hidden, _, _, targets = _inputs()
    torch.manual_seed(0)
    model = _Head(hidden.shape[1], 70).to(DEVICE)
    backend = "inductor" if ON_GPU else "aot_eager"  # no C++ toolchain needed on CPU
    compiled = torch.compile(model, backend=backend, fullgraph=True)
    with use_configs(SMALL, SMALL):
        eager_loss = model(hidden, targets)
        eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
        loss = compiled(hidden, targets)
        grads = torch.autograd.grad(loss, list(model.parameters()))
    torch.testing.assert_close(loss, eager_loss)
    for got, want in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
