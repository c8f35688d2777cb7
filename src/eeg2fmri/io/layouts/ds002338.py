"""OpenNeuro ds002338 (XP2): EEG-fMRI motor-imagery neurofeedback, Lioi et al. 2020."""

from __future__ import annotations

from eeg2fmri.io.layouts._base import register_layout
from eeg2fmri.io.layouts._lioi import LioiLayout


@register_layout("ds002338")
class Ds002338Layout(LioiLayout):
    """XP2: 17 subject folders (xp201-xp222), TR 1 s, tasks MIpre, 1dNF/2dNF runs 1-3, MIpost."""

    PREFIX = "xp2"
    TITLE = "ds002338 (XP2) motor-imagery neurofeedback (Lioi 2020): 17 subjects, BrainVision 5 kHz / eeg_pp 200 Hz, TR 1 s"
    DESCRIPTION = (
        "As ds002336 but XP2: sub-xp2NN/func/sub-*_task-T[_run-0R]_bold.nii.gz, sub-xp2NN/eeg/..._eeg.vhdr and "
        "derivatives/sub-xp2NN/eeg_pp/d_sub-*_task-T[_run-0R]_eeg_pp.vhdr (note the 'd_' prefix), T in MIpre, "
        "1dNF or 2dNF (runs 01-03), MIpost; BOLD covers the upper half of the brain (16 slices), TR 1 s from the "
        "sidecar. eeg='pp' (default) places the corrected 200 Hz segment with the raw 'R128' markers shifted to its "
        "first 'S 99', keeping the volumes it covers; eeg='raw' uses the 5 kHz recording. ECG is typed ecg and "
        "dropped. Known gaps are skipped with a warning: xp202 has no MIpre eeg_pp, xp211 no 1dNF run-02 eeg_pp, "
        "xp219 no 1dNF run-03 BOLD, xp220 has an extra 1dNF run-04 BOLD without EEG and a stray "
        "d_sub-xp220_NF4_eeg_pp.vhdr without a task (ignored). Synthesising from an eeg_pp file: its first 'R128' is not the "
        "scan's volume 0; synthesize finds which volume it is (see ds002336)."
    )
    NEEDS = (
        "sub-xp2NN/func/sub-xp2NN_task-T[_run-0R]_bold.nii.gz (+ _bold.json)",
        "sub-xp2NN/eeg/sub-xp2NN_task-T[_run-0R]_eeg.vhdr + .vmrk (+ .eeg for eeg='raw')",
        "derivatives/sub-xp2NN/eeg_pp/d_sub-xp2NN_task-T[_run-0R]_eeg_pp.vhdr + .vmrk + .dat (eeg='pp', default)",
    )
