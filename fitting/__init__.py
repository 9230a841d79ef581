"""Scaling laws and the fitting engine. Works on plain arrays and data frames; no torch."""
