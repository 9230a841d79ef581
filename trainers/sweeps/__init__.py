"""Shipped sweep specs (TOML), package data of `trainers`; see `trainers.sweep`."""
