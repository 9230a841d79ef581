"""The training loop: `train(TrainConfig) -> RunSummary`.

One function reads top to bottom: build data, model and optimizer, maybe resume, then for
each step set the LR from the schedule spec, run the micro-batches (gradient
accumulation), clip, step, and log loss / lr / tokens / FLOPs through the sink; evaluate
and checkpoint periodically. The loss is always `trainers.cce.linear_cross_entropy`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fitting.schedules import ScheduleSpec
from trainers import checkpoint, distributed, runlock
from trainers.data import Source, make_source
from trainers.models import ModelConfig, build_model, flops_per_token, param_counts
from trainers.presets import resolve
from trainers.sink import Logger, NullSink, StoreSink
from trainers.sink import flush as flush_sink
from trainers.stopping import StopRequest
from trainers.version import code_version


@dataclass
class TrainConfig:
    project: str = "default"
    run: str = ""  # empty: derived from preset, data and seed
    preset: str = "cpu-tiny"  # a preset name or a family member like "cpu/3"
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides
    data: str | dict[str, Any] = "markov:vocab=256"
    schedule: str | dict[str, Any] = ""  # empty: cosine with 5% warmup to 10% of peak
    lr: float = 3e-3  # peak LR of the default schedule
    steps: int = 200
    batch_size: int = 32  # sequences per optimizer step, over all ranks
    micro_batch: int = 0  # sequences per forward/backward on one rank; 0 = all of them
    seq_len: int = 64
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    eval_every: int = 50  # 0: only after the last step
    eval_batches: int = 4
    checkpoint_every: int = 0  # 0: no checkpoints
    store: str | None = None  # None: no store (metrics go to the given sink only)
    seed: int = 0
    device: str = "auto"
    compile: bool | None = None  # None: on CUDA only
    threads: int = 0  # torch.set_num_threads; 0: 1 on CPU (see `train`), torch's own on GPU
    loss_impl: str = "cce"  # "cce" or "materialized" (F.cross_entropy on full logits)
    resume: bool = True

    def run_name(self) -> str:
        if self.run:
            return self.run
        data = self.data if isinstance(self.data, str) else self.data.get("kind", "data")
        return f"{self.preset.replace('/', '-')}-{data.split(':')[0]}-s{self.seed}"

    def schedule_spec(self) -> ScheduleSpec:
        if not self.schedule:
            warm = max(self.steps // 20, 1) if self.steps > 1 else 0
            return ScheduleSpec(
                "cosine",
                peak_lr=self.lr,
                total_steps=self.steps,
                warmup_steps=warm,
                final_lr=self.lr / 10,
            )
        if isinstance(self.schedule, str) and "total" not in self.schedule:
            sep = "," if ":" in self.schedule else ":"
            return ScheduleSpec.parse(f"{self.schedule}{sep}total={self.steps}")
        return ScheduleSpec.coerce(self.schedule)


@dataclass
class RunSummary:
    project: str
    run: str
    steps_done: int
    start_step: int
    train_loss: float
    eval_loss: dict[str, float]
    counts: dict[str, int]
    tokens: float
    flops: float
    wall_s: float
    tokens_per_s: float
    entropy: float | None
    status: str


class LossModel(nn.Module):
    """Model plus loss in one forward, so DDP sees every parameter used inside it."""

    def __init__(self, model: nn.Module, impl: str = "cce") -> None:
        super().__init__()
        self.model, self.impl = model, impl

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if "src" in batch:
            hidden, targets = self.model(batch["src"], batch["tgt_in"]), batch["tgt_out"]
        else:
            hidden, targets = self.model(batch["x"]), batch["y"]
        weight = self.model.output_weight()
        kind = hidden.device.type
        if torch.is_autocast_enabled(kind):  # the CCE kernel wants one dtype for both
            dtype = torch.get_autocast_dtype(kind)
            hidden, weight = hidden.to(dtype), weight.to(dtype)
        if self.impl == "materialized":
            return F.cross_entropy((hidden @ weight.T).float().flatten(0, -2), targets.flatten())
        from trainers.cce import linear_cross_entropy

        return linear_cross_entropy(hidden, weight, targets)


def to_device(batch: dict[str, np.ndarray], device: torch.device, rows: slice) -> dict:
    return {k: torch.from_numpy(np.ascontiguousarray(v[rows])).to(device) for k, v in batch.items()}


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; no weight decay on norms (1-d parameters), as in GPT-2 / nanoGPT."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


@torch.no_grad()
def evaluate(
    loss_model: LossModel,
    sets: dict[str, list[dict]],
    device: torch.device,
    autocast: contextlib.AbstractContextManager | Callable,
) -> dict[str, float]:
    """Mean loss over each held-out set: {"loss/eval": ..., "loss/eval/<family>": ...}."""
    loss_model.eval()
    out = {}
    for split, batches in sets.items():
        losses = []
        for b in batches:
            with autocast():
                losses.append(loss_model(to_device(b, device, slice(None))).item())
        out[f"loss/{split}"] = float(np.mean(losses))
    loss_model.train()
    return out


def run_facts(
    cfg: TrainConfig, model_cfg: ModelConfig, source: Source, counts: dict, schedule: ScheduleSpec
) -> dict[str, Any]:
    """What the store records about the run (per-run facts)."""
    facts: dict[str, Any] = dict(counts)
    families = source.families()
    config = {**asdict(cfg), "model": model_cfg.to_dict(), "betas": list(cfg.betas)}
    config["family_entropy"] = source.family_entropy(cfg.seq_len)
    facts.update(
        schedule=schedule.to_dict(),
        config=config,
        source=source.describe(),
        entropy=source.entropy(cfg.seq_len),
        seed=cfg.seed,
        code_version=code_version(),
    )
    if len(families) == 1:
        facts.update(family=next(iter(families)), sampling_ratio=1.0)
    return facts


def make_sink(cfg: TrainConfig, info: distributed.DistInfo, facts: dict, source: Source) -> Logger:
    if not info.is_main or cfg.store is None:
        return NullSink()
    return StoreSink(
        cfg.store, cfg.project, cfg.run_name(), facts=facts, families=source.families()
    )


@dataclass
class Setup:
    """Everything a run needs before its first step."""

    source: Source
    model_cfg: ModelConfig
    model: nn.Module
    counts: dict[str, int]
    schedule: ScheduleSpec
    optimizer: torch.optim.Optimizer
    ckpt_dir: Path | None
    start: int  # first step to run (> 0 when resuming)


def build(cfg: TrainConfig, dev: torch.device) -> Setup:
    """Data, model, schedule, optimizer; then resume from the run's checkpoint if any."""
    torch.manual_seed(cfg.seed)
    source = make_source(cfg.data)
    overrides = {"vocab_size": source.vocab_size, "context": cfg.seq_len, **cfg.model}
    model_cfg = resolve(cfg.preset, **overrides)
    model = build_model(model_cfg).to(dev)
    optimizer = make_optimizer(model, cfg, dev)
    ckpt_dir = None
    if cfg.store:
        ckpt_dir = checkpoint.checkpoint_dir(cfg.store, cfg.project, cfg.run_name())
    start = 0
    # Model and optimizer state are all we need: the data stream is keyed by step.
    if cfg.resume and ckpt_dir is not None and (state := checkpoint.load(ckpt_dir, dev)):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"]) + 1
    return Setup(
        source,
        model_cfg,
        model,
        param_counts(model),
        cfg.schedule_spec(),
        optimizer,
        ckpt_dir,
        start,
    )


