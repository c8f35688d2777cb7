"""Synthesis speed and memory: EEG recording -> 4D NIfTI with the default model (ridge_hrf).

Builds a ``ridge_hrf`` model for 64 EEG channels (band power, the default ``bands="auto"``: 6 bands at 500 Hz, TR 2 s,
window 16 s + 1 TR) on a 64 x 64 x 30 grid with about 37,000 in-mask voxels (NODDI: about 30,000)
(fitted on random windows: the cost of synthesis does not depend on the
weights), writes synthetic 64-channel EEG at 500 Hz (FIF, read lazily) of 10
and 30 minutes, and times ``synthesize`` on each in a fresh process:

* wall time of the whole call (reading, streaming features, prediction,
  writing and gzip-compressing the NIfTI);
* peak memory traced by ``tracemalloc`` during the call (NumPy and Python
  allocations) and the peak resident set size during the call (Linux
  ``VmHWM``, reset just before it; it includes the interpreter and the
  libraries, see the "RSS imports" column);
* the seconds of every step (:mod:`eeg2fmri.utils.timing`) in a third call in
  the same process: reading the EEG, checks, resampling, filters,
  re-reference, band-power envelopes and frame means, standardisation, model
  loading and prediction, NIfTI volumes (scatter, plus waiting for the
  compression threads) and the NIfTI finish (last gzip members, rename). With
  the torch signal processing on a GPU every step waits for the device before
  its clock stops; the reading runs in a thread ahead of the computation, so
  "read" is only the time the computation waited for it.

Usage::

    python benchmarks/bench_synthesis.py [--minutes 10 30] [--threads 2] [--out DIR] [--model eeg2fmri_net] [--device cuda]
                                         [--dsp-device auto|cpu|cuda] [--nii]

``x real time``: recording length / the warm call's wall time (``again s``).
``--dsp-device``: ``synthesize(dsp_device=...)``, default ``auto`` (the GPU of
``--device`` when it is one). ``--nii``: write ``.nii`` instead of ``.nii.gz``.

Threads default to 2 (OpenBLAS/OMP/torch); the numbers in docs/evaluation.md
were measured on a shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

N_CHANNELS = 64
SFREQ = 500.0
GRID = (64, 64, 30)


def _make_model(folder: Path, name: str = "ridge_hrf") -> Path:
    import numpy as np

    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.datasets.targets import default_window
    from eeg2fmri.models import DataSpec, build_model, save_model

    out = folder / f"model_{name}"
    if (out / "model.json").exists():
        return out
    rng = np.random.default_rng(0)
    cfg = PrepareConfig().resolved(SFREQ)  # bands="auto": the bands of EEG at SFREQ (with high gamma at 500 Hz)
    tr = 2.0
    n_frames = default_window(tr, cfg.frames_per_tr / tr)
    ii, jj, kk = np.meshgrid(*[np.linspace(-1, 1, s) for s in GRID], indexing="ij")
    mask = (ii**2 / 0.8 + jj**2 / 0.9 + kk**2 / 0.85) < 0.85  # an ellipsoid "brain"
    chans = [f"EEG{i:03d}" for i in range(N_CHANNELS)]
    spec = DataSpec("bandpower", (N_CHANNELS, len(cfg.bands), n_frames), (int(mask.sum()),), SFREQ, tr, tuple(chans),
                    tuple(float(np.mean(b)) for b in cfg.bands.values()), cfg.frames_per_tr / tr, 1)
    if name == "ridge_hrf":
        model = build_model("ridge_hrf", spec)
        x = rng.standard_normal((400,) + spec.input_shape).astype(np.float32)
        y = rng.standard_normal((400, spec.n_outputs)).astype(np.float32)
        model.fit(x, y)
        hparams = model.get_params()
    else:  # a torch model at its initial weights: the cost of synthesis does not depend on them
        hparams = {"seed": 0, "ridge_blend": 0.0} if name == "eeg2fmri_net" else {"seed": 0}
        model = build_model(name, spec, **hparams)
    affine = np.diag([3.0, 3.0, 4.0, 1.0])
    affine[:3, 3] = [-96.0, -132.0, -60.0]
    save_model(model, out, spec=spec, name=name, hparams=hparams, mask=mask, affine=affine,
               window={"n_frames": n_frames, "lag": 0}, prepare=cfg.to_dict())
    return out


def _make_eeg(folder: Path, minutes: float) -> Path:
    import mne
    import numpy as np

    path = folder / f"eeg_{minutes:g}min_raw.fif"
    if path.exists():
        return path
    rng = np.random.default_rng(1)
    n = int(minutes * 60 * SFREQ)
    data = np.empty((N_CHANNELS, n), dtype=np.float64)
    t = np.arange(n) / SFREQ
    for c in range(N_CHANNELS):
        env = 1.0 + 0.5 * np.sin(2 * np.pi * 0.03 * t + c)
        data[c] = 5e-6 * rng.standard_normal(n) + 10e-6 * env * np.sin(2 * np.pi * (9.0 + c % 4) * t)
    info = mne.create_info([f"EEG{i:03d}" for i in range(N_CHANNELS)], SFREQ, "eeg")
    info["line_freq"] = 50.0
    mne.io.RawArray(data, info, verbose=False).save(path, fmt="single", verbose=False)
    return path


def _vm_hwm_mb() -> float | None:
    """Peak resident memory of this process since the last reset (Linux), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _child(eeg: str, model: str, out: str, device: str, dsp_device: str) -> None:
    import time
    import tracemalloc

    t0 = time.perf_counter()
    import mne  # noqa: F401
    import nibabel as nib
    import scipy.signal  # noqa: F401

    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.utils.timing import collect_timings

    t_import = time.perf_counter() - t0
    rss_before = _vm_hwm_mb()
    reset = _reset_hwm()
    tracemalloc.start()
    t0 = time.perf_counter()
    synthesize(eeg, model, out, overwrite=True, progress_bar=False, device=device, dsp_device=dsp_device)
    dt = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_call = _vm_hwm_mb() if reset else None
    t0 = time.perf_counter()
    synthesize(eeg, model, out, overwrite=True, progress_bar=False, device=device, dsp_device=dsp_device)  # again, in the same (warm) process
    dt2 = time.perf_counter() - t0
    t0 = time.perf_counter()
    with collect_timings() as steps:  # a third call, with per-step clocks (and device synchronisation)
        synthesize(eeg, model, out, overwrite=True, progress_bar=False, device=device, dsp_device=dsp_device)
    dt3 = time.perf_counter() - t0
    side = json.loads(Path(out.replace(".nii.gz", ".json") if out.endswith(".nii.gz") else out.replace(".nii", ".json")).read_text())
    shape = nib.load(out).shape
    print(json.dumps({"seconds": dt, "seconds_again": dt2, "import_seconds": t_import, "traced_peak_mb": peak / 2**20, "rss_after_imports_mb": rss_before,
                      "rss_peak_during_call_mb": rss_call, "shape": list(shape), "nifti_mb": os.path.getsize(out) / 2**20,
                      "seconds_timed": dt3, "steps": steps, "dsp": side.get("SignalProcessing"), "model_device": side.get("Device")}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder for the inputs and outputs (default: a temporary folder)")
    ap.add_argument("--model", default="ridge_hrf", help="ridge_hrf (default) or a torch model such as eeg2fmri_net (initial weights)")
    ap.add_argument("--device", default="cpu", help="synthesize(device=...): cpu, cuda, auto")
    ap.add_argument("--dsp-device", default="auto", help="synthesize(dsp_device=...): auto (the GPU of --device, else cpu), cpu, cuda")
    ap.add_argument("--nii", action="store_true", help="write .nii (no compression) instead of .nii.gz")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_synthesis-"))
    folder.mkdir(parents=True, exist_ok=True)
    model = _make_model(folder, args.model)
    env = {**os.environ, **{k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    rows = []
    for minutes in args.minutes:
        eeg = _make_eeg(folder, minutes)
        out = folder / f"synth_{minutes:g}min_bold.nii{'' if args.nii else '.gz'}"
        res = subprocess.run([sys.executable, __file__, "--child", str(eeg), str(model), str(out), args.device, args.dsp_device], env=env,
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr, file=sys.stderr)
            return res.returncode
        rows.append((minutes, json.loads(res.stdout.strip().splitlines()[-1])))
    print(f"synthesis: {N_CHANNELS} channels at {SFREQ:g} Hz -> {GRID[0]}x{GRID[1]}x{GRID[2]} NIfTI ({'.nii' if args.nii else '.nii.gz'}, {args.model}), "
          f"device {args.device} (model on {rows[0][1]['model_device']}), dsp-device {args.dsp_device} (signal processing: {rows[0][1]['dsp']}), "
          f"{args.threads} threads")
    print("wall s: the first synthesize() call in a process that has imported eeg2fmri, MNE and SciPy (import s: that import, paid once "
          "per process); again s: a second call in the same process;")
    print("traced: tracemalloc peak during the call; RSS: resident set after imports, and its peak during the call (VmHWM reset before it)")
    print(f"{'EEG':>7} {'volumes':>8} {'wall s':>7} {'again s':>8} {'import s':>9} {'traced MB':>10} {'RSS imports MB':>15} {'RSS peak MB':>12} "
          f"{'NIfTI MB':>9} {'x real time':>12}")
    for minutes, r in rows:
        peak = r["rss_peak_during_call_mb"]
        print(f"{minutes:>5g} m {r['shape'][3]:>8d} {r['seconds']:>7.2f} {r['seconds_again']:>8.2f} {r['import_seconds']:>9.2f} {r['traced_peak_mb']:>10.1f} "
              f"{r['rss_after_imports_mb'] or float('nan'):>15.0f} {peak if peak is not None else float('nan'):>12.0f} {r['nifti_mb']:>9.1f} {minutes * 60 / r['seconds_again']:>12.0f}")
    names = sorted({k for _, r in rows for k in r["steps"]}, key=lambda k: -max(r["steps"].get(k, 0.0) for _, r in rows))
    print("per-step seconds of a third call with step clocks (timed s: its wall time; other: the rest)")
    print(f"{'step':>15} " + " ".join(f"{f'{m:g} m':>14}" for m, _ in rows))
    for k in names + ["other", "timed s"]:
        cells = []
        for _, r in rows:
            v = r["seconds_timed"] - sum(r["steps"].values()) if k == "other" else r["seconds_timed"] if k == "timed s" else r["steps"].get(k, 0.0)
            cells.append(f"{v:>7.3f} ({100 * v / r['seconds_timed']:>3.0f}%)")
        print(f"{k:>15} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
