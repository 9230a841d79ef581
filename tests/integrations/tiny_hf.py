"""A tiny GPT-2 built from a config (random weights, nothing downloaded) and its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments

VOCAB, SEQ_LEN = 64, 16
BATCH, ACCUMULATE = 4, 2
TOKENS_PER_STEP = BATCH * ACCUMULATE * SEQ_LEN  # one process


class Tokens(torch.utils.data.Dataset):
    """`n` random sequences of SEQ_LEN tokens, the labels the inputs (a causal LM)."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ_LEN), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=1, n_head=2, n_embd=32, vocab_size=VOCAB, n_positions=SEQ_LEN,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def training_args(out: Path, **overrides: Any) -> TrainingArguments:
    """20 steps, a log every 2, an eval every 5, on the CPU, reporting to no tracker."""
    options: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": 20,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 5,
        "per_device_train_batch_size": BATCH,
        "per_device_eval_batch_size": 8,
        "gradient_accumulation_steps": ACCUMULATE,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 4,
        "seed": 3,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "log_level": "error",
    }
    options.update(overrides)
    return TrainingArguments(**options)
