"""Transformers sized by one small dataclass: a decoder-only LM and an encoder-decoder.

Both are pre-norm (RMSNorm), use rotary position embeddings and PyTorch's
`scaled_dot_product_attention`, and return the final hidden states; the loss is computed
outside the model by `trainers.cce.linear_cross_entropy(hidden, model.output_weight(), y)`
so the tokens x vocabulary logit matrix is never materialised.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a model. `kind` is `decoder` (decoder-only LM) or `encdec` (translation)."""

    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 2  # decoder layers (the decoder-only stack, or the encdec decoder)
    n_heads: int = 4
    d_ff: int = 0  # 0 means 4 * d_model
    context: int = 128
    tied: bool = True
    kind: str = "decoder"
    enc_layers: int = 0  # encoder layers (encdec only)

    @property
    def ff(self) -> int:
        return self.d_ff or 4 * self.d_model

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32: bf16 sums of squares lose too much precision.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_tables(context: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """(context, head_dim/2, 2) cos/sin table for rotary embeddings."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(context, dtype=torch.float32), inv)
    return torch.stack([ang.cos(), ang.sin()], dim=-1)


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, Dh) by position-dependent angles."""
    t = x.shape[-2]
    cos, sin = table[:t, :, 0], table[:t, :, 1]
    x1, x2 = x.float()[..., 0::2], x.float()[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2).type_as(x)


class Attention(nn.Module):
    """Multi-head attention; self-attention when `kv` is None, else cross-attention."""

    def __init__(self, cfg: ModelConfig, causal: bool, rope: bool = True) -> None:
        super().__init__()
        assert cfg.d_model % cfg.n_heads == 0, "d_model must be divisible by n_heads"
        self.n_heads, self.causal, self.rope = cfg.n_heads, causal, rope
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, -1).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        table: torch.Tensor,
        kv: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        src = x if kv is None else kv
        q = self._heads(self.q(x))
        k, v = (self._heads(t) for t in self.kv(src).chunk(2, dim=-1))
        if self.rope:
            q, k = apply_rope(q, table), apply_rope(k, table)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        return self.out(y.transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.ff, bias=False)
        self.down = nn.Linear(cfg.ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP."""

    def __init__(self, cfg: ModelConfig, causal: bool, cross: bool = False) -> None:
        super().__init__()
        self.norm1, self.attn = RMSNorm(cfg.d_model), Attention(cfg, causal)
        # RoPE on cross-attention too: scores then see target - source offset, so a
        # monotone alignment is the easy "same position" pattern.
        self.cross = Attention(cfg, causal=False) if cross else None
        self.norm_x = RMSNorm(cfg.d_model) if cross else None
        self.norm2, self.mlp = RMSNorm(cfg.d_model), MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        table: torch.Tensor,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), table)
        if self.cross is not None and self.norm_x is not None:
            x = x + self.cross(self.norm_x(x), table, kv=memory, mask=memory_mask)
        return x + self.mlp(self.norm2(x))


def _init_weights(module: nn.Module, n_layers: int) -> None:
    """GPT-2 style init; output projections scaled down by depth so the residual stays O(1)."""
    for name, p in module.named_parameters():
        if p.dim() < 2:
            continue
        std = (
            0.02 / math.sqrt(2 * max(n_layers, 1))
            if name.endswith(("out.weight", "down.weight"))
            else 0.02
        )
        nn.init.normal_(p, mean=0.0, std=std)


class DecoderLM(nn.Module):
    """Decoder-only transformer. `forward(idx)` returns final hidden states (B, T, d)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, causal=True) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model)
        self.head = None if cfg.tied else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("rope", rope_tables(cfg.context, cfg.d_model // cfg.n_heads), False)
        _init_weights(self, cfg.n_layers)

    def output_weight(self) -> torch.Tensor:
        """The (vocab, d) classifier matrix: the embedding when tied."""
        return self.embed.weight if self.head is None else self.head.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.rope)
        return self.norm(x)


class EncoderDecoder(nn.Module):
    """Encoder-decoder transformer for translation; shares one vocabulary for both sides."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = nn.ModuleList(Block(cfg, causal=False) for _ in range(cfg.enc_layers))
        self.enc_norm = RMSNorm(cfg.d_model)
        self.decoder = nn.ModuleList(
            Block(cfg, causal=True, cross=True) for _ in range(cfg.n_layers)
        )
        self.norm = RMSNorm(cfg.d_model)
        self.head = None if cfg.tied else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("rope", rope_tables(cfg.context, cfg.d_model // cfg.n_heads), False)
        _init_weights(self, cfg.enc_layers + cfg.n_layers)

    def output_weight(self) -> torch.Tensor:
        return self.embed.weight if self.head is None else self.head.weight

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory = self.embed(src)
        for block in self.encoder:
            memory = block(memory, self.rope)
        memory = self.enc_norm(memory)
        x = self.embed(tgt_in)
        for block in self.decoder:
            x = block(x, self.rope, memory=memory)
        return self.norm(x)


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.kind == "decoder":
        return DecoderLM(cfg)
    if cfg.kind == "encdec":
        return EncoderDecoder(cfg)
    raise ValueError(f"unknown model kind {cfg.kind!r} (expected 'decoder' or 'encdec')")


def _numel(modules: object) -> int:
    if isinstance(modules, nn.Module):
        return sum(p.numel() for p in modules.parameters())
    return sum(_numel(m) for m in modules)  # type: ignore[attr-defined]


def param_counts(model: nn.Module) -> dict[str, int]:
    """N counted both ways, and per side for encoder-decoder models.

    `params` counts every parameter once (tied embeddings once: the Chinchilla way);
    `params_non_embedding` leaves out the token embedding and the untied output head
    (the Kaplan way). For encdec, the shared embedding is split out of both sides:
    `encoder_params` / `decoder_params` are each side's non-embedding parameters.
    """
    total = _numel(model)
    emb = model.embed.weight.numel()
    head = model.head.weight.numel() if model.head is not None else 0
    out = {"params": total, "params_non_embedding": total - emb - head}
    if isinstance(model, EncoderDecoder):
        out["encoder_params"] = _numel(model.encoder) + _numel(model.enc_norm)
        out["decoder_params"] = _numel(model.decoder) + _numel(model.norm)
    else:
        out["encoder_params"] = 0
        out["decoder_params"] = out["params_non_embedding"]
    return out


def flops_per_token(cfg: ModelConfig, counts: dict[str, int]) -> float:
    """Training FLOPs per (target) token: 6 * N_matmul + 12 * L * d * T (PaLM appendix B).

    N_matmul is the non-embedding parameters plus the output projection (d x vocab), which
    is a real matmul even when tied; the embedding lookup costs nothing. The second term is
    attention's QK^T and AV products (forward + backward) over the full context, counted
    without the causal halving, as in PaLM's MFU convention. For encdec, encoder tokens are
    counted as the same number as target tokens (source and target lengths are equal).
    """
    n_matmul = counts["params_non_embedding"] + cfg.d_model * cfg.vocab_size
    layers = cfg.n_layers + cfg.enc_layers
    cross = cfg.n_layers if cfg.kind == "encdec" else 0
    return 6.0 * n_matmul + 12.0 * (layers + cross) * cfg.d_model * cfg.context
