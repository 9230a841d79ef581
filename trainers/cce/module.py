"""`nn.Module` wrapper, for the trainers: the constructor only stores settings."""

from __future__ import annotations

import torch
from torch import nn

from trainers.cce.api import linear_cross_entropy


class LinearCrossEntropy(nn.Module):
    """Loss module over (hidden, weight, targets[, bias]); holds no parameters itself.

    The classifier weight stays owned by the model (often tied to the embedding), so it
    is passed in at call time.
    """

    def __init__(
        self,
        *,
        ignore_index: int = -100,
        reduction: str = "mean",
        softcap: float | None = None,
        z_loss: float = 0.0,
        label_smoothing: float = 0.0,
        impl: str = "auto",
        exact: bool = False,
        fp32_weight_grad: bool = True,
        sort_vocab: bool = False,
    ) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.softcap = softcap
        self.z_loss = z_loss
        self.label_smoothing = label_smoothing
        self.impl = impl
        self.exact = exact
        self.fp32_weight_grad = fp32_weight_grad
        self.sort_vocab = sort_vocab

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss = linear_cross_entropy(
            hidden,
            weight,
            targets,
            bias=bias,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            softcap=self.softcap,
            z_loss=self.z_loss,
            label_smoothing=self.label_smoothing,
            impl=self.impl,
            exact=self.exact,
            fp32_weight_grad=self.fp32_weight_grad,
            sort_vocab=self.sort_vocab,
        )
        assert isinstance(loss, torch.Tensor)
        return loss

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
            f"softcap={self.softcap}, z_loss={self.z_loss}, "
            f"label_smoothing={self.label_smoothing}, impl={self.impl!r}, exact={self.exact}, "
            f"fp32_weight_grad={self.fp32_weight_grad}, sort_vocab={self.sort_vocab}"
        )
