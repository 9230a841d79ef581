"""The registry of scaling laws: `LAWS[name]` is a Law instance (see `fitting.laws.base`).

Adding a law is one new module here plus one line in ``_ALL``: what the law can do (its
irreducible term, size inputs, analyses, schedule) is said on its class, and the data
loader, the analyses, the CLI and the dashboard ask it.
"""

from __future__ import annotations

from fitting.laws.base import Law, Parameter, Prepared
from fitting.laws.broken_power_law import BrokenPowerLaw
from fitting.laws.chinchilla import Chinchilla
from fitting.laws.data_constrained import DataConstrained
from fitting.laws.downstream import Downstream
from fitting.laws.downstream_error import DownstreamError
from fitting.laws.downstream_score import DownstreamScore
from fitting.laws.kaplan import Kaplan
from fitting.laws.lr_annealing import LrAnnealing
from fitting.laws.multi_power import MultiPower
from fitting.laws.multilingual import Multilingual
from fitting.laws.nmt import Nmt
from fitting.laws.overtrained import Overtrained
from fitting.laws.power_law import PowerLaw

_ALL: list[Law] = [PowerLaw(), Chinchilla(), Kaplan(), Nmt(), Multilingual()]
_ALL += [LrAnnealing(), MultiPower()]  # the loss-curve laws
_ALL += [DataConstrained(), Overtrained(), Downstream(), DownstreamScore(), BrokenPowerLaw()]
_ALL += [DownstreamError()]

LAWS: dict[str, Law] = {law.name: law for law in _ALL}
DEFAULT_LAW = PowerLaw.name  # the law the dashboard's pickers start on


def supports(law_name: str, analysis: str) -> bool:
    """Whether the registered law ``law_name`` supports ``analysis`` (False if unknown)."""
    law = LAWS.get(law_name)
    return law is not None and law.supports(analysis)


def laws_supporting(analysis: str) -> list[str]:
    """The registered laws that support ``analysis``, in registry order."""
    return [name for name, law in LAWS.items() if law.supports(analysis)]


__all__ = ["DEFAULT_LAW", "LAWS", "Law", "Parameter", "Prepared", "laws_supporting", "supports"]
