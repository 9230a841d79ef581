"""The Fit page's selection: split, filter, exclusion, groups and ties, under AppTest
against a real store (the demo sweep of tests/app/builders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.builders import build_store
from tests.app.test_pages import open_page, press_fit, texts


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    built = build_store(tmp_path / "store")
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    return built


def _alpha(at) -> float:
    params = at.dataframe[0].value.set_index("parameter")
    return float(params.loc["alpha", "value"])


def test_excluding_a_run_changes_the_fit_and_says_so(store: object) -> None:
    at = open_page("views/fit.py")
    at.number_input(key="fit-boot").set_value(0).run()
    press_fit(at)
    assert not at.exception, at.exception
    before = _alpha(at)
    assert "data: 5 of" in texts(at)
    runs = at.multiselect(key="fit-exclude").options
    at.multiselect(key="fit-exclude").set_value([runs[0]]).run()
    press_fit(at)
    assert not at.exception, at.exception
    shown = texts(at)
    assert "data: 4 of" in shown and "dropped 1: --exclude" in shown
    assert _alpha(at) != before
    assert at.session_state["fit"]["selection"]["exclude"] == [runs[0]]


def test_filter_tie_and_bad_filter(store: object) -> None:
    at = open_page("views/fit.py")
    at.number_input(key="fit-boot").set_value(0).run()
    at.text_input(key="fit-where").set_value("params > 0 and loss <").run()
    press_fit(at)
    assert not at.exception, at.exception
    assert "--where: expected a value" in texts(at)
    at.text_input(key="fit-where").set_value("params > 1e5").run()
    press_fit(at)
    assert not at.exception, at.exception
    assert "--where 'params > 1e5' is false" in texts(at)
    assert "auto (eval, else train)" in at.selectbox(key="fit-split-False").options
