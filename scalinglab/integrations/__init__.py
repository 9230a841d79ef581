"""Training frameworks that log into a scalinglab store through `scalinglab.init`.

- `scalinglab.integrations.transformers.ScalingLabCallback`: a Hugging Face `Trainer`
  callback (`pip install 'scalinglab[transformers]'`).
- `scalinglab.integrations.lightning.ScalingLabLogger`: a PyTorch Lightning logger for
  the `lightning` package (`pip install 'scalinglab[lightning]'`);
  `scalinglab.integrations.pytorch_lightning.ScalingLabLogger` is the same logger for the
  older `pytorch_lightning` package.

Importing this package imports none of the frameworks (nor torch): each module imports
its own framework when it is itself imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ScalingLabCallback": "scalinglab.integrations.transformers",
    "ScalingLabLogger": "scalinglab.integrations.lightning",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    # `from scalinglab.integrations import ScalingLabCallback` imports transformers then.
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
