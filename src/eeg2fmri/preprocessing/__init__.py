"""eeg2fmri.preprocessing."""
