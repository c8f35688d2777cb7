"""eeg2fmri.synthesis."""
