"""Named model shapes, from `cpu-tiny` (seconds on 2 CPU cores) to ~1B parameters on GPU.

A preset fixes depth, width and heads; the vocabulary and context come from the data
source at train time. Size families scale depth and width together for sweeps.
"""

from __future__ import annotations

from dataclasses import replace

from trainers.models import ModelConfig

# (n_layers, d_model, n_heads) for the size families. Depth and width grow together
# (aspect ratio d/L between 8 and 32), as in Kaplan et al.'s shape study; the CPU family
# starts very narrow so that 2 CPU cores can train sizes spanning 100x in minutes.
CPU_FAMILY: list[tuple[int, int, int]] = [
    (1, 8, 2),
    (1, 12, 2),
    (1, 16, 2),
    (1, 24, 2),
    (2, 32, 2),
    (2, 48, 4),
    (2, 64, 4),
    (3, 96, 4),
    (4, 128, 4),
]
GPU_FAMILY: list[tuple[int, int, int]] = [
    (4, 256, 4),
    (6, 384, 6),
    (8, 512, 8),
    (12, 768, 12),
    (16, 1024, 16),
    (24, 1024, 16),
    (24, 1536, 16),
    (24, 2048, 16),
]

PRESETS: dict[str, ModelConfig] = {
    "cpu-tiny": ModelConfig(d_model=32, n_layers=1, n_heads=2, context=64),
    "cpu-small": ModelConfig(d_model=64, n_layers=2, n_heads=4, context=128),
    "cpu-base": ModelConfig(d_model=128, n_layers=4, n_heads=4, context=128),
    "cpu-encdec": ModelConfig(d_model=48, n_layers=2, enc_layers=2, n_heads=4, kind="encdec"),
    "gpt-20m": ModelConfig(d_model=384, n_layers=6, n_heads=6, context=1024, vocab_size=50304),
    "gpt-124m": ModelConfig(d_model=768, n_layers=12, n_heads=12, context=1024, vocab_size=50304),
    "gpt-350m": ModelConfig(d_model=1024, n_layers=24, n_heads=16, context=1024, vocab_size=50304),
    "gpt-760m": ModelConfig(d_model=1536, n_layers=24, n_heads=16, context=1024, vocab_size=50304),
    "gpt-1b": ModelConfig(d_model=2048, n_layers=18, n_heads=16, context=1024, vocab_size=50304),
    "encdec-100m": ModelConfig(
        d_model=768,
        n_layers=6,
        enc_layers=6,
        n_heads=12,
        context=256,
        kind="encdec",
        vocab_size=32768,
    ),
}

FAMILIES: dict[str, list[tuple[int, int, int]]] = {"cpu": CPU_FAMILY, "gpu": GPU_FAMILY}


def family_member(family: str, index: int, **overrides: object) -> ModelConfig:
    """The index-th size of a family (e.g. `cpu` 0..6) as a ModelConfig."""
    if family not in FAMILIES:
        raise KeyError(f"unknown size family {family!r}; known: {sorted(FAMILIES)}")
    sizes = FAMILIES[family]
    if not 0 <= index < len(sizes):
        raise IndexError(f"family {family!r} has sizes 0..{len(sizes) - 1}, not {index}")
    layers, width, heads = sizes[index]
    return replace(ModelConfig(d_model=width, n_layers=layers, n_heads=heads), **overrides)


def resolve(name: str, **overrides: object) -> ModelConfig:
    """A preset name (`cpu-tiny`) or a family member (`cpu/3`), with field overrides."""
    if "/" in name:
        family, index = name.split("/", 1)
        return family_member(family, int(index), **overrides)
    if name not in PRESETS:
        known = sorted(PRESETS) + [f"{f}/0..{len(s) - 1}" for f, s in FAMILIES.items()]
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(known)}")
    return replace(PRESETS[name], **overrides)
