"""``mean``: the trivial baseline every comparison must show.

Predicts each subject's mean training target (the subject-mean volume); for
subjects never seen in training, the mean over training subjects.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from eeg2fmri.datasets.spec import INPUT_KINDS, DataSpec
from eeg2fmri.models.base import register_model
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["MeanBaseline"]


@register_model("mean")
class MeanBaseline(BaseEstimator):
    """Subject-mean baseline (scikit-learn style).

    Attributes
    ----------
    means_ : dict
        Subject label -> mean target, array of shape ``output_shape``.
    grand_mean_ : array, shape ``output_shape``
    """

    kind = "sklearn"
    #: It reads no EEG: every representation (``tangent`` included), band power first.
    input_kinds = ("bandpower", "stft", "raw") + tuple(k for k in INPUT_KINDS if k not in ("bandpower", "stft", "raw"))

    def __init__(self, spec: DataSpec) -> None:
        self.spec = spec

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            subjects: np.ndarray | None = None, **_: Any) -> MeanBaseline:
        if len(x) != len(y):  # (user test 41: accepted in silence)
            raise Eeg2fmriInputError(f"mean.fit: expected as many targets as windows, got {len(x)} windows and {len(y)} targets; pass the "
                                     "targets of the same windows.")
        y = np.asarray(y, dtype=np.float64).reshape((len(y),) + tuple(self.spec.output_shape))
        subjects = np.zeros(len(y), dtype=int) if subjects is None else np.asarray(subjects)
        self.means_ = {s: y[subjects == s].mean(0).astype(np.float32) for s in np.unique(subjects)}
        self.grand_mean_ = y.mean(0).astype(np.float32)
        return self

    def predict(self, x: np.ndarray, subjects: np.ndarray | None = None) -> np.ndarray:
        if not hasattr(self, "grand_mean_"):
            raise Eeg2fmriInputError("mean: call fit() before predict().")
        n = len(x)
        subjects = np.full(n, None) if subjects is None else np.asarray(subjects)
        return np.stack([self.means_.get(s, self.grand_mean_) for s in subjects]) if n else np.empty((0,) + tuple(self.spec.output_shape), np.float32)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays to save (safetensors): the grand mean and each training subject's mean.

        Returns
        -------
        state : dict
            ``grand_mean`` (``output_shape``), ``means`` (shape (n_subjects, *output_shape)),
            ``subject_labels`` (the labels, UTF-8, newline-separated, as uint8).
        """
        if not hasattr(self, "grand_mean_"):
            raise Eeg2fmriInputError("mean: call fit() before saving the model.")
        keys = [str(k) for k in self.means_]
        if any("\n" in k for k in keys):
            raise Eeg2fmriInputError(f"mean: subject labels must not contain newlines to be saved, got {keys!r}; rename the subjects.")
        shape = tuple(self.spec.output_shape)
        means = np.stack(list(self.means_.values())) if keys else np.empty((0,) + shape, np.float32)
        labels = np.frombuffer("\n".join(keys).encode("utf-8"), dtype=np.uint8).copy()
        return {"grand_mean": self.grand_mean_, "means": means.astype(np.float32), "subject_labels": labels}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> MeanBaseline:
        """Restore what :meth:`state_dict` returned (labels come back as str)."""
        self.grand_mean_ = np.asarray(state["grand_mean"], dtype=np.float32)
        raw = bytes(np.asarray(state["subject_labels"], dtype=np.uint8))
        keys = raw.decode("utf-8").split("\n") if raw else []
        self.means_ = {k: np.asarray(m, dtype=np.float32) for k, m in zip(keys, np.asarray(state["means"]))}
        return self
