"""The long-running side: `serve` (the dashboard process plus the job scheduler), the fit
worker processes, and the demo that starts it all with a live CPU sweep."""
