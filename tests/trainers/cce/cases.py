"""Inputs and the accuracy rule shared by the CCE tests.

Rule (per output): max|impl - truth| <= max|PyTorch at this dtype - truth| + tol * scale,
where truth is the reference math in float64, "PyTorch at this dtype" is the same
materialised-logits code run at the input dtype, and scale = max(1, max|truth|).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainers.cce.reference import reference_linear_cross_entropy

# Why the Triton tests skip where they do: no triton, no capable GPU, or (on CPU) an
# interpreter that cannot run the kernels (Triton 3.6 with numpy >= 2.4).
NO_TRITON_REASON = (
    "needs triton on a CUDA GPU (sm80+), or TRITON_INTERPRET=1 with a working interpreter"
)
TOL = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
IGNORE = -100


def make_inputs(
    n: int,
    d: int,
    v: int,
    dtype: torch.dtype = torch.float32,
    *,
    ignore_frac: float = 0.2,
    peaked_frac: float = 0.5,
    bias: bool = True,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, torch.Tensor | None]:
    """Random inputs; the first `peaked_frac` of tokens get a sharply peaked softmax.

    A peaked token's hidden row is copied into its target's weight row, so its correct
    logit is ~|h|^2 = D while the others are O(1): gradient filtering then has whole
    blocks to skip.
    """
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=gen)
    weight = torch.randn(v, d, generator=gen) / math.sqrt(d)
    targets = torch.randint(0, v, (n,), generator=gen)
    n_peaked = min(int(n * peaked_frac), v)
    rows = torch.randperm(v, generator=gen)[:n_peaked]
    weight[rows] = hidden[:n_peaked]
    targets[:n_peaked] = rows
    ignored = torch.rand(n, generator=gen) < ignore_frac
    targets[ignored] = IGNORE
    b = torch.randn(v, generator=gen) * 0.1 if bias else None
    out = {"hidden": hidden, "weight": weight, "targets": targets, "bias": b}
    return {
        k: (
            t.to(device=device, dtype=dtype)
            if t is not None and t.is_floating_point()
            else (t.to(device) if t is not None else None)
        )
        for k, t in out.items()
    }


def _leaf(t: torch.Tensor | None, dtype: torch.dtype | None = None) -> torch.Tensor | None:
    if t is None:
        return None
    t = t.detach().to(dtype or t.dtype).clone()
    return t.requires_grad_(t.is_floating_point())


def run_with_grads(
    fn: Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    inputs: dict[str, torch.Tensor | None],
    dtype: torch.dtype | None = None,
    seed: int = 1,
    **kwargs: object,
) -> dict[str, torch.Tensor]:
    """Loss, lse and gradients of hidden, weight and bias for one implementation.

    The backward seeds random upstream gradients for both the loss and the lse, so
    every coefficient of the backward is exercised.
    """
    h, w, b = (
        _leaf(inputs["hidden"], dtype),
        _leaf(inputs["weight"], dtype),
        _leaf(inputs["bias"], dtype),
    )
    targets = inputs["targets"]
    loss, lse = fn(h, w, targets, bias=b, return_lse=True, **kwargs)
    gen = torch.Generator().manual_seed(seed)
    g_loss = torch.rand(loss.shape, generator=gen, dtype=torch.float64).to(loss)
    g_lse = 0.1 * torch.randn(lse.shape, generator=gen, dtype=torch.float64).to(lse)
    params = [t for t in (h, w, b) if t is not None]
    grads = torch.autograd.grad((loss * g_loss).sum() + (lse * g_lse).sum(), params)
    out = {"loss": loss.detach(), "lse": lse.detach(), "d_hidden": grads[0], "d_weight": grads[1]}
    if b is not None:
        out["d_bias"] = grads[2]
    return {k: v.double() for k, v in out.items()}


def assert_close_to_truth(
    impl: Callable[..., torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    inputs: dict[str, torch.Tensor | None],
    **kwargs: object,
) -> None:
    """The accuracy rule, for loss, lse and every gradient."""
    dtype = inputs["hidden"].dtype
    # Options that only change how an implementation computes, not what.
    how = ("exact", "impl", "sort_vocab", "fp32_weight_grad")
    math_kwargs = {k: v for k, v in kwargs.items() if k not in how}
    ref = reference_linear_cross_entropy
    truth = run_with_grads(ref, inputs, torch.float64, **math_kwargs)
    at_dtype = run_with_grads(ref, inputs, None, **math_kwargs)
    got = run_with_grads(impl, inputs, None, **kwargs)
    assert set(got) == set(truth)
    for name, ref in truth.items():
        assert got[name].shape == ref.shape, name
        valid = torch.isfinite(ref)
        assert torch.equal(torch.isfinite(got[name]), valid), name
        err = (got[name] - ref)[valid].abs().max().item() if valid.any() else 0.0
        base = (at_dtype[name] - ref)[valid].abs().max().item() if valid.any() else 0.0
        scale = max(1.0, ref[valid].abs().max().item()) if valid.any() else 1.0
        bound = base + TOL[dtype] * scale
        assert err <= bound, f"{name}: error {err:.3g} > bound {bound:.3g} ({kwargs})"
