"""The Triton path as registered custom ops, so `torch.compile` traces it as one node.

`scalinglab::cce_forward` returns per-token (loss, lse); `scalinglab::cce_backward`
returns (d_hidden, d_weight, d_bias). Both have fake (meta) implementations for
tracing, and the forward's autograd formula calls the backward op. Only the per-token
scalar math lives here; the N x V work is in `triton_forward.py` / `triton_backward.py`.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch

from trainers.cce import filtering, triton_config, vocab_order
from trainers.cce.torch_chunked import LossSpec

# 0.0 stands for "no softcap" in the op schemas (a cap must be positive).
_NO_CAP = 0.0


def _cap(softcap: float) -> float | None:
    return None if softcap == _NO_CAP else softcap


def _on_device(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """Triton launches on the current CUDA device: make it the tensors' one."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


@torch.library.custom_op("scalinglab::cce_forward", mutates_args=())
def cce_forward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    ignore_index: int,
    softcap: float,
    z_loss: float,
    label_smoothing: float,
    exact: bool,
    sort_vocab: bool,
    fp32_weight_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token (loss, lse), fp32, then what the backward uses to skip tiles (not
    differentiable): the per-tile logit max and the vocabulary ordering (int32, empty
    without `sort_vocab`; exact mode skips nothing, so it never sorts). `exact` and
    `fp32_weight_grad` only matter to the backward."""
    from trainers.cce.triton_forward import forward_stats

    hidden, weight = hidden.contiguous(), weight.contiguous()
    bias = bias.contiguous() if bias is not None else None
    cfg = triton_config.forward_config(hidden.dtype)
    perm = _ordering(hidden, weight, bias, sort_vocab and not exact)
    kernel_targets = targets.contiguous()
    if perm.numel():
        kernel_targets = vocab_order.positions_of(kernel_targets, perm)
    with _on_device(hidden):
        lse, z_target, z_sum, tile_max = forward_stats(
            hidden, weight, bias, kernel_targets, _cap(softcap), cfg,
            need_sum=label_smoothing != 0.0, perm=perm if perm.numel() else None,
        )  # fmt: skip
    # F.cross_entropy with smoothing eps: lse - (1 - eps) z_t - eps * mean_j z_j
    loss = lse - (1.0 - label_smoothing) * z_target
    if label_smoothing:
        loss = loss - (label_smoothing / weight.shape[0]) * z_sum
    if z_loss:
        loss = loss + z_loss * lse.square()
    return torch.where(targets != ignore_index, loss, 0.0), lse, tile_max, perm


def _ordering(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, sort: bool
) -> torch.Tensor:
    if not sort:
        return torch.empty(0, dtype=torch.int32, device=hidden.device)
    return vocab_order.mean_logit_order(hidden, weight, bias)


@cce_forward.register_fake
def _(hidden, weight, bias, targets, ignore_index, softcap, z_loss, label_smoothing, exact,
      sort_vocab, fp32_weight_grad):  # fmt: skip
    n, v = hidden.shape[0], weight.shape[0]
    cfg = triton_config.forward_config(hidden.dtype)
    tiles = ((n + cfg.block_n - 1) // cfg.block_n, (v + cfg.block_v - 1) // cfg.block_v)
    f32 = torch.float32
    perm = hidden.new_empty(v if sort_vocab and not exact else 0, dtype=torch.int32)
    return (
        hidden.new_empty(n, dtype=f32), hidden.new_empty(n, dtype=f32),
        hidden.new_empty(tiles, dtype=f32), perm,
    )  # fmt: skip


def backward_coefs(
    targets: torch.Tensor,
    lse: torch.Tensor,
    grad_loss: torch.Tensor,
    grad_lse: torch.Tensor,
    vocab: int,
    dtype: torch.dtype,
    ignore_index: int,
    z_loss: float,
    label_smoothing: float,
    exact: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token (coef_p, coef_onehot, coef_uniform, threshold) of the logit gradient.

    d(g_loss * loss + g_lse * lse)/dz_j = g_loss * ((1 + 2 z_loss lse) p_j
    - (1 - eps) [j = t] - eps / V) + g_lse * p_j, with g_loss = 0 at ignored tokens.
    """
    g_loss = torch.where(targets != ignore_index, grad_loss.float(), 0.0)
    c_p = g_loss * (1.0 + 2.0 * z_loss * lse) + grad_lse.float()
    c_onehot = g_loss * (1.0 - label_smoothing)
    c_uniform = g_loss * (label_smoothing / vocab)
    thr = filtering.token_thresholds(c_p, c_onehot, dtype, exact)
    return c_p.contiguous(), c_onehot.contiguous(), c_uniform.contiguous(), thr.contiguous()


