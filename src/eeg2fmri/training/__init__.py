"""Training: fit registered models on leak-free splits, from a laptop to many GPUs.

* :func:`fit_model` - one entry point for every registered model: closed-form
  models are fitted directly, torch models with PyTorch Lightning
  (:func:`fit_torch`); the result's ``model`` has ``predict(x) -> array``;
  :func:`save_fit` writes it as a model folder (``load_model``, ``synthesize``).
* :mod:`~eeg2fmri.training.predictor` - the ``Predictor`` protocol and
  :func:`predict_windows` (predict masked voxels with any fitted model).
* :mod:`~eeg2fmri.training.config` - the config schema and its validation;
  :mod:`~eeg2fmri.training.losses` - the training losses.
"""

from eeg2fmri.training.config import DEFAULTS, load_config, resolve_config
from eeg2fmri.training.fit import FitResult, data_spec, fit_model, save_fit, stack_split
from eeg2fmri.training.predictor import Predictor, TorchPredictor, predict_windows

__all__ = ["DEFAULTS", "FitResult", "Predictor", "TorchPredictor", "data_spec", "fit_model", "fit_torch", "load_config", "predict_windows", "resolve_config", "save_fit", "stack_split"]


def __getattr__(name: str):
    # Lightning loads only when torch training is asked for
    if name == "fit_torch":
        from eeg2fmri.training.trainer import fit_torch

        return fit_torch
    raise AttributeError(f"module 'eeg2fmri.training' has no attribute {name!r}")