def batch_split(cfg: TrainConfig, world: int) -> tuple[int, int, int]:
    """(sequences per rank, sequences per micro-batch, micro-batches per step)."""
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} not divisible by {world} ranks")
    per_rank = cfg.batch_size // world
    micro = cfg.micro_batch or per_rank
    if per_rank % micro:
        raise ValueError(f"per-rank batch {per_rank} not divisible by micro_batch {micro}")
    return per_rank, micro, per_rank // micro


def every(n: int, step: int, last: bool) -> bool:
    """True after every n-th step (n > 0) and after the last one."""
    return last or (n > 0 and (step + 1) % n == 0)


def train(
    cfg: TrainConfig,
    sink: Logger | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    stop: StopRequest | None = None,
) -> RunSummary:
    """Train one model; stream every step to `sink` (default: the store's inbox).

    SIGINT / SIGTERM stop it cleanly after the current step (see `trainers.stopping`);
    pass `stop` to share one request across runs (a sweep), else one is installed here.
    With a store, rank 0 holds the run's lock (`trainers.runlock`) throughout.
    """
    info = distributed.setup(cfg.device)
    with contextlib.ExitStack() as scope:
        if stop is None:
            stop = scope.enter_context(StopRequest())
        if info.is_main:
            scope.enter_context(runlock.held(cfg.store, cfg.project, cfg.run_name()))
        return _train(cfg, info, sink, on_step, stop)


