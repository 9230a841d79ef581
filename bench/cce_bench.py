"""Benchmark of the linear-cross-entropy kernel against its baselines.

On a GPU (H100 / H200), bf16, for the three issue shapes: forward and forward+backward
time (CUDA events, median of --reps runs after --warmup), peak extra allocator memory,
for our Triton kernel (default; sorted vocabulary; d_weight in bf16; exact mode), our
torch path, materialised logits, `torch.compile` of the same, PyTorch's chunked
`F.linear_cross_entropy`, and Apple's `cut-cross-entropy` and Liger's fused linear
cross-entropy when installed (optional: missing ones are reported as such). Each shape
runs twice: vocabulary ids in frequency order (as in BPE vocabularies) and shuffled
(ours, ours with `sort_vocab`, the peers only), where tile skipping needs the ordering.

    python bench/cce_bench.py --out bench/results/cce.md     # full run on the GPU
    python bench/cce_bench.py --smoke --out /tmp/cce.md       # tiny CPU run, torch paths

Every method runs in its own process (a device fault or a hang in one cannot poison the
others: it becomes a note), the tuner too; the report is rewritten after each method.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from trainers.cce import capabilities, linear_cross_entropy, triton_config
from trainers.cce.triton_config import BlockConfig, use_configs

ISSUE_SHAPES = [(8192, 2304, 256000), (8192, 4096, 128256), (16384, 768, 50304)]
SMOKE_SHAPES = [(256, 64, 1000), (130, 48, 777)]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cce.md"
MIB = 2**20
HOPPER_SHARED_PER_BLOCK = 232_448  # 227 KiB usable per block (228 KiB per SM)

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

OURS = "ours (triton)"
OURS_SORTED = "ours (triton, sorted vocab)"
OURS_BF16_DW = "ours (triton, bf16 d_weight)"
OURS_EXACT = "ours (triton, exact)"
ORDERED_METHODS = [
    OURS, OURS_SORTED, OURS_BF16_DW, OURS_EXACT, "ours (impl=torch)", "materialised logits",
    "torch.compile", "F.linear_cross_entropy", "cut-cross-entropy", "liger-kernel",
]  # fmt: skip
SHUFFLED_METHODS = [OURS, OURS_SORTED, "cut-cross-entropy", "liger-kernel"]
_TRITON_OPTIONS = {
    OURS: {},
    OURS_SORTED: {"sort_vocab": True},
    OURS_BF16_DW: {"fp32_weight_grad": False},
    OURS_EXACT: {"exact": True},
}
_PEERS = {"cut-cross-entropy": "cut_cross_entropy", "liger-kernel": "liger_kernel"}


@dataclass
class Result:
    method: str
    fwd_ms: float | None = None
    fwdbwd_ms: float | None = None
    fwd_mib: float | None = None
    fwdbwd_mib: float | None = None
    loss: float | None = None
    loss_diff: float | None = None
    note: str = ""
    live_tiles: str = ""


@dataclass
class ShapeReport:
    shape: tuple[int, int, int]
    results: list[Result] = field(default_factory=list)
    grads_mib: float = 0.0
    live_tiles: str = "n/a"
    configs: str = "default"
    entropy: float = math.nan
    case: str = "ordered"
    tuning: list[str] = field(default_factory=list)

    def get(self, name: str) -> Result | None:
        return next((r for r in self.results if r.method == name), None)


# ----------------------------------------------------------------------------- inputs


def make_inputs(
    n: int, d: int, v: int, dtype: torch.dtype, device: str, seed: int = 0,
    shuffled: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Peaked, LM-like inputs (loss of a few nats, most vocab entries far below 2^-12).

    Targets follow a Zipf law over token ids (id order = frequency order, as in BPE
    vocabularies). Coordinate 0 carries a log-frequency prior (every hidden state has
    1 there, every weight row its token's log-frequency); the other coordinates are a
    random embedding, and each hidden state points at its target's embedding plus noise:
    logit_j = log f_j + 6 e_t . e_j + noise . e_j. `shuffled` permutes the vocabulary ids
    at random (same distribution, no frequency order): the case tile skipping loses
    without a vocabulary ordering.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    log_freq = -1.1 * torch.log(torch.arange(1, v + 1, device=device, dtype=torch.float32))
    weight = torch.randn(v, d, device=device, generator=gen) / math.sqrt(d - 1)
    weight[:, 0] = log_freq
    targets = torch.multinomial(log_freq.exp(), n, replacement=True, generator=gen)
    hidden = 6.0 * weight[targets] + torch.randn(n, d, device=device, generator=gen)
    hidden[:, 0] = 1.0
    if shuffled:
        new_id = torch.randperm(v, device=device, generator=gen)
        moved = torch.empty_like(weight)
        moved[new_id] = weight
        weight, targets = moved, new_id[targets]
    return hidden.to(dtype), weight.to(dtype), targets


def mean_entropy(hidden: torch.Tensor, weight: torch.Tensor, rows: int = 256) -> float:
    """Mean softmax entropy (nats) of the first rows: how peaked the inputs are."""
    logits = (hidden[:rows] @ weight.T).float()
    logp = torch.log_softmax(logits, dim=-1)
    return float(-(logp.exp() * logp).sum(-1).mean())


# ---------------------------------------------------------------------------- methods


def materialised(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy((h @ w.T).float(), t)


def _native(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    options = torch.nn.LinearCrossEntropyOptions()
    return F.linear_cross_entropy(h, w, t, options=options)


def _apple() -> LossFn:
    from cut_cross_entropy import linear_cross_entropy as apple_lce

    return lambda h, w, t: apple_lce(h, w, t)


def _liger() -> LossFn:
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    loss_fn = LigerFusedLinearCrossEntropyLoss()

    def run(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = loss_fn(w, h, t)
        return out[0] if isinstance(out, tuple) else out

    return run


def unavailable(name: str, device: str, args: argparse.Namespace) -> str | None:
    """Why `name` cannot run here (a note for the table), or None. No CUDA context."""
    if name in _TRITON_OPTIONS and (device != "cuda" or not capabilities.HAS_TRITON):
        return "triton unavailable on this device"
    if name == "torch.compile" and not args.compile:
        return "skipped (--no-compile)"
    if name == "F.linear_cross_entropy" and not capabilities.HAS_NATIVE_LCE:
        return "not in this PyTorch"
    if name in _PEERS:
        if device != "cuda":
            return "GPU only"
        if not args.peers:
            return "skipped (--no-peers)"
        if importlib.util.find_spec(_PEERS[name]) is None:
            return f"not installed (pip install {name})"
    return None


def build_method(name: str) -> LossFn:
    """The loss function of one method (in the worker process that measures it)."""
    if name in _TRITON_OPTIONS:
        options = _TRITON_OPTIONS[name]
        return lambda h, w, t: linear_cross_entropy(h, w, t, impl="triton", **options)
    if name == "ours (impl=torch)":
        return lambda h, w, t: linear_cross_entropy(h, w, t, impl="torch")
    if name == "materialised logits":
        return materialised
    if name == "torch.compile":
        return torch.compile(materialised, dynamic=False)
    if name == "F.linear_cross_entropy":
        return _native
    if name == "cut-cross-entropy":
        return _apple()
    if name == "liger-kernel":
        return _liger()
    raise ValueError(f"unknown method {name!r}")


# -------------------------------------------------------------------------- measuring


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(step: Callable[[], None], reset: Callable[[], None], device: str,
            warmup: int, reps: int) -> float:  # fmt: skip
    """Median wall time of `step` in ms (CUDA events on GPU); `reset` runs untimed."""
    for _ in range(warmup):
        reset()
        step()
    _sync(device)
    times = []
    for _ in range(reps):
        reset()
        _sync(device)
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_mib(step: Callable[[], None], reset: Callable[[], None], device: str) -> float | None:
    """Peak allocator memory above what was allocated before `step` (GPU only)."""
    if device != "cuda":
        return None
    reset()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / MIB


def measure(name: str, fn: LossFn, inputs: tuple[torch.Tensor, ...],
            args: argparse.Namespace, device: str) -> Result:  # fmt: skip
    h, w, t = inputs
    res = Result(name)

    def reset() -> None:
        h.grad = None
        w.grad = None

    def fwd() -> None:
        with torch.no_grad():
            fn(h, w, t)

    def fwdbwd() -> None:
        fn(h, w, t).backward()

    try:
        with torch.no_grad():
            res.loss = float(fn(h, w, t))
        res.fwd_ms = time_ms(fwd, reset, device, args.warmup, args.reps)
        res.fwd_mib = peak_mib(fwd, reset, device)
        res.fwdbwd_ms = time_ms(fwdbwd, reset, device, args.warmup, args.reps)
        res.fwdbwd_mib = peak_mib(fwdbwd, reset, device)
    except torch.cuda.OutOfMemoryError:
        res.note = "out of memory"
    except Exception as err:  # report, keep going
        res.note = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
        if args.verbose:
            traceback.print_exc()
    finally:
        reset()
    return res


# ----------------------------------------------------------------- tuning and filters


def _ours(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor, **options: bool) -> torch.Tensor:
    return linear_cross_entropy(h, w, t, impl="triton", **options)


def _cfg_text(cfg: BlockConfig) -> str:
    flat = ", flatten" if cfg.flatten else ""
    return (f"{cfg.block_n}x{cfg.block_v}x{cfg.block_d} w{cfg.num_warps} s{cfg.num_stages} "
            f"g{cfg.group_n}{flat}")  # fmt: skip


def fits_shared_memory(kind: str, cfg: BlockConfig, dtype: torch.dtype, limit: int,
                       arch: int) -> tuple[bool, str]:  # fmt: skip
    """Compile (no launch) for this GPU and compare its shared memory with the limit."""
    from trainers.cce import codegen_check

    check = codegen_check.forward_resources if kind == "forward" else (
        codegen_check.backward_resources)  # fmt: skip
    try:
        r = check(dtype, cfg, arch)
    except Exception as err:  # does not compile for this GPU: not a candidate
        return False, f"does not compile: {type(err).__name__}"
    text = f"{r.shared_bytes} B shared, {r.registers} registers, {r.spill_bytes} B spills"
    return r.shared_bytes <= limit, text


def tune(inputs: tuple[torch.Tensor, ...], device: str,
         options: dict) -> tuple[BlockConfig, BlockConfig, list[str]]:  # fmt: skip
    """Pick (forward, backward) block sizes by fwd+bwd time, over pairs whose tiles match
    (each backward tile inside one forward tile, so pre-skipping stays on), from the
    candidates that fit this GPU's shared memory. Returns a line per candidate too."""
    h, w, t = inputs
    props = torch.cuda.get_device_properties(device)
    limit = getattr(props, "shared_memory_per_block_optin", HOPPER_SHARED_PER_BLOCK)
    arch = props.major * 10 + props.minor
    lines: list[str] = []

    def reset() -> None:
        h.grad = w.grad = None

    def timed(step: Callable[[], None]) -> float | None:
        try:
            return time_ms(step, reset, device, 2, 5)
        except Exception as err:  # e.g. out of resources on this GPU
            lines.append(f"  failed: {type(err).__name__}: {str(err).splitlines()[0][:100]}")
            return None

    fwd_ms: dict[BlockConfig, float] = {}
    for cfg in triton_config.FORWARD_CANDIDATES:
        ok, text = fits_shared_memory("forward", cfg, h.dtype, limit, arch)
        if not ok:
            lines.append(f"forward {_cfg_text(cfg)}: dropped ({text}, limit {limit} B)")
            continue

        def fwd_step() -> None:
            with torch.no_grad():
                _ours(h, w, t, **options)

        with use_configs(forward=cfg):
            ms = timed(fwd_step)
        if ms is not None:
            fwd_ms[cfg] = ms
            lines.append(f"forward {_cfg_text(cfg)}: fwd {ms:.2f} ms ({text})")
    best: tuple[float, BlockConfig, BlockConfig] | None = None
    for cfg in triton_config.BACKWARD_CANDIDATES:
        ok, text = fits_shared_memory("backward", cfg, h.dtype, limit, arch)
        grid = (cfg.block_n, cfg.block_v)
        pairs = [
            f for f in fwd_ms if triton_config.preskip_compatible((f.block_n, f.block_v), grid)
        ]
        if not ok or not pairs:
            why = f"{text}, limit {limit} B" if not ok else "no forward with matching tiles"
            lines.append(f"backward {_cfg_text(cfg)}: dropped ({why})")
            continue
        fwd = min(pairs, key=fwd_ms.__getitem__)
        with use_configs(forward=fwd, backward=cfg):
            ms = timed(lambda: _ours(h, w, t, **options).backward())
        if ms is None:
            continue
        lines.append(f"backward {_cfg_text(cfg)} after forward {_cfg_text(fwd)}: "
                     f"fwd+bwd {ms:.2f} ms ({text})")  # fmt: skip
        if best is None or ms < best[0]:
            best = (ms, fwd, cfg)
    reset()
    if best is None:
        return triton_config.forward_config(h.dtype), triton_config.backward_config(h.dtype), lines
    return best[1], best[2], lines


