"""OpenNeuro ds002336 (XP1): EEG-fMRI motor-imagery neurofeedback, Lioi et al. 2020."""

from __future__ import annotations

from eeg2fmri.io.layouts._base import register_layout
from eeg2fmri.io.layouts._lioi import LioiLayout


@register_layout("ds002336")
class Ds002336Layout(LioiLayout):
    """XP1: 10 subjects (xp101-xp110), TR 2 s, tasks motorloc/MIpre/eegNF/fmriNF/eegfmriNF/MIpost."""

    PREFIX = "xp1"
    TITLE = "ds002336 (XP1) motor-imagery neurofeedback (Lioi 2020): 10 subjects, BrainVision 5 kHz / eeg_pp 200 Hz, TR 2 s"
    DESCRIPTION = (
        "The OpenNeuro snapshot: sub-xp1NN/func/sub-*_task-T_bold.nii.gz (+ .json), sub-xp1NN/eeg/sub-*_task-T_eeg.vhdr "
        "(+ .vmrk, .eeg; BrainVision Recorder, 5 kHz, 64 channels with ECG as channel 32) and "
        "derivatives/sub-xp1NN/eeg_pp/sub-*_task-T_eeg_pp.vhdr (+ .vmrk, .dat; Analyzer: gradient and BCG corrected, "
        "200 Hz), T in motorloc, MIpre, eegNF, fmriNF, eegfmriNF, MIpost. Runs are paired by entities, so fmriNF never "
        "picks eegfmriNF; an acq- label is one of them, as in the bids layout (files that differ only by it are separate "
        "runs; on both files it must be the same; an EEG without one beside BOLD files that differ by it is refused). "
        "By default (eeg='pp') the corrected eeg_pp is used; it starts at the first 'S 99' (rest) marker, so volume "
        "onsets are the raw recording's 'R128' markers (one per volume; only the raw .vhdr/.vmrk are needed) shifted "
        "to that start, and only volumes the segment covers are kept (the first one or two fall before it; cross-checked "
        "against R128 markers inside eeg_pp when there are any [I: not confirmed that eeg_pp keeps them]). eeg='raw' "
        "uses the 5 kHz recording and its R128 markers directly (gradient artifacts present). TR from the BOLD sidecar "
        "(2 s); ECG is typed ecg and dropped. Known gaps are skipped with a warning: xp101, xp104, xp109 have no MIpre/MIpost EEG; xp102 has no eegNF BOLD and no motorloc eeg_pp. "
        "Synthesising from an eeg_pp file (eeg2fmri synthesize --first-onset markers): its first 'R128' is the scan's "
        "volume 1 or 2, not 0 (the segment starts after volume 0); synthesize finds which from the raw markers and the BOLD "
        "beside it and prints the measured volume of every output volume (--first-marker-volume N overrides). "
        "Subjects are scanned in their own native spaces; to pool them, run fMRIPrep and pass derivatives=DIR (and "
        "space=S when it wrote several): BOLD then comes from DIR/sub-*/func/*_space-S_desc-preproc_bold.nii.gz."
    )
    NEEDS = (
        "sub-xp1NN/func/sub-xp1NN_task-T_bold.nii.gz (+ _bold.json)",
        "sub-xp1NN/eeg/sub-xp1NN_task-T_eeg.vhdr + .vmrk (+ .eeg for eeg='raw')",
        "derivatives/sub-xp1NN/eeg_pp/sub-xp1NN_task-T_eeg_pp.vhdr + .vmrk + .dat (eeg='pp', default)",
    )
