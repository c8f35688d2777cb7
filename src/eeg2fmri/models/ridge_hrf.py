"""``ridge_hrf``: the field's classical baseline, band power -> lags/HRF -> ridge.

EEG band power per channel (a ``bandpower`` window of the last ``n_frames``
frames) is either expanded into lags (each frame is a feature: a finite
impulse response, so every voxel learns its own HRF) or convolved with the
canonical double-gamma HRF (``hrf="canonical"``), then mapped to every output
by ridge regression. The penalty is chosen on a validation split (mean
squared error over all outputs) when one is given, otherwise by efficient leave-one-out (GCV).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eeg2fmri.models.base import DataSpec, register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["RidgeHRF"]


@register_model("ridge_hrf")
class RidgeHRF:
    """Multi-lag (or HRF-convolved) band-power ridge regression (scikit-learn style).

    Parameters
    ----------
    spec : DataSpec
        ``input_kind="bandpower"``, input ``(n_chans, n_bands, n_frames)``.
    alphas : sequence of float
        Candidate ridge penalties (relative to the number of features).
    hrf : {"lags", "canonical"}
        Lag expansion (FIR) or canonical-HRF convolution of the frames.

    Attributes
    ----------
    coef_ : array, shape (n_features, n_outputs)
    intercept_ : array, shape (n_outputs,)
    x_mean_, x_scale_ : array, shape (n_features,)
    alpha_ : float
        Chosen penalty.
    """

    kind = "sklearn"

    def __init__(self, spec: DataSpec, *, alphas: tuple[float, ...] | None = None, hrf: str = "canonical") -> None:
        self.spec = spec
        self.alphas = tuple(np.logspace(-2, 5, 15)) if alphas is None else tuple(alphas)
        self.hrf = hrf
        if spec.input_kind != "bandpower":
            raise Eeg2fmriInputError(f"ridge_hrf expects input_kind 'bandpower' (n_chans, n_bands, n_frames), got {spec.input_kind!r}; prepare band-power features.")
        if hrf not in ("lags", "canonical"):
            raise Eeg2fmriInputError(f"unknown hrf {hrf!r}; choose 'lags' or 'canonical'.")

    def get_params(self) -> dict[str, Any]:
        return {"alphas": list(self.alphas), "hrf": self.hrf}

    def _features(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 4 or x.shape[1:] != tuple(self.spec.input_shape):
            raise Eeg2fmriInputError(f"ridge_hrf: expected windows of shape (n, {', '.join(map(str, self.spec.input_shape))}), got {x.shape}.")
        if self.hrf == "canonical":
            from eeg2fmri.simulate.hrf import double_gamma_hrf

            n = x.shape[-1]
            dt = 1.0 / (self.spec.frame_rate or 1.0 / self.spec.tr)
            h = double_gamma_hrf(dt, length=n * dt)[:n][::-1]  # newest frame last
            return (x * h).sum(-1).reshape(len(x), -1)
        return x.reshape(len(x), -1)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> RidgeHRF:
        """Fit on training windows; choose ``alpha_`` on the validation windows if given.

        Parameters
        ----------
        x : array, shape (n_samples, n_chans, n_bands, n_frames)
        y : array, shape (n_samples, n_outputs)
        x_val, y_val : arrays | None
            Validation windows/targets (model selection only).
        """
        f = self._features(x)
        y = np.asarray(y, dtype=np.float64).reshape(len(f), -1)
        if len(f) != len(y):
            raise Eeg2fmriInputError(f"ridge_hrf: {len(f)} windows but {len(y)} targets; pass one target per window.")
        self.x_mean_ = f.mean(0)
        sd = f.std(0)
        self.x_scale_ = np.where(sd > 0, sd, 1.0)
        fz = (f - self.x_mean_) / self.x_scale_
        y_mean = y.mean(0)
        u, s, vt = np.linalg.svd(fz, full_matrices=False)
        uty = u.T @ (y - y_mean)
        p = fz.shape[1]
        if x_val is not None and y_val is not None:
            fv = (self._features(x_val) - self.x_mean_) / self.x_scale_
            yv = np.asarray(y_val, dtype=np.float64).reshape(len(fv), -1)
            proj = fv @ vt.T
            scores = []
            yv_c = yv - y_mean
            for a in self.alphas:
                d = s / (s**2 + a * p)
                scores.append(float(((yv_c - proj @ (d[:, None] * uty)) ** 2).mean()))
            self.alpha_ = float(self.alphas[int(np.argmin(scores))])
            self.val_scores_ = [float(v) for v in scores]
        else:  # GCV
            n = len(fz)
            gcv = []
            for a in self.alphas:
                d = s**2 / (s**2 + a * p)
                fitted = u @ (d[:, None] * uty)
                res = ((y - y_mean) - fitted) ** 2
                gcv.append(res.mean() / (1 - d.sum() / n) ** 2)
            self.alpha_ = float(self.alphas[int(np.argmin(gcv))])
        d = s / (s**2 + self.alpha_ * p)
        self.coef_ = (vt.T @ (d[:, None] * uty)).astype(np.float32)
        self.intercept_ = y_mean.astype(np.float32)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict targets, array of shape (n_samples, *output_shape)."""
        if not hasattr(self, "coef_"):
            raise Eeg2fmriInputError("ridge_hrf: call fit() before predict().")
        fz = (self._features(x) - self.x_mean_) / self.x_scale_
        out = fz.astype(np.float32) @ self.coef_ + self.intercept_
        return out.reshape((len(out),) + tuple(self.spec.output_shape))

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef_, "intercept": self.intercept_, "x_mean": self.x_mean_.astype(np.float64), "x_scale": self.x_scale_.astype(np.float64), "alpha": np.array([self.alpha_])}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> RidgeHRF:
        self.coef_ = np.asarray(state["coef"], dtype=np.float32)
        self.intercept_ = np.asarray(state["intercept"], dtype=np.float32)
        self.x_mean_ = np.asarray(state["x_mean"])
        self.x_scale_ = np.asarray(state["x_scale"])
        self.alpha_ = float(np.asarray(state["alpha"])[0])
        return self
