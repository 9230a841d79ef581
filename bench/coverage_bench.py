"""Do the fit's intervals cover? Coverage on known truth, band coverage on held-out curves,
and the time of the default intervals.

    .venv/bin/python bench/coverage_bench.py [--seeds 100] [--parts coverage,bands,timing]
        [--cases power_law,power_law_2pct,power_law_6,chinchilla,chinchilla_2pct,
                 chinchilla_9] [--out bench/results/coverage.json]

1. ``coverage``: for each case, ``--seeds`` synthetic data sets with known truth and
   log-normal noise; one multi-start fit per data set, then every interval method on the
   same optimum (`fitting.uncertainty.estimate`): the share of data sets whose nominal-95%
   interval holds the true value, per parameter and (chinchilla) for tokens per parameter
   at C = 5.76e23, with the time per fit (the multi-start plus the method).
   Cases: ``power_law`` L = 1.7 + (3e4 / N)^0.3 at 12 sizes from 1e6 to 1e9 (0.5% noise;
   ``_2pct``: 2%; ``_6``: 6 sizes); ``chinchilla`` with Besiroglu et al.'s estimates as the
   truth on the 5 x 5 grid N 1e7-1e10, D 1e9-1e12 (``_9``: a 3 x 3 grid).
2. ``bands``: Luo et al.'s curves at 25M, 100M and 400M (fit multi_power on cosine_24000,
   constant_24000, wsdcon_9 as the authors do; predict the six others from their
   schedules): the share of held-out points inside the confidence band and inside the
   prediction band. 25M is shipped (examples/); 100M and 400M are read from
   ``--luo-dir`` (default /work/shared/data/multipowerlaw_luo2025).
3. ``timing``: the default intervals (`fitting.fit` with no options) for chinchilla on the
   240 published points, power_law on 20 points, multi_power on three 24,000-step curves;
   the median of 3 runs, with the load average.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: small LAPACK calls spin otherwise

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fitting  # noqa: E402
from fitting.analyses import compute_optimal  # noqa: E402
from fitting.engine import _assemble, get_law, make_problem  # noqa: E402
from fitting.optimize import multistart  # noqa: E402
from fitting.starts import start_grid  # noqa: E402
from fitting.uncertainty import estimate  # noqa: E402
from tests.published import LUO_TEST, LUO_TRAIN  # noqa: E402

METHODS = ("bootstrap", "sandwich", "profile", "curvature")
FLOPS = 5.76e23
POWER_TRUTH = {"L_inf": 1.7, "x0": 3e4, "alpha": 0.3}
CHINCHILLA_TRUTH = {"E": 1.817, "A": 482.0, "B": 2085.0, "alpha": 0.3478, "beta": 0.3658}
CASES: dict[str, dict[str, Any]] = {
    "power_law": {"law": "power_law", "sizes": 12, "noise": 0.005},
    "power_law_2pct": {"law": "power_law", "sizes": 12, "noise": 0.02},
    "power_law_6": {"law": "power_law", "sizes": 6, "noise": 0.005},
    "chinchilla": {"law": "chinchilla", "sizes": 5, "noise": 0.005},
    "chinchilla_2pct": {"law": "chinchilla", "sizes": 5, "noise": 0.02},
    "chinchilla_9": {"law": "chinchilla", "sizes": 3, "noise": 0.005},
}


def synthetic(case: dict[str, Any], rng: np.random.Generator) -> tuple[dict, pd.DataFrame]:
    """Known truth and one noisy data set of the case."""
    if case["law"] == "power_law":
        truth = POWER_TRUTH
        frame = pd.DataFrame({"params": np.geomspace(1e6, 1e9, case["sizes"])})
    else:
        truth = CHINCHILLA_TRUTH
        k = case["sizes"]
        n, d = np.meshgrid(np.geomspace(1e7, 1e10, k), np.geomspace(1e9, 1e12, k))
        frame = pd.DataFrame({"params": n.ravel(), "tokens": d.ravel()})
    law = get_law(case["law"])
    theta = np.array([[truth[p.name] for p in law.parameters(None)]])
    clean = law.predict(theta, law.prepare(frame, for_fit=False))[0]
    frame["loss"] = clean * np.exp(rng.normal(0.0, case["noise"], len(frame)))
    frame["run"] = [f"r{i}" for i in range(len(frame))]
    return truth, frame


def true_tokens_per_param(truth: dict[str, float]) -> float:
    n, d, _ = get_law("chinchilla").compute_optimum(truth, np.array([FLOPS]))
    return float(d[0] / n[0])


def one_seed(case: dict[str, Any], seed: int) -> dict[str, Any]:
    """Hits (truth inside the interval) and times of every method on one data set."""
    rng = np.random.default_rng(seed)
    truth, frame = synthetic(case, rng)
    law = get_law(case["law"])
    t0 = time.perf_counter()
    problem, engine, law_opts = make_problem(law, frame, {})
    best = multistart(problem, start_grid(problem), n_polish=4)
    fit_s = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for method in METHODS:
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unc = estimate(problem, best.z, level=0.95, method=method, seed=seed)
        seconds = fit_s + time.perf_counter() - t1
        result = _assemble(problem, best, unc, {**engine, "intervals": method}, law_opts)
        hits = {n: bool(lo <= truth[n] <= hi) for n, (lo, hi) in result.intervals.items()}
        if case["law"] == "chinchilla":
            with np.errstate(all="ignore"):
                co = compute_optimal(result, FLOPS)
            lo, hi = float(co["tokens_per_param_lo"][0]), float(co["tokens_per_param_hi"][0])
            hits["tokens_per_param"] = bool(lo <= true_tokens_per_param(truth) <= hi)
        out[method] = {"hits": hits, "seconds": seconds}
    return out


def coverage(cases: list[str], seeds: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for name in cases:
        t0 = time.perf_counter()
        runs = [one_seed(CASES[name], seed) for seed in range(seeds)]
        table[name] = {}
        for method in METHODS:
            keys = runs[0][method]["hits"]
            table[name][method] = {
                "coverage": {k: float(np.mean([r[method]["hits"][k] for r in runs])) for k in keys},
                "seconds_per_fit": float(np.median([r[method]["seconds"] for r in runs])),
            }
        print(f"{name}: {seeds} seeds in {time.perf_counter() - t0:.0f} s", flush=True)
        print(markdown_case(name, table[name], seeds), flush=True)
    return table


def markdown_case(name: str, rows: dict[str, Any], seeds: int) -> str:
    keys = list(rows[METHODS[0]]["coverage"])
    lines = [
        f"| {name} ({seeds} seeds) | " + " | ".join(keys) + " | s / fit |",
        "|---" * (len(keys) + 2) + "|",
    ]
    for method in METHODS:
        cov = rows[method]["coverage"]
        cells = " | ".join(f"{100 * cov[k]:.0f}%" for k in keys)
        default = " (default)" if method == "bootstrap" else ""
        lines.append(f"| {method}{default} | {cells} | {rows[method]['seconds_per_fit']:.2f} |")
    return "\n".join(lines)


def luo_frame(folder: Path, names: tuple[str, ...]) -> pd.DataFrame:
    """Luo et al.'s curves (step, lr, loss) as one frame with each run's schedule; the
    point at the end of a 24,000-step schedule dropped, as the authors do."""
    from fitting.schedules import ScheduleSpec

    parts = []
    for name in names:
        part = pd.read_csv(folder / f"{name}.csv").assign(run=name)
        if name.endswith("24000"):
            part = part[part["step"] < 24000]
        parts.append(part.assign(schedule=str(ScheduleSpec.luo2025(name))))
    return pd.concat(parts, ignore_index=True)


def bands(luo_dir: Path) -> dict[str, Any]:
    folders = {"25M": ROOT / "examples" / "luo2025_25m"}
    folders.update({m: luo_dir / f"csv_{m[:-1]}" for m in ("100M", "400M")})
    out = {}
    for model, folder in folders.items():
        if not folder.exists():
            print(f"bands: {folder} not found, {model} skipped", flush=True)
            continue
        train, test = luo_frame(folder, LUO_TRAIN), luo_frame(folder, LUO_TEST)
        t0 = time.perf_counter()
        result = fitting.fit("multi_power", train)
        seconds = time.perf_counter() - t0
        y = test["loss"].to_numpy()
        inside = {}
        for kind, (lo, hi) in result.bands(test).items():
            inside[kind] = float(np.mean((lo <= y) & (y <= hi)))
        rel = np.abs(result.predict(test) - y) / y
        out[model] = {
            "inside": inside,
            "method": result.method_text(),
            "residual_sd": result.uncertainty.get("residual_sd"),
            "between_run_sd": result.uncertainty.get("between_run_sd"),
            "pred_e": float(np.mean(rel)),
            "fit_seconds": seconds,
        }
        print(f"bands {model}: {out[model]}", flush=True)
    return out


def timing() -> dict[str, Any]:
    from tests.fitting.conftest import chinchilla_frame

    rng = np.random.default_rng(0)
    x = np.geomspace(1e6, 1e9, 20)
    power = pd.DataFrame(
        {"params": x, "loss": (1.7 + (3e4 / x) ** 0.3) * rng.lognormal(0, 0.005, 20)}
    )
    curves = luo_frame(ROOT / "examples" / "luo2025_25m", LUO_TRAIN)
    jobs = {
        "chinchilla, 240 points": ("chinchilla", chinchilla_frame()),
        "power_law, 20 points": ("power_law", power),
        "multi_power, three 24,000-step curves": ("multi_power", curves),
    }
    out = {}
    for label, (law, frame) in jobs.items():
        times, method = [], ""
        for _ in range(3):
            t0 = time.perf_counter()
            result = fitting.fit(law, frame)
            times.append(time.perf_counter() - t0)
            method = result.method_text()
        out[label] = {"median_s": float(np.median(times)), "runs_s": times, "method": method}
        print(f"timing {label}: {out[label]} (load {os.getloadavg()})", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--parts", default="coverage,bands,timing")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument(
        "--luo-dir", type=Path, default=Path("/work/shared/data/multipowerlaw_luo2025")
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "coverage.json")
    args = parser.parse_args()
    parts = args.parts.split(",")
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "load_at_start": os.getloadavg(),
        "command": " ".join(sys.argv),
    }
    if "coverage" in parts:
        report["coverage"] = coverage(args.cases.split(","), args.seeds)
    if "bands" in parts:
        report["bands"] = bands(args.luo_dir)
    if "timing" in parts:
        report["timing"] = timing()
    report["load_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fitting.result.jsonable(report), indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
