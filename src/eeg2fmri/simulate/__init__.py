"""Ground-truth EEG-fMRI simulators (write BIDS + derivatives/groundtruth).

* :func:`simulate_dataset` -- prescribed band envelopes following a latent drive (``simulator.py``);
* :func:`simulate_neural_mass_dataset` -- an independent generator family: Jansen-Rit
  neural masses on a connectome, Balloon-Windkessel BOLD (``neural_mass.py``);
* :func:`groundtruth_ceilings` -- noise/oracle ceilings of a simulated run on the voxels of
  its prepared dataset (``groundtruth.py``; the evaluation reports them).
"""

from eeg2fmri.simulate.groundtruth import groundtruth_ceilings
from eeg2fmri.simulate.neural_mass import simulate_neural_mass_dataset
from eeg2fmri.simulate.simulator import (
    CHANNEL_ORDER,
    SimulationConfig,
    ceilings,
    load_groundtruth,
    simulate_dataset,
)

__all__ = ["CHANNEL_ORDER", "SimulationConfig", "ceilings", "groundtruth_ceilings", "load_groundtruth", "simulate_dataset", "simulate_neural_mass_dataset"]
