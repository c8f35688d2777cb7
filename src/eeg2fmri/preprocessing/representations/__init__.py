"""EEG representations computed once on continuous data (windows are views into them).

One module per representation, each registering one :class:`Representation` object
(whole-recording computation, the chunked computation's pieces, window geometry, DataSpec
fields), looked up by name with :func:`get_representation`:

* :mod:`.bandpower` (``"bandpower"``) -- log-standardised band-power envelopes averaged over
  frames anchored at the volume onsets: ``(n_frames, n_chans, n_bands)``.
* :mod:`.stft` (``"stft"``) -- :func:`stft_frames`, magnitude (or log power) spectrum of
  non-overlapping frames anchored at the volume onsets (one frame per TR by default, as in
  the EEG-to-fMRI package of Calhas & Henriques), continuous along time:
  ``(n_frames, n_chans, n_freqs)``.
* :mod:`.raw` (``"raw"``) -- :func:`raw_continuous`, the (optionally resampled) waveform,
  time first: ``(n_samples, n_chans)``.
* :mod:`.tangent` (``"tangent"``) -- band power plus band covariances in the tangent space at the
  recording's mean (re-centred Riemannian features, which undo volume conduction for linear
  models): ``(n_frames, n_chans, n_bands * (1 + n_chans))``.
* :mod:`.scaling` -- :class:`RobustScaler` / :func:`robust_standardize`, per-channel
  median/IQR scaling whose statistics can be stored and re-applied to other runs.

A new representation is one module here defining and registering its object, imported
below (see ARCHITECTURE.md).
"""

from __future__ import annotations

from eeg2fmri.preprocessing.representations._checks import _check_data_2d
from eeg2fmri.preprocessing.representations.bandpower import BANDPOWER, envelope_rate
from eeg2fmri.preprocessing.representations.raw import RAW, raw_continuous
from eeg2fmri.preprocessing.representations.registry import (
    Representation,
    get_representation,
    list_representations,
    register_representation,
)
from eeg2fmri.preprocessing.representations.scaling import (
    NORMAL_IQR,
    RobustScaler,
    robust_standardize,
)
from eeg2fmri.preprocessing.representations.stft import (
    _BLOCK_ELEMENTS,
    _JITTER_TOLERANCE,
    STFT,
    StftFrames,
    _check_onsets,
    stft_frames,
)
from eeg2fmri.preprocessing.representations.tangent import TANGENT, split_tangent

__all__ = [
    "BANDPOWER",
    "NORMAL_IQR",
    "RAW",
    "STFT",
    "TANGENT",
    "Representation",
    "RobustScaler",
    "StftFrames",
    "envelope_rate",
    "get_representation",
    "list_representations",
    "raw_continuous",
    "register_representation",
    "robust_standardize",
    "split_tangent",
    "stft_frames",
]

# the former single module's private helpers stay reachable
_PRIVATE = (_check_data_2d, _check_onsets, _BLOCK_ELEMENTS, _JITTER_TOLERANCE)
