"""The registry of scaling laws: `LAWS[name]` is a Law instance (see `fitting.laws.base`)."""

from __future__ import annotations

from fitting.laws.base import Law, Parameter, Prepared
from fitting.laws.chinchilla import Chinchilla
from fitting.laws.kaplan import Kaplan
from fitting.laws.lr_annealing import LrAnnealing
from fitting.laws.multi_power import MultiPower
from fitting.laws.multilingual import Multilingual
from fitting.laws.nmt import Nmt
from fitting.laws.power_law import PowerLaw

_ALL: list[Law] = [PowerLaw(), Chinchilla(), Kaplan(), Nmt(), Multilingual()]
_ALL += [LrAnnealing(), MultiPower()]  # the loss-curve laws

LAWS: dict[str, Law] = {law.name: law for law in _ALL}

__all__ = ["LAWS", "Law", "Parameter", "Prepared"]