def live_tile_share(inputs: tuple[torch.Tensor, ...], sort_vocab: bool = False) -> str:
    """How many backward tiles get recomputed, and how many survive gradient filtering
    (with the current configs; `sort_vocab`: in mean-logit order)."""
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads, tile_count
    from trainers.cce.triton_forward import forward_stats
    from trainers.cce.vocab_order import mean_logit_order, positions_of

    h, w, t = (x.detach() for x in inputs)
    n, v = h.shape[0], w.shape[0]
    fwd_cfg = triton_config.forward_config(h.dtype)
    perm = mean_logit_order(h, w, None) if sort_vocab else None
    pos = positions_of(t, perm) if perm is not None else t
    lse, _, _, tile_max = forward_stats(h, w, None, pos, None, fwd_cfg, perm=perm)
    coefs = backward_coefs(t, lse, torch.full_like(lse, 1.0 / n), torch.zeros_like(lse), v,
                           h.dtype, -100, 0.0, 0.0, False)  # fmt: skip
    counts = torch.zeros(2, dtype=torch.int32, device=h.device)
    cfg = triton_config.backward_config(h.dtype)
    blocks = (fwd_cfg.block_n, fwd_cfg.block_v)
    if not triton_config.preskip_compatible(blocks, (cfg.block_n, cfg.block_v)):
        tile_max = None  # as the op does (it warns)
    backward_grads(h, w, None, pos, lse, coefs, None, h.dtype, (True, True, False), cfg,
                   tile_counts=counts, tile_max=tile_max, tile_blocks=blocks,
                   perm=perm)  # fmt: skip
    total = tile_count(n, v, cfg)
    recomputed, kept = counts.tolist()
    return (f"recomputed {recomputed}/{total} ({100.0 * recomputed / total:.1f}%), "
            f"kept {kept} ({100.0 * kept / total:.1f}%)")  # fmt: skip


