"""Derived analyses: plain functions over a FitResult, each with intervals where meaningful."""

from __future__ import annotations

from fitting.analyses.allocation import compute_optimal, optimal_encoder_decoder_split
from fitting.analyses.downstream import loss_for_error
from fitting.analyses.epochs import loss_of_one_more_epoch, optimal_epochs
from fitting.analyses.extrapolation import extrapolation_test
from fitting.analyses.kl import kl_decomposition, size_for_reducible_loss
from fitting.analyses.sampling import optimal_sampling_ratios
from fitting.analyses.schedule_curve import schedule_curve

__all__ = [
    "compute_optimal",
    "extrapolation_test",
    "kl_decomposition",
    "loss_for_error",
    "loss_of_one_more_epoch",
    "optimal_encoder_decoder_split",
    "optimal_epochs",
    "optimal_sampling_ratios",
    "schedule_curve",
    "size_for_reducible_loss",
]
