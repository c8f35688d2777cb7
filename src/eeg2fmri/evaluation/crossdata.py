"""Cross-dataset evaluation: train on one prepared dataset, test on another.

The two datasets must share the representation (same preprocessing, TR and
frame rate) and the voxel grid; channels are matched by name as prepare and
synthesize match them (case folded, EDF decorations such as ``EEG Fp1-REF`` ignored) and only the channels common to both are used, in the
training dataset's order (reported); too small an overlap is refused. Voxels
are those inside both brain masks. The test set is every volume of the test
dataset with a complete EEG window; its targets are detrended and scaled
with its own runs' statistics -- unlike a subject held out of training within
a dataset, whose targets the training subjects' scale sets -- so R², RMSE,
MAE and PSNR across datasets are on the test dataset's own scale (the
evaluation's ``settings.units`` says so; user test 21).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset, PreparedRun
from eeg2fmri.datasets.targets import Split, drop_bad_windows, make_split
from eeg2fmri.datasets.windows import valid_volumes
from eeg2fmri.preprocessing.representations import get_representation
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["all_test_split", "check_disjoint", "check_same_space", "common_channels", "cross_dataset_split", "restrict_dataset"]

#: Fewest channels in common accepted by default, and the fewest as a share of the smaller montage.
MIN_CHANNELS = 8
MIN_FRACTION = 0.5


def common_channels(
    train: list[str], test: list[str], *, min_channels: int = MIN_CHANNELS, min_fraction: float = MIN_FRACTION, where: str = "cross-dataset"
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Channels present in both montages, matched by :func:`~eeg2fmri.io.channel_names.channel_key` (case folded, EDF
    prefixes and reference tags ignored: ``EEG FP1-REF`` is ``Fp1``), as prepare and synthesize match names.

    Parameters
    ----------
    train, test : list of str
        Channel names of the training and test data.
    min_channels : int
        Refuse fewer common channels than this.
    min_fraction : float
        Refuse fewer common channels than this share of the smaller montage.

    Returns
    -------
    train_picks, test_picks : list of str
        The common channels under each dataset's own names, in the training order.
    report : dict
        ``n_train``, ``n_test``, ``n_common``, ``common``, ``only_train``, ``only_test``.

    Raises
    ------
    Eeg2fmriInputError
        Too few channels in common (the message lists the overlap and the fix).
    """
    from eeg2fmri.io.channel_names import channel_key

    # (user test 54: an EDF site's "EEG FP1-REF" names matched 10 of 31 channels of a BrainVision site's "Fp1"...)
    by_key = {channel_key(c): c for c in test}
    train_picks = [c for c in train if channel_key(c) in by_key]
    test_picks = [by_key[channel_key(c)] for c in train_picks]
    train_keys = {channel_key(c) for c in train}
    need = max(int(min_channels), int(np.ceil(min_fraction * min(len(train), len(test)))))
    report = {"n_train": len(train), "n_test": len(test), "n_common": len(train_picks), "common": train_picks,
              "only_train": [c for c in train if channel_key(c) not in by_key],
              "only_test": [c for c in test if channel_key(c) not in train_keys], "min_required": need}
    if len(train_picks) < need:
        raise Eeg2fmriInputError(
            f"{where}: expected at least {need} EEG channels in common (>= {min_channels} and >= {min_fraction:g} of the smaller montage), "
            f"found {len(train_picks)} of {len(train)} (training) and {len(test)} (test): {train_picks[:12]}; the names are matched ignoring case "
            "and EDF decorations (EEG Fp1-REF is Fp1), so prepare the test dataset with the training dataset's channels (prepare option "
            "channels: [names]; missing ones are interpolated), or lower min_channels (benchmark --min-channels, which then sets the "
            "fewest alone) if a small overlap is intended."
        )
    logger.info("%s: %d common channel(s); dropped %d training-only and %d test-only", where, len(train_picks), len(report["only_train"]), len(report["only_test"]))
    return train_picks, test_picks, report


