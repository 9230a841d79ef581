"""bench/cce_bench.py runs end to end (CPU smoke configuration) and judges goals right."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.cce import capabilities
from trainers.cce.triton_config import BlockConfig, use_configs

BENCH = Path(__file__).resolve().parents[3] / "bench" / "cce_bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("cce_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cce_bench"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_run_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "cce.md"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--shapes", "96x32x300", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "## N=96, D=32, V=300" in text
    for method in ("ours (impl=torch)", "materialised logits", "cut-cross-entropy"):
        assert f"| {method} |" in text
    row = next(line for line in text.splitlines() if line.startswith("| ours (impl=torch)"))
    assert "n/a | n/a | n/a" not in row.split("|", 2)[2][:40]  # it was timed


def test_goal_verdicts() -> None:
    bench = _load_bench()
    rep = bench.ShapeReport((8, 4, 16), grads_mib=100.0)
    rep.results = [
        bench.Result("ours (triton)", fwd_ms=9.0, fwdbwd_ms=30.0, fwd_mib=8.0, fwdbwd_mib=170.0),
        bench.Result("ours (triton, exact)", fwdbwd_ms=50.0),
        bench.Result("torch.compile", fwd_ms=10.0, fwdbwd_ms=32.0),
        bench.Result("cut-cross-entropy", note="not installed"),
    ]
    verdicts = dict(bench.goals(rep))
    assert verdicts["fwd+bwd <= 1.0 x torch.compile"].startswith("PASS")
    assert verdicts["fwd+bwd <= 0.9 x cut-cross-entropy"] == "n/a"
    assert verdicts["fwd <= 1.0 x torch.compile"].startswith("PASS")
    assert verdicts["fwd+bwd memory <= grads + 64 MiB"].startswith("FAIL")
    assert verdicts["fwd memory <= 16 MiB"].startswith("PASS")
    assert verdicts["exact fwd+bwd <= 1.5 x torch.compile"].startswith("FAIL")
    assert "| ours (triton) | 9.00 | 30.00 |" in bench.render([rep], ["header"])


def test_inputs_are_peaked_but_not_degenerate() -> None:
    bench = _load_bench()
    h, w, t = bench.make_inputs(128, 96, 2000, torch.float32, "cpu")
    loss = torch.nn.functional.cross_entropy(h @ w.T, t).item()
    assert 0.5 < loss < 5.0
    assert 1.0 < bench.mean_entropy(h, w) < 6.0


@pytest.mark.skipif(
    not capabilities.triton_supports(torch.device("cpu")), reason="needs the interpreter"
)
def test_live_tile_share_under_the_interpreter() -> None:
    bench = _load_bench()
    h, w, t = bench.make_inputs(64, 32, 1000, torch.float16, "cpu")
    cfg = BlockConfig(block_n=32, block_v=128, block_d=32, group_n=2)
    with use_configs(cfg, cfg):
        share = bench.live_tile_share((h, w, t))
    recomputed, total = (int(x) for x in share.split()[1].split("/"))
    kept = int(share.split("kept ")[1].split()[0])
    assert total == 2 * 8 and 0 < kept <= recomputed <= total
    assert share.endswith("%)")


def _worker_cmd(tmp_path: Path, method: str, *extra: str) -> list[str]:
    return [sys.executable, str(BENCH), "--worker", method, "--smoke", "--shape", "64x32x1000",
            "--reps", "1", "--warmup", "0", "--result", str(tmp_path / "r.json"), *extra]  # fmt: skip


@pytest.mark.skipif(
    not capabilities.triton_supports(torch.device("cpu")), reason="needs the interpreter"
)
def test_triton_worker_process_reports_times_and_tiles(tmp_path: Path) -> None:
    """What each GPU method process does, here under the interpreter: sorted vocabulary
    on shuffled ids, block configs handed over as JSON, tile counts in the result."""
    import dataclasses
    import json
    import os

    cfg = dataclasses.asdict(BlockConfig(block_n=32, block_v=128, block_d=32, group_n=2))
    (tmp_path / "cfg.json").write_text(json.dumps({"forward": cfg, "backward": cfg}))
    env = dict(os.environ, TRITON_INTERPRET="1")
    cmd = _worker_cmd(tmp_path, "ours (triton, sorted vocab)", "--case", "shuffled",
                      "--configs", str(tmp_path / "cfg.json"))  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["method"] == "ours (triton, sorted vocab)"
    assert result["note"] == "" and result["fwd_ms"] > 0 and result["fwdbwd_ms"] > 0
    assert result["live_tiles"].startswith("recomputed ") and "/16 " in result["live_tiles"]
    assert 1.0 < result["loss"] < 10.0


def test_a_failing_method_process_becomes_a_note(tmp_path: Path) -> None:
    bench = _load_bench()
    args = bench.parse_args(["--smoke"])
    data, note = bench._child(args, "no such method", (16, 8, 20), "ordered", None, 120)
    assert data is None
    assert note.startswith("process failed (exit 1): ValueError: unknown method")


@pytest.mark.slow
@pytest.mark.skipif(
    not capabilities.triton_supports(torch.device("cpu")), reason="needs the interpreter"
)
def test_gpu_smoke_script_runs_every_mode(tmp_path: Path) -> None:
    """bench/gpu_smoke.py (step 1 of bench/gpu_check.sh) end to end, fp16 interpreted."""
    import json
    import os

    out = tmp_path / "smoke.json"
    script = BENCH.parent / "gpu_smoke.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--cpu", "--shape", "64x32x500", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TRITON_INTERPRET="1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["ok"] is True
    assert set(report["modes"]) == {"default", "sorted vocab", "bf16 d_weight", "exact"}
    for mode in report["modes"].values():
        assert set(mode["relative_errors"]) == {"loss", "lse", "d_hidden", "d_weight", "d_bias"}
        assert mode["relative_errors"]["d_weight"] < 1e-3 and mode["fwdbwd_ms"] > 0
    assert report["modes"]["sorted vocab"]["tiles"].startswith("recomputed ")
