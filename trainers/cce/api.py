"""Public entry point: `linear_cross_entropy`, argument checks and dispatch.

The math, as code (fp32 truth; the paths never build the N x V logits):

    logits = (hidden @ weight.T + bias).float()
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    lse = torch.logsumexp(logits, -1)
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_index,
                           label_smoothing=label_smoothing, reduction="none")
    loss = loss + z_loss * lse**2 * (targets != ignore_index)
    loss = loss.sum() / (targets != ignore_index).sum()      # reduction="mean"

`trainers.cce.reference.reference_linear_cross_entropy` is exactly this.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from trainers.cce import capabilities
from trainers.cce.torch_chunked import ChunkedLinearCrossEntropy, LossSpec, chunk_rows

_REDUCTIONS = ("mean", "sum", "none")
_IMPLS = ("auto", "triton", "torch")


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    softcap: float | None = None,
    z_loss: float = 0.0,
    label_smoothing: float = 0.0,
    return_lse: bool = False,
    impl: str = "auto",
    exact: bool = False,
    fp32_weight_grad: bool = True,
    sort_vocab: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of `hidden @ weight.T + bias` against `targets`, logits never stored.

    `hidden` is (..., D), `weight` (V, D), `bias` (V,), `targets` (...) integer class
    ids. The loss is fp32: a scalar for `reduction` "mean" (over tokens that are not
    `ignore_index`; NaN when there are none, as in `F.cross_entropy`) or "sum", the
    shape of `targets` for "none" (0 at ignored tokens). `return_lse=True` also returns
    each token's fp32 log-sum-exp (shape of `targets`; differentiable).

    `impl`: "triton" (CUDA GPU, or CPU tensors under TRITON_INTERPRET=1), "torch"
    (chunked PyTorch, any device; on a GPU plain losses go to PyTorch's chunked
    `F.linear_cross_entropy`) or "auto" (Triton on a capable GPU, torch otherwise).

    Gradients: by default the Triton backward skips logit tiles whose softmax gradient
    is below the dtype's precision (`filtering.py`) and accumulates with atomics: d_hidden
    in fp32 (token chunks of a 32 MiB buffer), d_weight in fp32 too (`fp32_weight_grad`,
    vocabulary pieces of a 32 MiB buffer, rounded into the weight's dtype once per token
    chunk), so its extra memory is the gradients' own size plus about 64 MiB.
    `fp32_weight_grad=False` adds each token block's partial d_weight straight into the
    weight's dtype (no second buffer, fewer launches; at thousands of token blocks about
    5x the relative error of one fp32 GEMM in bf16). `sort_vocab=True` walks the
    vocabulary sorted by mean logit (`vocab_order.py`), so that tile skipping works
    whatever the order of the vocabulary ids. `exact=True` filters nothing and
    accumulates in fp32 with dense GEMMs and no atomics, so it is also deterministic
    (`triton_exact.py`). The torch path accumulates d_weight in fp32 unless
    `fp32_weight_grad=False` (and not `exact`); it ignores `sort_vocab`.
    """
    _check_args(hidden, weight, targets, bias, reduction, softcap, label_smoothing, impl)
    spec = LossSpec(
        ignore_index=int(ignore_index),
        softcap=None if softcap is None else float(softcap),
        z_loss=float(z_loss),
        label_smoothing=float(label_smoothing),
        exact=bool(exact),
        sort_vocab=bool(sort_vocab),
        fp32_weight_grad=bool(fp32_weight_grad),
    )
    use_triton = impl == "triton" or (
        impl == "auto" and capabilities.auto_uses_triton(hidden.device)
    )
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_t = targets.reshape(-1).long()  # gather and the kernels index with int64
    if not use_triton and _native_allows(spec, return_lse, hidden.device):
        loss = native_linear_cross_entropy(flat_h, weight, bias, flat_t, spec, reduction)
        return loss.reshape(targets.shape) if reduction == "none" else loss
    if use_triton:
        from trainers.cce.op import triton_linear_cross_entropy

        # The kernels would silently read a target outside [0, V) as "no target logit";
        # PyTorch raises. Checked on the device, without a host sync.
        in_range = (flat_t == spec.ignore_index) | ((flat_t >= 0) & (flat_t < weight.shape[0]))
        torch._assert_async(in_range.all(), "linear_cross_entropy: target out of range")
        per_token, lse = triton_linear_cross_entropy(flat_h, weight, bias, flat_t, spec)
    else:
        rows = chunk_rows(flat_h.shape[0], weight.shape[0])
        per_token, lse = ChunkedLinearCrossEntropy.apply(flat_h, weight, bias, flat_t, spec, rows)
    loss = _reduce(per_token, flat_t, spec.ignore_index, reduction, targets.shape)
    if return_lse:
        return loss, lse.reshape(targets.shape)
    return loss


def _reduce(
    per_token: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int,
    reduction: str,
    shape: torch.Size,
) -> torch.Tensor:
    if reduction == "none":
        return per_token.reshape(shape)
    total = per_token.sum()
    if reduction == "sum":
        return total
    return total / (targets != ignore_index).sum()


def _native_allows(spec: LossSpec, return_lse: bool, device: torch.device) -> bool:
    """PyTorch's chunked op covers plain CE (+ bias, ignore_index), nothing more.

    Only on GPU: on CPU (torch 2.13, 2 cores) it measured 5-8x slower than our chunks.
    """
    plain = spec.softcap is None and not spec.z_loss and not spec.label_smoothing
    native = capabilities.HAS_NATIVE_LCE and device.type == "cuda"
    return native and plain and not return_lse and not spec.exact


def native_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    spec: LossSpec,
    reduction: str,
) -> torch.Tensor:
    options = torch.nn.LinearCrossEntropyOptions()
    with warnings.catch_warnings():
        # It warns when it falls back to its reference path; the result is still right.
        warnings.simplefilter("ignore", UserWarning)
        loss = F.linear_cross_entropy(
            hidden,
            weight,
            targets,
            linear_bias=bias,
            reduction=reduction,
            ignore_index=spec.ignore_index,
            options=options,
        )
    return loss.float()


def _check_args(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    reduction: str,
    softcap: float | None,
    label_smoothing: float,
    impl: str,
) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if impl not in _IMPLS:
        raise ValueError(f"impl must be one of {_IMPLS}, got {impl!r}")
    if hidden.ndim < 1 or weight.ndim != 2 or hidden.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"hidden (..., D) and weight (V, D) disagree: {tuple(hidden.shape)} vs "
            f"{tuple(weight.shape)}"
        )
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"targets must have shape {tuple(hidden.shape[:-1])}, got {tuple(targets.shape)}"
        )
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class ids, got {targets.dtype}")
    if not hidden.dtype.is_floating_point or hidden.dtype != weight.dtype:
        raise TypeError(
            f"hidden and weight must share a float dtype: {hidden.dtype}, {weight.dtype}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap must be positive, got {softcap}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    if impl == "triton" and not capabilities.triton_supports(hidden.device):
        raise RuntimeError(
            "impl='triton' needs triton and a CUDA GPU of compute capability >= 8.0 "
            "(or CPU tensors with TRITON_INTERPRET=1); use impl='auto' or 'torch'"
        )
