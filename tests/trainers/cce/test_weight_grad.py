"""d_weight accumulation: fp32 by default, accurate at thousands of token blocks.

Each token block adds one partial d_weight; summed in half precision the running sum is
rounded once per block, so its relative error grows with N / block_n (1.2% at the
benchmark's 128 blocks in bf16, against 0.2% for one fp32 GEMM). The accuracy rule of
`cases.py` (absolute, scale >= 1) cannot see that at |d_weight| << 1: these tests
measure the relative (RMS) error against float64 at N = 8192 rows.
"""

from __future__ import annotations

import pytest
import torch

from tests.trainers.cce.cases import NO_TRITON_REASON, make_inputs
from trainers.cce import capabilities, linear_cross_entropy
from trainers.cce.reference import reference_linear_cross_entropy
from trainers.cce.torch_chunked import ChunkedLinearCrossEntropy, LossSpec
from trainers.cce.triton_config import BlockConfig, use_configs

N, D, V = 8192, 32, 128  # 128 token blocks of 64 rows: 128 partials per d_weight entry
ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"


def _relative_error(got: torch.Tensor, truth: torch.Tensor) -> float:
    return ((got.double() - truth).norm() / truth.norm()).item()


def _weight_grads(fn, inputs: dict, dtype: torch.dtype | None = None) -> torch.Tensor:
    h = inputs["hidden"].detach().to(dtype or inputs["hidden"].dtype)
    w = inputs["weight"].detach().to(dtype or inputs["weight"].dtype).requires_grad_()
    fn(h, w, inputs["targets"]).backward()
    assert w.grad is not None
    return w.grad


def _reference(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return reference_linear_cross_entropy(h, w, t, reduction="sum")


@pytest.mark.slow
@pytest.mark.skipif(not capabilities.triton_supports(torch.device(DEVICE)), reason=NO_TRITON_REASON)
def test_triton_weight_grad_relative_error_at_8192_rows() -> None:
    # fp16: the interpreter computes fp16 dots and atomics right (bf16 dots it does not).
    dtype = torch.bfloat16 if ON_GPU else torch.float16
    inputs = make_inputs(N, D, V, dtype, ignore_frac=0.0, peaked_frac=0.0, device=DEVICE)
    truth = _weight_grads(_reference, inputs, torch.float64)
    one_gemm = _relative_error(_weight_grads(_reference, inputs), truth)  # PyTorch at dtype
    cfg = BlockConfig(block_n=64, block_v=128, block_d=32, group_n=2)
    errors = {}
    with use_configs(cfg, cfg):
        for fp32 in (True, False):
            grads = _weight_grads(
                lambda h, w, t, fp32=fp32: linear_cross_entropy(
                    h, w, t, reduction="sum", impl="triton", fp32_weight_grad=fp32
                ),
                inputs,
            )
            assert grads.dtype == dtype
            errors[fp32] = _relative_error(grads, truth)
    # fp32 accumulation: one rounding at the end, as good as one GEMM.
    print(f"triton d_weight relative error: {errors}, one GEMM {one_gemm:.3g}")
    assert errors[True] <= 1.5 * one_gemm, (errors, one_gemm)
    # Half-precision atomics round the running sum 128 times: measurably worse (so this
    # test can tell the two apart).
    assert errors[False] >= 3 * errors[True], (errors, one_gemm)


def test_torch_path_weight_grad_relative_error_at_8192_rows() -> None:
    inputs = make_inputs(N, D, V, torch.bfloat16, ignore_frac=0.0, peaked_frac=0.0)
    truth = _weight_grads(_reference, inputs, torch.float64)
    one_gemm = _relative_error(_weight_grads(_reference, inputs), truth)
    errors = {}
    for fp32 in (True, False):
        spec = LossSpec(fp32_weight_grad=fp32)

        def chunked(h, w, t, spec=spec):  # 128 chunks of 64 tokens
            return ChunkedLinearCrossEntropy.apply(h, w, None, t, spec, 64)[0].sum()

        grads = _weight_grads(chunked, inputs)
        assert grads.dtype == torch.bfloat16
        errors[fp32] = _relative_error(grads, truth)
    print(f"torch d_weight relative error: {errors}, one GEMM {one_gemm:.3g}")
    assert errors[True] <= 2 * one_gemm, (errors, one_gemm)
    assert errors[False] >= 3 * errors[True], (errors, one_gemm)