def _train(
    cfg: TrainConfig,
    info: distributed.DistInfo,
    sink: Logger | None,
    on_step: Callable[[int, dict[str, float]], None] | None,
    stop: StopRequest,
) -> RunSummary:
    dev = info.device
    # One CPU thread unless asked: on a shared 2-core machine, 2 threads ran cpu-tiny 10x
    # slower than 1 (OpenMP workers spinning against other processes).
    threads = cfg.threads or (1 if dev.type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    per_rank, micro, n_micro = batch_split(cfg, info.world)
    built = build(cfg, dev)
    source, model, optimizer, start = built.source, built.model, built.optimizer, built.start
    lrs = built.schedule.lr(np.arange(cfg.steps))
    tokens_per_step = cfg.batch_size * cfg.seq_len  # target tokens, all ranks
    flops_per_step = tokens_per_step * flops_per_token(built.model_cfg, built.counts)

    use_bf16 = dev.type == "cuda"

    def autocast() -> contextlib.AbstractContextManager:
        if use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    loss_model = LossModel(model, cfg.loss_impl)
    if cfg.compile if cfg.compile is not None else dev.type == "cuda":
        loss_model.model = torch.compile(model)  # type: ignore[assignment]
    train_model: nn.Module = loss_model
    if info.active:
        ids = [dev.index] if dev.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(loss_model, device_ids=ids)

    facts = run_facts(cfg, built.model_cfg, source, built.counts, built.schedule)
    sink = sink if sink is not None else make_sink(cfg, info, facts, source)
    eval_sets = (
        source.eval_sets(cfg.eval_batches, cfg.batch_size, cfg.seq_len) if info.is_main else {}
    )
    rows = slice(info.rank * per_rank, (info.rank + 1) * per_rank)
    t0, last_train, last_eval, status = time.perf_counter(), math.nan, {}, "failed"
    done_to = start - 1  # the last step completed (and logged)
    saved_at = start - 1  # the step of the newest checkpoint (a resume's start - 1)

    def save_checkpoint(step: int) -> None:
        nonlocal saved_at
        if info.is_main and built.ckpt_dir is not None and cfg.checkpoint_every > 0:
            # Every point up to this step reaches the inbox before the checkpoint that a
            # resume starts after: a kill between the two can leave no gap.
            flush_sink(sink)
            checkpoint.save(built.ckpt_dir, model, optimizer, step)
            saved_at = step

    prefetch = ThreadPoolExecutor(max_workers=1)
    next_batch = prefetch.submit(source.batch, start, cfg.batch_size, cfg.seq_len)
    try:
        for step in range(start, cfg.steps):
            if stop.requested and not info.active:  # signalled since the last step ended
                if saved_at < done_to:
                    save_checkpoint(done_to)
                break
            lr = float(lrs[step])
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = next_batch.result()  # the global batch of this step
            if step + 1 < cfg.steps:  # generate the next one while this step computes
                next_batch = prefetch.submit(source.batch, step + 1, cfg.batch_size, cfg.seq_len)
            local = to_device(batch, dev, rows)
            loss_sum = torch.zeros((), device=dev)
            for m in range(n_micro):
                part = {k: v[m * micro : (m + 1) * micro] for k, v in local.items()}
                # Only the last micro-batch all-reduces gradients across ranks.
                sync = m == n_micro - 1 or not info.active
                with contextlib.nullcontext() if sync else train_model.no_sync(), autocast():
                    loss = train_model(part) / n_micro
                loss.backward()
                loss_sum += loss.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

            # A CPU-GPU sync point; we log every step, so we pay it every step. Under DDP
            # the same all-reduce tells every rank whether any of them was signalled.
            last_train, stopping = distributed.mean_and_any(loss_sum, stop.requested, info)
            metrics = {
                "loss/train": last_train,
                "lr": lr,
                "tokens": float((step + 1) * tokens_per_step),
                "flops": float((step + 1) * flops_per_step),
            }
            last_step = step == cfg.steps - 1
            if info.is_main and every(cfg.eval_every, step, last_step):
                last_eval = evaluate(loss_model, eval_sets, dev, autocast)
                metrics.update(last_eval)
            sink.log(metrics, step)
            done_to = step
            if on_step is not None:
                on_step(step, metrics)
            if not info.active:  # a signal during eval or on_step counts from now
                stopping = stop.requested
            # A stopped run checkpoints where it stopped, so a resume redoes nothing.
            if stopping or every(cfg.checkpoint_every, step, last_step):
                save_checkpoint(step)
            if stopping and not last_step:
                break
        status = "finished" if done_to == cfg.steps - 1 else "interrupted"
    except KeyboardInterrupt:  # no handler of ours was installed (not the main thread)
        status = "interrupted"
        raise
    finally:
        prefetch.shutdown(wait=False, cancel_futures=True)
        sink.close(status=status)
        distributed.teardown(info, finished=status == "finished")

    wall = time.perf_counter() - t0
    done = done_to + 1 - start
    return RunSummary(
        project=cfg.project,
        run=cfg.run_name(),
        steps_done=done,
        start_step=start,
        train_loss=last_train,
        eval_loss={k[5:]: v for k, v in last_eval.items()},
        counts=built.counts,
        tokens=float((done_to + 1) * tokens_per_step),
        flops=float((done_to + 1) * flops_per_step),
        wall_s=wall,
        tokens_per_s=done * tokens_per_step / wall if wall > 0 else 0.0,
        entropy=source.entropy(cfg.seq_len),
        status=status,
    )
