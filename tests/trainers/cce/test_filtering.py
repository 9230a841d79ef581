"""Gradient filtering: thresholds follow the dtype, and negligible tiles are skipped."""

from __future__ import annotations

import pytest
import torch

from tests.trainers.cce.cases import NO_TRITON_REASON
from trainers.cce import capabilities, filtering
from trainers.cce.triton_config import BlockConfig

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_triton = pytest.mark.skipif(
    not capabilities.triton_supports(torch.device(DEVICE)),
    reason=NO_TRITON_REASON,
)


def test_thresholds_follow_the_mantissa() -> None:
    assert filtering.threshold(torch.bfloat16) == 2.0**-12  # Wijmans et al.'s value
    assert filtering.threshold(torch.float16) == 2.0**-15
    assert filtering.threshold(torch.float32) == 2.0**-28
    c_p = torch.tensor([1.0, -2.0, 0.0])
    c_onehot = torch.tensor([0.5, 0.0, 0.0])
    thr = filtering.token_thresholds(c_p, c_onehot, torch.bfloat16, exact=False)
    torch.testing.assert_close(thr, torch.tensor([1.5, 2.0, 0.0]) * 2.0**-12)
    exact = filtering.token_thresholds(c_p, c_onehot, torch.bfloat16, exact=True)
    assert (exact < 0).all()


def _peaked(n: int, d: int, v: int) -> tuple[torch.Tensor, ...]:
    """Each token's softmax peaks on a vocab entry among the first 128, and its target is
    another one of them, so only vocab block 0 carries gradient above precision."""
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=gen)
    weight = torch.randn(v, d, generator=gen) / d**0.5
    rows = torch.randperm(128, generator=gen)[:n]
    weight[rows] = hidden
    return hidden.to(DEVICE), weight.to(DEVICE), rows.roll(1).to(DEVICE)


@needs_triton
@pytest.mark.parametrize("preskip", [False, True])
def test_backward_skips_tiles_without_changing_the_gradients(preskip: bool) -> None:
    """Filtering drops the tiles without a target and with negligible probabilities;
    with the forward's tile maxima (preskip) they are not even recomputed."""
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads, tile_count
    from trainers.cce.triton_forward import forward_stats

    n, d, v = 96, 64, 384
    hidden, weight, targets = _peaked(n, d, v)
    cfg = BlockConfig(block_n=32, block_v=128, block_d=32, group_n=2)
    lse, _, _, tile_max = forward_stats(hidden, weight, None, targets, None, cfg)
    grad_loss = torch.full((n,), 1.0 / n, device=DEVICE)
    results = {}
    for exact in (False, True):
        coefs = backward_coefs(
            targets, lse, grad_loss, torch.zeros_like(lse), v, hidden.dtype, -100, 0.0, 0.0,
            exact,
        )  # fmt: skip
        counts = torch.zeros(2, dtype=torch.int32, device=DEVICE)
        d_h, d_w, _ = backward_grads(
            hidden, weight, None, targets, lse, coefs, None, torch.float32,
            (True, True, False), cfg, tile_counts=counts,
            tile_max=tile_max if preskip else None,
        )  # fmt: skip
        results[exact] = (counts.tolist(), d_h, d_w)
    total = tile_count(n, v, cfg)
    assert total == 9
    assert results[True][0] == [total, total]  # no filtering: every tile recomputed, kept
    # Vocab blocks 1 and 2 hold no target and only negligible probabilities.
    assert results[False][0] == ([3, 3] if preskip else [total, 3])
    for filtered, exact in zip(results[False][1:], results[True][1:], strict=True):
        torch.testing.assert_close(filtered, exact, atol=1e-7, rtol=1e-6)


@needs_triton
def test_exact_chunks_match_the_unfiltered_atomic_kernel() -> None:
    """Exact mode's chunked GEMM backward (3 chunks, the last partial) agrees with the
    tile kernel run without filtering, gradient by gradient, bias and softcap included."""
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads
    from trainers.cce.triton_exact import chunk_width, exact_backward_grads
    from trainers.cce.triton_forward import forward_stats

    n, d, v = 100, 50, 300
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(n, d, generator=gen).to(DEVICE)
    weight = (torch.randn(v, d, generator=gen) / d**0.5).to(DEVICE)
    bias = torch.randn(v, generator=gen).to(DEVICE)
    targets = torch.randint(0, v, (n,), generator=gen).to(DEVICE)
    cfg = BlockConfig(block_n=64, block_v=128, block_d=32, group_n=2)
    lse, _, _, _ = forward_stats(hidden, weight, bias, targets, 4.0, cfg)
    coefs = backward_coefs(
        targets, lse, torch.rand(n, generator=gen).to(DEVICE), torch.zeros_like(lse), v,
        hidden.dtype, -100, 1e-3, 0.1, True,
    )  # fmt: skip
    budget = n * 4 * 128
    assert chunk_width(n, v, 4, 128, budget) == 128
    args = (hidden, weight, bias, targets, lse, coefs, 4.0)
    exact = exact_backward_grads(*args, (True, True, True), cfg, budget=budget)
    tiles = backward_grads(*args, torch.float32, (True, True, True), cfg)
    for got, want in zip(exact, tiles, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@needs_triton
def test_token_chunks_of_the_hidden_gradient_buffer() -> None:
    """d_hidden accumulates in an fp32 buffer a token chunk at a time: chunking (three
    chunks, the last partial) changes nothing."""
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads
    from trainers.cce.triton_forward import forward_stats

    n, d, v = 150, 40, 200
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(n, d, generator=gen).to(DEVICE)
    weight = (torch.randn(v, d, generator=gen) / d**0.5).to(DEVICE)
    targets = torch.randint(0, v, (n,), generator=gen).to(DEVICE)
    cfg = BlockConfig(block_n=32, block_v=128, block_d=32, group_n=2)
    lse, _, _, _ = forward_stats(hidden, weight, None, targets, None, cfg)
    coefs = backward_coefs(
        targets, lse, torch.full((n,), 1.0 / n, device=DEVICE), torch.zeros_like(lse), v,
        hidden.dtype, -100, 0.0, 0.0, False,
    )  # fmt: skip
    args = (hidden, weight, None, targets, lse, coefs, None, torch.float32, (True, True, False))
    whole = backward_grads(*args, cfg)
    chunked = backward_grads(*args, cfg, dh_budget=64 * d * 4)  # 64 tokens per chunk
    for got, want in zip(chunked[:2], whole[:2], strict=True):
        torch.testing.assert_close(got, want, atol=1e-7, rtol=1e-6)
