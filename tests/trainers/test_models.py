"""Models: parameter counts both ways, causality, encoder/decoder split, presets, FLOPs."""

from __future__ import annotations

import pytest
import torch

from trainers.models import ModelConfig, build_model, flops_per_token, param_counts
from trainers.presets import CPU_FAMILY, PRESETS, family_member, resolve


def expected_decoder_params(c: ModelConfig) -> int:
    d, f = c.d_model, c.ff
    block = 4 * d * d + 2 * d * f + 2 * d  # q, kv (2), out; up, down; two norms
    return c.n_layers * block + d  # final norm


@pytest.mark.parametrize("tied", [True, False])
def test_decoder_param_counts_both_ways(tied: bool) -> None:
    cfg = ModelConfig(vocab_size=100, d_model=32, n_layers=2, n_heads=4, tied=tied)
    counts = param_counts(build_model(cfg))
    assert counts["params_non_embedding"] == expected_decoder_params(cfg)
    emb = 100 * 32 * (1 if tied else 2)
    assert counts["params"] == counts["params_non_embedding"] + emb
    assert counts["decoder_params"] == counts["params_non_embedding"]
    assert counts["encoder_params"] == 0


def test_encdec_counts_split_by_side() -> None:
    cfg = ModelConfig(vocab_size=65, d_model=32, n_layers=2, enc_layers=3, n_heads=4, kind="encdec")
    model = build_model(cfg)
    c = param_counts(model)
    d, f = 32, 128
    enc = 3 * (4 * d * d + 2 * d * f + 2 * d) + d
    dec = 2 * (4 * d * d + 2 * d * f + 2 * d + 4 * d * d + d) + d  # + cross-attn and its norm
    assert (c["encoder_params"], c["decoder_params"]) == (enc, dec)
    assert c["params_non_embedding"] == enc + dec
    assert c["params"] == enc + dec + 65 * 32
    src, tgt = torch.randint(0, 65, (2, 10)), torch.randint(0, 65, (2, 10))
    assert model(src, tgt).shape == (2, 10, 32)


def test_decoder_is_causal() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4, context=16))
    x = torch.randint(0, 50, (1, 16))
    y = x.clone()
    y[0, 10:] = (y[0, 10:] + 1) % 50
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[0, :10], b[0, :10], atol=1e-6)
    assert not torch.allclose(a[0, 10:], b[0, 10:])


def test_decoder_output_depends_on_source() -> None:
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(
            vocab_size=20, d_model=16, n_layers=1, enc_layers=1, n_heads=2, kind="encdec", context=8
        )
    )
    tgt = torch.randint(0, 20, (1, 8))
    with torch.no_grad():
        a = model(torch.randint(0, 20, (1, 8)), tgt)
        b = model(torch.randint(0, 20, (1, 8)), tgt)
    assert not torch.allclose(a, b)


def test_presets_resolve_and_families_grow() -> None:
    assert resolve("cpu-tiny").d_model == 32
    assert resolve("cpu/3") == family_member("cpu", 3)
    sizes = [
        param_counts(build_model(family_member("cpu", i, vocab_size=64)))["params_non_embedding"]
        for i in range(len(CPU_FAMILY))
    ]
    assert sizes == sorted(sizes) and sizes[-1] > 50 * sizes[0]
    with pytest.raises(KeyError, match="unknown preset"):
        resolve("gpt-7t")
    assert {"cpu-tiny", "gpt-124m", "gpt-1b", "encdec-100m"} <= set(PRESETS)


def test_gpt124m_size_and_flops_convention() -> None:
    cfg = PRESETS["gpt-124m"]
    with torch.device("meta"):
        model = build_model(cfg)
    c = param_counts(model)
    assert 120e6 < c["params"] < 130e6  # GPT-2 small with vocab 50304, tied
    assert 84e6 < c["params_non_embedding"] < 86e6
    fpt = flops_per_token(cfg, c)
    n_matmul = c["params_non_embedding"] + 768 * 50304
    assert fpt == 6 * n_matmul + 12 * 12 * 768 * 1024
