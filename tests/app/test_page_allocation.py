"""The Predict page's allocation section (Chinchilla's three approaches), under AppTest,
on a real store holding the digitised Chinchilla points and a saved fit of them."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.published import CHINCHILLA

ENTRY = str(Path(__file__).resolve().parents[2] / "app" / "dashboard" / "streamlit_app.py")


def test_predict_page_compares_the_three_approaches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fitting import persist
    from fitting.jobs import fit_selection
    from store import Store
    from store.importers import import_files

    store = Store(tmp_path / "store")
    import_files(store, [CHINCHILLA], project="chin")
    law = "chinchilla"
    result, _ = fit_selection(store, "chin", law, None, {"accounting": {"flops": "6ND"}})
    persist.save_result(store, result, "chin", {"reduce": "final"})
    monkeypatch.setenv("SCALINGLAB_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("SCALINGLAB_SCHEDULER", raising=False)
    at = AppTest.from_file(ENTRY, default_timeout=120).run()
    at.switch_page("views/predict.py").run()
    assert not at.exception, at.exception
    assert not [d for d in at.dataframe if "approach" in d.value.columns]  # not before asked
    at.button(key="pred-alloc-run").click().run()
    assert not at.exception, at.exception
    (table,) = [d.value for d in at.dataframe if "approach" in d.value.columns]
    assert table["approach"].str[0].tolist() == ["1", "1", "2", "2", "3", "3"]
    assert table["C"].tolist() == [1e21, 5.76e23] * 3
    assert ((table["a lo"] < table["a"]) & (table["a"] < table["a hi"])).all()
    assert table["Hoffmann a"].tolist() == [0.50, 0.50, 0.49, 0.49, 0.46, 0.46]
    captions = " ".join(c.value for c in at.caption)
    assert "Accounting: C = 6 N D; N counts all parameters" in captions
