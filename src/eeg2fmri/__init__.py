"""eeg2fmri: synthesise fMRI (BOLD) from EEG.

Learn from simultaneous EEG-fMRI recordings, evaluate honestly, and turn
EEG-only recordings into fMRI-like 4D NIfTI images.
"""

from eeg2fmri.utils.logs import logger, set_log_level

__version__ = "0.1.0"

__all__ = ["__version__", "logger", "set_log_level"]
