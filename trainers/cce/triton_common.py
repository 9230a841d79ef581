"""Triton helpers shared by the forward and backward kernels: one logit tile.

Only imported when Triton is available (see `capabilities.HAS_TRITON`).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tanh(x):
    """tanh from exp, stable for any |x| (exp of a non-positive number only)."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x < 0, -t, t)


@triton.jit
def logit_tile(
    h_ptr,
    w_ptr,
    b_ptr,
    offs_n,
    offs_v,
    n_mask,
    v_mask,
    D,
    stride_hn,
    stride_wv,
    softcap,
    HAS_BIAS: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """fp32 (BLOCK_N, BLOCK_V) tile of `softcap(hidden @ weight.T + bias)`.

    `offs_n`, `offs_v` are int64 so that row * stride cannot overflow at large N x D or
    V x D. Masked rows load zeros; the caller masks columns beyond V itself.
    """
    acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        h = tl.load(
            h_ptr + offs_n[:, None] * stride_hn + offs_d[None, :],
            mask=n_mask[:, None] & d_mask[None, :],
            other=0.0,
        )
        # (BLOCK_D, BLOCK_V) view of weight rows: the transpose costs nothing.
        w = tl.load(
            w_ptr + offs_v[None, :] * stride_wv + offs_d[:, None],
            mask=v_mask[None, :] & d_mask[:, None],
            other=0.0,
        )
        acc = tl.dot(h, w, acc, input_precision=DOT_PRECISION)
    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_v, mask=v_mask, other=0.0).to(tl.float32)
        acc += bias[None, :]
    if HAS_SOFTCAP:
        acc = softcap * tanh(acc / softcap)
    return acc
