"""Chunked PyTorch path: per-token losses and lse without holding N x V logits.

Tokens are processed in chunks whose logits fit a fixed memory budget; the backward
recomputes each chunk's logits from the saved lse instead of keeping them. Works on any
device. Returns per-token values; the reduction happens outside (see `api.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# fp32 bytes of N_chunk x V temporaries we allow at once (logits, probabilities, grads).
DEFAULT_BUDGET_BYTES = 256 * 2**20
_TEMPORARIES = 3


@dataclass(frozen=True)
class LossSpec:
    """The scalar options every path shares."""

    ignore_index: int = -100
    softcap: float | None = None
    z_loss: float = 0.0
    label_smoothing: float = 0.0
    exact: bool = False
    sort_vocab: bool = False  # Triton path only: see vocab_order.py
    fp32_weight_grad: bool = True


def chunk_rows(n_tokens: int, vocab: int, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> int:
    """Tokens per chunk so that the fp32 temporaries stay within `budget_bytes`."""
    rows = budget_bytes // max(1, vocab * 4 * _TEMPORARIES)
    return int(max(1, min(n_tokens, rows)))


def _chunk_logits(
    h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: LossSpec
) -> torch.Tensor:
    """fp32 (soft-capped) logits of one chunk, as the reference computes them."""
    logits = h @ weight.T
    if bias is not None:
        logits = logits + bias
    logits = logits.float()
    if spec.softcap is not None:
        logits = spec.softcap * torch.tanh(logits / spec.softcap)
    return logits


def _chunk_forward(
    z: torch.Tensor, targets: torch.Tensor, spec: LossSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    valid = targets != spec.ignore_index
    safe = torch.where(valid, targets, 0)
    lse = torch.logsumexp(z, dim=-1)
    z_target = z.gather(1, safe[:, None]).squeeze(1)
    eps = spec.label_smoothing
    # F.cross_entropy with smoothing: (1-eps)(lse - z_t) + eps (lse - mean_j z_j)
    loss = lse - (1.0 - eps) * z_target
    if eps:
        loss = loss - eps * z.mean(dim=-1)
    if spec.z_loss:
        loss = loss + spec.z_loss * lse.square()
    return torch.where(valid, loss, 0.0), lse


def _chunk_grad_logits(
    z: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    grad_loss: torch.Tensor,
    grad_lse: torch.Tensor,
    spec: LossSpec,
) -> torch.Tensor:
    """d(loss, lse)/d(pre-softcap logits) for one chunk, fp32."""
    valid = targets != spec.ignore_index
    g_loss = torch.where(valid, grad_loss.float(), 0.0)
    eps = spec.label_smoothing
    coef = g_loss * (1.0 + 2.0 * spec.z_loss * lse) + grad_lse.float()
    grad = torch.exp(z - lse[:, None]) * coef[:, None]
    rows = torch.arange(z.shape[0], device=z.device)
    safe = torch.where(valid, targets, 0)
    grad[rows, safe] -= (1.0 - eps) * g_loss
    if eps:
        grad -= (eps / z.shape[1]) * g_loss[:, None]
    if spec.softcap is not None:
        grad *= 1.0 - (z / spec.softcap).square()
    return grad


class ChunkedLinearCrossEntropy(torch.autograd.Function):
    """(hidden (N, D), weight (V, D), bias, targets (N,)) -> (loss (N,), lse (N,)), fp32."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        spec: LossSpec,
        rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = hidden.shape[0]
        loss = hidden.new_empty(n, dtype=torch.float32)
        lse = hidden.new_empty(n, dtype=torch.float32)
        for start in range(0, n, rows):
            sl = slice(start, start + rows)
            z = _chunk_logits(hidden[sl], weight, bias, spec)
            loss[sl], lse[sl] = _chunk_forward(z, targets[sl], spec)
        ctx.save_for_backward(hidden, weight, bias, targets, lse)
        ctx.spec, ctx.rows = spec, rows  # type: ignore[attr-defined]
        return loss, lse

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        grad_loss: torch.Tensor,
        grad_lse: torch.Tensor,
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, lse = ctx.saved_tensors  # type: ignore[attr-defined]
        spec: LossSpec = ctx.spec  # type: ignore[attr-defined]
        need_h, need_w, need_b = ctx.needs_input_grad[:3]  # type: ignore[attr-defined]
        grads = _backward_chunks(
            hidden, weight, bias, targets, lse, grad_loss, grad_lse, spec, ctx.rows
        )  # type: ignore[attr-defined]
        d_h, d_w, d_b = grads
        return (
            d_h if need_h else None,
            d_w if need_w else None,
            d_b if need_b and bias is not None else None,
            None,
            None,
            None,
        )


def _backward_chunks(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    grad_loss: torch.Tensor,
    grad_lse: torch.Tensor,
    spec: LossSpec,
    rows: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    # The weight gradient sums one GEMM per chunk: in fp32 (default, and exact mode), else
    # in the weight's dtype (each chunk's GEMM still accumulates in fp32).
    acc_dtype = torch.float32 if spec.exact or spec.fp32_weight_grad else weight.dtype
    d_h = torch.empty_like(hidden)
    d_w = torch.zeros(weight.shape, dtype=acc_dtype, device=weight.device)
    d_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
    for start in range(0, hidden.shape[0], rows):
        sl = slice(start, start + rows)
        h = hidden[sl]
        z = _chunk_logits(h, weight, bias, spec)
        g = _chunk_grad_logits(z, targets[sl], lse[sl], grad_loss[sl], grad_lse[sl], spec)
        del z
        if bias is not None:
            d_b += g.sum(dim=0)
        if spec.exact:
            d_h[sl] = (g @ weight.float()).to(hidden.dtype)
            d_w += g.T @ h.float()
        else:
            g = g.to(hidden.dtype)
            d_h[sl] = g @ weight
            if d_w.dtype == g.dtype:
                d_w.addmm_(g.T, h)
            else:  # one rounding of this chunk's GEMM, then an fp32 sum across chunks
                d_w += g.T @ h
    d_bias = d_b.to(bias.dtype) if bias is not None else None
    return d_h, d_w.to(weight.dtype), d_bias