def check_same_space(train: PreparedDataset, test: PreparedDataset, *, where: str = "cross-dataset") -> None:
    """Refuse datasets whose EEG representation or voxel grid differ.

    Raises
    ------
    Eeg2fmriInputError
        Naming every difference (representation, TR, frame rate, bands or
        bins, grid shape, affine) and how to fix it.
    """
    diffs = []
    if train.representation != test.representation:
        diffs.append(f"representation {train.representation!r} vs {test.representation!r}")
    if abs(train.tr - test.tr) > 1e-6:
        diffs.append(f"TR {train.tr} vs {test.tr} s")
    if abs(train.frame_rate - test.frame_rate) > 1e-9:
        diffs.append(f"frame rate {train.frame_rate} vs {test.frame_rate} Hz")
    if train.representation in ("bandpower", "tangent") and dict(train.config.bands) != dict(test.config.bands):
        diffs.append(f"bands {dict(train.config.bands)} vs {dict(test.config.bands)}")
    if get_representation(train.representation).rate_dependent_freqs:  # STFT bins
        fa, fb = train.freqs, test.freqs
        if (fa is None) != (fb is None) or (fa is not None and (len(fa) != len(fb) or not np.allclose(fa, fb))):
            diffs.append(f"STFT bins ({0 if fa is None else len(fa)} vs {0 if fb is None else len(fb)})")
    slow_tr, slow_te = getattr(train.config, "slow_band", None), getattr(test.config, "slow_band", None)
    if slow_tr != slow_te:  # (one more band-power entry, or the same entry of another band: user test 59)
        diffs.append(f"slow_potential {list(slow_tr) if slow_tr else 'none'} vs {list(slow_te) if slow_te else 'none'}")
    if (train.config.events or None) != (test.config.events or None):  # (same count, other meaning: silently wrong columns)
        diffs.append(f"event regressors {train.config.events or 'none'} vs {test.config.events or 'none'}")
    elif (train.config.event_durations or None) != (test.config.event_durations or None):  # (blocks in one, impulses in the other)
        diffs.append(f"event durations {train.config.event_durations or 'none'} vs {test.config.event_durations or 'none'}")
    if train.mask.shape != test.mask.shape:
        diffs.append(f"grid {train.mask.shape} vs {test.mask.shape}")
    elif not np.allclose(train.affine, test.affine, atol=1e-3):
        diffs.append("affine (voxel-to-world)")
    if diffs:
        grid = any(d.startswith(("grid", "affine")) for d in diffs)
        fixes = []
        if abs(train.tr - test.tr) > 1e-6:  # (user test 32: the grid advice was given for datasets of two TRs on one grid)
            fixes.append(f"for the TRs, prepare both with the prepare option resample_tr (benchmark: --train-config "
                         f"'{{\"data\": {{\"prepare\": {{\"resample_tr\": {train.tr:g}}}}}}}' prepares both so; eeg2fmri prepare "
                         f"--config '{{\"resample_tr\": {train.tr:g}}}')")
        if grid:
            fixes.append("for the grid, put the BOLD of both on one grid: prepare the test dataset onto the training dataset's grid with "
                         "the prepare option grid set to its mask (--config '{\"grid\": \"TRAINING_PREPARED/mask.nii.gz\"}'; both "
                         "datasets in one space such as MNI), or prepare both from one space (e.g. fMRIPrep's MNI152NLin2009cAsym "
                         "outputs at one resolution)")
        if train.representation in ("bandpower", "tangent") and dict(train.config.bands) != dict(test.config.bands):
            # (user test 54: both prepared with the same config; bands "auto" caps the top band by each recording's rate and
            # low-pass edge, so two sites got 55-95 and 55-80 Hz, and "prepare both with the same options" blamed the user)
            import json

            fixes.append("for the bands, give both datasets the same bands explicitly (bands 'auto', the default, adapts the top band "
                         "to each recording's sampling rate and low-pass edge): prepare option bands: "
                         + json.dumps({k: [float(a), float(b)] for k, (a, b) in dict(train.config.bands).items()})
                         + " (the training dataset's; lower a top edge above the test recordings' low-pass)")
        if slow_tr != slow_te:
            fixes.append("for the slow potential, prepare both with the same prepare option slow_potential ("
                         + (f"--config '{{\"slow_potential\": {list(slow_tr)}}}'" if slow_tr else "or both without it") + ")")
        fixes.append(("otherwise " if fixes else "") + "prepare both with the same options (eeg2fmri prepare --config)")
        raise Eeg2fmriInputError(f"{where}: expected datasets prepared alike on one voxel grid, found differences: {'; '.join(diffs)}; "
                                 + "; ".join(fixes) + ".")


def check_disjoint(train: PreparedDataset, test: PreparedDataset, *, where: str = "cross-dataset") -> None:
    """Refuse a test dataset that contains recordings of the training dataset.

    Recordings are compared by the input checksums stored in the manifests'
    provenance (EEG and BOLD files); datasets without them are not checked.

    Raises
    ------
    Eeg2fmriInputError
        Naming the shared runs.
    """
    def sums(ds: PreparedDataset) -> dict[str, str]:
        out = {}
        for key, v in (ds.provenance.get("inputs") or {}).items():
            for k in ("eeg_sha1", "bold_sha1"):
                if v.get(k):
                    out[v[k]] = key
        return out

    a, b = sums(train), sums(test)
    shared = sorted({b[h] for h in set(a) & set(b)})
    if shared:
        raise Eeg2fmriInputError(
            f"{where}: the test dataset holds recordings of the training dataset ({shared[:5]}{' ...' if len(shared) > 5 else ''}); "
            "a cross-dataset test needs other recordings; use --protocol within or loso to hold out part of one dataset."
        )


