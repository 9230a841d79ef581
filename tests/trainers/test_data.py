"""Data sources: exact entropies against Monte Carlo, determinism, held-out eval data."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.data import MarkovChain, MarkovSpec, make_source, parse_spec
from trainers.data.markov import entropy


def mc_entropy_rate(chain: MarkovChain, n: int = 64, length: int = 1500) -> tuple[float, float]:
    """-mean log p of sampled tokens under the true model, and its standard error."""
    nll = -chain.log_prob(chain.sample(np.random.default_rng(123), n, length))
    # Rows are independent sequences: the SE from per-sequence means respects correlation.
    per_seq = nll.mean(axis=1)
    return float(per_seq.mean()), float(per_seq.std(ddof=1) / np.sqrt(n))


@pytest.mark.parametrize(
    "spec",
    [
        MarkovSpec(vocab=256, order=1, seed=0),
        MarkovSpec(vocab=512, order=1, zipf=1.5, mix=0.5, unigram=1.0, seed=3),
        MarkovSpec(vocab=48, order=2, rows=300, seed=1),
    ],
)
def test_entropy_rate_matches_monte_carlo(spec: MarkovSpec) -> None:
    chain = MarkovChain(spec)
    mc, se = mc_entropy_rate(chain)
    assert abs(mc - chain.entropy_rate) < max(4 * se, 0.005 * chain.entropy_rate)
    assert 0 < chain.entropy_rate < np.log(spec.vocab)


def test_window_entropy_matches_monte_carlo_of_whole_windows() -> None:
    chain = MarkovChain(MarkovSpec(vocab=32, order=2, rows=100, seed=5))
    seqs = chain.sample(np.random.default_rng(9), 4000, 12)
    flat = seqs[:, 0] * 32 + seqs[:, 1]
    head = -np.log(chain.stationary.ravel()[flat])  # log p of the first two tokens
    total = head + (-chain.log_prob(seqs)).sum(axis=1)
    se = total.std(ddof=1) / np.sqrt(len(total)) / 12
    assert abs(total.mean() / 12 - chain.window_entropy(12)) < 4 * se


def test_stationary_distribution_is_fixed_point_and_sampled() -> None:
    chain = MarkovChain(MarkovSpec(vocab=64, seed=2))
    assert np.allclose(chain.stationary @ chain.emissions, chain.stationary, atol=1e-12)
    seqs = chain.sample(np.random.default_rng(0), 2000, 40)
    freq = np.bincount(seqs.ravel(), minlength=64) / seqs.size
    assert np.abs(freq - chain.stationary).max() < 0.01


def test_mixture_family_entropies_and_ratios() -> None:
    src = make_source("mixture:families=3,ratios=0.5/0.3/0.2,vocab=40,seed=4")
    assert src.vocab_size == 120
    assert src.families() == pytest.approx({"fam0": 0.5, "fam1": 0.3, "fam2": 0.2})
    fam_h = src.family_entropy(32)
    for k, (name, h) in enumerate(fam_h.items()):
        chain = src.sources[k].chain
        mc, se = mc_entropy_rate(chain, n=32, length=800)
        assert abs(mc - h) < max(4 * se, 0.01)
        batch = src.eval_sets(1, 16, 32)[f"eval/{name}"][0]
        assert batch["x"].min() >= 40 * k and batch["x"].max() < 40 * (k + 1)
    assert src.entropy(32) == pytest.approx(
        sum(r * h for r, h in zip((0.5, 0.3, 0.2), fam_h.values(), strict=True))
    )
    picks = src.batch(0, 4000, 4)["x"][:, 0] // 40
    assert np.bincount(picks, minlength=3) / 4000 == pytest.approx([0.5, 0.3, 0.2], abs=0.03)


@pytest.mark.parametrize("reverse", [False, True])
def test_translation_conditional_entropy_matches_monte_carlo(reverse: bool) -> None:
    src = make_source(f"translation:vocab=32,channel_zipf=1.5,seed=2,reverse={reverse}")
    b = src.batch(0, 2000, 24)
    assert np.array_equal(b["tgt_in"][:, 1:], b["tgt_out"][:, :-1])
    assert (b["tgt_in"][:, 0] == 32).all()
    aligned = b["src"][:, ::-1] if reverse else b["src"]
    nll = -np.log(src.channel[aligned, b["tgt_out"]])
    se = nll.mean(axis=1).std(ddof=1) / np.sqrt(len(nll))
    assert abs(nll.mean() - src.entropy(24)) < 4 * se
    assert src.entropy(24) == pytest.approx(
        float((src.chain.stationary * entropy(src.channel)).sum())
    )


def test_batches_deterministic_and_eval_held_out() -> None:
    a = make_source("markov:vocab=64,seed=1")
    b = make_source("markov:vocab=64,seed=1")
    assert np.array_equal(a.batch(7, 8, 16)["x"], b.batch(7, 8, 16)["x"])
    assert not np.array_equal(a.batch(7, 8, 16)["x"], a.batch(8, 8, 16)["x"])
    batch = a.batch(0, 8, 16)
    assert np.array_equal(batch["x"][:, 1:], batch["y"][:, :-1])
    ev = a.eval_sets(2, 8, 16)["eval"]
    assert not any(np.array_equal(e["x"], a.batch(i, 8, 16)["x"]) for i in range(2) for e in ev)
    other = make_source("markov:vocab=64,seed=2")
    assert not np.array_equal(other.batch(7, 8, 16)["x"], batch["x"])


@pytest.mark.parametrize("dtype", ["uint16", "uint32"])
def test_token_file_windows_and_held_out_tail(tmp_path, dtype: str) -> None:
    ids = (np.arange(10_000) % 5003).astype(dtype)
    path = tmp_path / f"tokens.{dtype}.bin"
    ids.tofile(path)
    src = make_source(f"tokens:path={path},dtype={dtype},eval_fraction=0.1")
    assert src.vocab_size == 5003
    b = src.batch(3, 16, 32)
    assert np.array_equal(b["x"][:, 1:], b["y"][:, :-1])
    # Windows are contiguous slices of the file (ids increase by one, mod 5003).
    assert ((b["y"] - b["x"]) % 5003 == 1).all()
    starts = b["x"][:, 0]
    positions = [np.flatnonzero(ids == s) for s in starts]
    assert all((p < 9000).any() for p in positions)
    ev = src.eval_sets(2, 4, 32)["eval"]
    train_region = set(range(9000))
    for batch in ev:
        for row in batch["x"]:
            pos = np.flatnonzero(ids == row[0])
            assert (pos >= 9000).any() and not set(pos) <= train_region


def test_bytes_source_reads_text(tmp_path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 200)
    src = make_source(f"bytes:path={path}")
    assert src.vocab_size == 256
    b = src.batch(0, 4, 16)
    text = bytes(b["x"][0].astype(np.uint8)).decode()
    assert text in "the quick brown fox jumps over the lazy dog. " * 3


def test_spec_errors_are_clear() -> None:
    assert parse_spec("markov:vocab=64,mix=0.5,reverse=true") == {
        "kind": "markov",
        "vocab": 64,
        "mix": 0.5,
        "reverse": True,
    }
    with pytest.raises(ValueError, match="unknown keys"):
        make_source("markov:vocab=64,colour=red")
    with pytest.raises(ValueError, match="unknown kind"):
        make_source("wiki:vocab=64")
    with pytest.raises(ValueError, match="key=value"):
        make_source("markov:vocab")
