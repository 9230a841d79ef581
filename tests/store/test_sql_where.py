"""store.sql.where_equal: the filters list saved fits and audit rows by."""

from store.sql import where_equal


def test_only_given_values_filter_and_travel_as_parameters() -> None:
    assert where_equal((("project", None), ("law", None))) == ("", [])
    where, params = where_equal(
        (("project", "p'; DROP TABLE fits; --"), ("law", None), ("job_id", 0))
    )
    assert where == "WHERE project = ? AND job_id = ?"
    assert params == ["p'; DROP TABLE fits; --", 0]  # 0 is a value, not a missing one