def restrict_dataset(ds: PreparedDataset, channels: list[str], voxels: np.ndarray | None = None, *, names: list[str] | None = None,
                     subject_prefix: str = "") -> PreparedDataset:
    """A copy of a prepared dataset with a subset of channels (and voxels).

    Parameters
    ----------
    ds : PreparedDataset
    channels : list of str
        Channels to keep (names of ``ds``), in the wanted order.
    voxels : array of bool, shape ``ds.mask.shape`` | None
        New brain mask (a subset of ``ds.mask``); ``None`` keeps the mask.
    names : list of str | None
        Names to give the kept channels (e.g. the training dataset's spelling).
    subject_prefix : str
        Prepended to every subject label (so that the subjects of a test
        dataset are never taken for training subjects with the same label).

    Returns
    -------
    ds : PreparedDataset
        Features and BOLD copied in memory (the channel subset of every run).
    """
    idx = [ds.ch_names.index(c) for c in channels]
    keep_vox = None
    mask = ds.mask
    if voxels is not None:
        voxels = np.asarray(voxels, dtype=bool)
        if (voxels & ~ds.mask).any():
            raise Eeg2fmriInputError("restrict_dataset: expected voxels inside the dataset's mask; intersect the masks first.")
        keep_vox = voxels[ds.mask]
        mask = voxels
    runs = []
    for r in ds.runs:
        feats = np.ascontiguousarray(np.asarray(r.features)[:, idx])
        bold = None if r.bold is None else np.asarray(r.bold)
        if bold is not None and keep_vox is not None:
            bold = np.ascontiguousarray(bold[:, keep_vox])
        runs.append(PreparedRun(r.key, subject_prefix + r.subject, feats, r.window_end, bold, r.onsets, r.bad_spans))
    return replace(ds, runs=runs, mask=mask, ch_names=list(names if names is not None else channels))


def all_test_split(ds: PreparedDataset, n_frames: int, lag: int = 0) -> Split:
    """A split whose test set is every volume with a complete EEG window (no training data)."""
    test = {}
    for i, run in enumerate(ds.runs):
        v = valid_volumes(run, n_frames, lag)
        if len(v):
            test[i] = v
    if not test:
        raise Eeg2fmriInputError(f"test dataset: no volume has a complete {n_frames}-frame EEG window; use longer runs or a shorter window.")
    sel = {"train": {}, "val": {}, "test": test}
    excluded = drop_bad_windows(ds, sel, int(n_frames), int(lag))
    return Split("cross-dataset", sel, int(n_frames), int(lag), 0, list(ds.subjects), excluded)


def cross_dataset_split(
    train: PreparedDataset, test: PreparedDataset, *, min_channels: int = MIN_CHANNELS, min_fraction: float = MIN_FRACTION,
    n_frames: int | None = None, lag: int = 0,
) -> tuple[PreparedDataset, Split, PreparedDataset, Split, dict[str, Any]]:
    """Restrict two datasets to their common channels and voxels, and split them.

    Parameters
    ----------
    train, test : PreparedDataset
    min_channels, min_fraction
        See :func:`common_channels`.
    n_frames : int | None
        Window length (default: 16 s + 1 TR).
    lag : int

    Returns
    -------
    train_ds, train_split, test_ds, test_split, info
        The training data on the common channels and voxels with a temporal
        split (first 80% to fit, the last 20% to choose hyperparameters, a
        gap between), the test data on the same channels (renamed to the
        training names; subjects labelled ``test-<label>``) and voxels with
        every complete window as test set, and a description of the mapping.
    """
    check_same_space(train, test)
    check_disjoint(train, test)
    tr_picks, te_picks, report = common_channels(train.ch_names, test.ch_names, min_channels=min_channels, min_fraction=min_fraction)
    inter = train.mask & test.mask
    if not inter.any():
        raise Eeg2fmriInputError("cross-dataset: the two brain masks share no voxel; check that both datasets are on the same grid and space.")
    a = restrict_dataset(train, tr_picks, inter)
    b = restrict_dataset(test, te_picks, inter, names=tr_picks, subject_prefix="test-")
    split_a = make_split(a, "within", n_frames=n_frames, lag=lag, fractions=(0.8, 0.2, 0.0))
    split_a.selections["test"] = {}
    split_b = all_test_split(b, split_a.n_frames, split_a.lag)
    info = {"channels": report, "n_voxels": int(inter.sum()), "n_voxels_train_mask": int(train.mask.sum()), "n_voxels_test_mask": int(test.mask.sum()),
            "train": {"subjects": train.subjects, "runs": len(train.runs), "provenance": train.provenance.get("bids_root")},
            "test": {"subjects": test.subjects, "runs": len(test.runs), "provenance": test.provenance.get("bids_root")}}
    return a, split_a, b, split_b, info

