"""eeg2fmri.evaluation."""
