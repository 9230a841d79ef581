"""Triton forward: per-token log-sum-exp, target logit and logit sum, block by block.

Programs: token blocks x vocab splits. Each program sweeps its share of the vocabulary
with an online log-sum-exp, keeping one (BLOCK_N, BLOCK_V) logit tile on chip at a
time, and writes partial (max, sum-exp, target logit, logit sum) per token; the
partials of the splits are combined on the host side in O(splits x N). Splitting the
vocabulary keeps every SM busy when N / BLOCK_N is small. The 1-D grid is swizzled in
groups of GROUP_N token blocks (all their splits before the next group), so programs
running together read few hidden tiles, which then stay in L2, instead of all of
hidden at once. FLATTEN asks Triton to flatten the vocab and D loops into one
software-pipelined loop (no pipeline drain between tiles).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trainers.cce.triton_common import logit_tile
from trainers.cce.triton_config import BlockConfig


@triton.jit(do_not_specialize=["n_splits"])  # used as a tensor (a 1 would become constexpr)
def _forward_kernel(
    h_ptr,
    w_ptr,
    b_ptr,
    t_ptr,
    out_ptr,  # (4, splits, N) fp32: max, sum-exp, target logit, logit sum
    tmax_ptr,  # (token blocks, vocab blocks) fp32: each tile's largest logit
    perm_ptr,  # int32 (V,): vocab id at each position (HAS_PERM); targets are positions
    N,
    V,
    D,
    stride_hn,
    stride_wv,
    blocks_per_split,
    n_splits,
    softcap,
    HAS_BIAS: tl.constexpr,
    HAS_PERM: tl.constexpr,
    HAS_SOFTCAP: tl.constexpr,
    NEED_SUM: tl.constexpr,  # the logit sum only matters with label smoothing
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
    GROUP_N: tl.constexpr,
    FLATTEN: tl.constexpr,
):
    pid = tl.program_id(0)
    per_group = GROUP_N * n_splits
    first_n = (pid // per_group) * GROUP_N
    group_size = tl.minimum(tl.cdiv(N, BLOCK_N) - first_n, GROUP_N)
    pid_n = first_n + (pid % per_group) % group_size
    pid_s = (pid % per_group) // group_size
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    targets = tl.load(t_ptr + offs_n, mask=n_mask, other=-1).to(tl.int64)

    run_max = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros((BLOCK_N,), dtype=tl.float32)
    z_target = tl.zeros((BLOCK_N,), dtype=tl.float32)
    z_sum = tl.zeros((BLOCK_N,), dtype=tl.float32)
    v_begin = pid_s.to(tl.int64) * blocks_per_split * BLOCK_V
    for vb in tl.range(0, blocks_per_split, flatten=FLATTEN):
        offs_v = v_begin + vb * BLOCK_V + tl.arange(0, BLOCK_V)
        v_mask = offs_v < V
        ids_v = offs_v
        if HAS_PERM:
            ids_v = tl.load(perm_ptr + offs_v, mask=v_mask, other=0).to(tl.int64)
        z = logit_tile(
            h_ptr, w_ptr, b_ptr, offs_n, ids_v, n_mask, v_mask, D, stride_hn, stride_wv,
            softcap, HAS_BIAS, HAS_SOFTCAP, BLOCK_N, BLOCK_V, BLOCK_D, DOT_PRECISION,
        )  # fmt: skip
        # The host makes sure every split's blocks start below V, so each tile has at
        # least one live column and the running max stays finite after the first tile.
        z_live = tl.where(v_mask[None, :], z, float("-inf"))
        row_max = tl.max(z_live, axis=1)
        # The backward skips recomputing tiles this bound proves negligible.
        block = pid_s * blocks_per_split + vb
        tile_max = tl.max(tl.where(n_mask, row_max, float("-inf")), axis=0)
        tl.store(tmax_ptr + pid_n.to(tl.int64) * tl.cdiv(V, BLOCK_V) + block, tile_max,
                 mask=block < tl.cdiv(V, BLOCK_V))  # fmt: skip
        new_max = tl.maximum(run_max, row_max)
        run_sum = run_sum * tl.exp(run_max - new_max) + tl.sum(
            tl.exp(z_live - new_max[:, None]), axis=1
        )
        run_max = new_max
        is_target = offs_v[None, :] == targets[:, None]
        z_target += tl.sum(tl.where(is_target, z, 0.0), axis=1)
        if NEED_SUM:
            z_sum += tl.sum(tl.where(v_mask[None, :], z, 0.0), axis=1)

    plane = n_splits.to(tl.int64) * N
    base = out_ptr + pid_s.to(tl.int64) * N + offs_n
    tl.store(base, run_max, mask=n_mask)
    tl.store(base + plane, run_sum, mask=n_mask)
    tl.store(base + 2 * plane, z_target, mask=n_mask)
    tl.store(base + 3 * plane, z_sum, mask=n_mask)


def _split_count(n_token_blocks: int, n_vocab_blocks: int, cfg: BlockConfig, device) -> int:
    if cfg.vocab_splits:
        return max(1, min(cfg.vocab_splits, n_vocab_blocks))
    if device.type != "cuda":
        return 1  # the interpreter runs programs one by one: fewer is faster
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    # The (4, splits, N) fp32 partials count toward the forward's extra memory: <= 8 MiB.
    cap = max(1, (8 * 2**20) // (16 * n_token_blocks * cfg.block_n))
    return balanced_splits(n_token_blocks, min(n_vocab_blocks, cap), sms)


def balanced_splits(n_token_blocks: int, n_vocab_blocks: int, slots: int) -> int:
    """Vocab splits giving at least ~4 waves of programs over `slots` concurrent ones,
    with the last wave as full as possible (one program per SM at these tile sizes)."""
    least = max(1, min(n_vocab_blocks, triton.cdiv(4 * slots, max(1, n_token_blocks))))
    best, best_use = least, 0.0
    for splits in range(least, min(n_vocab_blocks, 8 * least) + 1):
        programs = n_token_blocks * splits
        use = programs / (triton.cdiv(programs, slots) * slots)
        if use > best_use + 1e-9:
            best, best_use = splits, use
    return best


def forward_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    softcap: float | None,
    cfg: BlockConfig,
    need_sum: bool = True,
    perm: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lse, target logit, sum of logits) per token, fp32, from contiguous inputs, and
    each (block_n x block_v) tile's largest logit, shape (token blocks, vocab blocks).

    With `need_sum=False` the logit sum is left at zero (saves a reduction per tile).
    With `perm` (int32, V; see `vocab_order.py`) the kernel walks the vocabulary in that
    order: `targets` must be positions in it, and the tile maxima are on its grid.
    `cfg.flatten` applies to plain losses only: with a bias, a softcap or the logit sum
    the flattened loop spills 1-3 KB of registers on sm_90a (codegen_check).
    """
    n, d = hidden.shape
    v = weight.shape[0]
    n_token_blocks = triton.cdiv(n, cfg.block_n)
    n_vocab_blocks = triton.cdiv(v, cfg.block_v)
    splits = _split_count(n_token_blocks, n_vocab_blocks, cfg, hidden.device)
    per_split = triton.cdiv(n_vocab_blocks, splits)
    splits = triton.cdiv(n_vocab_blocks, per_split)  # no split may start beyond V
    out = torch.empty((4, splits, n), dtype=torch.float32, device=hidden.device)
    tile_max = torch.empty(
        (n_token_blocks, n_vocab_blocks), dtype=torch.float32, device=hidden.device
    )
    if n > 0:
        _forward_kernel[(n_token_blocks * splits,)](
            hidden, weight, bias if bias is not None else hidden, targets, out, tile_max,
            perm if perm is not None else targets,
            n, v, d, hidden.stride(0), weight.stride(0), per_split, splits,
            float(softcap or 1.0),
            HAS_BIAS=bias is not None,
            HAS_PERM=perm is not None,
            HAS_SOFTCAP=softcap is not None,
            NEED_SUM=need_sum,
            BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_D=cfg.block_d,
            DOT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
            GROUP_N=cfg.group_n,
            FLATTEN=cfg.flatten and bias is None and softcap is None and not need_sum,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )  # fmt: skip
    run_max, run_sum, z_target, z_sum = out.unbind(0)
    top = run_max.max(dim=0).values
    lse = top + torch.log((run_sum * torch.exp(run_max - top)).sum(dim=0))
    return lse, z_target.sum(dim=0), z_sum.sum(dim=0), tile_max
