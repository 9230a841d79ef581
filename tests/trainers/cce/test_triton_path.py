"""The Triton kernels against the reference: on a GPU when present, else interpreted.

On CPU the kernels run under TRITON_INTERPRET=1 (set in tests/conftest.py) in fp32 only, on
small shapes whose sizes divide no block size; on a GPU the same tests also run in
fp16 and bf16 and with the default (large) blocks.
"""

from __future__ import annotations

import functools

import pytest
import torch

from tests.trainers.cce.cases import IGNORE, NO_TRITON_REASON, assert_close_to_truth, make_inputs
from trainers.cce import capabilities, linear_cross_entropy
from trainers.cce.triton_config import BlockConfig, use_configs

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
pytestmark = pytest.mark.skipif(
    not capabilities.triton_supports(torch.device(DEVICE)),
    reason=NO_TRITON_REASON,
)
# The interpreter computes bf16 tl.dot wrongly and is slow: fp32 there (plus a few fp16
# cases in test_fp16_interpreted).
DTYPES = [torch.float32, torch.float16, torch.bfloat16] if ON_GPU else [torch.float32]
# Small tiles so the interpreter runs a handful of programs; two vocab splits so the
# forward's cross-split combine is exercised.
SMALL = BlockConfig(block_n=64, block_v=128, block_d=32, vocab_splits=2, group_n=2)

triton_impl = functools.partial(linear_cross_entropy, impl="triton")


@pytest.fixture(params=["small"] + (["default"] if ON_GPU else []))
def blocks(request: pytest.FixtureRequest):
    if request.param == "default":
        yield
        return
    with use_configs(SMALL, SMALL):
        yield


CASES = {
    "plain-mean": {},
    "plain-sum": {"reduction": "sum"},
    "plain-none": {"reduction": "none"},
    "softcap": {"softcap": 3.0},
    "z_loss": {"z_loss": 1e-2},
    "smoothing": {"label_smoothing": 0.1},
    "all-none": {"reduction": "none", "softcap": 5.0, "z_loss": 1e-3, "label_smoothing": 0.2},
    "exact-sum": {"exact": True, "reduction": "sum", "softcap": 4.0},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case: str, dtype: torch.dtype, blocks: None) -> None:
    inputs = make_inputs(252, 123, 507, dtype, device=DEVICE)
    assert_close_to_truth(triton_impl, inputs, **CASES[case])


@pytest.mark.skipif(ON_GPU, reason="the GPU runs every case in fp16 above")
@pytest.mark.parametrize("case", ["plain-mean", "smoothing", "exact-sum"])
def test_fp16_interpreted(case: str) -> None:
    # The interpreter gets fp16 dots and atomics right (bf16 dots it does not).
    inputs = make_inputs(252, 123, 507, torch.float16, device=DEVICE)
    with use_configs(SMALL, SMALL, SMALL):
        assert_close_to_truth(triton_impl, inputs, **CASES[case])


def test_batch_dimension_without_bias(blocks: None) -> None:
    inputs = make_inputs(3 * 41, 50, 200, bias=False, seed=2, device=DEVICE)
    batched = {
        "hidden": inputs["hidden"].reshape(3, 41, 50),
        "weight": inputs["weight"],
        "targets": inputs["targets"].reshape(3, 41),
        "bias": None,
    }
    assert_close_to_truth(triton_impl, batched, reduction="none")


def test_only_hidden_needs_grad() -> None:
    inputs = make_inputs(70, 40, 150, seed=3, device=DEVICE)
    with use_configs(SMALL, SMALL):
        h = inputs["hidden"].clone().requires_grad_()
        loss = triton_impl(h, inputs["weight"], inputs["targets"], bias=inputs["bias"])
        (d_h,) = torch.autograd.grad(loss, [h])
    h_ref = inputs["hidden"].clone().requires_grad_()
    ref = linear_cross_entropy(
        h_ref, inputs["weight"], inputs["targets"], bias=inputs["bias"], impl="torch"
    )
    (d_ref,) = torch.autograd.grad(ref, [h_ref])
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(d_h, d_ref, atol=1e-5, rtol=1e-4)


