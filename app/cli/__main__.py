"""`python -m app.cli ...`: the same as the `scalinglab` script (the demo launches its sweep so)."""

from app.cli import main

# Guarded: the scheduler's spawned worker processes import the main module again.
if __name__ == "__main__":
    main()
