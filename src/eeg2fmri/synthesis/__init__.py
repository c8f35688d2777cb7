"""Synthesis: EEG-only recordings -> 4D BOLD NIfTI."""

from eeg2fmri.synthesis.synthesize import synthesize

__all__ = ["synthesize"]
