"""Benchmark of the linear-cross-entropy kernel against its baselines.

On a GPU (H100 / H200), bf16, for the three issue shapes: forward and forward+backward
time (CUDA events, median of --reps runs after --warmup), peak extra allocator memory,
for our Triton kernel (default and exact mode), our torch path, materialised logits,
`torch.compile` of the same, PyTorch's chunked `F.linear_cross_entropy`, and Apple's
`cut-cross-entropy` and Liger's fused linear cross-entropy when installed. Prints a
table and writes a Markdown report (default `bench/results/cce.md`) with the goals.

    python bench/cce_bench.py                 # full run on the GPU
    python bench/cce_bench.py --smoke --out /tmp/cce.md   # tiny CPU run of the torch paths

Every method runs inside its own try/except: a missing or failing baseline becomes a
note in the table, never a crash.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import math
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from trainers.cce import capabilities, linear_cross_entropy
from trainers.cce.triton_config import BlockConfig, use_configs

ISSUE_SHAPES = [(8192, 2304, 256000), (8192, 4096, 128256), (16384, 768, 50304)]
SMOKE_SHAPES = [(256, 64, 1000), (130, 48, 777)]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cce.md"
MIB = 2**20

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Result:
    method: str
    fwd_ms: float | None = None
    fwdbwd_ms: float | None = None
    fwd_mib: float | None = None
    fwdbwd_mib: float | None = None
    loss_diff: float | None = None
    note: str = ""


@dataclass
class ShapeReport:
    shape: tuple[int, int, int]
    results: list[Result] = field(default_factory=list)
    grads_mib: float = 0.0
    live_tiles: str = "n/a"
    configs: str = "default"
    entropy: float = math.nan

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


def build_methods(device: str, compile_baseline: bool) -> dict[str, LossFn | str]:
    """name -> loss function, or a string saying why the method is unavailable."""
    on_gpu = device == "cuda"
    methods: dict[str, LossFn | str] = {}
    if on_gpu and capabilities.triton_supports(torch.device(device)):
        methods["ours (triton)"] = lambda h, w, t: linear_cross_entropy(h, w, t, impl="triton")
        methods["ours (triton, exact)"] = lambda h, w, t: linear_cross_entropy(
            h, w, t, impl="triton", exact=True
        )
    else:
        methods["ours (triton)"] = "triton unavailable on this device"
    methods["ours (impl=torch)"] = lambda h, w, t: linear_cross_entropy(h, w, t, impl="torch")
    methods["materialised logits"] = materialised
    if compile_baseline:
        methods["torch.compile"] = torch.compile(materialised, dynamic=False)
    else:
        methods["torch.compile"] = "skipped (--no-compile)"
    methods["F.linear_cross_entropy"] = (
        _native if capabilities.HAS_NATIVE_LCE else "not in this PyTorch"
    )
    for name, module, factory in [
        ("cut-cross-entropy", "cut_cross_entropy", _apple),
        ("liger-kernel", "liger_kernel", _liger),
    ]:
        if not on_gpu:
            methods[name] = "GPU only"
        elif importlib.util.find_spec(module) is None:
            methods[name] = f"not installed (pip install {name})"
        else:
            try:
                methods[name] = factory()
            except Exception as err:  # a broken baseline must not stop the run
                methods[name] = f"import failed: {type(err).__name__}: {err}"
    return methods


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


def measure(name: str, fn: LossFn, inputs: tuple[torch.Tensor, ...], ref_loss: float | None,
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
            loss = float(fn(h, w, t))
        res.loss_diff = abs(loss - ref_loss) if ref_loss is not None else None
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
        if device == "cuda":
            torch.cuda.empty_cache()
    return res


# ----------------------------------------------------------------- tuning and filters

_FWD_CANDIDATES = [
    BlockConfig(128, 128, 64, num_warps=8, num_stages=3),
    BlockConfig(128, 128, 64, num_warps=8, num_stages=4),
    BlockConfig(128, 256, 64, num_warps=8, num_stages=3),
    BlockConfig(64, 256, 64, num_warps=4, num_stages=4),
    BlockConfig(128, 128, 128, num_warps=8, num_stages=2),
    BlockConfig(256, 128, 64, num_warps=8, num_stages=3),
]
_BWD_CANDIDATES = [
    BlockConfig(128, 128, 64, num_warps=8, num_stages=3, group_n=8),
    BlockConfig(128, 128, 64, num_warps=8, num_stages=4, group_n=8),
    BlockConfig(128, 128, 64, num_warps=8, num_stages=3, group_n=16),
    BlockConfig(64, 128, 64, num_warps=4, num_stages=3, group_n=8),
    BlockConfig(128, 256, 64, num_warps=8, num_stages=3, group_n=8),
    BlockConfig(128, 64, 64, num_warps=4, num_stages=3, group_n=8),
    BlockConfig(64, 64, 128, num_warps=4, num_stages=3, group_n=8),
]


def _ours(h: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return linear_cross_entropy(h, w, t, impl="triton")


def _best(candidates: list[BlockConfig], timed: Callable[[BlockConfig], float]) -> BlockConfig:
    best, best_ms = candidates[0], math.inf
    for cfg in candidates:
        try:
            ms = timed(cfg)
        except Exception:  # e.g. out of shared memory on this GPU: just not a candidate
            continue
        if ms < best_ms:
            best, best_ms = cfg, ms
    return best


def tune(inputs: tuple[torch.Tensor, ...], device: str) -> tuple[BlockConfig, BlockConfig]:
    """Pick forward, then backward block sizes by measured time on these inputs."""
    h, w, t = inputs

    def reset() -> None:
        h.grad = w.grad = None

    def fwd_time(cfg: BlockConfig) -> float:
        def step() -> None:
            with torch.no_grad():
                _ours(h, w, t)

        with use_configs(forward=cfg):
            return time_ms(step, reset, device, 2, 5)

    fwd_cfg = _best(_FWD_CANDIDATES, fwd_time)

    def bwd_time(cfg: BlockConfig) -> float:
        with use_configs(forward=fwd_cfg, backward=cfg):
            return time_ms(lambda: _ours(h, w, t).backward(), reset, device, 2, 5)

    bwd_cfg = _best(_BWD_CANDIDATES, bwd_time)
    reset()
    return fwd_cfg, bwd_cfg


def live_tile_share(inputs: tuple[torch.Tensor, ...]) -> str:
    """How many backward tiles get recomputed, and how many survive gradient filtering."""
    from trainers.cce import triton_config
    from trainers.cce.op import backward_coefs
    from trainers.cce.triton_backward import backward_grads, tile_count
    from trainers.cce.triton_forward import forward_stats

    h, w, t = (x.detach() for x in inputs)
    n, v = h.shape[0], w.shape[0]
    fwd_cfg = triton_config.forward_config(h.dtype)
    lse, _, _, tile_max = forward_stats(h, w, None, t, None, fwd_cfg)
    coefs = backward_coefs(t, lse, torch.full_like(lse, 1.0 / n), torch.zeros_like(lse), v,
                           h.dtype, -100, 0.0, 0.0, False)  # fmt: skip
    counts = torch.zeros(2, dtype=torch.int32, device=h.device)
    cfg = triton_config.backward_config(h.dtype)
    backward_grads(h, w, None, t, lse, coefs, None, h.dtype, (True, True, False), cfg,
                   tile_counts=counts, tile_max=tile_max)  # fmt: skip
    total = tile_count(n, v, cfg)
    recomputed, kept = counts.tolist()
    return (f"recomputed {recomputed}/{total} ({100.0 * recomputed / total:.1f}%), "
            f"kept {kept} ({100.0 * kept / total:.1f}%)")  # fmt: skip


# ---------------------------------------------------------------------------- reports


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def goals(rep: ShapeReport) -> list[tuple[str, str]]:
    """(goal, verdict) pairs for one shape; 'n/a' when a number is missing."""
    ours, exact = rep.get("ours (triton)"), rep.get("ours (triton, exact)")
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


def render(reports: list[ShapeReport], header: list[str]) -> str:
    lines = ["# Linear cross-entropy benchmark", "", *header, ""]
    for rep in reports:
        n, d, v = rep.shape
        lines += [
            f"## N={n}, D={d}, V={v}",
            "",
            f"Mean softmax entropy of the inputs: {rep.entropy:.2f} nats; backward tiles: "
            f"{rep.live_tiles}; gradients' own size "
            f"{rep.grads_mib:.0f} MiB; block configs: {rep.configs}.",
            "",
            "| method | fwd ms | fwd+bwd ms | fwd peak MiB | fwd+bwd peak MiB "
            "| abs loss diff | note |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rep.results:
            lines.append(
                f"| {r.method} | {_fmt(r.fwd_ms)} | {_fmt(r.fwdbwd_ms)} | {_fmt(r.fwd_mib, 1)} "
                f"| {_fmt(r.fwdbwd_mib, 1)} | {_fmt(r.loss_diff, 5)} | {r.note} |"
            )
        lines += ["", "| goal | verdict |", "|---|---|"]
        lines += [f"| {g} | {verdict} |" for g, verdict in goals(rep)]
        lines.append("")
    return "\n".join(lines)


def environment(device: str, dtype: torch.dtype, args: argparse.Namespace) -> list[str]:
    gpu = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "CPU"
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
        "at the same dtype.",
    ]


# ------------------------------------------------------------------------------- main


def run_shape(shape: tuple[int, int, int], methods: dict[str, LossFn | str],
              args: argparse.Namespace, device: str, dtype: torch.dtype) -> ShapeReport:  # fmt: skip
    n, d, v = shape
    h, w, t = make_inputs(n, d, v, dtype, device)
    h.requires_grad_()
    w.requires_grad_()
    rep = ShapeReport(shape, grads_mib=(h.numel() + w.numel()) * h.element_size() / MIB)
    rep.entropy = mean_entropy(h.detach(), w.detach())
    with torch.no_grad():
        try:
            ref_loss: float | None = float(materialised(h, w, t))
        except Exception:
            ref_loss = None
    tuned: tuple[BlockConfig, BlockConfig] | None = None
    if callable(methods.get("ours (triton)")):
        if args.tune:
            tuned = tune((h, w, t), device)
            rep.configs = f"forward {tuned[0]}, backward {tuned[1]}"
        with use_configs(*(tuned or (None, None))):
            try:
                rep.live_tiles = live_tile_share((h, w, t))
            except Exception as err:
                rep.live_tiles = f"error: {err}"
    for name, fn in methods.items():
        if isinstance(fn, str):
            rep.results.append(Result(name, note=fn))
            continue
        print(f"  {name} ...", flush=True)
        with use_configs(*(tuned or (None, None))):
            rep.results.append(measure(name, fn, (h, w, t), ref_loss, args, device))
    return rep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the torch paths")
    p.add_argument("--shapes", default=None, help="e.g. 8192x2304x256000,16384x768x50304")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--out", type=Path, default=None, help=f"report path (default {DEFAULT_OUT})")
    p.add_argument("--no-tune", dest="tune", action="store_false", help="default blocks only")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = p.parse_args(argv)
    if args.smoke:
        args.reps, args.warmup = min(args.reps, 3), min(args.warmup, 1)
        args.dtype, args.compile, args.tune = "float32", False, False
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    if device == "cpu" and not args.smoke:
        print("no CUDA GPU: running the smoke configuration instead", file=sys.stderr)
        args = parse_args([*(argv or sys.argv[1:]), "--smoke"])
    dtype = getattr(torch, args.dtype)
    if args.shapes:
        shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    else:
        shapes = SMOKE_SHAPES if args.smoke else ISSUE_SHAPES
    methods = build_methods(device, args.compile)
    reports = []
    for shape in shapes:
        print(f"shape N, D, V = {shape}", flush=True)
        reports.append(run_shape(shape, methods, args, device, dtype))  # type: ignore[arg-type]
    text = render(reports, environment(device, dtype, args))
    print(text)
    out = args.out if args.out is not None else (None if args.smoke else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
