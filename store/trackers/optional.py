"""Optional readers: the tracker packages live behind extras, imported only when used."""

from __future__ import annotations

import importlib
from types import ModuleType

from store.errors import ScalinglabError


class MissingExtraError(ScalinglabError):
    """A reader needs a package this install does not have."""


def require(module: str, extra: str) -> ModuleType:
    """`module`, or an error that names the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"reading this needs the {module.split('.')[0]!r} package: "
            f"pip install 'scalinglab[{extra}]'"
        ) from err
