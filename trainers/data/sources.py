"""Data sources: deterministic batches by (seed, step), held-out eval sets, known entropies.

Every source returns numpy int64 batches: `{"x", "y"}` for language modelling (y is x
shifted by one) or `{"src", "tgt_in", "tgt_out"}` for translation. The training batch of
step i is a pure function of (seed, i), so a resumed or data-parallel run sees exactly
the batches a single uninterrupted run would. Eval sets come from a separate seed stream
(synthetic sources) or a held-out tail of the file (token files).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from trainers.data.markov import MarkovChain, MarkovSpec, entropy, zipf

TRAIN_STREAM, EVAL_STREAM = 0, 1

Batch = dict[str, np.ndarray]


def stream_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, index])


class Source:
    """Base: subclasses set `vocab_size`, `task` and implement `_sample`."""

    vocab_size: int
    task: str = "lm"  # "lm" or "translation"
    seed: int = 0

    def families(self) -> dict[str, float]:
        """Language families and their sampling ratios (empty unless a mixture)."""
        return {}

    def entropy(self, seq_len: int) -> float | None:
        """Exact per-token entropy of an eval window (the lowest reachable loss), if known."""
        return None

    def family_entropy(self, seq_len: int) -> dict[str, float]:
        return {}

    def describe(self) -> dict:
        raise NotImplementedError

    def _sample(self, rng: np.random.Generator, n: int, seq_len: int, family: str | None) -> Batch:
        raise NotImplementedError

    def batch(self, step: int, batch_size: int, seq_len: int) -> Batch:
        return self._sample(stream_rng(self.seed, TRAIN_STREAM, step), batch_size, seq_len, None)

    def eval_sets(self, n_batches: int, batch_size: int, seq_len: int) -> dict[str, list[Batch]]:
        """Held-out batches per eval split: `eval`, plus `eval/<family>` for mixtures."""
        sets = {
            "eval": [
                self._sample(stream_rng(self.seed, EVAL_STREAM, i), batch_size, seq_len, None)
                for i in range(n_batches)
            ]
        }
        for k, name in enumerate(self.families()):
            sets[f"eval/{name}"] = [
                self._sample(
                    stream_rng(self.seed, EVAL_STREAM + 1 + k, i), batch_size, seq_len, name
                )
                for i in range(n_batches)
            ]
        return sets


def lm_batch(tokens: np.ndarray) -> Batch:
    """Windows of seq_len + 1 tokens -> inputs and next-token targets."""
    return {"x": tokens[:, :-1], "y": tokens[:, 1:]}


class MarkovSource(Source):
    """One known-entropy synthetic language (see `markov.py`)."""

    def __init__(self, spec: MarkovSpec) -> None:
        self.spec, self.seed = spec, spec.seed
        self.chain = MarkovChain(spec)
        self.vocab_size = spec.vocab

    def entropy(self, seq_len: int) -> float:
        # Targets are tokens 1..seq_len of a seq_len+1 window; token 0 is only context.
        return self.chain.entropy_rate if self.spec.order <= 1 else self._target_entropy(seq_len)

    def _target_entropy(self, seq_len: int) -> float:
        # For order k the first k-1 targets see fewer than k tokens of context.
        k = self.spec.order
        full = self.chain.window_entropy(seq_len + 1) * (seq_len + 1)
        first = float(entropy(self.chain.stationary.sum(axis=tuple(range(1, k)))))
        return (full - first) / seq_len

    def describe(self) -> dict:
        return self.chain.describe()

    def _sample(self, rng: np.random.Generator, n: int, seq_len: int, family: str | None) -> Batch:
        return lm_batch(self.chain.sample(rng, n, seq_len + 1))


class MixtureSource(Source):
    """Several Markov "language families", each in its own token range, mixed by ratio.

    A training sequence is drawn from one family chosen with probability p_i. Token ranges
    are disjoint (like distinct scripts), so a model knows the family after one token and
    the per-family optimum stays exact: the family's entropy rate on every target.
    """

    def __init__(self, specs: list[MarkovSpec], ratios: list[float], names: list[str]) -> None:
        if len(specs) != len(ratios) or len(specs) != len(names):
            raise ValueError("mixture needs one ratio and one name per family")
        if min(ratios) < 0 or sum(ratios) <= 0:
            raise ValueError(f"sampling ratios must be non-negative, not all zero: {ratios}")
        total = float(sum(ratios))
        self.ratios = [r / total for r in ratios]
        self.names, self.seed = names, specs[0].seed
        self.sources = [MarkovSource(s) for s in specs]
        self.offsets = np.cumsum([0] + [s.vocab for s in specs])[:-1]
        self.vocab_size = int(sum(s.vocab for s in specs))

    def families(self) -> dict[str, float]:
        return dict(zip(self.names, self.ratios, strict=True))

    def family_entropy(self, seq_len: int) -> dict[str, float]:
        return {n: s.entropy(seq_len) for n, s in zip(self.names, self.sources, strict=True)}

    def entropy(self, seq_len: int) -> float:
        return float(
            sum(
                p * h
                for p, h in zip(self.ratios, self.family_entropy(seq_len).values(), strict=True)
            )
        )

    def describe(self) -> dict:
        return {
            "kind": "mixture",
            "families": {n: s.describe() for n, s in zip(self.names, self.sources, strict=True)},
            "ratios": self.families(),
        }

    def _sample(self, rng: np.random.Generator, n: int, seq_len: int, family: str | None) -> Batch:
        if family is not None:
            choice = np.full(n, self.names.index(family))
        else:
            choice = rng.choice(len(self.sources), size=n, p=self.ratios)
        tokens = np.empty((n, seq_len + 1), dtype=np.int64)
        for k, src in enumerate(self.sources):
            rows = np.flatnonzero(choice == k)
            if rows.size:
                tokens[rows] = src.chain.sample(rng, rows.size, seq_len + 1) + self.offsets[k]
        return lm_batch(tokens)


@dataclass
class TranslationSpec:
    vocab: int = 64  # per side; both sides share ids 0..vocab-1, BOS = vocab
    channel_zipf: float = 2.0  # how peaked each source token's translation distribution is
    reverse: bool = False  # True: the target is the source reversed (harder alignment)
    seed: int = 0


class TranslationSource(Source):
    """Source sentences from a Markov chain; target token t translates source token T-1-t.

    Each target token is drawn from a channel row C[x] (a Zipf distribution over a random
    permutation), independently given its aligned source token, so the exact conditional
    entropy per target token is sum_a pi(a) H(C[a]).
    """

    task = "translation"

    def __init__(self, spec: TranslationSpec) -> None:
        self.spec, self.seed = spec, spec.seed
        self.chain = MarkovChain(MarkovSpec(vocab=spec.vocab, seed=spec.seed))
        rng = np.random.default_rng([spec.seed, 104729])
        perms = np.argsort(rng.random((spec.vocab, spec.vocab)), axis=1)
        channel = np.empty((spec.vocab, spec.vocab))
        row = np.broadcast_to(zipf(spec.vocab, spec.channel_zipf), channel.shape)
        np.put_along_axis(channel, perms, row, axis=1)
        self.channel, self.channel_cdf = channel, np.cumsum(channel, axis=1)
        self.vocab_size = spec.vocab + 1

    def entropy(self, seq_len: int) -> float:
        return float((self.chain.stationary * entropy(self.channel)).sum())

    def describe(self) -> dict:
        return {"kind": "translation", **asdict(self.spec)}

    def _sample(self, rng: np.random.Generator, n: int, seq_len: int, family: str | None) -> Batch:
        src = self.chain.sample(rng, n, seq_len)
        aligned = src[:, ::-1] if self.spec.reverse else src
        u = rng.random((*aligned.shape, 1))
        tgt = (self.channel_cdf[aligned] < u).sum(axis=-1).clip(max=self.spec.vocab - 1)
        bos = np.full((n, 1), self.spec.vocab, dtype=np.int64)
        return {"src": src, "tgt_in": np.concatenate([bos, tgt[:, :-1]], axis=1), "tgt_out": tgt}


class TokenFileSource(Source):
    """A flat file of token ids (uint16 / uint32), or any file read as bytes (uint8).

    Memory-mapped; the last `eval_fraction` of the file is held out for eval. Training
    windows start at random offsets in the first part, chosen from (seed, step).
    """

    def __init__(
        self,
        path: str,
        dtype: str = "uint16",
        vocab: int = 0,
        eval_fraction: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.path, self.dtype, self.seed = str(path), dtype, seed
        self.tokens = np.memmap(path, dtype=np.dtype(dtype), mode="r")
        if self.tokens.size < 16:
            raise ValueError(f"{path}: only {self.tokens.size} tokens")
        self.split = int(self.tokens.size * (1 - eval_fraction))
        self.vocab_size = vocab or (256 if dtype == "uint8" else int(self.tokens.max()) + 1)
        self.eval_fraction = eval_fraction

    def describe(self) -> dict:
        kind = "bytes" if self.dtype == "uint8" else "tokens"
        return {
            "kind": kind,
            "path": self.path,
            "dtype": self.dtype,
            "vocab": self.vocab_size,
            "eval_fraction": self.eval_fraction,
            "seed": self.seed,
        }

    def _windows(self, lo: int, hi: int, starts: np.ndarray, seq_len: int) -> Batch:
        idx = lo + starts[:, None] + np.arange(seq_len + 1)
        return lm_batch(np.asarray(self.tokens[idx.clip(max=hi - 1)], dtype=np.int64))

    def batch(self, step: int, batch_size: int, seq_len: int) -> Batch:
        rng = stream_rng(self.seed, TRAIN_STREAM, step)
        span = max(self.split - seq_len - 1, 1)
        return self._windows(0, self.split, rng.integers(0, span, batch_size), seq_len)

    def eval_sets(self, n_batches: int, batch_size: int, seq_len: int) -> dict[str, list[Batch]]:
        span = max(self.tokens.size - self.split - seq_len - 1, 1)
        n = n_batches * batch_size
        starts = (np.arange(n) * (seq_len + 1)) % span  # contiguous, non-overlapping tiles
        return {
            "eval": [
                self._windows(self.split, self.tokens.size, starts[i : i + batch_size], seq_len)
                for i in range(0, n, batch_size)
            ]
        }


def with_seed(spec: MarkovSpec, seed: int) -> MarkovSpec:
    return replace(spec, seed=seed)