@torch.library.custom_op("scalinglab::cce_backward", mutates_args=())
def cce_backward(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    tile_max: torch.Tensor,
    perm: torch.Tensor,
    grad_loss: torch.Tensor,
    grad_lse: torch.Tensor,
    ignore_index: int,
    softcap: float,
    z_loss: float,
    label_smoothing: float,
    exact: bool,
    fp32_weight_grad: bool,
    needs: list[bool],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients; the ones not asked for (`needs` = [hidden, weight, bias]) are empty.

    `perm` is the forward's vocabulary ordering (empty: none); `fp32_weight_grad`
    accumulates d_weight in fp32 (`triton_backward.backward_grads`)."""
    from trainers.cce.triton_backward import backward_grads
    from trainers.cce.triton_exact import exact_backward_grads

    hidden, weight = hidden.contiguous(), weight.contiguous()
    bias = bias.contiguous() if bias is not None else None
    coefs = backward_coefs(
        targets, lse, grad_loss, grad_lse, weight.shape[0], hidden.dtype,
        ignore_index, z_loss, label_smoothing, exact,
    )  # fmt: skip
    cfg = triton_config.backward_config(hidden.dtype)
    kernel_targets = targets.contiguous()
    ordering = perm if perm.numel() and not exact else None
    if ordering is not None:
        kernel_targets = vocab_order.positions_of(kernel_targets, ordering)
    args = (hidden, weight, bias, kernel_targets, lse.contiguous(), coefs, _cap(softcap))
    wanted = (needs[0], needs[1], needs[2])
    with _on_device(hidden):
        if exact:
            # No filtering, fp32 accumulation, no atomics (deterministic): triton_exact.py.
            d_h, d_w, d_b = exact_backward_grads(
                *args, wanted, triton_config.exact_config(hidden.dtype)
            )
        else:
            uniform = None
            if softcap == _NO_CAP and label_smoothing:
                # Without a softcap the smoothing term -c_uniform is rank one: add it
                # exactly below rather than let filtering drop it tile by tile.
                c_p, c_onehot, uniform, thr = coefs
                no_uniform = (c_p, c_onehot, torch.zeros_like(uniform), thr)
                args = (*args[:5], no_uniform, args[6])
            fwd = triton_config.forward_config(hidden.dtype)
            blocks = (fwd.block_n, fwd.block_v)
            skip_with: torch.Tensor | None = tile_max.contiguous()
            if not triton_config.preskip_compatible(blocks, (cfg.block_n, cfg.block_v)):
                _warn_no_preskip(blocks, (cfg.block_n, cfg.block_v))
                skip_with = None
            accumulate = torch.float32 if fp32_weight_grad else hidden.dtype
            d_h, d_w, d_b = backward_grads(
                *args, accumulate, wanted, cfg, tile_max=skip_with, tile_blocks=blocks,
                perm=ordering,
            )  # fmt: skip
            if uniform is not None:
                _sub_uniform(uniform, hidden, weight, d_h, d_w, d_b)
    # Gradients not asked for come back empty (each its own tensor: outputs may not alias).
    return (
        d_h.to(hidden.dtype) if d_h is not None else hidden.new_empty(0),
        d_w.to(weight.dtype) if d_w is not None else weight.new_empty(0),
        d_b.to(bias.dtype) if d_b is not None and bias is not None else hidden.new_empty(0),
    )


@functools.cache
def _warn_no_preskip(forward: tuple[int, int], backward: tuple[int, int]) -> None:
    warnings.warn(
        f"CCE: forward tiles {forward} do not contain backward tiles {backward}: every "
        "backward tile is recomputed (no pre-skipping); use equal or coarser forward tiles",
        RuntimeWarning,
        stacklevel=3,
    )


def _sub_uniform(
    c_uniform: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    d_h: torch.Tensor | None,
    d_w: torch.Tensor | None,
    d_b: torch.Tensor | None,
) -> None:
    """Subtract the gradient of sum_i c_uniform_i * sum_j z_ij, in place, no N x V work."""
    if d_h is not None:  # d_h[i] -= c_i * sum_j W_j
        col = weight.sum(dim=0, dtype=torch.float32).to(d_h.dtype)
        d_h.addr_(c_uniform.to(d_h.dtype), col, alpha=-1.0)
    if d_w is not None:  # every row j gets -sum_i c_i h_i
        d_w.sub_(torch.mv(hidden.T, c_uniform.to(hidden.dtype)).to(d_w.dtype)[None, :])
    if d_b is not None:
        d_b.sub_(c_uniform.sum())


@cce_backward.register_fake
def _(hidden, weight, bias, targets, lse, tile_max, perm, grad_loss, grad_lse, ignore_index,
      softcap, z_loss, label_smoothing, exact, fp32_weight_grad, needs):  # fmt: skip
    return (
        torch.empty_like(hidden) if needs[0] else hidden.new_empty(0),
        torch.empty_like(weight) if needs[1] else weight.new_empty(0),
        torch.empty_like(bias) if needs[2] and bias is not None else hidden.new_empty(0),
    )


def _setup_context(ctx, inputs, output) -> None:
    (hidden, weight, bias, targets, ignore_index, softcap, z_loss, label_smoothing, exact,
     _sort_vocab, fp32_weight_grad) = inputs  # fmt: skip
    ctx.save_for_backward(hidden, weight, bias, targets, output[1], output[2], output[3])
    ctx.scalars = (ignore_index, softcap, z_loss, label_smoothing)
    ctx.exact = exact
    ctx.fp32_weight_grad = fp32_weight_grad
    ctx.has_bias = bias is not None
    ctx.mark_non_differentiable(output[2], output[3])


def _backward(ctx, grad_loss, grad_lse, _grad_tile_max, _grad_perm):
    hidden, weight, bias, targets, lse, tile_max, perm = ctx.saved_tensors
    need_h, need_w, need_b = ctx.needs_input_grad[:3]
    if grad_loss is None:
        grad_loss = torch.zeros_like(lse)
    if grad_lse is None:
        grad_lse = torch.zeros_like(lse)
    d_h, d_w, d_b = cce_backward(
        hidden, weight, bias, targets, lse, tile_max, perm, grad_loss, grad_lse, *ctx.scalars,
        ctx.exact, ctx.fp32_weight_grad,
        [bool(need_h), bool(need_w), bool(need_b and ctx.has_bias)],
    )  # fmt: skip
    return (
        d_h if need_h else None,
        d_w if need_w else None,
        d_b if need_b and ctx.has_bias else None,
        None, None, None, None, None, None, None, None,
    )  # fmt: skip


cce_forward.register_autograd(_backward, setup_context=_setup_context)


def triton_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    spec: LossSpec,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token (loss, lse) of 2-D `hidden` through the registered op."""
    loss, lse, _, _ = cce_forward(
        hidden, weight, bias, targets, spec.ignore_index,
        _NO_CAP if spec.softcap is None else spec.softcap,
        spec.z_loss, spec.label_smoothing, spec.exact, spec.sort_vocab, spec.fp32_weight_grad,
    )  # fmt: skip
    return loss, lse
