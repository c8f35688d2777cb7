"""Split selections and BOLD targets prepared without leakage.

Targets are detrended (linear + cosine high-pass) separately on every span
(train, validation, test) of every run, so no span's trend estimate uses
another span's data, and z-scored with the scale of that run's *training*
span (a subject never seen in training uses its own span's scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.splits import check_no_overlap, temporal_split
from eeg2fmri.datasets.windows import valid_volumes
from eeg2fmri.preprocessing.bold import detrend
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice

__all__ = ["Split", "make_split", "split_targets", "default_window"]

HRF_SPAN = 16.0  # seconds of haemodynamic memory used for gaps


def default_window(tr: float, frames_per_tr: int = 1, seconds: float = HRF_SPAN) -> int:
    """Window length in frames covering ``seconds`` of EEG before the volume end."""
    return int(math.ceil(seconds / tr * frames_per_tr)) + frames_per_tr


@dataclass
class Split:
    """Volume selections per split: ``{"train"|"val"|"test": {run_index: volumes}}``."""

    protocol: str
    selections: dict[str, dict[int, np.ndarray]]
    n_frames: int
    lag: int
    gap: int
    test_subjects: list[str]

    def n_samples(self, name: str) -> int:
        return int(sum(len(v) for v in self.selections[name].values()))


def make_split(
    ds: PreparedDataset,
    protocol: str = "within",
    *,
    n_frames: int | None = None,
    lag: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    gap: int | None = None,
    test_subjects: list[str] | None = None,
) -> Split:
    """Leak-free split of a prepared dataset.

    Parameters
    ----------
    ds : PreparedDataset
    protocol : {"within", "loso"}
        ``"within"``: each run's later span is the test set, an earlier span
        the validation set, separated by ``gap`` volumes. ``"loso"``: the
        subjects in ``test_subjects`` (default: the last subject) are the test
        set; validation is the later span of the training subjects' runs.
    n_frames : int | None
        EEG window length in frames (default: 16 s of history).
    lag : int
        Frames between the end of the volume and the end of its window.
    fractions : (float, float, float)
        Train/val/test shares within runs.
    gap : int | None
        Volumes dropped between spans; default window length (in volumes)
        plus the HRF span.
    test_subjects : list of str | None
        For ``"loso"``.
    """
    check_choice(protocol, "protocol", ("within", "loso"))
    m = ds.config.frames_per_tr
    n_frames = default_window(ds.tr, m) if n_frames is None else int(n_frames)
    if gap is None:
        gap = int(math.ceil(n_frames / m + HRF_SPAN / ds.tr))
    sel: dict[str, dict[int, np.ndarray]] = {"train": {}, "val": {}, "test": {}}
    if protocol == "loso":
        test_subjects = [ds.subjects[-1]] if test_subjects is None else list(test_subjects)
        unknown = set(test_subjects) - set(ds.subjects)
        if unknown:
            raise Eeg2fmriInputError(f"test subject(s) {sorted(unknown)} not in the dataset {ds.subjects}.")
        if len(set(ds.subjects) - set(test_subjects)) == 0:
            raise Eeg2fmriInputError("leave-one-subject-out needs at least one training subject; add subjects or use protocol='within'.")
    else:
        test_subjects = []
    for i, run in enumerate(ds.runs):
        valid = valid_volumes(run, n_frames, m, lag)
        if len(valid) == 0:
            raise Eeg2fmriInputError(f"{run.key}: no volume has a complete {n_frames}-frame EEG window; use a shorter window.")
        first = int(valid[0])
        last = int(valid[-1]) + 1
        if run.subject in test_subjects:
            sel["test"][i] = np.arange(first, last)
            continue
        if protocol == "loso":
            sp = temporal_split(last, first, fractions=(fractions[0] + fractions[2], fractions[1], 0.0), gap=gap)
            sp["test"] = np.array([], dtype=int)
        else:
            sp = temporal_split(last, first, fractions=fractions, gap=gap)
        for k in sel:
            if len(sp[k]):
                sel[k][i] = sp[k]
        spans = {k: [(float(run.onsets[v]) - n_frames * ds.tr / m, float(run.onsets[v]) + ds.tr + HRF_SPAN) for v in sp[k]] for k in ("train", "test")}
        check_no_overlap([(a, b - HRF_SPAN) for a, b in spans["train"]], [(a, b - HRF_SPAN) for a, b in spans["test"]], where=run.key)
    return Split(protocol, sel, n_frames, lag, gap, test_subjects)


def split_targets(ds: PreparedDataset, split: Split) -> dict[str, dict[int, np.ndarray]]:
    """Detrended, standardised targets per split and run, shape (n_selected, n_voxels) each."""
    out: dict[str, dict[int, np.ndarray]] = {k: {} for k in split.selections}
    scales: dict[int, np.ndarray] = {}
    for name in ("train", "val", "test"):
        for i, vols in split.selections[name].items():
            run = ds.runs[i]
            if run.bold is None:
                raise Eeg2fmriInputError(f"{run.key}: no BOLD in this run; it cannot be used for training or evaluation.")
            y = detrend(np.asarray(run.bold[vols]), ds.tr)
            if name == "train" or i not in scales:
                sd = y.std(0)
                scales[i] = np.where(sd > 0, sd, 1.0).astype(np.float32)
            out[name][i] = (y / scales[i]).astype(np.float32)
    return out
