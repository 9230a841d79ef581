"""Triton backward: recompute each logit tile, form its gradient, skip it if negligible.

Grid: one program per (token block, vocab block) tile, swizzled in groups of
`group_n` token blocks so that concurrently running programs share weight tiles in L2.
A program first bounds its tile from the forward's tile maximum (`_may_matter`) and
stops if no entry can pass the filter; otherwise it recomputes its logit tile, forms
the gradient of the per-token outputs with respect to the (pre-softcap) logits

    g = coef_p * softmax - coef_onehot * onehot(target) - coef_uniform
    g *= 1 - (z / softcap)^2          (when soft-capped)

and, unless every |g| is below its token's threshold (`filtering.py`), adds
`g @ weight_tile` into d_hidden (an fp32 buffer, one token chunk at a time) and
`g.T @ hidden_tile` into d_weight (in the input dtype) with atomics, one BLOCK_D slice
at a time.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trainers.cce.triton_common import logit_tile
from trainers.cce.triton_config import BlockConfig


@triton.jit
def _tile_grad(z, offs_v, n_mask, v_mask, targets, lse, c_p, c_onehot, c_uniform, softcap,
               HAS_SOFTCAP: tl.constexpr):  # fmt: skip
    p = tl.exp(z - lse[:, None])
    g = c_p[:, None] * p - c_uniform[:, None]
    g = tl.where(offs_v[None, :] == targets[:, None], g - c_onehot[:, None], g)
    if HAS_SOFTCAP:
        r = z / softcap
        g = g * (1.0 - r * r)
    return tl.where(n_mask[:, None] & v_mask[None, :], g, 0.0)


@triton.jit
def _backward_kernel(
    h_ptr, w_ptr, b_ptr, t_ptr, lse_ptr, cp_ptr, co_ptr, cu_ptr, thr_ptr, tmax_ptr,
    dh_ptr, dw_ptr, db_ptr, count_ptr,
    N, V, D, stride_hn, stride_wv, softcap, tile_row0,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr, PRESKIP: tl.constexpr,
    COUNT_TILES: tl.constexpr,
    COMPUTE_DH: tl.constexpr, COMPUTE_DW: tl.constexpr, COMPUTE_DB: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    GROUP_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    # Swizzle: walk GROUP_N token blocks down one vocab column before moving right.
    pid = tl.program_id(0)
    n_blocks_n = tl.cdiv(N, BLOCK_N)
    n_blocks_v = tl.cdiv(V, BLOCK_V)
    per_group = GROUP_N * n_blocks_v
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(n_blocks_n - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_size
    pid_v = (pid % per_group) // group_size

    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_v = pid_v.to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
    n_mask = offs_n < N
    v_mask = offs_v < V
    targets = tl.load(t_ptr + offs_n, mask=n_mask, other=-1).to(tl.int64)
    lse = tl.load(lse_ptr + offs_n, mask=n_mask, other=0.0)
    c_p = tl.load(cp_ptr + offs_n, mask=n_mask, other=0.0)
    c_onehot = tl.load(co_ptr + offs_n, mask=n_mask, other=0.0)
    c_uniform = tl.load(cu_ptr + offs_n, mask=n_mask, other=0.0)
    # Filtering (filtering.py); thresholds of -1 (filtering.NO_FILTER) keep every tile.
    thr = tl.load(thr_ptr + offs_n, mask=n_mask, other=0.0)

    may_matter = True
    if PRESKIP:  # the forward's tile max bounds every softmax entry of this tile
        tile_max = tl.load(tmax_ptr + (tile_row0 + pid_n).to(tl.int64) * n_blocks_v + pid_v)
        may_matter = _may_matter(tile_max, pid_v * BLOCK_V, targets, lse, c_p, c_uniform,
                                 thr, n_mask, BLOCK_V)  # fmt: skip
    if may_matter:
        z = logit_tile(
            h_ptr, w_ptr, b_ptr, offs_n, offs_v, n_mask, v_mask, D, stride_hn, stride_wv,
            softcap, HAS_BIAS, HAS_SOFTCAP, BLOCK_N, BLOCK_V, BLOCK_D, DOT_PRECISION,
        )
        g = _tile_grad(z, offs_v, n_mask, v_mask, targets, lse, c_p, c_onehot, c_uniform,
                       softcap, HAS_SOFTCAP)  # fmt: skip
        if COUNT_TILES:  # tests and the benchmark: tiles recomputed, tiles kept
            tl.atomic_add(count_ptr, 1)
        if tl.max(tl.max(tl.abs(g) - thr[:, None], axis=1), axis=0) > 0:
            if COUNT_TILES:
                tl.atomic_add(count_ptr + 1, 1)
            if COMPUTE_DB:
                tl.atomic_add(db_ptr + offs_v, tl.sum(g, axis=0), mask=v_mask, sem="relaxed")
            _add_tile_grads(
                g.to(h_ptr.dtype.element_ty), h_ptr, w_ptr, dh_ptr, dw_ptr, offs_n, offs_v,
                n_mask, v_mask, D, stride_hn, stride_wv, COMPUTE_DH, COMPUTE_DW, BLOCK_D,
                DOT_PRECISION,
            )


@triton.jit
def _may_matter(tile_max, v_lo, targets, lse, c_p, c_uniform, thr, n_mask,
                BLOCK_V: tl.constexpr):  # fmt: skip
    """False when no entry of the tile can pass the filter, without computing it.

    Every softmax entry is at most exp(tile_max - lse) (and at most 1), so the tile's
    gradient is at most |c_p| * that + |c_uniform| per token, unless it holds a target.
    """
    has_target = (targets >= v_lo) & (targets < v_lo + BLOCK_V)
    p_bound = tl.exp(tl.minimum(tile_max - lse, 0.0))
    excess = tl.where(n_mask, tl.abs(c_p) * p_bound + tl.abs(c_uniform) - thr, -1.0)
    return (tl.max(has_target.to(tl.int32), axis=0) > 0) | (tl.max(excess, axis=0) > 0)


@triton.jit
def _add_tile_grads(
    g, h_ptr, w_ptr, dh_ptr, dw_ptr, offs_n, offs_v, n_mask, v_mask, D, stride_hn, stride_wv,
    COMPUTE_DH: tl.constexpr, COMPUTE_DW: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """d_hidden[tile rows] += g @ W[tile cols]; d_weight[tile cols] += g.T @ H[tile rows]."""
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        if COMPUTE_DH:
            w = tl.load(
                w_ptr + offs_v[:, None] * stride_wv + offs_d[None, :],
                mask=v_mask[:, None] & d_mask[None, :],
                other=0.0,
            )
            d_h = tl.dot(g, w, input_precision=DOT_PRECISION)
            tl.atomic_add(
                dh_ptr + offs_n[:, None] * D + offs_d[None, :],
                d_h.to(dh_ptr.dtype.element_ty),
                mask=n_mask[:, None] & d_mask[None, :],
                sem="relaxed",
            )
        if COMPUTE_DW:
            h = tl.load(
                h_ptr + offs_n[:, None] * stride_hn + offs_d[None, :],
                mask=n_mask[:, None] & d_mask[None, :],
                other=0.0,
            )
            d_w = tl.dot(tl.trans(g), h, input_precision=DOT_PRECISION)
            tl.atomic_add(
                dw_ptr + offs_v[:, None] * D + offs_d[None, :],
                d_w.to(dw_ptr.dtype.element_ty),
                mask=v_mask[:, None] & d_mask[None, :],
                sem="relaxed",
            )


# fp32 d_hidden accumulator per launch; tokens are processed in chunks that fit it.
DH_BUDGET_BYTES = 32 * 2**20


def backward_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    coefs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    softcap: float | None,
    accumulate: torch.dtype,
    needs: tuple[bool, bool, bool],
    cfg: BlockConfig,
    tile_counts: torch.Tensor | None = None,
    dh_budget: int = DH_BUDGET_BYTES,
    tile_max: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(d_hidden, d_weight, d_bias): d_weight accumulated in `accumulate`, the others fp32.

    d_hidden sums over every vocab block (thousands of atomic adds per element), so it is
    accumulated in fp32, one token chunk at a time within `dh_budget` bytes, and then
    cast to hidden's dtype; d_weight sums over at most N / block_n token blocks.
    `coefs` = (coef_p, coef_onehot, coef_uniform, threshold), fp32 (N,) each; `needs`
    says which of the three gradients to compute (None for the others). `tile_max` is
    the forward's per-tile logit max on this config's tile grid: tiles it proves
    negligible are not even recomputed. When given, the int32 tensor `tile_counts` (2,)
    is increased by the tiles recomputed and the tiles kept after filtering (out of
    `tile_count(...)`).
    """
    n, d = hidden.shape
    v = weight.shape[0]
    need_h, need_w, need_b = needs
    need_b = need_b and bias is not None
    dev = hidden.device
    d_h = torch.empty((n, d), dtype=hidden.dtype, device=dev) if need_h else None
    d_w = torch.zeros((v, d), dtype=accumulate, device=dev) if need_w else None
    d_b = torch.zeros((v,), dtype=torch.float32, device=dev) if need_b else None
    if n == 0 or not (need_h or need_w or need_b):
        return d_h, d_w, d_b
    expected = (triton.cdiv(n, cfg.block_n), triton.cdiv(v, cfg.block_v))
    if tile_max is not None and tuple(tile_max.shape) != expected:
        tile_max = None  # computed on another tile grid: recompute every tile
    rows = max(cfg.block_n, dh_budget // (4 * d) // cfg.block_n * cfg.block_n)
    acc_h = torch.empty((min(rows, n), d), dtype=torch.float32, device=dev) if need_h else None
    for n0 in range(0, n, rows):
        n1 = min(n, n0 + rows)
        if acc_h is not None:
            acc_h[: n1 - n0].zero_()
        chunk = (hidden[n0:n1], targets[n0:n1], lse[n0:n1], tuple(c[n0:n1] for c in coefs))
        _launch(chunk, weight, bias, softcap, (acc_h, d_w, d_b), tile_max, n0 // cfg.block_n,
                tile_counts, cfg)  # fmt: skip
        if d_h is not None and acc_h is not None:
            d_h[n0:n1] = acc_h[: n1 - n0]
    return d_h, d_w, d_b


def _launch(chunk, weight, bias, softcap, grads, tile_max, tile_row0, tile_counts,
            cfg: BlockConfig) -> None:  # fmt: skip
    hidden, targets, lse, (c_p, c_onehot, c_uniform, thr) = chunk
    d_h, d_w, d_b = grads
    n, d = hidden.shape
    v = weight.shape[0]
    _backward_kernel[(tile_count(n, v, cfg),)](
        hidden, weight, bias if bias is not None else hidden, targets, lse,
        c_p, c_onehot, c_uniform, thr, tile_max if tile_max is not None else lse,
        d_h if d_h is not None else lse, d_w if d_w is not None else lse,
        d_b if d_b is not None else lse, tile_counts if tile_counts is not None else targets,
        n, v, d, hidden.stride(0), weight.stride(0), float(softcap or 1.0), tile_row0,
        HAS_BIAS=bias is not None, HAS_SOFTCAP=softcap is not None,
        PRESKIP=tile_max is not None, COUNT_TILES=tile_counts is not None,
        COMPUTE_DH=d_h is not None, COMPUTE_DW=d_w is not None, COMPUTE_DB=d_b is not None,
        BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_D=cfg.block_d,
        GROUP_N=cfg.group_n,
        DOT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip


def tile_count(n: int, v: int, cfg: BlockConfig) -> int:
    """Programs (token block x vocab block tiles) the backward launches."""
    return triton.cdiv(n, cfg.block_n) * triton.cdiv(v, cfg.block_v)
