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
    dh_ptr, dw_ptr, db_ptr, count_ptr, perm_ptr,
    N, V, D, stride_hn, stride_wv, softcap, tile_row0, v_block0, n_vblocks,
    tmax_div_n, tmax_div_v, tmax_stride, dw_row0,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr, PRESKIP: tl.constexpr,
    COUNT_TILES: tl.constexpr, HAS_PERM: tl.constexpr, DW_BY_ID: tl.constexpr,
    COMPUTE_DH: tl.constexpr, COMPUTE_DW: tl.constexpr, COMPUTE_DB: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    GROUP_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    # Swizzle: walk GROUP_N token blocks down one vocab column before moving right. This
    # launch covers vocab blocks [v_block0, v_block0 + n_vblocks) (a d_weight piece).
    pid = tl.program_id(0)
    n_blocks_n = tl.cdiv(N, BLOCK_N)
    per_group = GROUP_N * n_vblocks
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(n_blocks_n - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_size
    pid_v = v_block0 + (pid % per_group) // group_size

    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    # Vocabulary positions; with a vocabulary ordering (HAS_PERM) position p holds the
    # vocab id perm[p] and the targets arrive as positions too.
    offs_v = pid_v.to(tl.int64) * BLOCK_V + tl.arange(0, BLOCK_V)
    n_mask = offs_n < N
    v_mask = offs_v < V
    ids_v = offs_v
    if HAS_PERM:
        ids_v = tl.load(perm_ptr + offs_v, mask=v_mask, other=0).to(tl.int64)
    targets = tl.load(t_ptr + offs_n, mask=n_mask, other=-1).to(tl.int64)
    lse = tl.load(lse_ptr + offs_n, mask=n_mask, other=0.0)
    c_p = tl.load(cp_ptr + offs_n, mask=n_mask, other=0.0)
    c_onehot = tl.load(co_ptr + offs_n, mask=n_mask, other=0.0)
    c_uniform = tl.load(cu_ptr + offs_n, mask=n_mask, other=0.0)
    # Filtering (filtering.py); thresholds of -1 (filtering.NO_FILTER) keep every tile.
    thr = tl.load(thr_ptr + offs_n, mask=n_mask, other=0.0)

    may_matter = True
    if PRESKIP:  # the forward's tile max (same or coarser tiles) bounds this tile's softmax
        tm_row = (tile_row0 + pid_n) // tmax_div_n
        tile_max = tl.load(tmax_ptr + tm_row.to(tl.int64) * tmax_stride + pid_v // tmax_div_v)
        may_matter = _may_matter(tile_max, pid_v * BLOCK_V, targets, lse, c_p, c_uniform,
                                 thr, n_mask, BLOCK_V)  # fmt: skip
    if may_matter:
        z = logit_tile(
            h_ptr,
            w_ptr,
            b_ptr,
            offs_n,
            ids_v,
            n_mask,
            v_mask,
            D,
            stride_hn,
            stride_wv,
            softcap,
            HAS_BIAS,
            HAS_SOFTCAP,
            BLOCK_N,
            BLOCK_V,
            BLOCK_D,
            DOT_PRECISION,
        )
        g = _tile_grad(z, offs_v, n_mask, v_mask, targets, lse, c_p, c_onehot, c_uniform,
                       softcap, HAS_SOFTCAP)  # fmt: skip
        if COUNT_TILES:  # tests and the benchmark: tiles recomputed, tiles kept
            tl.atomic_add(count_ptr, 1)
        if tl.max(tl.max(tl.abs(g) - thr[:, None], axis=1), axis=0) > 0:
            if COUNT_TILES:
                tl.atomic_add(count_ptr + 1, 1)
            if COMPUTE_DB:
                tl.atomic_add(db_ptr + ids_v, tl.sum(g, axis=0), mask=v_mask, sem="relaxed")
            # d_weight rows: vocab ids in the full gradient, positions in an fp32 piece.
            dw_rows = offs_v - dw_row0
            if DW_BY_ID:
                dw_rows = ids_v
            _add_tile_grads(
                g.to(h_ptr.dtype.element_ty),
                h_ptr,
                w_ptr,
                dh_ptr,
                dw_ptr,
                offs_n,
                ids_v,
                dw_rows,
                n_mask,
                v_mask,
                D,
                stride_hn,
                stride_wv,
                COMPUTE_DH,
                COMPUTE_DW,
                BLOCK_D,
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
    g, h_ptr, w_ptr, dh_ptr, dw_ptr, offs_n, offs_v, dw_rows, n_mask, v_mask, D, stride_hn,
    stride_wv, COMPUTE_DH: tl.constexpr, COMPUTE_DW: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """d_hidden[tile rows] += g @ W[tile cols]; d_weight[dw_rows] += g.T @ H[tile rows]."""
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
                dw_ptr + dw_rows[:, None] * D + offs_d[None, :],
                d_w.to(dw_ptr.dtype.element_ty),
                mask=v_mask[:, None] & d_mask[None, :],
                sem="relaxed",
            )


# fp32 d_hidden accumulator per launch; tokens are processed in chunks that fit it.
DH_BUDGET_BYTES = 32 * 2**20
# fp32 d_weight accumulator (one vocabulary piece at a time) when accumulating in fp32 for
# half-precision weights: rounded into d_weight once per token chunk, not once per tile.
DW_BUDGET_BYTES = 32 * 2**20


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
    tile_blocks: tuple[int, int] | None = None,
    perm: torch.Tensor | None = None,
    dw_budget: int = DW_BUDGET_BYTES,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(d_hidden, d_weight, d_bias); d_hidden in hidden's dtype, d_bias fp32.

    d_hidden sums over every vocab block (thousands of atomic adds per element), so it is
    accumulated in fp32, one token chunk at a time within `dh_budget` bytes, and then
    cast to hidden's dtype. d_weight sums over N / block_n token blocks: with
    `accumulate` = the weight's dtype (or fp32 weights) the atomics add straight into it;
    with `accumulate=torch.float32` for half-precision weights they add into an fp32
    piece of `dw_budget` bytes (a range of vocab blocks, one launch each), which is
    rounded into d_weight (weight's dtype) once per token chunk. Otherwise d_weight comes
    back in `accumulate`.

    `coefs` = (coef_p, coef_onehot, coef_uniform, threshold), fp32 (N,) each; `needs`
    says which of the three gradients to compute (None for the others). `tile_max` is
    the forward's per-tile logit max on tiles of `tile_blocks` = (block_n, block_v)
    (default: this config's); tiles it proves negligible are not even recomputed. Its
    tiles must equal or contain ours (see `triton_config.preskip_compatible`). `perm`
    (int32, V): a vocabulary ordering, position p holds vocab id perm[p]; `targets` are
    then positions and `tile_max` is on the ordered grid. When given, the int32 tensor
    `tile_counts` (2,) is increased by the tiles recomputed and the tiles kept after
    filtering (out of `tile_count(...)`).
    """
    from trainers.cce.triton_config import preskip_compatible

    n, d = hidden.shape
    v = weight.shape[0]
    need_h, need_w, need_b = needs
    need_b = need_b and bias is not None
    dev = hidden.device
    pieces = need_w and accumulate == torch.float32 and weight.dtype != torch.float32
    d_h = torch.empty((n, d), dtype=hidden.dtype, device=dev) if need_h else None
    w_dtype = weight.dtype if pieces else accumulate
    d_w = torch.zeros((v, d), dtype=w_dtype, device=dev) if need_w else None
    d_b = torch.zeros((v,), dtype=torch.float32, device=dev) if need_b else None
    if n == 0 or not (need_h or need_w or need_b):
        return d_h, d_w, d_b
    fwd_blocks = tile_blocks or (cfg.block_n, cfg.block_v)
    if tile_max is not None and not preskip_compatible(fwd_blocks, (cfg.block_n, cfg.block_v)):
        raise ValueError(
            f"the forward's tiles {fwd_blocks} do not contain the backward's "
            f"{(cfg.block_n, cfg.block_v)}: pre-skipping needs them equal or coarser"
        )
    expected = (triton.cdiv(n, fwd_blocks[0]), triton.cdiv(v, fwd_blocks[1]))
    if tile_max is not None and tuple(tile_max.shape) != expected:
        raise ValueError(f"tile_max has shape {tuple(tile_max.shape)}, expected {expected}")
    rows = n
    if need_h:  # token chunks that fit the fp32 d_hidden buffer
        rows = max(cfg.block_n, dh_budget // (4 * d) // cfg.block_n * cfg.block_n)
    n_vblocks = triton.cdiv(v, cfg.block_v)
    piece_blocks = n_vblocks
    if pieces:
        piece_blocks = max(1, dw_budget // (4 * d) // cfg.block_v)
    acc_h = torch.empty((min(rows, n), d), dtype=torch.float32, device=dev) if need_h else None
    acc_w = None
    if pieces:
        acc_w = torch.empty(
            (min(piece_blocks * cfg.block_v, v), d), dtype=torch.float32, device=dev
        )
    for n0 in range(0, n, rows):
        n1 = min(n, n0 + rows)
        if acc_h is not None:
            acc_h[: n1 - n0].zero_()
        chunk = (hidden[n0:n1], targets[n0:n1], lse[n0:n1], tuple(c[n0:n1] for c in coefs))
        for vb0 in range(0, n_vblocks, piece_blocks):
            vbs = min(piece_blocks, n_vblocks - vb0)
            if acc_w is not None:
                acc_w.zero_()
            launch = _Launch(n0 // cfg.block_n, vb0, vbs, fwd_blocks, perm, acc_w is None)
            _launch(chunk, weight, bias, softcap, (acc_h, acc_w if pieces else d_w, d_b),
                    tile_max, launch, tile_counts, cfg)  # fmt: skip
            if acc_w is not None and d_w is not None:
                p0, p1 = vb0 * cfg.block_v, min(v, (vb0 + vbs) * cfg.block_v)
                _flush_piece(d_w, acc_w[: p1 - p0], p0, perm, first=n0 == 0)
        if d_h is not None and acc_h is not None:
            d_h[n0:n1] = acc_h[: n1 - n0]
    return d_h, d_w, d_b


def _flush_piece(d_w: torch.Tensor, acc: torch.Tensor, p0: int, perm: torch.Tensor | None,
                 first: bool) -> None:  # fmt: skip
    """d_weight[rows of positions p0...] (+)= the fp32 piece, rounded once."""
    if perm is None:
        rows = d_w[p0 : p0 + acc.shape[0]]
        if first:
            rows.copy_(acc)
        else:
            rows.copy_(rows.float().add_(acc))
        return
    ids = perm[p0 : p0 + acc.shape[0]].long()
    d_w[ids] = (acc if first else d_w[ids].float().add_(acc)).to(d_w.dtype)


class _Launch:
    """Where one launch sits: its first token block, its vocab blocks, the tile grid."""

    def __init__(self, tile_row0: int, v_block0: int, n_vblocks: int,
                 fwd_blocks: tuple[int, int], perm: torch.Tensor | None,
                 dw_by_id: bool) -> None:  # fmt: skip
        self.tile_row0, self.v_block0, self.n_vblocks = tile_row0, v_block0, n_vblocks
        self.fwd_blocks, self.perm, self.dw_by_id = fwd_blocks, perm, dw_by_id


def _launch(chunk, weight, bias, softcap, grads, tile_max, where: _Launch, tile_counts,
            cfg: BlockConfig) -> None:  # fmt: skip
    hidden, targets, lse, (c_p, c_onehot, c_uniform, thr) = chunk
    d_h, d_w, d_b = grads
    n, d = hidden.shape
    v = weight.shape[0]
    perm = where.perm
    grid = (triton.cdiv(n, cfg.block_n) * where.n_vblocks,)
    _backward_kernel[grid](
        hidden, weight, bias if bias is not None else hidden, targets, lse,
        c_p, c_onehot, c_uniform, thr, tile_max if tile_max is not None else lse,
        d_h if d_h is not None else lse, d_w if d_w is not None else lse,
        d_b if d_b is not None else lse, tile_counts if tile_counts is not None else targets,
        perm if perm is not None else targets,
        n, v, d, hidden.stride(0), weight.stride(0), float(softcap or 1.0), where.tile_row0,
        where.v_block0, where.n_vblocks,
        where.fwd_blocks[0] // cfg.block_n, where.fwd_blocks[1] // cfg.block_v,
        tile_max.shape[1] if tile_max is not None else 0,
        0 if where.dw_by_id else where.v_block0 * cfg.block_v,
        HAS_BIAS=bias is not None, HAS_SOFTCAP=softcap is not None,
        PRESKIP=tile_max is not None, COUNT_TILES=tile_counts is not None,
        HAS_PERM=perm is not None, DW_BY_ID=where.dw_by_id and perm is not None,
        COMPUTE_DH=d_h is not None, COMPUTE_DW=d_w is not None, COMPUTE_DB=d_b is not None,
        BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_D=cfg.block_d,
        GROUP_N=cfg.group_n,
        DOT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip


def tile_count(n: int, v: int, cfg: BlockConfig) -> int:
    """Programs (token block x vocab block tiles) the backward launches."""
    return triton.cdiv(n, cfg.block_n) * triton.cdiv(v, cfg.block_v)
