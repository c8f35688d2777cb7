"""eeg2fmri.io."""
