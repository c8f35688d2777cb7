"""eeg2fmri.plotting."""
