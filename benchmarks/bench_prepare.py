"""Preparing a long recording: wall time, peak memory, disk footprint.

Writes a BIDS run of ``--minutes`` of ``--channels``-channel EEG at ``--sfreq`` Hz
(BrainVision, int16, R128 marker per volume) with matching BOLD (64x64x30, TR 2 s,
int16 .nii.gz), then runs ``eeg2fmri.datasets.prepare`` in a fresh process and prints:
wall time, peak resident memory against the EEG's float32 size, and the prepared dataset's
size on disk against its continuous arrays.

    python benchmarks/bench_prepare.py --minutes 60 --channels 64 --sfreq 1000 [--representation bandpower]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_brainvision(folder: Path, stem: str, n_ch: int, sfreq: float, n_samples: int, onsets_s: np.ndarray, rng) -> Path:
    names = [f"E{i + 1}" for i in range(n_ch)]
    res = 0.1  # uV per bit
    (folder / f"{stem}.vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\nMarkerFile={stem}.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={n_ch}\nSamplingInterval={1e6 / sfreq:.6f}\n\n[Binary Infos]\nBinaryFormat=INT_16\n\n[Channel Infos]\n"
        + "".join(f"Ch{i + 1}={n},,{res},µV\n" for i, n in enumerate(names))
    )
    marks = "".join(f"Mk{k + 2}=Response,R128,{int(round(o * sfreq)) + 1},1,0\n" for k, o in enumerate(onsets_s))
    (folder / f"{stem}.vmrk").write_text(
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n" + marks
    )
    chunk = int(60 * sfreq)
    t = np.arange(chunk) / sfreq
    with open(folder / f"{stem}.eeg", "wb") as f:
        for a in range(0, n_samples, chunk):
            n = min(chunk, n_samples - a)
            x = rng.standard_normal((n, n_ch)).astype(np.float32) * 100 + (200 * np.sin(2 * np.pi * 10 * t[:n]))[:, None]
            f.write(np.clip(x, -32000, 32000).astype("<i2").tobytes())
    return folder / f"{stem}.vhdr"


def write_dataset(root: Path, minutes: float, n_ch: int, sfreq: float, grid=(64, 64, 30), tr=2.0) -> dict:
    import nibabel as nib

    rng = np.random.default_rng(0)
    n_vol = int(minutes * 60 / tr)
    pre = 5.0
    n_samples = int((pre + n_vol * tr + 3.0) * sfreq)
    eeg_dir = root / "sub-01" / "eeg"
    func = root / "sub-01" / "func"
    eeg_dir.mkdir(parents=True)
    func.mkdir(parents=True)
    write_brainvision(eeg_dir, "sub-01_task-rest_eeg", n_ch, sfreq, n_samples, pre + np.arange(n_vol) * tr, rng)
    (eeg_dir / "sub-01_task-rest_channels.tsv").write_text("name\ttype\tunits\n" + "".join(f"E{i + 1}\tEEG\tµV\n" for i in range(n_ch)))
    yy, xx, zz = np.meshgrid(np.arange(grid[1]), np.arange(grid[0]), np.arange(grid[2]))
    brain = (((xx - grid[0] / 2) / (grid[0] * 0.4)) ** 2 + ((yy - grid[1] / 2) / (grid[1] * 0.45)) ** 2 + ((zz - grid[2] / 2) / (grid[2] * 0.45)) ** 2) < 1
    base = np.where(brain, 1000, 20).astype(np.float32)
    data = np.empty(grid + (n_vol,), dtype=np.int16)
    for a in range(0, n_vol, 100):
        n = min(100, n_vol - a)
        data[..., a : a + n] = (base[..., None] + rng.standard_normal(grid + (n,)).astype(np.float32) * 10).astype(np.int16)
    img = nib.Nifti1Image(data, np.diag([3.3, 3.3, 4.0, 1.0]))
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((3.3, 3.3, 4.0, tr))
    nib.save(img, func / "sub-01_task-rest_bold.nii.gz")
    (func / "sub-01_task-rest_bold.json").write_text(json.dumps({"RepetitionTime": tr, "TaskName": "rest"}))
    return {"n_volumes": n_vol, "n_samples": n_samples, "eeg_float32_bytes": n_samples * n_ch * 4}


CHILD = r"""
import json, resource, sys, time
from eeg2fmri.datasets import prepare
t = time.perf_counter()
out, _ = prepare(sys.argv[1], sys.argv[2], {"representation": sys.argv[3]}, progress_bar=False)
wall = time.perf_counter() - t
print(json.dumps({"wall_s": wall, "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--sfreq", type=float, default=1000.0)
    ap.add_argument("--representation", default="bandpower", choices=["bandpower", "stft", "raw"])
    ap.add_argument("--workdir", default=None, help="where to write the inputs (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp) / "bids"
        t0 = time.perf_counter()
        info = write_dataset(root, args.minutes, args.channels, args.sfreq)
        gen_s = time.perf_counter() - t0
        # import cost measured separately so the table shows the prepare work itself
        res = subprocess.run([sys.executable, "-c", CHILD, str(root), str(Path(tmp) / "prep"), args.representation], capture_output=True, text=True)
        if res.returncode:
            print(res.stderr)
            raise SystemExit(res.returncode)
        m = json.loads(res.stdout.strip().splitlines()[-1])
        prep = Path(tmp) / "prep"
        arrays = sum(f.stat().st_size for f in prep.glob("*.npy"))
        total = sum(f.stat().st_size for f in prep.iterdir())
        cont = sum(np.load(f, mmap_mode="r").nbytes for f in prep.glob("*.npy"))
    eeg32 = info["eeg_float32_bytes"]
    print(f"inputs: {args.minutes:g} min, {args.channels} ch at {args.sfreq:g} Hz ({info['n_samples']} samples), "
          f"BOLD 64x64x30 x {info['n_volumes']} volumes (generated in {gen_s:.0f} s)")
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| prepare wall time ({args.representation}) | {m['wall_s']:.1f} s | <= 20 s |")
    print(f"| peak memory / EEG float32 size | {m['peak_rss_bytes'] / 1e9:.2f} GB / {eeg32 / 1e9:.2f} GB = {m['peak_rss_bytes'] / eeg32:.2f}x | <= 2x |")
    print(f"| prepared on disk / continuous arrays | {total / 1e6:.1f} MB / {cont / 1e6:.1f} MB = {total / cont:.3f}x | <= 1.1x |")
    print(json.dumps({**m, **info, "disk_bytes": total, "npy_bytes": arrays, "continuous_bytes": cont}))


if __name__ == "__main__":
    main()
