"""The cheap uniqueness proof agrees with an exact check whenever it says "unique"."""

from __future__ import annotations

import numpy as np

from store.uniq import blocks_disjoint


def exact_unique(series: np.ndarray, step: np.ndarray) -> bool:
    return len(set(zip(series.tolist(), step.tolist(), strict=True))) == len(step)


def test_typical_layouts() -> None:
    steps = np.arange(1000)
    # Two runs one after the other; train and eval interleaved; shards appended.
    assert blocks_disjoint(np.repeat([1, 2], 500), np.concatenate([steps[:500], steps[:500]]))
    inter = np.array([1, 1, 2, 1, 1, 2]), np.array([0, 1, 1, 2, 3, 3])
    assert blocks_disjoint(*inter)
    # A step logged twice, in another shard: not unique.
    assert not blocks_disjoint(np.array([1, 1, 1, 1]), np.array([0, 1, 2, 1]))


def test_never_claims_unique_when_not() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 40))
        series = rng.integers(0, 3, n)
        step = rng.integers(0, 15, n)
        if blocks_disjoint(series, step):
            assert exact_unique(series, step)
        sorted_steps = np.sort(rng.choice(100, n, replace=False))
        assert blocks_disjoint(np.zeros(n, dtype=np.int64), sorted_steps)


def test_arrow_version_matches() -> None:
    import pyarrow as pa

    from store.uniq import arrow_keys_unique

    def table(runs: list[str], splits: list[str], steps: list[int]) -> pa.Table:
        return pa.table({"run": runs, "split": splits, "step": steps})

    assert arrow_keys_unique(table(["a", "a", "b", "a"], ["t"] * 4, [0, 1, 0, 2]))
    assert not arrow_keys_unique(table(["a", "a", "b", "a"], ["t"] * 4, [0, 1, 0, 1]))
    assert arrow_keys_unique(table(["a", "a", "a"], ["t", "e", "t"], [0, 0, 1]))
    assert not arrow_keys_unique(table(["a", "a", "a"], ["t", "e", "e"], [0, 0, 0]))


def test_consecutive_series_proof() -> None:
    import pyarrow as pa

    from store.uniq import consecutive_series_unique

    def proof(steps: list[int], first: list[int], last: list[int], n: list[int]) -> bool:
        chunks = pa.chunked_array([steps[:3], steps[3:]], pa.int64())  # a chunk edge too
        return consecutive_series_unique(chunks, *(np.array(v) for v in (first, last, n)))

    # Two runs one after the other, steps restarting at the second: proven.
    assert proof([0, 1, 2, 0, 5, 9], [0, 3], [2, 5], [3, 3])
    # The same step twice inside a run: not proven.
    assert not proof([0, 1, 1, 0, 5, 9], [0, 3], [2, 5], [3, 3])
    # A fall at the chunk edge that is not a series start: not proven.
    assert not proof([0, 1, 2, 1, 5, 9], [0], [5], [6])
    # Interleaved series (records of one run inside another's stretch): not proven.
    assert not proof([0, 0, 1, 1, 2, 2], [0, 1], [4, 5], [3, 3])


def test_consecutive_proof_never_claims_unique_when_not() -> None:
    import pyarrow as pa

    from store.uniq import consecutive_series_unique

    rng = np.random.default_rng(2)
    for _ in range(500):
        sizes = rng.integers(1, 6, int(rng.integers(1, 4)))
        series = np.repeat(np.arange(len(sizes)), sizes)
        step = rng.integers(0, 8, len(series))
        first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        last = first + sizes - 1
        if consecutive_series_unique(pa.chunked_array([step]), first, last, sizes):
            assert exact_unique(series, step)
