"""Evaluation: metrics, baselines and ceilings on leak-free test sets."""

from eeg2fmri.evaluation.protocol import (
    evaluate_models,
    evaluate_split,
    groundtruth_ceilings,
    merge_results,
    predict_windows,
    reference_model,
    results_to_json,
    score_runs,
)

__all__ = ["evaluate_models", "evaluate_split", "groundtruth_ceilings", "merge_results", "predict_windows", "reference_model", "results_to_json", "score_runs"]
