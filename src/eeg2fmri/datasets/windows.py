"""Paired windows: views into the continuous arrays of a prepared dataset.

For volume ``i`` of a run, the EEG window is the ``n_frames`` feature frames
ending ``lag`` frames after the end of the volume's own frame(s):
``features[end - n_frames : end]`` with
``end = frame_offset + (i + 1) * frames_per_tr + lag``. A window is a
``numpy.lib.stride_tricks.sliding_window_view`` view: memory does not grow
with the overlap between windows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from eeg2fmri.datasets.prepared import PreparedDataset, PreparedRun
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_positive_int

__all__ = ["run_windows", "valid_volumes", "window_matrix"]


def _window_end(run: PreparedRun, frames_per_tr: int, lag: int) -> np.ndarray:
    return run.frame_offset + (np.arange(run.n_volumes) + 1) * frames_per_tr + lag


def valid_volumes(run: PreparedRun, n_frames: int, frames_per_tr: int, lag: int = 0) -> np.ndarray:
    """Indices of the volumes whose whole window lies inside the recording."""
    end = _window_end(run, frames_per_tr, lag)
    ok = (end - n_frames >= 0) & (end <= len(run.features))
    return np.where(ok)[0]


def run_windows(run: PreparedRun, volumes: np.ndarray, n_frames: int, frames_per_tr: int, lag: int = 0) -> np.ndarray:
    """Windows for ``volumes`` as a strided view.

    Returns
    -------
    x : array, shape (n_selected, n_chans, n_bands, n_frames)
        A view (no copy) when ``volumes`` is a contiguous range; fancy indexing
        of an arbitrary selection copies only the selected windows.
    """
    check_positive_int(n_frames, "n_frames")
    volumes = np.asarray(volumes, dtype=int)
    ok = set(valid_volumes(run, n_frames, frames_per_tr, lag).tolist())
    bad = [int(v) for v in volumes if int(v) not in ok]
    if bad:
        raise Eeg2fmriInputError(f"{run.key}: volumes {bad[:5]} have incomplete EEG windows of {n_frames} frames; select volumes from valid_volumes().")
    view = sliding_window_view(run.features, n_frames, axis=0)  # (n_frames_total - n + 1, n_chans, n_bands, n)
    starts = _window_end(run, frames_per_tr, lag)[volumes] - n_frames
    if len(starts) and np.all(np.diff(starts) == frames_per_tr) and frames_per_tr == 1:
        return view[starts[0] : starts[-1] + 1]
    return view[starts]


def window_matrix(ds: PreparedDataset, selection: dict[int, np.ndarray], n_frames: int, lag: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Stack the windows and targets of selected volumes of several runs.

    Parameters
    ----------
    ds : PreparedDataset
    selection : dict
        Run index -> volume indices.
    n_frames, lag : int
        Window length and lag in frames.

    Returns
    -------
    x : array, shape (n_samples, n_chans, n_bands, n_frames)
    y : array, shape (n_samples, n_voxels) | None
    run_of : array, shape (n_samples,)
        Run index of each sample.
    """
    xs, ys, rs = [], [], []
    for i, vols in selection.items():
        run = ds.runs[i]
        xs.append(run_windows(run, vols, n_frames, ds.config.frames_per_tr, lag))
        if run.bold is not None:
            ys.append(np.asarray(run.bold[vols]))
        rs.append(np.full(len(vols), i))
    y = np.concatenate(ys) if len(ys) == len(xs) else None
    return np.concatenate(xs), y, np.concatenate(rs)
