"""The dashboard, the CLI and the serve process. Never imports torch or triton at module level."""
