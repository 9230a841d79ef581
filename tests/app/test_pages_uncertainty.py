"""The Fit and Predict pages say how sure a fit is: the method of its intervals, both bands
by name, and the flags beside the numbers (AppTest against a real store in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.test_pages import open_page, press_fit, texts


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    from tests.app.builders import build_store

    built = build_store(tmp_path / "store")
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    return built


def band_names(at: object) -> list[str]:
    names = []
    for chart in at.get("plotly_chart"):
        spec = chart.proto.spec if hasattr(chart, "proto") else ""
        names.append(str(spec))
    return names


def test_fit_page_shows_the_method_both_bands_and_the_flags(store: object) -> None:
    at = open_page("views/fit.py")
    at.number_input(key="fit-boot").set_value(100).run()
    press_fit(at)
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Standard errors and intervals: bootstrap, 100 resamples of" in shown
    assert "prediction band is where a new observation should fall" in shown
    table = at.dataframe[0].value
    assert "flags" in table.columns and {"lower 95%", "upper 95%"} <= set(table.columns)
    specs = " ".join(band_names(at))
    assert "95% confidence band (the law)" in specs
    assert "95% prediction band (a new run)" in specs


def test_predict_page_shows_both_bands_and_the_method(store: object) -> None:
    from fitting import persist
    from fitting.jobs import fit_selection

    result, _ = fit_selection(store, "demo", "power_law", None, {"x": "params", "bootstrap": 50})
    persist.save_result(store, result, "demo", {"reduce": "final"})
    at = open_page("views/predict.py")
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Intervals and bands: bootstrap, 50 resamples of" in shown
    assert "95% confidence band (the law)" in shown and "95% prediction band (a new run)" in shown


def test_predict_page_flags_a_doubtful_fit(store: object) -> None:
    import numpy as np
    import pandas as pd

    import fitting
    from fitting import persist

    x = np.geomspace(1e6, 1e9, 8)
    rising = fitting.fit("power_law", pd.DataFrame({"params": x, "loss": 1.5 + (x / 1e6) ** 0.1}))
    persist.save_result(store, rising, "demo", {"reduce": "final"})
    at = open_page("views/predict.py")
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "parameter(s) at a bound of the law: x0 (lower), alpha (upper)" in warnings
    assert "the data do not determine x0, alpha" in warnings
