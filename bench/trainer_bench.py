"""Trainer benchmarks; results go to bench/results/trainers.md (+ a PNG of the science check).

    python bench/trainer_bench.py --cpu-tiny        # steps/s of cpu-tiny on this machine
    python bench/trainer_bench.py --science         # CPU size sweep, power_law fit vs entropy
    python bench/trainer_bench.py --gpu             # gpt-124m tokens/s, MFU, CCE vs logits
    python bench/trainer_bench.py --science --spec size-gpu   # the GPU-sized science check

FLOPs convention (trainers.models.flops_per_token): 6 * (non-embedding params + d * vocab)
+ 12 * layers * d * context per token (PaLM appendix B), so MFU = achieved FLOP/s over
the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def cpu_tiny(threads: int, steps: int = 200) -> dict:
    import torch

    from trainers.sink import ListSink
    from trainers.train import TrainConfig, train

    torch.set_num_threads(threads)
    cfg = TrainConfig(preset="cpu-tiny", steps=steps, eval_every=0, eval_batches=1, threads=threads)
    train(replace(cfg, steps=5), sink=ListSink())  # warm-up: imports, allocator, kernels
    summary = train(cfg, sink=ListSink())
    return {
        "threads": threads,
        "steps": steps,
        "batch": f"{cfg.batch_size} x {cfg.seq_len}",
        "steps_per_s": steps / summary.wall_s,
        "tokens_per_s": summary.tokens_per_s,
        "params": summary.counts["params"],
    }


def science(spec: str, store: Path, workers_note: str) -> dict:
    """Run the sweep, fit power_law in N (non-embedding) to the final eval losses."""
    import pandas as pd

    from fitting import fit
    from store.core import Store
    from store.queries import list_runs, points_frame
    from trainers import sweep

    configs = sweep.load(spec, store=str(store))
    t0 = time.perf_counter()
    sweep.run_sweep(
        configs, on_run=lambda c, s: print(f"[{time.strftime('%X')}] {c.run}: {s}", flush=True)
    )
    wall = time.perf_counter() - t0
    project = configs[0].project
    runs = list_runs(Store(store), project).set_index("run")
    pts = points_frame(Store(store), project=project, splits=["eval"])
    last = pts.sort_values("step").groupby("run").tail(1).set_index("run")
    names = [c.run for c in configs]
    frame = pd.DataFrame(
        {
            "run": names,
            "params": [int(runs.loc[r, "params_non_embedding"]) for r in names],
            "params_all": [int(runs.loc[r, "params"]) for r in names],
            "loss": [float(last.loc[r, "loss"]) for r in names],
        }
    )
    entropy = float(runs.loc[names[0], "entropy"])
    result = fit("power_law", frame[["run", "params", "loss"]], x="params")
    p = result.params
    return {
        "spec": spec,
        "frame": frame,
        "entropy": entropy,
        "L_inf": p["L_inf"],
        "x0": p["x0"],
        "alpha": p["alpha"],
        "interval": result.intervals.get("L_inf"),
        "rel_err": (p["L_inf"] - entropy) / entropy,
        "wall_s": wall,
        "note": workers_note,
        "result": result,
    }


def plot_science(res: dict, path: Path) -> None:
    """Log-log plot of final eval loss vs N with the fit and the true entropy (PIL)."""
    from PIL import Image, ImageDraw

    w, h, m = 900, 600, 80
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    n = res["frame"]["params"].to_numpy(float)
    loss = res["frame"]["loss"].to_numpy(float)
    grid = np.geomspace(n.min() / 2, n.max() * 8, 200)
    fitted = res["L_inf"] + (res["x0"] / grid) ** res["alpha"]
    x_lo, x_hi = math.log10(grid[0]), math.log10(grid[-1])
    y_lo = min(res["entropy"], res["L_inf"], loss.min()) - 0.05
    y_hi = max(loss.max(), fitted.max()) + 0.05

    def px(x: float, y: float) -> tuple[float, float]:
        fx = (math.log10(x) - x_lo) / (x_hi - x_lo)
        fy = (y - y_lo) / (y_hi - y_lo)
        return m + fx * (w - 2 * m), h - m - fy * (h - 2 * m)

    d.rectangle([m, m, w - m, h - m], outline="black")
    for e in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        x, _ = px(10**e, y_lo)
        d.line([x, h - m, x, h - m + 6], fill="black")
        d.text((x - 12, h - m + 10), f"1e{e}", fill="black")
    for y in np.linspace(y_lo, y_hi, 6):
        _, yy = px(10**x_lo, y)
        d.line([m - 6, yy, m, yy], fill="black")
        d.text((8, yy - 6), f"{y:.2f}", fill="black")
    d.line([px(g, v) for g, v in zip(grid, fitted, strict=True)], fill=(31, 119, 180), width=3)
    lines = (
        (res["entropy"], (214, 39, 40), "true entropy rate", -16),
        (res["L_inf"], (31, 119, 180), "fitted L_inf", 4),
    )
    for v, colour, label, dy in lines:  # entropy label above its line, L_inf's below
        y = px(grid[0], v)[1]
        for x0 in range(m, w - m, 16):
            d.line([x0, y, x0 + 8, y], fill=colour, width=2)
        d.text((w - m - 150, y + dy), f"{label} {v:.3f}", fill=colour)
    d.text((8, m - 24), "final eval loss (nats/token)", fill="black")
    for x, y in zip(n, loss, strict=True):
        cx, cy = px(x, y)
        d.ellipse([cx - 6, cy - 6, cx + 6, cy + 6], fill="black")
    title = (
        f"{res['spec']}: final eval loss vs non-embedding N; fit L = L_inf + (x0/N)^alpha, "
        f"L_inf = {res['L_inf']:.3f} vs entropy {res['entropy']:.3f} "
        f"({100 * res['rel_err']:+.2f}%)"
    )
    d.text((m, 30), title, fill="black")
    d.text((w // 2 - 80, h - 30), "non-embedding parameters N (log)", fill="black")
    img.save(path)


def random_tokens(n: int = 20_000_000) -> Path:
    """A flat uint16 token file of random ids (throughput does not depend on the text)."""
    path = Path(tempfile.gettempdir()) / "scalinglab_bench_tokens.bin"
    if not path.exists():
        np.random.default_rng(0).integers(0, 50304, n, dtype=np.uint16).tofile(path)
    return path


def gpu_throughput(preset: str, impl: str, micro: int, steps: int = 20) -> dict:
    """Tokens/s and MFU of training steps of `preset` at micro-batch `micro` (bf16, compile)."""
    import torch

    from trainers.sink import ListSink
    from trainers.train import TrainConfig, train

    cfg = TrainConfig(
        preset=preset,
        data=f"tokens:path={random_tokens()},vocab=50304",
        steps=steps,
        batch_size=micro,
        seq_len=1024,
        eval_every=0,
        eval_batches=1,
        loss_impl=impl,
        lr=6e-4,
    )
    times: list[float] = []
    last = [time.perf_counter()]

    def on_step(step: int, metrics: dict) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    summary = train(cfg, sink=ListSink(), on_step=on_step)
    steady = float(np.median(times[5:]))
    tokens = micro * 1024
    from trainers.models import flops_per_token
    from trainers.presets import resolve

    fpt = flops_per_token(resolve(preset), summary.counts)
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), 989e12)
    return {
        "impl": impl,
        "micro": micro,
        "tokens_per_s": tokens / steady,
        "mfu": tokens / steady * fpt / peak,
        "step_s": steady,
        "device": name,
    }


def largest_micro_batch(preset: str, impl: str) -> int:
    """Largest micro-batch (sequences of 1024) whose training step fits in GPU memory."""
    import torch

    from trainers.models import build_model
    from trainers.presets import resolve
    from trainers.train import LossModel

    def fits(b: int) -> bool:
        try:
            model = build_model(resolve(preset)).cuda()
            lm = LossModel(model, impl)
            x = torch.randint(0, 50304, (b, 1024), device="cuda")
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = lm({"x": x, "y": x})
            loss.backward()
            torch.cuda.synchronize()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            model = lm = x = loss = None  # drop references so empty_cache frees them
            torch.cuda.empty_cache()

    lo, hi = 0, 1
    while fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-tiny", action="store_true")
    ap.add_argument("--science", action="store_true")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--spec", default="size-cpu")
    ap.add_argument("--store", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    if args.cpu_tiny:
        out["cpu_tiny"] = cpu_tiny(args.threads)
        print(json.dumps(out["cpu_tiny"]))
        (RESULTS / f"trainers_cpu_tiny_t{args.threads}.json").write_text(
            json.dumps(out["cpu_tiny"], indent=1)
        )
    if args.science:
        store = Path(args.store or tempfile.mkdtemp(prefix="scalinglab-science-"))
        res = science(args.spec, store, f"store {store}")
        png = RESULTS / f"trainers_science_{args.spec}.png"
        plot_science(res, png)
        print(res["frame"].to_string())
        summary = {k: v for k, v in res.items() if k not in ("frame", "result")}
        summary["runs"] = res["frame"].to_dict(orient="records")
        text = json.dumps(summary, indent=1, default=str)
        (RESULTS / f"trainers_science_{args.spec}.json").write_text(text)
        print(text)
    if args.gpu:
        rows = []
        for impl in ("cce", "materialized"):
            biggest = largest_micro_batch("gpt-124m", impl)
            run = gpu_throughput("gpt-124m", impl, micro=min(16, biggest))
            rows.append({**run, "largest_micro_batch": biggest})
            print(json.dumps(rows[-1]))
        (RESULTS / "trainers_gpu.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
