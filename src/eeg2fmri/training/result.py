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
    """A fitted model with what is needed to evaluate and save it."""

    model: Any
    spec: DataSpec
    name: str
    hparams: dict
    fit_seconds: float
    info: dict = field(default_factory=dict)
