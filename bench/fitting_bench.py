"""Benchmark of the fitting engine on the published Chinchilla points.

    .venv/bin/python bench/fitting_bench.py [--parts engine,baseline,baseline-fd,...]

1. ``chinchilla`` on the 240 points of Besiroglu et al. 2024 with Hoffmann's 4,500-start
   grid: the engine (batched Levenberg-Marquardt over all starts, then L-BFGS-B polish)
   against a plain scipy L-BFGS-B loop over the same grid, in the replication's own
   parametrisation (LSE form, Huber 1e-3 on log residuals, summed). Reports both times
   and the relative difference of the optima.
2. 1,000 bootstrap refits of ``chinchilla`` (resampling points), in one process and in a
   process pool.
3. The cost of ``import fitting`` plus the registry.

The data are the Chinchilla points shipped in examples/ (sources in examples/README.md).
"""

from __future__ import annotations

import os

# One BLAS thread for both contenders: on a small shared machine OpenBLAS's thread pool
# makes every tiny LAPACK call inside scipy's L-BFGS-B spin (measured: 14 ms per call).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from scipy.special import huber, logsumexp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "examples" / "chinchilla_besiroglu2024.csv"


def chinchilla_frame() -> pd.DataFrame:
    raw = pd.read_csv(DATA).sort_values("loss").iloc[:-5]
    n = raw["Model Size"].to_numpy(float)
    return pd.DataFrame(
        {
            "params": n,
            "tokens": raw["Training FLOP"].to_numpy(float) / (6 * n),
            "loss": raw["loss"].to_numpy(float),
        }
    )


def grid() -> np.ndarray:
    """(a, b, e, alpha, beta) starts, as in Hoffmann et al. / Besiroglu et al."""
    ab = np.arange(0, 30, 5.0)
    e = np.arange(-1, 1.5, 0.5)
    ex = np.arange(0, 2.5, 0.5)
    mesh = np.meshgrid(ab, ab, e, ex, ex, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def baseline(frame: pd.DataFrame, analytic: bool) -> tuple[float, np.ndarray, float, float]:
    """Plain scipy L-BFGS-B from every grid start: (objective, x, wall s, CPU s)."""
    log_n, log_d = np.log(frame["params"].to_numpy()), np.log(frame["tokens"].to_numpy())
    log_y = np.log(frame["loss"].to_numpy())
    delta = 1e-3

    def objective(x: np.ndarray) -> float:
        a, b, e, alpha, beta = x
        pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
        return float(np.sum(huber(delta, log_y - pred)))

    def with_grad(x: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = x
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        pred = logsumexp(terms, axis=0)
        r = log_y - pred
        soft = np.exp(terms - pred)  # d pred / d (a, b, e)
        psi = np.clip(r, -delta, delta)
        g = -np.array(
            [
                psi @ soft[0],
                psi @ soft[1],
                psi @ soft[2],
                -psi @ (soft[0] * log_n),
                -psi @ (soft[1] * log_d),
            ]
        )
        return float(np.sum(huber(delta, r))), g

    best_f, best_x = np.inf, None
    t0, c0 = time.perf_counter(), time.process_time()
    for x0 in grid():
        if analytic:
            res = minimize(with_grad, x0, jac=True, method="L-BFGS-B")
        else:
            res = minimize(objective, x0, method="L-BFGS-B")
        if res.fun < best_f:
            best_f, best_x = float(res.fun), res.x
    return best_f, np.asarray(best_x), time.perf_counter() - t0, time.process_time() - c0


def engine(frame: pd.DataFrame, repeats: int = 5) -> tuple[float, dict[str, float], float, float]:
    """The engine's full fit (grid, polish, curvature): (objective, params, wall s, CPU s),
    medians over ``repeats`` runs after one warm-up."""
    from fitting.engine import fit

    fit("chinchilla", frame)  # warm imports and caches
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fit("chinchilla", frame)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return result.objective, result.params, float(np.median(walls)), float(np.median(cpus))


def bootstrap(frame: pd.DataFrame, n: int, n_jobs: int) -> float:
    from fitting.engine import fit

    t0 = time.perf_counter()
    fit("chinchilla", frame)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = fit("chinchilla", frame, bootstrap=n, resample="points", n_jobs=n_jobs)
    total = time.perf_counter() - t0
    assert len(result.bootstrap_samples) == n
    return total - base


def import_seconds() -> float:
    code = (
        "import time; t=time.perf_counter(); import fitting; fitting.LAWS; "
        "print(time.perf_counter()-t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        default="engine,baseline,bootstrap,import",
        help="comma-separated: engine, baseline, baseline-fd, bootstrap, import",
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    frame = chinchilla_frame()
    obj, params, secs, cpu = engine(frame)
    print(
        f"engine: objective {obj!r}; {secs:.3f} s wall, {cpu:.3f} s CPU (median of 5); "
        f"params {params}",
        flush=True,
    )
    for analytic, part in ((True, "baseline"), (False, "baseline-fd")):
        if part not in parts:
            continue
        b_obj, b_x, b_secs, b_cpu = baseline(frame, analytic)
        label = "analytic gradient" if analytic else "finite-difference gradient"
        rel = (obj - b_obj) / b_obj
        print(
            f"scipy L-BFGS-B loop ({label}): objective {b_obj!r}; {b_secs:.1f} s wall, "
            f"{b_cpu:.1f} s CPU; engine minus loop = {rel:+.2e} relative; speed-up "
            f"{b_secs / secs:.0f}x wall, {b_cpu / cpu:.0f}x CPU; "
            f"x = {np.round(b_x, 4).tolist()}",
            flush=True,
        )
    if "bootstrap" in parts:
        for n_jobs in (1, 2):
            secs_b = bootstrap(frame, args.bootstrap, n_jobs)
            print(
                f"bootstrap: {args.bootstrap} refits, n_jobs={n_jobs}: {secs_b:.1f} s wall",
                flush=True,
            )
    if "import" in parts:
        print(f"import fitting + LAWS: {import_seconds():.2f} s", flush=True)


if __name__ == "__main__":
    main()
