"""eeg2fmri.training."""
