"""Learning-rate schedules: one small spec, the exact LR at every optimizer step.

Pure numpy (the trainers import this module to drive the optimizer, and the fitting
engine rebuilds a run's LR from the spec the run recorded), so it never imports torch.

Step convention (the same as Hugging Face's warmup schedulers):

- steps are optimizer steps counted from 0; ``lr(s)`` is the LR used by update ``s``;
- warmup is linear from 0 to ``peak_lr`` over ``warmup_steps``:
  ``lr(s) = peak_lr * s / warmup_steps`` for ``0 <= s < warmup_steps``, so **step 0 gets
  LR 0** when there is a warmup, and step ``warmup_steps`` gets exactly ``peak_lr``;
  without warmup step 0 gets ``peak_lr``;
- after warmup, with ``p = (s - warmup_steps) / (total_steps - warmup_steps)`` in [0, 1]:

  ========== ================================================================
  constant   ``peak_lr``
  cosine     ``final + (peak - final) * (1 + cos(pi p)) / 2``
  linear     ``peak + (final - peak) * p``
  wsd        ``peak`` until ``total - decay_steps``, then the decay shape
             (``linear``, ``cosine`` or ``exponential``: ``peak * (final/peak)**q``)
             over the last ``decay_steps`` steps, ``q`` going 0 -> 1
  multistep  ``peak * gamma**(number of milestones <= s)``
  ========== ================================================================

- steps past ``total_steps`` keep the LR reached at ``total_steps`` (``final_lr`` for the
  decaying kinds).

Text form, for the CLI and the store: ``"cosine:peak=3e-4,warmup=100,total=1000,
final=3e-5"``; ``str(spec)`` writes it back and ``ScheduleSpec.parse(str(spec)) == spec``.
Multistep milestones are separated by ``;`` (``"multistep:peak=3e-4,total=16000,
milestones=8000;12000,gamma=0.3"``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from store.errors import BadInputError

KINDS = ("constant", "cosine", "linear", "wsd", "multistep")
DECAY_SHAPES = ("linear", "cosine", "exponential")

# Short names used in the text form; the long (field) names are accepted too.
_ALIASES = {
    "peak": "peak_lr",
    "total": "total_steps",
    "warmup": "warmup_steps",
    "final": "final_lr",
    "decay": "decay_steps",
    "shape": "decay_shape",
}
_SHORT = {v: k for k, v in _ALIASES.items()}
_INT_FIELDS = ("total_steps", "warmup_steps", "decay_steps")
_FLOAT_FIELDS = ("peak_lr", "final_lr", "gamma")


def _bad(message: str, spec: str | None = None) -> BadInputError:
    where = f"schedule {spec!r}: " if spec else "schedule: "
    return BadInputError(where + message, column="schedule")


@dataclass(frozen=True)
class ScheduleSpec:
    """A learning-rate schedule; ``lr(steps)`` gives the exact LR at each step."""

    kind: str
    peak_lr: float
    total_steps: int
    warmup_steps: int = 0
    final_lr: float = 0.0
    decay_steps: int = 0
    decay_shape: str = "linear"
    milestones: tuple[int, ...] = field(default_factory=tuple)
    gamma: float = 0.1

    LUO2025_PEAK: ClassVar[float] = 3e-4
    LUO2025_WARMUP: ClassVar[int] = 2160
    LUO2025_FINAL: ClassVar[float] = 3e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        self.validate()

    # -- validation ------------------------------------------------------------------
    def validate(self) -> None:
        """Raise BadInputError naming the first inconsistent field."""
        if self.kind not in KINDS:
            raise _bad(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise _bad(f"{name} must be a finite number, got {value!r}")
        if self.peak_lr <= 0:
            raise _bad(f"peak_lr must be > 0, got {self.peak_lr!r}")
        if self.final_lr < 0:
            raise _bad(f"final_lr must be >= 0, got {self.final_lr!r}")
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise _bad(f"{name} must be a whole number >= 0, got {value!r}")
        if self.total_steps < 1:
            raise _bad(f"total_steps must be >= 1, got {self.total_steps}")
        if self.warmup_steps > self.total_steps:
            raise _bad(
                f"warmup_steps ({self.warmup_steps}) exceeds total_steps ({self.total_steps})"
            )
        if self.kind == "wsd":
            self._validate_wsd()
        if self.kind == "multistep":
            self._validate_multistep()

    def _validate_wsd(self) -> None:
        if self.decay_shape not in DECAY_SHAPES:
            raise _bad(f"decay_shape {self.decay_shape!r} is not one of {', '.join(DECAY_SHAPES)}")
        room = self.total_steps - self.warmup_steps
        if not 1 <= self.decay_steps <= room:
            raise _bad(
                f"wsd needs 1 <= decay_steps <= total_steps - warmup_steps ({room}), "
                f"got {self.decay_steps}"
            )
        if self.decay_shape == "exponential" and self.final_lr <= 0:
            raise _bad("exponential decay needs final_lr > 0")

    def _validate_multistep(self) -> None:
        if not self.milestones:
            raise _bad("multistep needs at least one milestone")
        if any(b <= a for a, b in zip(self.milestones, self.milestones[1:], strict=False)):
            raise _bad(f"milestones must be strictly increasing, got {list(self.milestones)}")
        if self.milestones[0] < self.warmup_steps:
            raise _bad(
                f"first milestone ({self.milestones[0]}) falls inside the warmup "
                f"({self.warmup_steps} steps)"
            )
        if self.gamma <= 0:
            raise _bad(f"gamma must be > 0, got {self.gamma!r}")

    # -- the LR ----------------------------------------------------------------------
    def lr(self, steps: np.ndarray | int | float) -> np.ndarray:
        """The LR used by optimizer update ``steps`` (array in, float64 array out)."""
        s = np.asarray(steps, dtype=np.float64)
        if s.size and (not np.all(np.isfinite(s)) or s.min() < 0):
            raise _bad("steps must be finite and >= 0", str(self))
        after = self._after_warmup(s)
        if self.warmup_steps == 0:
            return after
        warm = self.peak_lr * s / self.warmup_steps
        return np.where(s < self.warmup_steps, warm, after)

    def _after_warmup(self, s: np.ndarray) -> np.ndarray:
        peak, final = self.peak_lr, self.final_lr
        if self.kind == "constant":
            return np.full_like(s, peak)
        if self.kind == "multistep":
            n_passed = np.searchsorted(np.asarray(self.milestones), s, side="right")
            return peak * np.power(self.gamma, n_passed)
        if self.kind == "wsd":
            start = self.total_steps - self.decay_steps
            q = np.clip((s - start) / self.decay_steps, 0.0, 1.0)
            return _decay(self.decay_shape, q, peak, final)
        span = max(self.total_steps - self.warmup_steps, 1)
        p = np.clip((s - self.warmup_steps) / span, 0.0, 1.0)
        return _decay(self.kind, p, peak, final)

    def dense(self, last_step: int | None = None, first_step: int = 0) -> np.ndarray:
        """LR at every step ``first_step .. last_step`` (default: up to total_steps)."""
        end = self.total_steps if last_step is None else int(last_step)
        return self.lr(np.arange(first_step, end + 1))

    @property
    def warmup_area(self) -> float:
        """Sum of the LR over the warmup steps 0 .. warmup_steps - 1."""
        w = self.warmup_steps
        return self.peak_lr * (w - 1) / 2.0 if w > 0 else 0.0

    # -- text, dict, JSON ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["milestones"] = list(self.milestones)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleSpec:
        if not isinstance(data, Mapping):
            raise _bad(f"expected a mapping of schedule fields, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in data.items():
            name = _ALIASES.get(key, key)
            if name not in names:
                raise _bad(f"unknown field {key!r} (known: {', '.join(sorted(names))})")
            values[name] = value
        if "kind" not in values or "peak_lr" not in values or "total_steps" not in values:
            raise _bad("kind, peak_lr and total_steps are required")
        return cls(**_coerce_types(values))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScheduleSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _bad(f"not valid JSON ({err.msg} at char {err.pos})", text) from None
        return cls.from_dict(data)

    @classmethod
    def parse(cls, text: str) -> ScheduleSpec:
        """Read ``"kind:key=value,..."``; JSON objects are accepted as well."""
        if not isinstance(text, str) or not text.strip():
            raise _bad("empty schedule text")
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(text)
        kind, _, rest = text.partition(":")
        values: dict[str, Any] = {"kind": kind.strip().lower()}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise _bad(f"expected key=value, got {item!r}", text)
            values[key.strip().lower()] = value.strip()
        try:
            return cls.from_dict(values)
        except BadInputError as err:
            raise _bad(err.message.removeprefix("schedule: "), text) from None

    def __str__(self) -> str:
        parts = [f"peak={self.peak_lr!r}", f"total={self.total_steps}"]
        if self.warmup_steps:
            parts.append(f"warmup={self.warmup_steps}")
        if self.kind in ("cosine", "linear", "wsd") or self.final_lr:
            parts.append(f"final={self.final_lr!r}")
        if self.kind == "wsd":
            parts += [f"decay={self.decay_steps}", f"shape={self.decay_shape}"]
        if self.kind == "multistep":
            parts.append("milestones=" + ";".join(str(m) for m in self.milestones))
            parts.append(f"gamma={self.gamma!r}")
        return f"{self.kind}:" + ",".join(parts)

    @classmethod
    def coerce(cls, value: ScheduleSpec | str | Mapping[str, Any]) -> ScheduleSpec:
        """A spec from a spec, its text form, its JSON text or its dict."""
        if isinstance(value, ScheduleSpec):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise _bad(f"cannot read a schedule from {type(value).__name__}")

    # -- the published schedules of Luo et al. 2025 ------------------------------------
    @classmethod
    def luo2025(cls, name: str) -> ScheduleSpec:
        """The schedule of a ``multipowerlaw_luo2025`` curve, from its file name.

        ``constant_T``, ``cosine_T``, ``wsd_20000_24000`` (exponential decay),
        ``wsdld_20000_24000`` (linear decay), ``wsdcon_K`` (3e-4 until 8000, then K e-5,
        16000 steps); all with a 2160-step linear warmup to 3e-4.
        """
        stem = name.rsplit("/", 1)[-1].removesuffix(".csv")
        common = {"peak_lr": cls.LUO2025_PEAK, "warmup_steps": cls.LUO2025_WARMUP}
        if m := re.fullmatch(r"(constant|cosine)_(\d+)", stem):
            final = cls.LUO2025_FINAL if m[1] == "cosine" else 0.0
            return cls(m[1], total_steps=int(m[2]), final_lr=final, **common)
        if m := re.fullmatch(r"(wsd|wsdld)_(\d+)_(\d+)", stem):
            start, total = int(m[2]), int(m[3])
            shape = "exponential" if m[1] == "wsd" else "linear"
            return cls(
                "wsd",
                total_steps=total,
                final_lr=cls.LUO2025_FINAL,
                decay_steps=total - start,
                decay_shape=shape,
                **common,
            )
        if m := re.fullmatch(r"wsdcon_(\d+(?:\.\d+)?)", stem):
            gamma = float(m[1]) * 1e-5 / cls.LUO2025_PEAK
            return cls("multistep", total_steps=16000, milestones=(8000,), gamma=gamma, **common)
        raise _bad(f"not a Luo et al. 2025 curve name: {name!r}")


def _decay(shape: str, q: np.ndarray, peak: float, final: float) -> np.ndarray:
    """LR along a decay from ``peak`` (q = 0) to ``final`` (q = 1)."""
    if shape == "cosine":
        return final + (peak - final) * 0.5 * (1.0 + np.cos(np.pi * q))
    if shape == "exponential":
        return peak * np.power(final / peak, q)
    return peak + (final - peak) * q


def _coerce_types(values: dict[str, Any]) -> dict[str, Any]:
    """Turn text values (from ``parse``) into the field types, naming what fails."""
    out = dict(values)
    out["kind"] = str(out["kind"]).strip().lower()
    for name in _FLOAT_FIELDS:
        if name in out and isinstance(out[name], str):
            out[name] = _number(name, out[name], float)
    for name in _INT_FIELDS:
        if name in out and isinstance(out[name], str | float):
            out[name] = _number(name, out[name], int)
    if "decay_shape" in out:
        out["decay_shape"] = str(out["decay_shape"]).strip().lower()
    ms = out.get("milestones", ())
    if isinstance(ms, str):
        ms = [p for p in re.split(r"[;\s/]+", ms) if p]
    if not isinstance(ms, list | tuple):
        raise _bad(f"milestones must be a list of steps, got {ms!r}")
    out["milestones"] = tuple(_number("milestones", m, int) for m in ms)
    return out


def _number(name: str, raw: Any, kind: type) -> Any:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _bad(f"{name} must be a number, got {raw!r}") from None
    if kind is int:
        if not math.isfinite(value) or value != round(value):
            raise _bad(f"{name} must be a whole number of steps, got {raw!r}")
        return round(value)
    return value
