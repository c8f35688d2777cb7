"""Training: fit registered models on leak-free splits."""

from eeg2fmri.training.fit import FitResult, data_spec, fit_model, stack_split

__all__ = ["FitResult", "data_spec", "fit_model", "stack_split"]
