"""Without the frameworks: nothing is imported eagerly, and a missing one names its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integrations.children import REPO


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_importing_the_integrations_imports_no_framework() -> None:
    done = python(
        "import sys, scalinglab, scalinglab.integrations\n"
        "import scalinglab.integrations.lightning_logger\n"
        "assert not {'torch', 'transformers', 'lightning', 'pytorch_lightning'} & set(sys.modules)"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("transformers", "transformers", "scalinglab[transformers]"),
        ("lightning", "lightning", "scalinglab[lightning]"),
        ("pytorch_lightning", "pytorch_lightning", "pip install pytorch-lightning"),
    ],
)
def test_a_missing_framework_names_the_extra(module: str, blocked: str, extra: str) -> None:
    done = python(
        f"import sys\nsys.modules[{blocked!r}] = None  # as if not installed\n"
        "from store.trackers.optional import MissingExtraError\n"
        "try:\n"
        f"    import scalinglab.integrations.{module}\n"
        "except MissingExtraError as err:\n"
        "    print(err)\n"
    )
    assert done.returncode == 0, done.stderr
    assert extra in done.stdout
