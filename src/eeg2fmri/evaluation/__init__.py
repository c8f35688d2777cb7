"""Evaluation: metrics, baselines and ceilings on leak-free test sets."""

from eeg2fmri.evaluation.protocol import evaluate_split, groundtruth_ceilings

__all__ = ["evaluate_split", "groundtruth_ceilings"]
