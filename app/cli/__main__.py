"""`python -m app.cli ...`: the same as the `scalinglab` script (the demo launches its sweep so)."""

from app.cli import main

main()