# ---------------------------------------------------------------------------- reports


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def goals(rep: ShapeReport) -> list[tuple[str, str]]:
    """(goal, verdict) pairs for one shape; 'n/a' when a number is missing. With shuffled
    vocabulary ids our sorted-vocabulary run stands for ours."""
    ours = rep.get(OURS_SORTED if rep.case == "shuffled" else OURS)
    exact = rep.get(OURS_EXACT)
    comp, apple = rep.get("torch.compile"), rep.get("cut-cross-entropy")

    def ratio(a: float | None, b: float | None, limit: float, what: str) -> tuple[str, str]:
        if a is None or b is None:
            return what, "n/a"
        return what, f"{'PASS' if a <= limit * b else 'FAIL'} ({a / b:.2f}x)"

    def cap(a: float | None, limit: float, what: str) -> tuple[str, str]:
        if a is None:
            return what, "n/a"
        return what, f"{'PASS' if a <= limit else 'FAIL'} ({a:.0f} MiB, limit {limit:.0f})"

    o = ours or Result("")
    return [
        ratio(o.fwdbwd_ms, comp and comp.fwdbwd_ms, 1.0, "fwd+bwd <= 1.0 x torch.compile"),
        ratio(o.fwdbwd_ms, apple and apple.fwdbwd_ms, 0.9, "fwd+bwd <= 0.9 x cut-cross-entropy"),
        ratio(o.fwd_ms, comp and comp.fwd_ms, 1.0, "fwd <= 1.0 x torch.compile"),
        cap(o.fwdbwd_mib, rep.grads_mib + 64, "fwd+bwd memory <= grads + 64 MiB"),
        cap(o.fwd_mib, 16, "fwd memory <= 16 MiB"),
        ratio(exact and exact.fwdbwd_ms, comp and comp.fwdbwd_ms, 1.5,
              "exact fwd+bwd <= 1.5 x torch.compile"),
    ]  # fmt: skip


