"""Data sources and their spec strings.

    markov:vocab=256,order=1,zipf=1.2,mix=0.3,unigram=1.1,seed=0
    mixture:ratios=0.5/0.3/0.2,vocab=128,seed=0    (3 families; family i has seed seed+i)
    translation:vocab=64,channel_zipf=2.0,reverse=true,seed=0
    tokens:path=data.bin,dtype=uint16,vocab=50304              (flat token-id file)
    bytes:path=corpus.txt                                      (raw text as bytes)

A spec is a string like these or the equivalent dict (`{"kind": "markov", ...}`), which is
also what `Source.describe()` returns, so a stored run's source can be rebuilt.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from trainers.data.markov import MarkovChain, MarkovSpec
from trainers.data.sources import (
    MarkovSource,
    MixtureSource,
    Source,
    TokenFileSource,
    TranslationSource,
    TranslationSpec,
)

__all__ = [
    "MarkovChain",
    "MarkovSource",
    "MarkovSpec",
    "MixtureSource",
    "Source",
    "TokenFileSource",
    "TranslationSource",
    "TranslationSpec",
    "make_source",
    "parse_spec",
]


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> dict[str, Any]:
    """`kind:key=value,...` -> {"kind": kind, key: value, ...} (numbers and booleans cast)."""
    kind, _, rest = spec.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"data spec {spec!r}: expected key=value, got {item!r}")
        out[key.strip()] = _value(val.strip())
    return out


def _dataclass_args(cls: type, d: dict[str, Any], spec: object) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names - {"kind"}
    if unknown:
        raise ValueError(
            f"data spec {spec!r}: unknown keys {sorted(unknown)}; known {sorted(names)}"
        )
    return {k: v for k, v in d.items() if k in names}


def _mixture(d: dict[str, Any], spec: object) -> MixtureSource:
    if isinstance(d.get("families"), dict):  # the describe() form
        names = list(d["families"])
        specs = [MarkovSpec(**_dataclass_args(MarkovSpec, f, spec)) for f in d["families"].values()]
        ratios = [float(d["ratios"][n]) for n in names]
        return MixtureSource(specs, ratios, names)
    ratios_raw = d.pop("ratios", None)
    if isinstance(ratios_raw, str):
        ratios = [float(r) for r in ratios_raw.split("/")]
    elif isinstance(ratios_raw, list | tuple):
        ratios = [float(r) for r in ratios_raw]
    else:
        ratios = [1.0 / int(d.get("families", 3))] * int(d.get("families", 3))
    n = int(d.pop("families", len(ratios)))
    if n != len(ratios):
        raise ValueError(f"data spec {spec!r}: {n} families but {len(ratios)} ratios")
    base = MarkovSpec(**_dataclass_args(MarkovSpec, d, spec))
    specs = [MarkovSpec(**{**base.__dict__, "seed": base.seed + i}) for i in range(n)]
    return MixtureSource(specs, ratios, [f"fam{i}" for i in range(n)])


def make_source(spec: str | dict[str, Any]) -> Source:
    """Build a data source from a spec string or dict (see the module docstring)."""
    d = parse_spec(spec) if isinstance(spec, str) else dict(spec)
    kind = d.get("kind")
    if kind == "markov":
        return MarkovSource(MarkovSpec(**_dataclass_args(MarkovSpec, d, spec)))
    if kind == "mixture":
        return _mixture(d, spec)
    if kind == "translation":
        return TranslationSource(TranslationSpec(**_dataclass_args(TranslationSpec, d, spec)))
    if kind in ("tokens", "bytes"):
        if "path" not in d:
            raise ValueError(f"data spec {spec!r}: needs path=FILE")
        dtype = "uint8" if kind == "bytes" else str(d.get("dtype", "uint16"))
        return TokenFileSource(
            d["path"],
            dtype=dtype,
            vocab=int(d.get("vocab", 0)),
            eval_fraction=float(d.get("eval_fraction", 0.05)),
            seed=int(d.get("seed", 0)),
        )
    raise ValueError(
        f"data spec {spec!r}: unknown kind {kind!r} (markov, mixture, translation, tokens, bytes)"
    )
