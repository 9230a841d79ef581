"""Exact-mode backward: no filtering, fp32 accumulation, deterministic (no atomics).

The vocabulary is walked in chunks of C columns (C x N of gradient in memory, about
64 MiB). For each chunk a Triton kernel recomputes the logits and writes the logit
gradient `g` (N, C) in the input dtype, exactly as PyTorch's own backward rounds it;
then three dense GEMMs with fp32 accumulation finish the chunk:

    d_hidden      += g @ weight[chunk]        (accumulated across chunks in fp32)
    d_weight[chunk] = g.T @ hidden            (one GEMM, no cross-chunk sum)
    d_bias[chunk]   = g.sum(0)                (fp32)

Dense GEMMs run at the tensor cores' full rate and need no atomics, which the filtered
kernel would spend on every tile once nothing is filtered.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from trainers.cce.triton_backward import _tile_grad
from trainers.cce.triton_common import logit_tile
from trainers.cce.triton_config import BlockConfig

# Bytes of the (N, C) gradient chunk.
CHUNK_BUDGET_BYTES = 64 * 2**20


@triton.jit
def _grad_logits_kernel(
    h_ptr, w_ptr, b_ptr, t_ptr, lse_ptr, cp_ptr, co_ptr, cu_ptr, g_ptr,
    N, V, D, stride_hn, stride_wv, stride_gn, v_begin, width, softcap,
    HAS_BIAS: tl.constexpr, HAS_SOFTCAP: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_D: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    # Token blocks vary fastest: programs running together share the weight tile in L2.
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    offs_n = pid_n.to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    local_v = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    offs_v = v_begin + local_v.to(tl.int64)
    n_mask = offs_n < N
    v_mask = (local_v < width) & (offs_v < V)
    z = logit_tile(
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
        HAS_BIAS,
        HAS_SOFTCAP,
        BLOCK_N,
        BLOCK_V,
        BLOCK_D,
        DOT_PRECISION,
    )
    targets = tl.load(t_ptr + offs_n, mask=n_mask, other=-1).to(tl.int64)
    lse = tl.load(lse_ptr + offs_n, mask=n_mask, other=0.0)
    c_p = tl.load(cp_ptr + offs_n, mask=n_mask, other=0.0)
    c_onehot = tl.load(co_ptr + offs_n, mask=n_mask, other=0.0)
    c_uniform = tl.load(cu_ptr + offs_n, mask=n_mask, other=0.0)
    g = _tile_grad(
        z, offs_v, n_mask, v_mask, targets, lse, c_p, c_onehot, c_uniform, softcap, HAS_SOFTCAP
    )
    tl.store(
        g_ptr + offs_n[:, None] * stride_gn + local_v[None, :],
        g.to(g_ptr.dtype.element_ty),
        mask=n_mask[:, None] & v_mask[None, :],
    )  # fmt: skip


def chunk_width(
    n: int, v: int, itemsize: int, block_v: int, budget: int = CHUNK_BUDGET_BYTES
) -> int:
    """Vocabulary columns per chunk: a multiple of block_v within the memory budget."""
    cols = budget // max(1, n * itemsize)
    cols = max(block_v, cols // block_v * block_v)
    return min(cols, triton.cdiv(v, block_v) * block_v)


def _add_fp32(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """acc += a @ b with fp32 accumulation and an fp32 result, for any input dtype."""
    if a.dtype == torch.float32:
        acc.addmm_(a, b)
    elif a.is_cuda:
        acc += torch.mm(a, b, torch.float32)  # cuBLAS bf16/fp16 in, fp32 out
    else:
        acc.addmm_(a.float(), b.float())


def exact_backward_grads(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    lse: torch.Tensor,
    coefs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    softcap: float | None,
    needs: tuple[bool, bool, bool],
    cfg: BlockConfig,
    budget: int = CHUNK_BUDGET_BYTES,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(d_hidden fp32, d_weight in weight's dtype, d_bias fp32); None where not needed."""
    n, d = hidden.shape
    v = weight.shape[0]
    need_h, need_w, need_b = needs
    need_b = need_b and bias is not None
    dev = hidden.device
    d_h = torch.zeros((n, d), dtype=torch.float32, device=dev) if need_h else None
    d_w = torch.empty((v, d), dtype=weight.dtype, device=dev) if need_w else None
    d_b = torch.empty((v,), dtype=torch.float32, device=dev) if need_b else None
    if n == 0:
        if d_w is not None:
            d_w.zero_()
        if d_b is not None:
            d_b.zero_()
        return d_h, d_w, d_b
    c_p, c_onehot, c_uniform, _ = coefs
    width = chunk_width(n, v, hidden.element_size(), cfg.block_v, budget)
    g = torch.empty((n, width), dtype=hidden.dtype, device=dev)
    for v0 in range(0, v, width):
        v1 = min(v, v0 + width)
        grid = (triton.cdiv(n, cfg.block_n), triton.cdiv(v1 - v0, cfg.block_v))
        _grad_logits_kernel[grid](
            hidden, weight, bias if bias is not None else hidden, targets, lse,
            c_p, c_onehot, c_uniform, g,
            n, v, d, hidden.stride(0), weight.stride(0), g.stride(0), v0, v1 - v0,
            float(softcap or 1.0),
            HAS_BIAS=bias is not None, HAS_SOFTCAP=softcap is not None,
            BLOCK_N=cfg.block_n, BLOCK_V=cfg.block_v, BLOCK_D=cfg.block_d,
            DOT_PRECISION="ieee" if hidden.dtype == torch.float32 else "tf32",
            num_warps=cfg.num_warps, num_stages=cfg.num_stages,
        )  # fmt: skip
        g_chunk = g[:, : v1 - v0]
        if d_h is not None:
            _add_fp32(d_h, g_chunk, weight[v0:v1])
        if d_w is not None:
            torch.mm(g_chunk.T, hidden, out=d_w[v0:v1])
        if d_b is not None:
            d_b[v0:v1] = g_chunk.sum(dim=0, dtype=torch.float32)
    return d_h, d_w, d_b
