"""`python -m trainers --config JSON`: train one run from a TrainConfig as JSON.

What sweeps start on each GPU, and what `torchrun --nproc-per-node K -m trainers
--config JSON` runs on every rank (only rank 0 writes to the store). Prints the run's
summary as JSON on rank 0. Exits 0 when the run finished, 128 + signal when SIGINT /
SIGTERM stopped it (`interrupted`), 2 on a user-facing error, else 1.
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
    from store.errors import ScalinglabError
    from trainers.stopping import StopRequest
    from trainers.train import TrainConfig, train

    values = json.loads(args.config)
    if "betas" in values:
        values["betas"] = tuple(values["betas"])
    with StopRequest() as stop:
        try:
            summary = train(TrainConfig(**values), stop=stop)
        except ScalinglabError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    import os

    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(asdict(summary)))
    if summary.status == "interrupted":
        return stop.exit_code  # 130 / 143, as if the signal had ended the process
    return 0 if summary.status == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
