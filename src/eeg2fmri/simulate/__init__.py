"""Ground-truth EEG-fMRI simulator (writes BIDS + derivatives/groundtruth)."""

from eeg2fmri.simulate.simulator import (
    CHANNEL_ORDER,
    SimulationConfig,
    ceilings,
    load_groundtruth,
    simulate_dataset,
)

__all__ = ["CHANNEL_ORDER", "SimulationConfig", "ceilings", "load_groundtruth", "simulate_dataset"]
