"""The chunked PyTorch path (and the native one it delegates to) against the reference."""

from __future__ import annotations

import functools

import pytest
import torch

from tests.trainers.cce.cases import IGNORE, assert_close_to_truth, make_inputs
from trainers.cce import HAS_NATIVE_LCE, LinearCrossEntropy, linear_cross_entropy
from trainers.cce.api import native_linear_cross_entropy
from trainers.cce.reference import reference_linear_cross_entropy
from trainers.cce.torch_chunked import ChunkedLinearCrossEntropy, LossSpec

FEATURES = {
    "plain": {},
    "softcap": {"softcap": 3.0},
    "z_loss": {"z_loss": 1e-2},
    "smoothing": {"label_smoothing": 0.1},
    "all": {"softcap": 5.0, "z_loss": 1e-3, "label_smoothing": 0.2},
}

torch_impl = functools.partial(linear_cross_entropy, impl="torch")


def _small_chunks(hidden, weight, targets, *, bias=None, return_lse=False, **kw):
    """The own chunked code with a chunk size (17) that divides nothing."""
    reduction = kw.pop("reduction", "mean")
    spec = LossSpec(ignore_index=kw.pop("ignore_index", IGNORE), **kw)
    flat_h, flat_t = hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)
    loss, lse = ChunkedLinearCrossEntropy.apply(flat_h, weight, bias, flat_t, spec, 17)
    valid = flat_t != spec.ignore_index
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":
        loss = loss.sum() / valid.sum()
    else:
        loss = loss.reshape(targets.shape)
    return (loss, lse.reshape(targets.shape)) if return_lse else loss


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_chunks_match_reference(reduction: str, feature: str) -> None:
    inputs = make_inputs(252, 123, 507)
    assert_close_to_truth(_small_chunks, inputs, reduction=reduction, **FEATURES[feature])


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_public_torch_path(feature: str, exact: bool) -> None:
    inputs = make_inputs(100, 45, 301, seed=3)
    assert_close_to_truth(torch_impl, inputs, exact=exact, **FEATURES[feature])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(dtype: torch.dtype) -> None:
    inputs = make_inputs(96, 64, 200, dtype, seed=4)
    assert_close_to_truth(_small_chunks, inputs, softcap=10.0, z_loss=1e-3)
    assert_close_to_truth(torch_impl, inputs)


@pytest.mark.skipif(not HAS_NATIVE_LCE, reason="this PyTorch has no F.linear_cross_entropy")
def test_native_path_plain_loss() -> None:
    # impl="torch" on a GPU delegates plain losses (no lse, softcap, z-loss, smoothing) here.
    inputs = make_inputs(130, 40, 257, seed=5)
    for reduction in ("mean", "sum", "none"):
        spec = LossSpec(ignore_index=IGNORE)
        got = native_linear_cross_entropy(
            inputs["hidden"], inputs["weight"], inputs["bias"], inputs["targets"], spec,
            reduction,
        )  # fmt: skip
        want = reference_linear_cross_entropy(
            inputs["hidden"].double(), inputs["weight"].double(), inputs["targets"],
            bias=inputs["bias"].double(), reduction=reduction,
        )  # fmt: skip
        assert got.dtype == torch.float32 and got.shape == want.shape
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_batch_dimension_and_module() -> None:
    inputs = make_inputs(2 * 37, 33, 123, seed=6)
    batched = {
        "hidden": inputs["hidden"].reshape(2, 37, 33),
        "weight": inputs["weight"],
        "targets": inputs["targets"].reshape(2, 37),
        "bias": inputs["bias"],
    }
    assert_close_to_truth(torch_impl, batched, reduction="none", softcap=4.0)
    module = LinearCrossEntropy(reduction="sum", z_loss=1e-3, impl="torch")
    got = module(batched["hidden"], batched["weight"], batched["targets"], batched["bias"])
    want = reference_linear_cross_entropy(
        batched["hidden"],
        batched["weight"],
        batched["targets"],
        bias=batched["bias"],
        reduction="sum",
        z_loss=1e-3,
    )
    torch.testing.assert_close(got, want)
    assert "impl='torch'" in repr(module)


def test_all_ignored_mean_is_nan_like_pytorch() -> None:
    inputs = make_inputs(10, 8, 20, ignore_frac=1.0)
    got = linear_cross_entropy(
        inputs["hidden"], inputs["weight"], inputs["targets"], impl="torch", z_loss=1e-3
    )
    assert torch.isnan(got)
    total = linear_cross_entropy(
        inputs["hidden"], inputs["weight"], inputs["targets"], impl="torch", reduction="sum"
    )
    assert total.item() == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"reduction": "avg"}, ValueError),
        ({"impl": "cuda"}, ValueError),
        ({"softcap": 0.0}, ValueError),
        ({"label_smoothing": 1.5}, ValueError),
        ({"bias": torch.zeros(3)}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict, error: type[Exception]) -> None:
    inputs = make_inputs(8, 4, 10)
    with pytest.raises(error):
        linear_cross_entropy(inputs["hidden"], inputs["weight"], inputs["targets"], **kwargs)


def test_bad_shapes_and_dtypes() -> None:
    inputs = make_inputs(8, 4, 10)
    h, w, t = inputs["hidden"], inputs["weight"], inputs["targets"]
    with pytest.raises(ValueError, match="disagree"):
        linear_cross_entropy(h, w[:, :3], t)
    with pytest.raises(ValueError, match="targets"):
        linear_cross_entropy(h, w, t[:5])
    with pytest.raises(TypeError):
        linear_cross_entropy(h, w, t.float())
    with pytest.raises(TypeError):
        linear_cross_entropy(h, w.double(), t)


def test_compiled_torch_path_matches_eager() -> None:
    # The chunked autograd.Function traces under torch.compile (its chunk loop unrolls).
    inputs = make_inputs(45, 20, 70, seed=7)
    weight = inputs["weight"].clone().requires_grad_()

    def loss_fn(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return linear_cross_entropy(
            h, w, inputs["targets"], bias=inputs["bias"], softcap=5.0, impl="torch"
        )

    compiled = torch.compile(loss_fn, backend="aot_eager", fullgraph=True)
    eager = loss_fn(inputs["hidden"], weight)
    got = compiled(inputs["hidden"], weight)
    torch.testing.assert_close(got, eager)
    (g_eager,) = torch.autograd.grad(eager, [weight])
    (g_got,) = torch.autograd.grad(got, [weight])
    torch.testing.assert_close(g_got, g_eager)
