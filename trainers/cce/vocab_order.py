"""Optional vocabulary ordering for the Triton path: vocab ids sorted by mean logit.

The backward skips a (token block, vocab block) tile when the forward's tile maximum
proves its softmax negligible. That works when the likely entries of a vocabulary
cluster in few blocks, as in BPE vocabularies whose ids follow frequency; with ids in
any other order nearly every tile holds some likely entry and gets recomputed. Sorting
the vocabulary by mean logit over the batch (as Apple's kernel does) restores the
clustering whatever the ids: the kernels walk positions, position p holding vocab id
`perm[p]`, and the targets are mapped to positions. Costs one GEMV and one sort.
"""

from __future__ import annotations

import torch


def mean_logit_order(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """int32 (V,): vocab ids by decreasing mean logit over the tokens of `hidden`.

    mean_i (h_i . w_j + b_j) = (mean_i h_i) . w_j + b_j: no N x V work (a softcap,
    being monotone, would not change the order much; it is ignored).
    """
    mean_h = hidden.mean(dim=0, dtype=torch.float32)
    mean_z = torch.mv(weight, mean_h.to(weight.dtype)).float()
    if bias is not None:
        mean_z = mean_z + bias.float()
    return torch.argsort(mean_z, descending=True, stable=True).to(torch.int32)


def positions_of(targets: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Targets as positions in the ordering; ids outside [0, V) (ignore_index) unchanged."""
    v = perm.shape[0]
    inverse = torch.empty_like(perm)
    inverse[perm.long()] = torch.arange(v, dtype=perm.dtype, device=perm.device)
    inside = (targets >= 0) & (targets < v)
    mapped = inverse[targets.clamp(0, max(v - 1, 0)).long()].to(targets.dtype)
    return torch.where(inside, mapped, targets)
