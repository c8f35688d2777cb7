"""eeg2fmri.simulate."""
