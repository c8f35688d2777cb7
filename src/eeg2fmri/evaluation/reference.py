"""Band-power windows for the reference ``ridge_hrf`` when a dataset holds STFT or raw windows.

``ridge_hrf`` reads band power; to show it on every report, a dataset
prepared with another representation gets a band-power view of the same
recordings, frames and volumes:

* STFT frames -> per band, the mean power (squared magnitude) of the bins
  inside the band, log-standardised per channel and band within each run (for
  log-power STFT frames, the mean of the standardised log power of the bins,
  re-standardised): the same frames, so the same windows;
* raw samples -> band envelopes of the (standardised) waveform at its rate,
  averaged over frames of ``tr / frames_per_tr`` anchored at the volume onsets
  exactly as prepared band-power frames are, log-standardised; windows of
  16 s + 1 TR of frames, ending with each volume's own frame.

The volumes scored are the same; :func:`bandpower_view` refuses (with the
reason, recorded in the report) when a test volume has no complete band-power
window or no band fits below the raw data's Nyquist frequency.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset, PreparedRun
from eeg2fmri.datasets.targets import Split, default_window
from eeg2fmri.datasets.windows import valid_volumes
from eeg2fmri.preprocessing import band_envelopes, bin_frames, standardize_features
from eeg2fmri.preprocessing.representations import get_representation

__all__ = ["bandpower_view"]


def _stft_bands(ds: PreparedDataset) -> tuple[list[PreparedRun], dict]:
    freqs = np.asarray(ds.freqs, dtype=float)
    bands = {k: v for k, v in ds.config.bands.items() if np.any((freqs >= v[0]) & (freqs < v[1]))}
    if not bands:
        raise ValueError(f"no band of {dict(ds.config.bands)} contains an STFT bin ({freqs.min():g}-{freqs.max():g} Hz)")
    runs = []
    for r in ds.runs:
        f = np.asarray(r.features, dtype=np.float64)  # (n, C, F)
        cols = []
        for lo, hi in bands.values():
            sel = (freqs >= lo) & (freqs < hi)
            cols.append(f[:, :, sel].mean(axis=2) if ds.config.stft_log else (f[:, :, sel] ** 2).mean(axis=2))
        bp = np.stack(cols, axis=2)
        feats = standardize_features(bp, log=False) if ds.config.stft_log else standardize_features(bp)
        runs.append(PreparedRun(r.key, r.subject, feats, r.window_end, r.bold, r.onsets))
    return runs, bands


def _raw_bands(ds: PreparedDataset) -> tuple[list[PreparedRun], dict]:
    rsf = float(ds.frame_rate)
    bands = {k: v for k, v in ds.config.bands.items() if 0 < v[0] < v[1] < rsf / 2}
    if not bands:
        raise ValueError(f"no band of {dict(ds.config.bands)} lies below the raw data's Nyquist frequency ({rsf / 2:g} Hz)")
    m = int(ds.config.frames_per_tr)
    flen = ds.tr / m
    runs = []
    for r in ds.runs:
        x = np.asarray(r.features, dtype=np.float32).T  # (C, n)
        dur = x.shape[1] / rsf
        on = np.asarray(r.onsets, dtype=np.float64)
        n_pre = int(math.floor(on[0] / flen + 1e-9))
        starts = np.concatenate([on[0] - flen * np.arange(n_pre, 0, -1), (on[:, None] + flen * np.arange(m)[None, :]).ravel()])
        keep = starts + flen <= dur + 1e-6
        n_in = int(keep[n_pre:].sum()) // m  # volumes whose frames all fit
        starts = starts[: n_pre + n_in * m]
        power = band_envelopes(x, rsf, bands)
        feats = standardize_features(np.transpose(bin_frames(power, rsf, starts, flen), (0, 2, 1)))
        window_end = n_pre + (np.arange(len(on)) + 1) * m
        window_end[n_in:] = np.iinfo(np.int64).max // 4  # volumes past the EEG: never valid
        runs.append(PreparedRun(r.key, r.subject, feats, window_end, r.bold, r.onsets))
    return runs, bands


def _cached_bands(ds: PreparedDataset, compute):
    """``compute(ds)``, kept on the dataset object: every fold of a benchmark derives the same band power once."""
    key = (ds.representation, repr(ds.config.to_dict()), tuple(id(r) for r in ds.runs))
    cache = ds.__dict__.setdefault("_bandpower_view_cache", {})
    if key not in cache:
        cache.clear()  # one entry: the dataset's current configuration
        cache[key] = compute(ds)
    return cache[key]


#: How each non-band-power representation becomes band power (evaluation-side: they read prepared runs).
def _tangent_bands(ds: PreparedDataset) -> tuple[list[PreparedRun], dict]:
    # the tangent representation's first n_bands entries per channel are the band-power representation itself
    n_b, n_ev = len(ds.config.bands), len(ds.config.event_names)

    def bands(f: np.ndarray) -> np.ndarray:  # (the event regressors, after the tangent block, follow the band power: a copy then)
        return f[:, :, :n_b] if not n_ev else np.concatenate([f[:, :, :n_b], f[:, :, f.shape[2] - n_ev :]], axis=2)

    runs = [PreparedRun(r.key, r.subject, bands(r.features), r.window_end, r.bold, r.onsets) for r in ds.runs]
    return runs, dict(ds.config.bands)


_BAND_VIEWS = {"stft": _stft_bands, "raw": _raw_bands, "tangent": _tangent_bands}


def bandpower_view(ds: PreparedDataset, split: Split) -> tuple[PreparedDataset, Split]:
    """A band-power version of an STFT, raw or tangent dataset, with the same volumes selected (for tangent
    data, its band-power block: the same numbers as a band-power preparation).

    Parameters
    ----------
    ds : PreparedDataset
        Prepared with ``representation="stft"`` or ``"raw"``.
    split : Split

    Returns
    -------
    ds_bp, split_bp : PreparedDataset, Split
        Band-power frames ``(n_frames, n_chans, n_bands)`` per run (BOLD and
        onsets shared) and the split with a band-power window (16 s + 1 TR);
        training and validation volumes without a complete window are left
        out.

    Raises
    ------
    ValueError
        With the reason when no band fits, the split has a lag, or a test
        volume has no complete band-power window.
    """
    to_bands = _BAND_VIEWS.get(ds.representation)
    if to_bands is None:
        raise ValueError(f"representation {ds.representation!r} is already band power or unknown")
    frame_based = get_representation(ds.representation).frame_based
    if not frame_based and split.lag:
        raise ValueError("the split has a lag, which has no band-power equivalent")
    runs, bands = _cached_bands(ds, to_bands)
    # frame-based representations keep their frames (the same windows); sample-based ones get frames of tr / frames_per_tr
    n_frames = split.n_frames if frame_based else default_window(ds.tr, ds.config.frames_per_tr / ds.tr)
    cfg = replace(ds.config, representation="bandpower", bands=dict(bands))
    view = replace(ds, runs=runs, config=cfg, frame_rate=ds.config.frames_per_tr / ds.tr, freqs=[float(np.mean(b)) for b in bands.values()])
    lag = int(split.lag) if frame_based else 0
    sel: dict[str, dict[int, np.ndarray]] = {}
    for name, parts in split.selections.items():
        sel[name] = {}
        for i, vols in parts.items():
            ok = np.isin(vols, valid_volumes(view.runs[i], n_frames, lag))
            if name == "test" and not ok.all():
                raise ValueError(f"{ds.runs[i].key}: {int((~ok).sum())} test volume(s) have no complete band-power window")
            if ok.any():
                sel[name][i] = np.asarray(vols)[ok]
    return view, Split(split.protocol, sel, int(n_frames), lag, split.gap, list(split.test_subjects), dict(split.excluded))
