"""Splits that never leak: temporal spans with a gap, or whole subjects."""

from __future__ import annotations

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["temporal_split", "check_no_overlap"]


def temporal_split(n_volumes: int, first_valid: int, *, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), gap: int = 0,
                   test_gap: bool = True) -> dict[str, np.ndarray]:
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
    test_gap : bool
        With a test share of 0: ``False`` reserves no gap for the empty test
        span and the validation span runs to the end of the run (a model to
        deploy, and the training runs of the subject-wise protocols since
        session 23); ``True`` leaves that gap unused (those training runs
        before session 23: the LOSO-spans and k-fold numbers measured then).

    Returns
    -------
    split : dict with ``train``, ``val``, ``test`` volume indices.
    """
    if min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:  # (said apart from a recording too short: user test 8)
        raise Eeg2fmriInputError(f"fractions {tuple(fractions)}: expected three shares >= 0 (train, validation, test) that sum to 1, "
                                 f"got a sum of {sum(fractions):g}; e.g. (0.6, 0.2, 0.2).")
    n_gaps = 2 if fractions[2] > 0 or test_gap else 1
    usable = n_volumes - first_valid - n_gaps * gap
    if usable < 3:
        raise Eeg2fmriInputError(
            f"cannot split {n_volumes} volumes (first valid {first_valid}, gap {gap}) into fractions {fractions}; "
            "use a longer recording or a shorter window/gap."
        )
    n_tr = int(round(fractions[0] * usable))
    n_va = int(round(fractions[1] * usable))
    start = first_valid
    train = np.arange(start, start + n_tr)
    val = np.arange(start + n_tr + gap, start + n_tr + gap + n_va)
    if n_gaps == 2:
        test = np.arange(start + n_tr + n_va + 2 * gap, n_volumes)
    else:  # the validation span runs to the end of the run
        val = np.arange(start + n_tr + gap, n_volumes)
        test = np.arange(0)
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