def _title(rep: ShapeReport) -> str:
    n, d, v = rep.shape
    return f"## N={n}, D={d}, V={v}" + (
        " (vocabulary ids shuffled)" if rep.case == "shuffled" else ""
    )


def render(reports: list[ShapeReport], header: list[str]) -> str:
    lines = ["# Linear cross-entropy benchmark", "", *header, ""]
    for rep in reports:
        ref = rep.get("materialised logits")
        lines += [
            _title(rep),
            "",
            f"Mean softmax entropy of the inputs: {rep.entropy:.2f} nats; backward tiles "
            f"(default configs unless tuned): {rep.live_tiles}; gradients' own size "
            f"{rep.grads_mib:.0f} MiB; block configs: {rep.configs}.",
            "",
            "| method | fwd ms | fwd+bwd ms | fwd peak MiB | fwd+bwd peak MiB "
            "| abs loss diff | note |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rep.results:
            diff = r.loss_diff
            if diff is None and r.loss is not None and ref is not None and ref.loss is not None:
                diff = abs(r.loss - ref.loss)
            note = "; ".join(x for x in (r.live_tiles, r.note) if x)
            lines.append(
                f"| {r.method} | {_fmt(r.fwd_ms)} | {_fmt(r.fwdbwd_ms)} | {_fmt(r.fwd_mib, 1)} "
                f"| {_fmt(r.fwdbwd_mib, 1)} | {_fmt(diff, 5)} | {note} |"
            )
        lines += ["", "| goal | verdict |", "|---|---|"]
        lines += [f"| {g} | {verdict} |" for g, verdict in goals(rep)]
        if rep.tuning:
            lines += ["", "Tuning (each candidate, this shape):", "", "```", *rep.tuning, "```"]
        lines.append("")
    return "\n".join(lines)


def environment(device: str, dtype: torch.dtype, args: argparse.Namespace) -> list[str]:
    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "CPU"
    dw = (f"`{OURS}` accumulates d_weight in fp32 (the default); `{OURS_BF16_DW}` adds it "
          "in bf16: their fwd+bwd peak memory differ by what fp32 accumulation costs.")  # fmt: skip
    versions = [f"torch {torch.__version__}"]
    for mod in ("triton", "cut_cross_entropy", "liger_kernel"):
        if importlib.util.find_spec(mod) is not None:
            try:
                from importlib.metadata import version

                dist = {"cut_cross_entropy": "cut-cross-entropy", "liger_kernel": "liger-kernel"}
                versions.append(f"{mod} {version(dist.get(mod, mod))}")
            except Exception:
                versions.append(f"{mod} (version unknown)")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        f"Run {stamp} on {gpu} ({device}), dtype {str(dtype).removeprefix('torch.')}, "
        f"median of {args.reps} runs after {args.warmup} warm-up runs"
        f"{' (CUDA events)' if device == 'cuda' else ' (wall clock)'}.",
        "",
        "Versions: " + ", ".join(versions) + ".",
        "",
        "Peak memory is the allocator's peak above what was allocated before the call "
        "(inputs excluded, gradients included). Loss diff is against materialised logits "
        "at the same dtype. " + dw,
    ]


