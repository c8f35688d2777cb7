"""Per-channel median/IQR scaling whose statistics can be stored and re-applied to other runs."""

from __future__ import annotations

import numpy as np

from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_finite,
)

__all__ = ["NORMAL_IQR", "RobustScaler", "robust_standardize"]

#: IQR of the standard normal distribution (2 * Phi^-1(0.75)); IQR / this estimates the SD.
NORMAL_IQR = 1.3489795003921634


class RobustScaler:
    """Median/IQR scaling along one axis, with statistics that can be stored and re-applied.

    ``fit`` computes, for every position of the other axes (e.g. every channel of
    ``(n_samples, n_chans)`` or every channel/frequency of ``(n_frames, n_chans,
    n_freqs)``), the median ``center_`` and the inter-quartile range; ``transform``
    returns ``(x - center_) / scale_``. Positions with a zero IQR get scale 1.

    Parameters
    ----------
    axis : int
        The axis the statistics are computed along (time, usually 0).
    unit_variance : bool
        Divide the IQR by that of the standard normal (1.349) so that Gaussian data get
        unit standard deviation (as :func:`~eeg2fmri.preprocessing.standardize_features`).

    Attributes
    ----------
    center_ : array, float32
        Medians, shape of the fitted data without ``axis``.
    scale_ : array, float32
        Scales, same shape.
    n_samples_seen_ : int
        Length of the fitted data along ``axis``.
    """

    def __init__(self, axis: int = 0, unit_variance: bool = True) -> None:
        self.axis = axis
        self.unit_variance = unit_variance

    def _moved(self, x, what: str) -> np.ndarray:
        arr = np.asarray(x)
        if not isinstance(self.axis, (int, np.integer)) or not -arr.ndim <= self.axis < arr.ndim:
            raise Eeg2fmriInputError(f"RobustScaler: expected axis in [-{arr.ndim}, {arr.ndim}) for {what} of shape {arr.shape}, got axis={self.axis!r}; pass the time axis.")
        return np.moveaxis(arr, self.axis, 0)

    def fit(self, x: np.ndarray, y=None) -> RobustScaler:
        """Compute the medians and scales of ``x`` along ``axis``; returns ``self``."""
        xm = self._moved(x, "x")
        if xm.shape[0] < 2:
            raise Eeg2fmriInputError(f"RobustScaler: expected >= 2 samples along axis {self.axis}, got shape {np.shape(x)}; fit on the time axis of a whole run.")
        check_finite(xm, "x", where="RobustScaler")
        q25, med, q75 = np.percentile(xm, [25.0, 50.0, 75.0], axis=0)
        iqr = q75 - q25
        if self.unit_variance:
            iqr = iqr / NORMAL_IQR
        self.center_ = np.asarray(med, dtype=np.float32)
        self.scale_ = np.asarray(np.where(iqr > 0, iqr, 1.0), dtype=np.float32)
        self.n_samples_seen_ = int(xm.shape[0])
        return self

    def _check_fitted(self, x, what: str) -> np.ndarray:
        if not hasattr(self, "center_"):
            raise Eeg2fmriInputError("RobustScaler: not fitted yet; call fit(x) first (or load stored center_/scale_).")
        xm = self._moved(x, what)
        if xm.shape[1:] != self.center_.shape:
            raise Eeg2fmriInputError(f"RobustScaler: expected {what} with shape (..., {self.center_.shape}) around axis {self.axis}, got {np.shape(x)}; transform data with the fitted channel layout.")
        return xm

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scale ``x`` (any length along ``axis``); float32, same shape."""
        xm = self._check_fitted(x, "x")
        z = (xm.astype(np.float32, copy=False) - self.center_) / self.scale_
        return np.moveaxis(z, 0, self.axis)

    def fit_transform(self, x: np.ndarray, y=None) -> np.ndarray:
        """``fit(x).transform(x)``."""
        return self.fit(x).transform(x)

    def inverse_transform(self, z: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`; float32, same shape."""
        zm = self._check_fitted(z, "z")
        return np.moveaxis(zm.astype(np.float32, copy=False) * self.scale_ + self.center_, 0, self.axis)


def robust_standardize(x: np.ndarray, axis: int = 0, *, unit_variance: bool = True) -> tuple[np.ndarray, RobustScaler]:
    """Median/IQR-standardise ``x`` along ``axis`` and return the fitted scaler.

    Parameters
    ----------
    x : array, e.g. shape (n_samples, n_chans) or (n_frames, n_chans, n_freqs)
    axis : int
        Time axis (statistics are per position of the other axes).
    unit_variance : bool
        See :class:`RobustScaler`.

    Returns
    -------
    z : array, same shape as ``x``, float32
    scaler : RobustScaler
        Holds ``center_`` and ``scale_`` to store and re-apply (``scaler.transform``).
    """
    scaler = RobustScaler(axis=axis, unit_variance=unit_variance)
    return scaler.fit_transform(x), scaler
