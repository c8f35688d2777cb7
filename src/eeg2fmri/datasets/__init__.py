"""Prepared datasets (continuous arrays stored once), windows and leak-free splits."""

from eeg2fmri.datasets.prepared import (
    PrepareConfig,
    PreparedDataset,
    PreparedRun,
    eeg_to_frames,
    load_prepared,
    prepare_dataset,
)
from eeg2fmri.datasets.splits import check_no_overlap, temporal_split

__all__ = ["PrepareConfig", "PreparedDataset", "PreparedRun", "check_no_overlap", "eeg_to_frames", "load_prepared", "prepare_dataset", "temporal_split"]
