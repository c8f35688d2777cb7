"""Shared helpers: logging, validation, atomic file output, randomness."""

from eeg2fmri.utils.atomic import atomic_dir, atomic_file
from eeg2fmri.utils.logs import logger, progress, set_log_level
from eeg2fmri.utils.rng import check_random_state
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_finite,
    check_positive,
    check_positive_int,
)

__all__ = [
    "Eeg2fmriInputError",
    "atomic_dir",
    "atomic_file",
    "check_choice",
    "check_finite",
    "check_positive",
    "check_positive_int",
    "check_random_state",
    "logger",
    "progress",
    "set_log_level",
]
