"""The optional vocabulary ordering (sort_vocab) and d_weight's fp32 pieces: same
gradients, and tile skipping that survives shuffled vocabulary ids."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.trainers.cce.cases import NO_TRITON_REASON, assert_close_to_truth, make_inputs
from trainers.cce import capabilities, linear_cross_entropy
from trainers.cce.triton_config import BlockConfig, use_configs
from trainers.cce.vocab_order import mean_logit_order, positions_of

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_triton = pytest.mark.skipif(
    not capabilities.triton_supports(torch.device(DEVICE)), reason=NO_TRITON_REASON
)
SMALL = BlockConfig(block_n=64, block_v=128, block_d=32, vocab_splits=2, group_n=2)


def test_positions_invert_the_ordering() -> None:
    perm = torch.tensor([3, 0, 4, 1, 2], dtype=torch.int32)  # position p holds id perm[p]
    targets = torch.tensor([0, 4, -100, 2, 3])
    pos = positions_of(targets, perm)
    assert pos.tolist() == [1, 2, -100, 4, 0]
    assert pos.dtype == targets.dtype
    valid = pos >= 0
    assert torch.equal(perm[pos[valid]].long(), targets[valid])


def test_mean_logit_order_sorts_by_mean_logit() -> None:
    gen = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(50, 8, generator=gen), torch.randn(30, 8, generator=gen)
    bias = torch.randn(30, generator=gen)
    perm = mean_logit_order(hidden, weight, bias)
    mean = (hidden @ weight.T + bias).mean(0)
    assert perm.dtype == torch.int32
    assert sorted(perm.tolist()) == list(range(30))
    assert torch.all(mean[perm.long()][:-1] >= mean[perm.long()][1:] - 1e-5)


triton_impl = functools.partial(linear_cross_entropy, impl="triton")


@needs_triton
@pytest.mark.parametrize(
    "case",
    [{}, {"reduction": "none", "softcap": 5.0, "z_loss": 1e-3, "label_smoothing": 0.2}],
    ids=["plain", "all"],
)
def test_sorted_vocabulary_matches_reference(case: dict) -> None:
    inputs = make_inputs(252, 123, 507, device=DEVICE, seed=5)
    with use_configs(SMALL, SMALL):
        assert_close_to_truth(triton_impl, inputs, sort_vocab=True, **case)


def _tile_counts_and_grads(inputs, dtype: torch.dtype, sort: bool, **budgets):
    """Backward with tile counting, through the same steps as the op."""
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads
    from trainers.cce.triton_forward import forward_stats

    h, w, t = (x.to(DEVICE) for x in inputs)
    h, w = h.to(dtype), w.to(dtype)
    cfg = BlockConfig(block_n=32, block_v=128, block_d=32, group_n=2)
    perm = mean_logit_order(h, w, None) if sort else None
    pos = positions_of(t, perm) if perm is not None else t
    lse, _, _, tile_max = forward_stats(h, w, None, pos, None, cfg, perm=perm)
    v = w.shape[0]
    coefs = backward_coefs(t, lse, torch.ones_like(lse), torch.zeros_like(lse), v, dtype,
                           -100, 0.0, 0.0, False)  # fmt: skip
    counts = torch.zeros(2, dtype=torch.int32, device=DEVICE)
    grads = backward_grads(h, w, None, pos, lse, coefs, None, torch.float32,
                           (True, True, False), cfg, tile_counts=counts, tile_max=tile_max,
                           perm=perm, **budgets)  # fmt: skip
    return counts.tolist(), grads[:2]


def _prior_inputs(n: int, d: int, v: int, shuffled: bool) -> tuple[torch.Tensor, ...]:
    """Logits = a prior -2 ln(1 + rank) plus small noise; targets among the top ranks.

    Ranks follow the ids (like a BPE vocabulary's frequency order) or, `shuffled`, a
    random permutation of them, which spreads the likely entries over every vocab block.
    """
    gen = torch.Generator().manual_seed(7)
    rank = torch.randperm(v, generator=gen) if shuffled else torch.arange(v)
    weight = 0.1 * torch.randn(v, d, generator=gen) / d**0.5
    weight[:, 0] = -2.0 * torch.log1p(rank.float())
    hidden = torch.randn(n, d, generator=gen)
    hidden[:, 0] = 1.0
    top = torch.argsort(rank)[:32]  # the ids of ranks 0..31
    targets = top[torch.randint(0, 32, (n,), generator=gen)]
    return hidden, weight, targets


@needs_triton
def test_ordering_restores_tile_skipping_on_shuffled_ids() -> None:
    counts, grads = {}, {}
    for shuffled, sort in [(False, False), (True, False), (True, True)]:
        inputs = _prior_inputs(64, 32, 2048, shuffled)
        # fp16: its filter threshold (2^-15) lets tiles go; fp32's (2^-28) keeps nearly all.
        counts[shuffled, sort], grads[shuffled, sort] = _tile_counts_and_grads(
            inputs, torch.float16, sort
        )
    total = 2 * 16
    recomputed = {k: c[0] for k, c in counts.items()}
    # Frequency-ordered ids: only the first vocab blocks matter. Shuffled: nearly every
    # block holds a likely entry. Sorted by mean logit: back to the first blocks.
    assert recomputed[False, False] <= 4, recomputed
    assert recomputed[True, False] >= total - 4, recomputed
    assert recomputed[True, True] <= 4, recomputed
    # (The gradients differ by what filtering drops, here large: |w[:, 0]| reaches 15;
    # test_sorted_vocabulary_matches_reference checks the ordered gradients.)
    assert all(torch.isfinite(g).all() for g in grads[True, True])


@needs_triton
@pytest.mark.parametrize("sort", [False, True])
def test_fp32_weight_pieces_and_token_chunks(sort: bool) -> None:
    """fp16 weights, d_weight summed in fp32 pieces of one vocab block, d_hidden in
    32-token chunks: the same gradients as one piece and one chunk, rounded per chunk."""
    gen = torch.Generator().manual_seed(3)
    n, d, v = 96, 32, 300
    hidden = torch.randn(n, d, generator=gen)
    weight = torch.randn(v, d, generator=gen) / d**0.5
    targets = torch.randint(0, v, (n,), generator=gen)
    inputs = (hidden, weight, targets)
    _, whole = _tile_counts_and_grads(inputs, torch.float16, sort)
    small = {"dw_budget": 128 * d * 4, "dh_budget": 32 * d * 4}
    _, pieces = _tile_counts_and_grads(inputs, torch.float16, sort, **small)
    for got, want in zip(pieces, whole, strict=True):
        assert got.dtype == torch.float16
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)
    _, unsorted = _tile_counts_and_grads(inputs, torch.float16, not sort)
    for got, want in zip(whole, unsorted, strict=True):
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-3)
