"""The reference math, on materialised logits: what every path must reproduce.

Used by the tests (in fp32 as the ground truth, at the input dtype as "what PyTorch
gets") and by the benchmark as the materialised-logits baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_logits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    softcap: float | None = None,
) -> torch.Tensor:
    """`(hidden @ weight.T + bias).float()`, soft-capped when asked: shape (..., V)."""
    logits = hidden @ weight.T
    if bias is not None:
        logits = logits + bias
    # .float(), except that a float64 truth stays float64
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if softcap is not None:
        logits = softcap * torch.tanh(logits / softcap)
    return logits


def reference_linear_cross_entropy(
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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `trainers.cce.linear_cross_entropy`, materialising N x V logits."""
    logits = reference_logits(hidden, weight, bias, softcap)
    flat = logits.reshape(-1, logits.shape[-1])
    flat_targets = targets.reshape(-1)
    per_token = F.cross_entropy(
        flat,
        flat_targets,
        ignore_index=ignore_index,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    lse = torch.logsumexp(flat, dim=-1)
    valid = flat_targets != ignore_index
    if z_loss:
        per_token = per_token + torch.where(valid, z_loss * lse.square(), 0.0)
    if reduction == "none":
        loss = per_token.reshape(targets.shape)
    elif reduction == "sum":
        loss = per_token.sum()
    else:  # mean over the tokens that are not ignored, as F.cross_entropy does
        loss = per_token.sum() / valid.sum()
    if return_lse:
        return loss, lse.reshape(targets.shape)
    return loss
