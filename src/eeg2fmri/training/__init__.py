"""Training: fit registered models on leak-free splits, from a laptop to many GPUs.

* :func:`fit_model` - one entry point for every registered model: closed-form
  models are fitted directly, torch models with PyTorch Lightning
  (:func:`fit_torch`); the result's ``model`` has ``predict(x) -> array``.
* :func:`train` - a whole run from one config file (``eeg2fmri train``).
* :func:`tune` - Optuna search on validation data (``eeg2fmri tune``).
* :mod:`~eeg2fmri.training.config` - the config schema and its validation;
  :mod:`~eeg2fmri.training.losses` - the training losses.
"""

from eeg2fmri.training.config import DEFAULTS, load_config, resolve_config
from eeg2fmri.training.fit import FitResult, data_spec, fit_model, stack_split
from eeg2fmri.training.predictor import TorchPredictor

__all__ = ["DEFAULTS", "FitResult", "TorchPredictor", "data_spec", "fit_model", "fit_torch", "load_config", "resolve_config", "stack_split", "train", "tune"]


def __getattr__(name: str):
    # Lightning and Optuna load only when training or tuning is asked for
    if name == "fit_torch":
        from eeg2fmri.training.trainer import fit_torch

        return fit_torch
    if name == "train":
        from eeg2fmri.training.run import train

        return train
    if name == "tune":
        from eeg2fmri.training.tune import tune

        return tune
    raise AttributeError(f"module 'eeg2fmri.training' has no attribute {name!r}")