def test_module_and_auto_on_this_device() -> None:
    from trainers.cce import LinearCrossEntropy

    inputs = make_inputs(40, 24, 90, seed=4, device=DEVICE)
    args = (inputs["hidden"], inputs["weight"], inputs["targets"], inputs["bias"])
    with use_configs(SMALL, SMALL):
        got = LinearCrossEntropy(impl="triton", softcap=2.0)(*args)
    want = LinearCrossEntropy(impl="torch", softcap=2.0)(*args)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_all_tokens_ignored() -> None:
    inputs = make_inputs(30, 16, 40, ignore_frac=1.0, device=DEVICE)
    with use_configs(SMALL, SMALL):
        h = inputs["hidden"].clone().requires_grad_()
        loss = triton_impl(h, inputs["weight"], inputs["targets"], reduction="sum")
        loss.backward()
    assert loss.item() == 0.0
    assert torch.count_nonzero(h.grad) == 0
    assert (inputs["targets"] == IGNORE).all()


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU with ~30 GB free")
@pytest.mark.parametrize("big", ["tokens", "vocab"])
def test_64bit_indexing(big: str) -> None:
    """More than 2^31 elements in hidden (or weight): row offsets overflow int32."""
    d = 4096 + 8
    n, v = (2**31 // d + 77, 300) if big == "tokens" else (64, 2**31 // d + 77)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    hidden = torch.randn(n, d, device=DEVICE, dtype=torch.bfloat16, generator=gen)
    weight = torch.randn(v, d, device=DEVICE, dtype=torch.bfloat16, generator=gen) / 64
    targets = torch.randint(0, v, (n,), device=DEVICE, generator=gen)
    h = hidden.requires_grad_()
    loss = triton_impl(h, weight, targets, reduction="none")
    loss[-64:].sum().backward()
    # The last rows live past the int32 range; recompute them alone with the reference.
    tail = hidden[-64:].detach().float().requires_grad_()
    from trainers.cce.reference import reference_linear_cross_entropy

    ref = reference_linear_cross_entropy(tail, weight.float(), targets[-64:], reduction="none")
    ref.sum().backward()
    torch.testing.assert_close(loss[-64:], ref, atol=5e-2, rtol=2e-2)
    torch.testing.assert_close(h.grad[-64:].float(), tail.grad, atol=2e-2, rtol=5e-2)


@pytest.mark.skipif(ON_GPU, reason="a device-side assert would poison the CUDA context")
def test_out_of_range_target_raises() -> None:
    inputs = make_inputs(20, 16, 40, device=DEVICE)
    targets = inputs["targets"].clone()
    targets[3] = 40
    with use_configs(SMALL, SMALL), pytest.raises(RuntimeError, match="out of range"):
        triton_impl(inputs["hidden"], inputs["weight"], targets)


def test_int32_targets() -> None:
    inputs = make_inputs(30, 16, 50, device=DEVICE)
    args = (inputs["hidden"], inputs["weight"])
    with use_configs(SMALL, SMALL):
        got = triton_impl(*args, inputs["targets"].int(), reduction="none")
        want = triton_impl(*args, inputs["targets"], reduction="none")
    torch.testing.assert_close(got, want)


@pytest.mark.gpu
@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("exact", [False, True])
def test_many_vocab_blocks_on_gpu(dtype: torch.dtype, exact: bool) -> None:
    """Hundreds of vocab blocks with the default tiles: atomics' accumulation order and
    exact mode's vocabulary chunks at a realistic width."""
    inputs = make_inputs(1500, 256, 40_000, dtype, device=DEVICE, seed=9)
    assert_close_to_truth(triton_impl, inputs, exact=exact, z_loss=1e-4)


def test_exact_mode_is_bitwise_reproducible() -> None:
    # No atomics in exact mode: the same inputs give the same bits, run after run.
    inputs = make_inputs(90, 40, 300, seed=11, device=DEVICE)
    runs = []
    with use_configs(SMALL, SMALL, SMALL):
        for _ in range(2):
            h = inputs["hidden"].clone().requires_grad_()
            w = inputs["weight"].clone().requires_grad_()
            loss = triton_impl(h, w, inputs["targets"], exact=True, label_smoothing=0.1)
            loss.backward()
            runs.append((loss.detach(), h.grad, w.grad))
    for first, second in zip(*runs, strict=True):
        assert torch.equal(first, second)


def test_forward_splits_fill_the_last_wave() -> None:
    from trainers.cce.triton_forward import balanced_splits

    # Issue shape 1 on an H100 (132 SMs): 64 token blocks x 33 splits = 16 full waves.
    assert balanced_splits(64, 2000, 132) == 33
    assert balanced_splits(1, 10, 132) == 10  # never more splits than vocab blocks
    for blocks, vocab in [(64, 2000), (128, 393), (7, 50)]:
        splits = balanced_splits(blocks, vocab, 132)
        assert 1 <= splits <= vocab
        assert blocks * splits >= min(4 * 132, blocks * vocab)
