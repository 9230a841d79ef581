"""Progress and cancellation of long fits (`fitting.progress`): known counts of progress
calls from the multi-start and the bootstrap, a cancel that stops within one resample,
the quick first result, and the same answer whether anyone watches or not."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from fitting import fit
from fitting.laws import LAWS
from fitting.progress import PROGRESS_STEPS, Cancelled, Monitor, watching


def power_law_points(seed: int = 0) -> pd.DataFrame:
    """Seven final losses on L = 2 + (1e4 / N)^0.3 with 0.5% noise (few starts)."""
    rng = np.random.default_rng(seed)
    n = np.geomspace(1e5, 1e8, 7)
    loss = (2.0 + (1e4 / n) ** 0.3) * np.exp(rng.normal(0, 0.005, n.size))
    return pd.DataFrame({"run": [f"m{i}" for i in range(n.size)], "params": n, "loss": loss})


def chinchilla_points() -> pd.DataFrame:
    _, frame = LAWS["chinchilla"].example(np.random.default_rng(1))
    return frame


def halving_reports(total: int, floor: int = 48, stages: int = 3) -> list[tuple[int, int]]:
    """The ("starts", done, total) reports of `successive_halving`: 0, the starts left
    behind after each stage (the best quarter, at least `floor`, go on), then all."""
    out, left = [(0, total)], total
    for _ in range(stages):
        if left <= floor:
            break
        left = max(floor, -(-left // 4))
        out.append((total - left, total))
    return [*out, (total, total)]


class Recorder:
    """The progress calls a fit made, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))

    def of(self, stage: str) -> list[tuple[int, int]]:
        return [(d, t) for s, d, t in self.calls if s == stage]


def test_progress_counts_of_the_starts_and_the_bootstrap() -> None:
    rec = Recorder()
    result = fit("power_law", power_law_points(), bootstrap=40, progress=rec)
    starts = rec.of("starts")
    # 148 starts: one halving stage (to the floor of 48), then the survivors converge.
    assert result.n_starts == 148
    assert starts == halving_reports(148) == [(0, 148), (100, 148), (148, 148)]
    # 40 resamples in chunks of 40 / PROGRESS_STEPS = 2: the zero report, then one per chunk.
    boot = rec.of("bootstrap")
    assert len(boot) == 1 + PROGRESS_STEPS
    assert boot[0] == (0, 40) and boot[-1] == (40, 40)
    assert [d for d, _ in boot] == list(range(0, 41, 2))
    assert [s for s, _, _ in rec.calls] == ["starts"] * 3 + ["bootstrap"] * (1 + PROGRESS_STEPS)


def test_the_halving_stages_report_the_starts_they_leave_behind() -> None:
    rec = Recorder()
    result = fit("chinchilla", chinchilla_points(), intervals="sandwich", progress=rec)
    starts = rec.of("starts")
    total = result.n_starts  # 4,500 grid starts plus the guess
    # 4501 -> 1126 -> 282 -> 71 survivors over the three stages, then all done.
    assert total == 4501
    assert starts == halving_reports(total)
    assert starts == [(0, total), (3375, total), (4219, total), (4430, total), (total, total)]
    assert not rec.of("bootstrap")  # the sandwich has no resamples


def test_watching_gives_the_same_answer_as_a_quiet_fit() -> None:
    data = power_law_points()
    quiet = fit("power_law", data, bootstrap=40)
    with watching(Monitor(progress=Recorder(), cancel=threading.Event())):
        watched = fit("power_law", data, bootstrap=40)
    np.testing.assert_allclose(watched.bootstrap_samples, quiet.bootstrap_samples)
    assert watched.params == quiet.params


def test_a_cancel_stops_within_one_resample() -> None:
    cancel = threading.Event()
    rec = Recorder()

    def progress(stage: str, done: int, total: int) -> None:
        rec(stage, done, total)
        if stage == "bootstrap" and done >= 2:
            cancel.set()  # after the first chunk of two resamples

    with pytest.raises(Cancelled):
        fit("power_law", power_law_points(), bootstrap=40, progress=progress, cancel=cancel)
    assert rec.of("bootstrap")[-1] == (2, 40)  # no chunk reported after the cancel


def test_a_cancel_from_another_thread_ends_a_running_bootstrap() -> None:
    cancel, started = threading.Event(), threading.Event()
    rec = Recorder()
    outcome: list[BaseException | object] = []

    def progress(stage: str, done: int, total: int) -> None:
        rec(stage, done, total)
        if stage == "bootstrap":
            started.set()

    def work() -> None:
        try:
            outcome.append(
                fit(
                    "power_law",
                    power_law_points(),
                    bootstrap=4000,
                    progress=progress,
                    cancel=cancel,
                )
            )
        except Cancelled as err:
            outcome.append(err)

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(120)
    cancel.set()
    seen = rec.of("bootstrap")[-1][0]
    thread.join(120)
    assert not thread.is_alive()
    assert isinstance(outcome[0], Cancelled)
    # At most the chunk running when the cancel came was reported after it.
    assert rec.of("bootstrap")[-1][0] <= seen + 4000 // PROGRESS_STEPS
    assert rec.of("bootstrap")[-1][0] < 4000


def test_a_cancel_during_the_starts_raises_before_the_bootstrap() -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        fit("power_law", power_law_points(), cancel=cancel)


def test_the_first_result_comes_with_quick_intervals_before_the_bootstrap() -> None:
    order: list[str] = []
    firsts: list[object] = []

    def first_result(result: object, data: pd.DataFrame) -> None:
        order.append("first")
        firsts.append((result, len(data)))

    def progress(stage: str, done: int, total: int) -> None:
        order.append(stage)

    data = power_law_points()
    final = fit("power_law", data, bootstrap=40, progress=progress, first_result=first_result)
    quick, rows = firsts[0]
    assert rows == len(data)
    assert quick.method == "sandwich" and final.method == "bootstrap"
    assert quick.params == final.params  # one optimum, two ways to its intervals
    assert order.index("first") < order.index("bootstrap")
    # A fit whose method is already quick gives no separate first result.
    firsts.clear()
    fit("power_law", data, intervals="sandwich", first_result=first_result)
    assert not firsts


def test_a_cancel_reaches_the_bootstrap_workers_of_a_pool() -> None:
    """With worker processes (n_jobs=2) the running chunks stop too: the cancel comes
    after the first report and no chunk is reported done after it."""
    cancel = threading.Event()
    rec = Recorder()

    def progress(stage: str, done: int, total: int) -> None:
        rec(stage, done, total)
        if stage == "bootstrap":
            cancel.set()  # before any chunk is done

    with pytest.raises(Cancelled):
        fit(
            "power_law",
            power_law_points(),
            bootstrap=20_000,
            n_jobs=2,
            progress=progress,
            cancel=cancel,
        )
    assert rec.of("bootstrap") == [(0, 20_000)]
