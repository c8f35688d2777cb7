"""Speed of pulse-artefact (BCG) removal at the rates scanners record (user test 17: 85 s CPU per 5-min run at 5 kHz).

A recording of ``--channels`` EEG channels plus ECG at ``--sfreq`` Hz with a simulated pulse artefact
(``eeg2fmri.simulate.artifacts.simulate_scanner_eeg(kinds=("bcg",))``) is cleaned with

* ``remove_bcg_artifacts(method="pca_obs")`` -- R peaks (MNE ``find_ecg_events``) and MNE's ``apply_pca_obs``
  under one BLAS thread, as the package runs it,
* the same MNE call without the thread limit (what the package ran before session 27; BLAS threads as the
  machine sets them), and
* ``remove_bcg_artifacts(method="aas")``,

each timed (wall and process CPU). The cleaned EEG's correlation with the artefact-free EEG checks that the
variants agree. The BLAS threads of the machine are left as they are (set OPENBLAS_NUM_THREADS to compare).

Usage::

    python benchmarks/bench_bcg_speed.py [--minutes 5] [--channels 32] [--sfreq 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def timed(fn, *args, **kwargs):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--sfreq", type=float, default=5000.0)
    ap.add_argument("--tr", type=float, default=2.0)
    args = ap.parse_args(argv)
    import mne
    import numpy as np
    from threadpoolctl import threadpool_info

    from eeg2fmri.preprocessing.cleaning import remove_bcg_artifacts
    from eeg2fmri.simulate.artifacts import simulate_scanner_eeg

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()
    n_vol = int(round(args.minutes * 60 / args.tr))
    sim = simulate_scanner_eeg(n_channels=args.channels, sfreq=args.sfreq, tr=args.tr, n_volumes=n_vol, kinds=("bcg",), random_state=4)
    raw = sim["raw"].copy().load_data()
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg"]
    truth = sim["clean"].get_data(picks=eeg)

    def score(cleaned) -> float:
        x = cleaned.get_data(picks=eeg)
        return float(np.median([np.corrcoef(a - a.mean(), b - b.mean())[0, 1] for a, b in zip(x, truth)]))

    rows = []
    (out, info), t, c = timed(remove_bcg_artifacts, raw, method="pca_obs")
    rows.append(("remove_bcg_artifacts pca_obs (1 BLAS thread)", t, c, score(out), info["n_beats"]))
    ev = mne.preprocessing.find_ecg_events(raw, ch_name=info["ecg_channel"], verbose=False)[0]
    qrs = (ev[:, 0] - raw.first_samp) / raw.info["sfreq"]
    qrs = qrs[(qrs > 0) & (qrs < raw.times[-1])]
    out2, t2, c2 = timed(mne.preprocessing.apply_pca_obs, raw.copy(), picks=eeg, qrs_times=qrs, n_components=4, copy=False, verbose=False)
    _, t_ecg, c_ecg = timed(mne.preprocessing.find_ecg_events, raw, ch_name=info["ecg_channel"], verbose=False)
    rows.append(("  R peaks alone (find_ecg_events)", t_ecg, c_ecg, float("nan"), len(qrs)))
    rows.append(("  apply_pca_obs alone, machine's BLAS threads (before)", t2, c2, score(out2), len(qrs)))
    (out3, info3), t3, c3 = timed(remove_bcg_artifacts, raw, method="aas")
    rows.append(("remove_bcg_artifacts aas", t3, c3, score(out3), info3["n_beats"]))
    blas = ", ".join(f"{d.get('internal_api')} {d.get('num_threads')} thread(s)" for d in threadpool_info() if d.get("user_api") == "blas")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n## BCG removal speed: {args.minutes:g} min, {args.channels} EEG ch + ECG, {args.sfreq:g} Hz; {os.cpu_count()} cores, "
          f"load average {load:.1f} at the end; BLAS: {blas}\n")
    head = ["step", "wall s", "CPU s", "median r vs clean EEG", "R peaks"]
    body = [[n, f"{t:.1f}", f"{c:.1f}", "" if r != r else f"{r:.3f}", str(k)] for n, t, c, r, k in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    print("\n".join("  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(row, widths))) for row in [head] + body))
    print(f"\ncommit {commit or 'unknown'}; command: python benchmarks/bench_bcg_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
