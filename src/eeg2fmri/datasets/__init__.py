"""eeg2fmri.datasets."""