# ------------------------------------------------------------------------ processes


def _inputs(shape: tuple[int, int, int], case: str, dtype: torch.dtype, device: str):
    n, d, v = shape
    h, w, t = make_inputs(n, d, v, dtype, device, shuffled=case == "shuffled")
    return h.requires_grad_(), w.requires_grad_(), t


def _load_configs(path: str | None) -> tuple[BlockConfig | None, BlockConfig | None]:
    if not path:
        return None, None
    data = json.loads(Path(path).read_text())
    return BlockConfig(**data["forward"]), BlockConfig(**data["backward"])


def worker(args: argparse.Namespace) -> int:
    """One method (or the tuner) on one shape and case, in this process: JSON to --result."""
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    dtype = getattr(torch, args.dtype)
    shape = _parse_shape(args.shape)
    inputs = _inputs(shape, args.case, dtype, device)
    out: dict = {}
    if args.worker == "tune":
        options = {"sort_vocab": True} if args.case == "shuffled" else {}
        fwd, bwd, lines = tune(inputs, device, options)
        out = {"forward": dataclasses.asdict(fwd), "backward": dataclasses.asdict(bwd),
               "lines": lines}  # fmt: skip
    elif args.worker == "entropy":
        h, w, _ = inputs
        out = {"entropy": mean_entropy(h.detach(), w.detach())}
    else:
        fwd, bwd = _load_configs(args.configs)
        with use_configs(fwd, bwd):
            res = measure(args.worker, build_method(args.worker), inputs, args, device)
            if args.worker in (OURS, OURS_SORTED) and not res.note:
                try:
                    res.live_tiles = live_tile_share(inputs, args.worker == OURS_SORTED)
                except Exception as err:
                    res.live_tiles = f"tile count failed: {type(err).__name__}"
        out = dataclasses.asdict(res)
    Path(args.result).write_text(json.dumps(out))
    return 0


