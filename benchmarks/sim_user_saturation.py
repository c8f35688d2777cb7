"""Variants of a ``sim_user_5khz.py`` dataset for the non-steady-state test (session 16): the first 10 volumes and
their markers removed, so that the EEG starts about 20 s before the scan (the model's EEG window then reaches the
first volumes), with or without T1 saturation of the new first three volumes (1.6x, 1.25x, 1.07x).

    python benchmarks/sim_user_saturation.py SRC_BIDS OUT 1     # saturated
    python benchmarks/sim_user_saturation.py SRC_BIDS OUT 0     # the same without saturation

Subjects 01 and 03 (R128 markers), both runs.
"""
import os
import re
import shutil
import sys

import nibabel as nib
import numpy as np

if len(sys.argv) != 4 or sys.argv[1].startswith("-"):
    print(__doc__)
    sys.exit(0 if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help") else 2)
src, out, sat = sys.argv[1], sys.argv[2], int(sys.argv[3])
D = 10
for sub in ["01", "03"]:
    for run in [1, 2]:
        b = f"sub-{sub}_ses-01_task-rest_run-{run}"
        e, f = f"{out}/sub-{sub}/ses-01/eeg", f"{out}/sub-{sub}/ses-01/func"
        os.makedirs(e, exist_ok=True)
        os.makedirs(f, exist_ok=True)
        shutil.copy(f"{src}/sub-{sub}/ses-01/eeg/{b}_eeg.eeg", f"{e}/{b}_eeg.eeg")
        for ext in ["_eeg.json", "_channels.tsv", "_eeg.vhdr"]:
            shutil.copy(f"{src}/sub-{sub}/ses-01/eeg/{b}{ext}", f"{e}/{b}{ext}")
        lines = open(f"{src}/sub-{sub}/ses-01/eeg/{b}_eeg.vmrk").read().splitlines()
        mk = [x for x in lines if x.startswith("Mk")]
        head = [x for x in lines if not x.startswith("Mk")]
        mk = [re.sub(r"^Mk\d+=", f"Mk{i + 1}=", x) for i, x in enumerate(mk[D:])]
        open(f"{e}/{b}_eeg.vmrk", "w").write("\n".join(head + mk) + "\n")
        im = nib.load(f"{src}/sub-{sub}/ses-01/func/{b}_bold.nii.gz")
        d = im.get_fdata(dtype=np.float32)[..., D:]
        if sat:
            d[..., :3] *= np.array([1.6, 1.25, 1.07], np.float32)
        n = nib.Nifti1Image(d, im.affine, im.header)
        n.set_data_dtype(np.int16)
        nib.save(n, f"{f}/{b}_bold.nii.gz")
        shutil.copy(f"{src}/sub-{sub}/ses-01/func/{b}_bold.json", f"{f}/{b}_bold.json")
for x in ["dataset_description.json", "participants.tsv"]:
    shutil.copy(f"{src}/{x}", f"{out}/{x}")
