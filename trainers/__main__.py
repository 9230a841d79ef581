"""`python -m trainers --config JSON`: train one run from a TrainConfig as JSON.

What sweeps start on each GPU, and what `torchrun --nproc-per-node K -m trainers
--config JSON` runs on every rank (only rank 0 writes to the store). Prints the run's
summary as JSON on rank 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers")
    parser.add_argument("--config", required=True, help="TrainConfig fields as a JSON object")
    args = parser.parse_args(argv)
    from trainers.train import TrainConfig, train

    values = json.loads(args.config)
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    summary = train(TrainConfig(**values))
    import os

    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(asdict(summary)))
    return 0 if summary.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
