"""What fitting a model returns (:class:`FitResult`), shared by :mod:`~eeg2fmri.training.fit` and :mod:`~eeg2fmri.training.trainer`.

It lives in its own module so that ``fit`` imports ``trainer`` (for torch
models) and ``trainer`` imports neither ``fit`` nor anything above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eeg2fmri.datasets.spec import DataSpec

__all__ = ["FitResult"]


@dataclass
class FitResult:
    """A fitted model with what is needed to evaluate and save it.

    Attributes
    ----------
    model : object
        ``predict(x) -> array``; windows ``(n, *spec.input_shape)`` to ``(n, *spec.output_shape)``.
    spec : DataSpec
    name : str
        The registered model name.
    hparams : dict
    fit_seconds : float
    info : dict
        What fitting recorded (windows, epochs, penalties, ...).
    dataset, split : PreparedDataset, Split | None
        What :func:`~eeg2fmri.training.fit_model` fitted it on (references, not copies): ``save_fit(result, FOLDER)`` and
        ``synthesize(eeg, result, out)`` take the mask, affine, preparation and window from them.
    """

    model: Any
    spec: DataSpec
    name: str
    hparams: dict
    fit_seconds: float
    info: dict = field(default_factory=dict)
    dataset: Any = field(default=None, repr=False, compare=False)
    split: Any = field(default=None, repr=False, compare=False)
