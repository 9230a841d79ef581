"""A synthetic language whose entropy is known exactly: a Zipfian Markov chain of order k.

The next token depends on the last `order` tokens (the context) through a lookup table
that maps each context to one of `rows` emission rows; the source is therefore a
unifilar finite automaton whose state is observable, and its entropy rate is exact:

    h = sum_c pi(c) * H(E[row(c)])            pi = stationary distribution over contexts

Each emission row mixes a global Zipf unigram (weight `mix`, token 0 most frequent) with a
row-specific Zipf distribution over a random permutation of the vocabulary. Because the
unigram is Zipfian, so are the context frequencies: a model that can store more contexts
gets closer to h, and the gap shrinks roughly as a power law in its capacity.

Windows of `seq_len` tokens start in the stationary distribution, so the exact per-token
entropy of a window, which is the lowest loss any model can reach on it, is

    H_window = (H(pi_k) + (seq_len - k) * h) / seq_len       pi_k = stationary k-grams
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


def zipf(n: int, exponent: float) -> np.ndarray:
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return w / w.sum()


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along `axis` (0 log 0 = 0)."""
    safe = np.where(p > 0, p, 1.0)
    return -(p * np.log(safe)).sum(axis=axis)


@dataclass
class MarkovSpec:
    vocab: int = 256
    order: int = 1
    rows: int = 0  # distinct emission rows; 0 means one per context (vocab ** order)
    zipf: float = 1.2  # exponent of each row's own Zipf distribution
    mix: float = 0.3  # weight of the shared Zipf unigram in every row
    unigram: float = 1.1  # exponent of the shared unigram
    row_zipf: float = 0.0  # > 0: contexts pick rows with Zipf weights (few rows dominate)
    seed: int = 0


@dataclass
class MarkovChain:
    """The fixed tables of one source, built deterministically from its spec."""

    spec: MarkovSpec
    emissions: np.ndarray = field(init=False)  # (rows, vocab) probabilities
    cdf: np.ndarray = field(init=False)  # (rows, vocab) cumulative, for sampling
    flat_cdf: np.ndarray = field(init=False)  # (rows * vocab,) row r's cdf + r
    ctx_row: np.ndarray = field(init=False)  # (vocab,) * order -> row index
    stationary: np.ndarray = field(init=False)  # (vocab,) * order over contexts

    def __post_init__(self) -> None:
        s = self.spec
        if s.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, not {s.order}")
        if s.order == 2 and s.vocab > 384:  # the pair chain's table is vocab**3 floats
            raise ValueError(f"order 2 supports vocab <= 384, not {s.vocab}")
        n_ctx = s.vocab**s.order
        rows = s.rows or n_ctx
        rng = np.random.default_rng([s.seed, 7919])
        own = zipf(s.vocab, s.zipf)
        perms = np.argsort(rng.random((rows, s.vocab)), axis=1)
        emissions = np.empty((rows, s.vocab))
        np.put_along_axis(emissions, perms, np.broadcast_to(own, (rows, s.vocab)), axis=1)
        self.emissions = s.mix * zipf(s.vocab, s.unigram) + (1 - s.mix) * emissions
        self.cdf = np.cumsum(self.emissions, axis=1)
        self.cdf[:, -1] = 1.0  # guard against rounding leaving the last bucket short
        # Row r's CDF shifted by r, all rows end to end: one increasing array, so sampling
        # from any rows is one searchsorted, O(log) per token instead of O(vocab).
        self.flat_cdf = (self.cdf + np.arange(rows)[:, None]).ravel()
        if s.row_zipf > 0:
            ctx = rng.choice(rows, size=n_ctx, p=zipf(rows, s.row_zipf))
        else:
            ctx = np.arange(n_ctx) if rows == n_ctx else rng.integers(0, rows, n_ctx)
        self.ctx_row = ctx.reshape((s.vocab,) * s.order)
        self.stationary = self._stationary()

    def _stationary(self, tol: float = 1e-13, max_iter: int = 10_000) -> np.ndarray:
        """Power iteration on the context chain (order 2: pi[b, a] -> next context (a, x))."""
        v = self.spec.vocab
        pi = np.full((v,) * self.spec.order, 1.0 / v**self.spec.order)
        rows = self.emissions[self.ctx_row]  # (v, v) for order 1, (b, a, x) for order 2
        for _ in range(max_iter):
            nxt = pi @ rows if self.spec.order == 1 else np.einsum("ba,bax->ax", pi, rows)
            if np.abs(nxt - pi).sum() < tol:
                return nxt / nxt.sum()
            pi = nxt
        raise RuntimeError("stationary distribution did not converge")

    @property
    def entropy_rate(self) -> float:
        """Exact entropy rate h in nats per token."""
        row_h = entropy(self.emissions)[self.ctx_row]
        return float((self.stationary * row_h).sum())

    def window_entropy(self, seq_len: int) -> float:
        """Exact per-token entropy of a stationary window of seq_len tokens."""
        k = self.spec.order
        head = float(entropy(self.stationary.ravel()))
        return (head + (seq_len - k) * self.entropy_rate) / seq_len

    def sample(self, rng: np.random.Generator, n: int, seq_len: int) -> np.ndarray:
        """n stationary windows of seq_len tokens, (n, seq_len) int64, vectorised over n."""
        k, v = self.spec.order, self.spec.vocab
        out = np.empty((n, seq_len), dtype=np.int64)
        start = rng.choice(v**k, size=n, p=self.stationary.ravel())
        head = np.stack(np.unravel_index(start, (v,) * k), axis=1)
        out[:, :k] = head[:, : min(k, seq_len)]
        u = rng.random((n, max(seq_len - k, 0)))
        for t in range(k, seq_len):
            ctx = tuple(out[:, t - k + j] for j in range(k))
            row = self.ctx_row[ctx]
            pos = np.searchsorted(self.flat_cdf, row + u[:, t - k], side="left") - row * v
            out[:, t] = np.clip(pos, 0, v - 1)
        return out

    def log_prob(self, seqs: np.ndarray) -> np.ndarray:
        """Per-token log-probability under the true model, (n, seq_len - order)."""
        k = self.spec.order
        ctx = tuple(seqs[:, j : seqs.shape[1] - k + j] for j in range(k))
        rows = self.ctx_row[ctx]
        return np.log(self.emissions[rows, seqs[:, k:]])

    def describe(self) -> dict:
        return {"kind": "markov", **asdict(self.spec)}
