"""Preprocessing of EEG (channels, filters, envelopes, representations) and BOLD (mask, grid, confounds, atlas)."""

from eeg2fmri.preprocessing.artifacts import check_gradient_artifacts
from eeg2fmri.preprocessing.atlas import Atlas
from eeg2fmri.preprocessing.bold import Standardizer, compute_mask, detrend
from eeg2fmri.preprocessing.eeg import (
    DEFAULT_BANDS,
    auto_bands,
    band_envelopes,
    bin_frames,
    clean_eeg,
    standardize_features,
)
from eeg2fmri.preprocessing.representations import (
    RobustScaler,
    raw_continuous,
    robust_standardize,
    stft_frames,
)
from eeg2fmri.preprocessing.volumes import (
    MOTION_PARAMS,
    find_confounds,
    mni_mask,
    read_confounds,
    regress_confounds,
    resample_bold,
)

__all__ = [
    "DEFAULT_BANDS",
    "auto_bands",
    "MOTION_PARAMS",
    "Atlas",
    "RobustScaler",
    "Standardizer",
    "band_envelopes",
    "bin_frames",
    "check_gradient_artifacts",
    "clean_eeg",
    "compute_mask",
    "detrend",
    "find_confounds",
    "mni_mask",
    "raw_continuous",
    "read_confounds",
    "regress_confounds",
    "resample_bold",
    "robust_standardize",
    "standardize_features",
    "stft_frames",
]
