"""Speed and memory of gradient-artefact AAS at scale (issue 12: 1 h of 64-ch 5 kHz EEG in <= 60 s on 2 cores).

A recording of ``--channels`` EEG channels at ``--sfreq`` Hz is made in memory (an
``mne.io.RawArray``, float64 like every Raw): white EEG of 10 µV plus a gradient artefact
of ``--slices`` slices per ``--tr`` (the simulator's slice waveforms
(``eeg2fmri.simulate.artifacts``), built at 16x the rate, low-passed at 0.4x the rate and
decimated, each volume at its own sub-sample phase drifting by 20 ppm, each channel its
own mix of the three gradient axes, ~1500 µV RMS), with ``R128`` volume markers on whole
samples. Then

* ``remove_gradient_artifacts`` (volume epochs, OBS with 3 components: the defaults),
* ``clean_raw(gradient="aas", bcg=None)`` (the same plus the artefact-power report),

with ``n_jobs=--threads``, are timed for every ``--minutes`` value; their peak memory is measured with
``tracemalloc`` (numpy's buffers included) and reported next to the data's size (the
cleaned copy is one data size). The residual artefact (cleaned minus the artefact-free
EEG, RMS over channels) is printed as a sanity check. With two or more durations the time
per hour is extrapolated from the largest, and the ratio of the per-minute times says
whether the cost is linear.

1 h of 64 channels at 5 kHz is 9.2 GB in float64 and the cleaned copy another 9.2 GB, so
the default durations here are 5 and 10 minutes (for a machine with ~23 GB).

Usage::

    python benchmarks/bench_cleaning_speed.py [--minutes 5 10] [--channels 64] [--sfreq 5000] [--threads 2] [--slices 36]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def make_raw(minutes: float, n_channels: int, sfreq: float, tr: float, n_slices: int, seed: int = 0):
    """A RawArray with a gradient artefact and volume markers; and the artefact-free data (V)."""
    import mne
    import numpy as np
    from scipy.signal import butter, resample_poly, sosfiltfilt

    from eeg2fmri.simulate.artifacts import _slice_waveforms

    rng = np.random.default_rng(seed)
    n = int(round(minutes * 60 * sfreq))
    over = 16
    hs = sfreq * over
    ts = tr / n_slices
    w = _slice_waveforms(int(np.floor(ts * hs)) - 1, 1.0 / hs)
    n_vol_hi = int(round(tr * hs))
    vol_hi = np.zeros((3, n_vol_hi + 2 * over))
    for j in range(n_slices):
        i0 = int(round(j * ts * hs))
        vol_hi[:, i0 : i0 + w.shape[1]] += w
    vol_hi = sosfiltfilt(butter(4, 0.4 * sfreq, fs=hs, output="sos"), vol_hi, axis=1)
    # the volume waveform at `over` sub-sample phases
    phases = [resample_poly(np.roll(vol_hi, p, axis=1), 1, over, axis=1) for p in range(over)]
    n_vol = int(round(tr * sfreq))
    onset0 = 2.0
    n_vols = int((n / sfreq - onset0 - 1.0) // tr)
    true_on = onset0 + np.arange(n_vols) * tr * (1 + 20e-6) + 0.01 / sfreq * rng.standard_normal(n_vols)
    g = np.zeros((3, n))
    for t0 in true_on:
        pos = t0 * sfreq
        i0 = int(np.floor(pos))
        p = int(round((pos - i0) * over)) % over
        seg = phases[p][:, : n_vol]
        g[:, i0 : i0 + n_vol] += seg[:, : min(n_vol, n - i0)]
    mix = rng.standard_normal((n_channels, 3)) * np.array([1.0, 0.6, 1.2])
    data = np.empty((n_channels, n))
    for c in range(n_channels):  # row by row: no (n_channels, n) temporaries
        data[c] = mix[c] @ g
    del g
    rms = np.sqrt(np.mean(data[:, : int(60 * sfreq)] ** 2, axis=1))
    data *= 1500e-6 / np.median(rms)
    clean = (10e-6 * rng.standard_normal((n_channels, n))).astype(np.float32)
    data += clean
    info = mne.create_info([f"EEG{i:03d}" for i in range(n_channels)], sfreq, "eeg")
    raw = mne.io.RawArray(data, info, copy="info", verbose=False)
    raw.set_annotations(mne.Annotations(np.round(true_on * sfreq) / sfreq, np.zeros(n_vols), ["Response/R128"] * n_vols))
    return raw, clean


def measure(fn, *args, **kwargs):
    import tracemalloc

    tracemalloc.start()
    tracemalloc.reset_peak()
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, (dt, cpu), peak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--tr", type=float, default=2.0)
    ap.add_argument("--slices", type=int, default=36)
    ap.add_argument("--threads", type=int, default=2, help="n_jobs of the AAS (threads over channel chunks) and scipy.fft workers")
    ap.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (the AAS threads already use the cores)")
    ap.add_argument("--obs", type=int, default=3, help="OBS components (default 3, the package default)")
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.blas_threads)
    import resource

    import numpy as np
    import scipy.fft

    from eeg2fmri.preprocessing.cleaning import clean_raw, remove_gradient_artifacts

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    rows = []
    for minutes in args.minutes:
        t0 = time.perf_counter()
        raw, clean = make_raw(minutes, args.channels, args.sfreq, args.tr, args.slices)
        t_make = time.perf_counter() - t0
        gb = raw._data.nbytes / 1e9
        with scipy.fft.set_workers(args.threads):
            (cleaned, info), (t_aas, cpu_aas), m_aas = measure(remove_gradient_artifacts, raw, obs_components=args.obs, n_jobs=args.threads)
            art = (raw._data[:, :60000] - clean[:, :60000]).std(axis=1).mean() * 1e6
            resid = np.sqrt(np.mean([(cleaned._data[c] - clean[c]).var() for c in range(0, args.channels, 8)])) * 1e6
            del cleaned
            (_, rep), (t_all, cpu_all), m_all = measure(clean_raw, raw, gradient="aas", bcg=None, obs_components=args.obs, n_jobs=args.threads)
            del _
        rows.append(dict(minutes=minutes, gb=gb, t_aas=t_aas, cpu_aas=cpu_aas, cpu_all=cpu_all, m_aas=m_aas / 1e9, t_all=t_all, m_all=m_all / 1e9, art=art, resid=resid,
                         red=rep["artifact_power"]["volume_reduction_db"], n_ep=info["n_epochs"], L=info["epoch_samples"], make=t_make))
        print(f"{minutes:g} min: made in {t_make:.0f} s; AAS {t_aas:.1f} s, peak {m_aas / 1e9:.2f} GB; clean_raw {t_all:.1f} s, "
              f"peak {m_all / 1e9:.2f} GB; residual {resid:.2f} µV (artefact {art:.0f} µV)", flush=True)
        del raw, clean
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\n## Gradient AAS speed: {args.channels} ch, {args.sfreq:g} Hz, TR {args.tr:g} s, {args.slices} slices, volume epochs, OBS {args.obs}, "
          f"n_jobs={args.threads} thread(s), BLAS {args.blas_threads} thread(s)\n")
    head = ["minutes", "data GB", "epochs", "AAS s", "AAS CPU s", "AAS peak GB", "clean_raw s", "clean_raw CPU s", "clean_raw peak GB", "s per min",
            "resid µV", "volume comb dB"]
    body = [[f"{r['minutes']:g}", f"{r['gb']:.2f}", f"{r['n_ep']}x{r['L']}", f"{r['t_aas']:.1f}", f"{r['cpu_aas']:.1f}", f"{r['m_aas']:.2f}",
             f"{r['t_all']:.1f}", f"{r['cpu_all']:.1f}",
             f"{r['m_all']:.2f}", f"{r['t_aas'] / r['minutes']:.2f}", f"{r['resid']:.2f}", f"-{r['red']:.1f}"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    print("\n".join("  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in [head] + body))
    print("\nCPU s: process CPU time (user + sys, all threads) during the call: on 2 cores of one's own, wall time >= CPU s / 2")
    print("peak GB: tracemalloc peak during the call (the cleaned copy, one data size, included); "
          f"process max RSS {rss:.1f} GB (data, artefact-free copy and cleaned copy)")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        lin = (b["t_aas"] / b["minutes"]) / (a["t_aas"] / a["minutes"])
        print(f"time per minute, {b['minutes']:g} min vs {a['minutes']:g} min: x{lin:.2f} (1.00 = linear); "
              f"extrapolated to 60 min from {b['minutes']:g} min: AAS {b['t_aas'] * 60 / b['minutes']:.0f} s, "
              f"clean_raw {b['t_all'] * 60 / b['minutes']:.0f} s; CPU time per hour: AAS {b['cpu_aas'] * 60 / b['minutes']:.0f} s, "
              f"clean_raw {b['cpu_all'] * 60 / b['minutes']:.0f} s; peak memory beyond the data and its copy ~{b['m_aas'] - b['gb']:.2f} GB "
              "(bounded: channels are processed in chunks)")
    print(f"\ncommit {commit or 'unknown'}; command: python benchmarks/bench_cleaning_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
