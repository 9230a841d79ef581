"""Sweep specs: grid expansion, stable run names, explicit runs, clear errors."""

from __future__ import annotations

import pytest

from trainers.sweep import expand


def spec(grid: dict, runs: list | None = None, base: dict | None = None) -> dict:
    out = {"sweep": {"name": "s", "project": "p"}, "base": base or {"steps": 5}, "grid": grid}
    if runs is not None:
        out["runs"] = runs
    return out


def test_grid_is_a_cartesian_product_over_config_fields() -> None:
    configs = expand(spec({"preset": ["cpu/0", "cpu/1"], "seed": [0, 1, 2]}), store="/x")
    assert len(configs) == 6
    assert {(c.preset, c.seed) for c in configs} == {
        (p, s) for p in ("cpu/0", "cpu/1") for s in (0, 1, 2)
    }
    assert all(c.steps == 5 and c.project == "p" and c.store == "/x" for c in configs)


def test_run_names_stay_put_when_the_grid_grows() -> None:
    small = {c.run: c for c in expand(spec({"preset": ["cpu/0", "cpu/1"]}))}
    big = {c.run: c for c in expand(spec({"preset": ["cpu/0", "cpu/1", "cpu/2"]}))}
    assert set(small) < set(big)
    assert all(big[name].preset == small[name].preset for name in small)


def test_long_values_get_a_short_hashed_label_and_names_are_unique() -> None:
    datas = [f"mixture:ratios={a}/{1 - a:.2f}/0.0,vocab=4096,unigram=1.05" for a in (0.3, 0.4)]
    configs = expand(spec({"data": datas}))
    assert len({c.run for c in configs}) == 2
    assert all(len(c.run) <= 50 for c in configs)


def test_explicit_runs_and_project_override() -> None:
    configs = expand(
        spec({}, runs=[{"name": "a", "preset": "cpu-small"}, {"seed": 3}]), project="other"
    )
    names = [c.run for c in configs]
    assert names[0] == "a" and len(names) == 2  # no grid: only the listed runs
    assert expand(spec({}))[0].run == "s-run"  # no grid, no runs: the base is the run
    assert all(c.project == "other" for c in configs)


def test_unknown_fields_are_rejected_with_their_names() -> None:
    with pytest.raises(ValueError, match="colour"):
        expand(spec({"colour": ["red"]}))
    with pytest.raises(ValueError, match="unknown fields"):
        expand(spec({}, base={"step": 5}))
