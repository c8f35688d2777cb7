"""Splits that never leak: temporal spans with a gap, or whole subjects."""

from __future__ import annotations

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["temporal_split", "check_no_overlap"]


def temporal_split(n_volumes: int, first_valid: int, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), gap: int = 0) -> dict[str, np.ndarray]:
    """Within-run train/val/test spans in time order, separated by ``gap`` volumes.

    Parameters
    ----------
    n_volumes : int
        Volumes in the run.
    first_valid : int
        First volume whose EEG window is complete.
    fractions : (float, float, float)
        Shares of the usable volumes for train, validation and test.
    gap : int
        Volumes dropped between consecutive spans; use at least the EEG
        window length plus the HRF span (in volumes) so no test target shares
        EEG or haemodynamic history with a training one.

    Returns
    -------
    split : dict with ``train``, ``val``, ``test`` volume indices.
    """
    usable = n_volumes - first_valid - 2 * gap
    if usable < 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise Eeg2fmriInputError(
            f"cannot split {n_volumes} volumes (first valid {first_valid}, gap {gap}) into fractions {fractions}; "
            "use a longer recording, a shorter window/gap, or fractions that sum to 1."
        )
    n_tr = int(round(fractions[0] * usable))
    n_va = int(round(fractions[1] * usable))
    start = first_valid
    train = np.arange(start, start + n_tr)
    val = np.arange(start + n_tr + gap, start + n_tr + gap + n_va)
    test = np.arange(start + n_tr + n_va + 2 * gap, n_volumes)
    spans = {"train": train, "val": val, "test": test}
    short = {k: len(v) for (k, v), f in zip(spans.items(), fractions) if f > 0 and len(v) < 2}
    if short:  # a correlation needs 2 volumes; a one-volume span would fail later with a message about array axes
        raise Eeg2fmriInputError(
            f"cannot split {n_volumes} volumes (first valid {first_valid}, gap {gap}) into fractions {fractions}: the "
            f"{'/'.join(short)} span would hold {'/'.join(map(str, short.values()))} volume(s), expected at least 2; "
            "use a longer recording, a shorter window/gap, or split by subject (protocol loso)."
        )
    return spans


def check_no_overlap(train_spans: list[tuple[float, float]], test_spans: list[tuple[float, float]], where: str = "split") -> None:
    """Raise if any test window's time span overlaps a training one (same run).

    Spans are (start, end) in seconds of the EEG window plus target.
    """
    if not train_spans or not test_spans:
        return
    tr = np.asarray(train_spans)
    for s, e in test_spans:
        if np.any((tr[:, 0] < e) & (s < tr[:, 1])):
            raise Eeg2fmriInputError(f"{where}: a test window [{s:.1f}, {e:.1f}] s overlaps a training window; increase the gap between spans.")
