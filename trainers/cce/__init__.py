"""Chunked linear cross-entropy that never materialises the logit matrix."""