def _child(args: argparse.Namespace, what: str, shape: tuple[int, int, int], case: str,
           configs: str | None, timeout: float) -> tuple[dict | None, str]:  # fmt: skip
    """Run a worker process; (its JSON or None, a note saying why not)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", what,
               "--shape", "x".join(map(str, shape)), "--case", case, "--dtype", args.dtype,
               "--reps", str(args.reps), "--warmup", str(args.warmup), "--result", str(result)]  # fmt: skip
        if configs:
            cmd += ["--configs", configs]
        if args.smoke:
            cmd.append("--smoke")
        if args.verbose:
            cmd.append("--verbose")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout:.0f} s"
        if args.verbose and proc.stderr:
            sys.stderr.write(proc.stderr[-4000:])
        if proc.returncode != 0 or not result.exists():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
            return None, f"process failed (exit {proc.returncode}): {last}"
        return json.loads(result.read_text()), ""


def run_case(shape: tuple[int, int, int], case: str, args: argparse.Namespace, device: str,
             dtype: torch.dtype, emit: Callable[[], None], rep: ShapeReport) -> None:  # fmt: skip
    """Fill `rep` method by method, calling `emit` (rewrite the report) after each."""
    n, d, v = shape
    rep.grads_mib = (n * d + v * d) * dtype.itemsize / MIB
    info, note = _child(args, "entropy", shape, case, None, args.method_timeout)
    rep.entropy = info["entropy"] if info else math.nan
    methods = ORDERED_METHODS if case == "ordered" else SHUFFLED_METHODS
    configs_path = None
    if args.tune and unavailable(OURS, device, args) is None:
        print(f"  tuning ({case}) ...", flush=True)
        tuned, note = _child(args, "tune", shape, case, None, args.tune_timeout)
        if tuned:
            fd, configs_path = tempfile.mkstemp(suffix=".json")
            os.close(fd)
            Path(configs_path).write_text(json.dumps(tuned))
            fwd, bwd = BlockConfig(**tuned["forward"]), BlockConfig(**tuned["backward"])
            rep.configs = f"tuned: forward {_cfg_text(fwd)}, backward {_cfg_text(bwd)}"
            rep.tuning = tuned["lines"]
        else:
            rep.configs = f"default (tuning {note})"
        emit()
    try:
        for name in methods:
            why = unavailable(name, device, args)
            if why is not None:
                rep.results.append(Result(name, note=why))
                continue
            print(f"  {name} ...", flush=True)
            t0 = time.perf_counter()
            data, note = _child(args, name, shape, case, configs_path, args.method_timeout)
            res = Result(**data) if data else Result(name, note=note)
            rep.results.append(res)
            print(f"    {_fmt(res.fwd_ms)} / {_fmt(res.fwdbwd_ms)} ms {res.note} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
            if res.live_tiles:
                rep.live_tiles = res.live_tiles if name == OURS else rep.live_tiles
            emit()
    finally:
        if configs_path:
            os.unlink(configs_path)


def _parse_shape(text: str) -> tuple[int, int, int]:
    n, d, v = (int(x) for x in text.split("x"))
    return n, d, v


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the torch paths")
    p.add_argument("--shapes", default=None, help="e.g. 8192x2304x256000,16384x768x50304")
    p.add_argument("--cases", default=None,
                   help="ordered,shuffled (vocabulary ids; default both on a GPU)")  # fmt: skip
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help=f"report path (default {DEFAULT_OUT})")
    p.add_argument("--no-tune", dest="tune", action="store_false", help="default blocks only")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--no-peers", dest="peers", action="store_false",
                   help="skip cut-cross-entropy and liger-kernel even when installed")  # fmt: skip
    p.add_argument("--method-timeout", type=float, default=240.0, help="seconds per method")
    p.add_argument("--tune-timeout", type=float, default=240.0)
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    # Internal: one worker process.
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--shape", default=None, help=argparse.SUPPRESS)
    p.add_argument("--case", default="ordered", help=argparse.SUPPRESS)
    p.add_argument("--configs", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.reps, args.warmup = min(args.reps, 3), min(args.warmup, 1)
        args.dtype, args.compile, args.tune = "float32", False, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.smoke:
        print("no CUDA GPU: running the smoke configuration instead", file=sys.stderr)
        args = parse_args([*(argv or sys.argv[1:]), "--smoke"])
    dtype = getattr(torch, args.dtype)
    if args.shapes:
        shapes = [_parse_shape(s) for s in args.shapes.split(",")]
    else:
        shapes = SMOKE_SHAPES if args.smoke else ISSUE_SHAPES
    cases = (args.cases or ("ordered" if device == "cpu" else "ordered,shuffled")).split(",")
    out = args.out if args.out is not None else (None if args.smoke else DEFAULT_OUT)
    header = environment(device, dtype, args)
    reports: list[ShapeReport] = []

    def emit() -> None:
        if out is not None:  # after every method: a timeout later loses nothing
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(reports, header) + "\n")

    for shape in shapes:
        for case in cases:
            print(f"shape N, D, V = {shape}, vocabulary {case}", flush=True)
            reports.append(ShapeReport(shape, case=case))
            run_case(shape, case, args, device, dtype, emit, reports[-1])
            emit()
    print(render(reports, header))
    if out is not None:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
