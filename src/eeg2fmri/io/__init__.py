"""Reading: pair EEG with BOLD runs (BIDS and published layouts), synchronise on markers."""

from eeg2fmri.io.bids import RunRecord, find_runs
from eeg2fmri.io.bold import read_bold
from eeg2fmri.io.eeg import read_eeg
from eeg2fmri.io.sync import SyncReport, volume_onsets

__all__ = ["RunRecord", "SyncReport", "find_runs", "read_bold", "read_eeg", "volume_onsets"]
