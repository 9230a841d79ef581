"""A tiny LightningModule (an embedding and a head) that records what it logged."""

from __future__ import annotations

from typing import Any

import torch

VOCAB, SEQ_LEN, BATCH = 64, 16, 8
TOKENS_PER_STEP = BATCH * SEQ_LEN


def tiny_module(base: type, **hparams: Any) -> Any:
    """A TinyLM subclassing `base` (`lightning.LightningModule` or pytorch_lightning's)."""

    class TinyLM(base):  # type: ignore[misc, valid-type]
        """Bigram LM. `seen`: (global_step, loss, lr, tokens so far) of every training
        step; `validations`: (global_step, mean val loss) of every validation."""

        def __init__(self, lr: float = 0.01, seed: int = 7, batch_size: int = BATCH) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.embed = torch.nn.Embedding(VOCAB, 16)
            self.head = torch.nn.Linear(16, VOCAB)
            self.seen: list[tuple[int, float, float, int]] = []
            self.validations: list[tuple[int, float]] = []
            self._val: list[tuple[float, int]] = []
            self._tokens = 0
            self.fail_at: int | None = None
            self.fail_with: type[BaseException] = RuntimeError

        def _loss(self, batch: list[torch.Tensor]) -> torch.Tensor:
            x = batch[0]
            logits = self.head(self.embed(x[:, :-1]))
            return torch.nn.functional.cross_entropy(
                logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1)
            )

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            if self.global_step == self.fail_at:
                raise self.fail_with("the training broke")
            loss = self._loss(batch)
            self.log("train_loss", loss)
            self._tokens += batch[0][:, :-1].numel()  # input tokens seen
            lr = self.optimizers().param_groups[0]["lr"]
            self.seen.append((self.global_step, loss.item(), lr, self._tokens))
            return loss

        def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
            loss = self._loss(batch)
            self.log("val_loss", loss)
            self._val.append((loss.item(), batch[0].shape[0]))

        def on_validation_epoch_end(self) -> None:
            n = sum(size for _, size in self._val)
            mean = sum(loss * size for loss, size in self._val) / n
            self.validations.append((self.global_step, mean))
            self._val = []

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)
            decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / 20)
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": decay, "interval": "step"},
            }

    return TinyLM(**hparams)


def loaders() -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    generator = torch.Generator().manual_seed(0)
    data = torch.randint(0, VOCAB, (256, SEQ_LEN + 1), generator=generator)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=BATCH)
    held = torch.utils.data.TensorDataset(data[:32])
    return train, torch.utils.data.DataLoader(held, batch_size=BATCH)


def trainer_options(**overrides: Any) -> dict[str, Any]:
    """20 steps on the CPU, a log every 2, a validation (2 batches) every 5 steps."""
    return {
        "max_steps": 20,
        "accelerator": "cpu",
        "devices": 1,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "log_every_n_steps": 2,
        "val_check_interval": 5,
        "limit_val_batches": 2,
        "num_sanity_val_steps": 0,
        **overrides,
    }
