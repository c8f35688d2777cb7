"""Prepared datasets (continuous arrays stored once), windows and leak-free splits."""

from eeg2fmri.datasets.prepared import (
    PrepareConfig,
    PreparedDataset,
    PreparedRun,
    eeg_representation,
    load_prepared,
    prepare,
    prepare_dataset,
    select_subjects,
)
from eeg2fmri.datasets.splits import check_no_overlap, temporal_split
from eeg2fmri.datasets.windows import WindowDataset

__all__ = [
    "PrepareConfig",
    "PreparedDataset",
    "PreparedRun",
    "WindowDataset",
    "check_no_overlap",
    "eeg_representation",
    "load_prepared",
    "prepare",
    "prepare_dataset",
    "select_subjects",
    "temporal_split",
]
