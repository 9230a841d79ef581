"""A torch model's parameter counts, both ways the store records them.

`params` counts every parameter once (tied weights once: the Chinchilla way);
`params_non_embedding` leaves out the `nn.Embedding` tables (token and learned position
embeddings) and an output head that is not tied to them (the Kaplan way), as
`trainers.models.param_counts` does for the project's own models.
"""

from __future__ import annotations

from typing import Any


def param_counts(model: Any) -> dict[str, int]:
    """{"params": N, "params_non_embedding": N without the embeddings} of a torch module."""
    import torch

    unique = {id(p): p for p in model.parameters()}
    embedding: dict[int, Any] = {}
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            embedding.update((id(p), p) for p in module.parameters())
    head = _output_head(model)
    if head is not None:  # an untied head (a tied one is an embedding's weight already)
        embedding[id(head)] = head
    total = sum(p.numel() for p in unique.values())
    left_out = sum(p.numel() for key, p in embedding.items() if key in unique)
    return {"params": total, "params_non_embedding": total - left_out}


def _output_head(model: Any) -> Any:
    """The output projection's weight of a Hugging Face model (`get_output_embeddings`)."""
    getter = getattr(model, "get_output_embeddings", None)
    if getter is None:
        return None
    try:
        head = getter()
    except (NotImplementedError, AttributeError):
        return None
    return getattr(head, "weight", None)
