"""Preprocessing of EEG (channels, filters, envelopes) and BOLD (mask, detrend, standardise)."""

from eeg2fmri.preprocessing.bold import Standardizer, compute_mask, detrend
from eeg2fmri.preprocessing.eeg import DEFAULT_BANDS, band_envelopes, bin_frames, clean_eeg, standardize_features

__all__ = ["DEFAULT_BANDS", "Standardizer", "band_envelopes", "bin_frames", "clean_eeg", "compute_mask", "detrend", "standardize_features"]
