"""Does pulse-artefact (BCG) cleaning make EEG band power track heart rate and respiration? (user test 57)

Data: ``benchmarks/sim_user_physio.py`` (an independent generator, run as a subprocess): 32 EEG channels
at 1024 Hz with 1/f background, a posterior alpha source whose log power is a known slow process, a
heartbeat-locked BCG artefact, respiration drift and breath transients, plus ECG and respiration-belt
channels; no gradient artefact. Every subject's recording is cleaned with
``eeg2fmri.preprocessing.cleaning.remove_bcg_artifacts`` as

==========================  ============================================================
none                        the recording as simulated
PCA-OBS MNE                 ``method="pca_obs", crossfade=None`` (MNE's ``apply_pca_obs``)
PCA-OBS edge-to-edge        ``method="pca_obs", crossfade=0`` (package fit, fits abut)
PCA-OBS cross-faded         ``method="pca_obs", crossfade=0.5`` (the default)
AAS                         ``method="aas"``
==========================  ============================================================

and the table gives per subject and cleaning:

* ``resp`` / ``HR``: median over channels of |r| between per-window log band power and respiration
  depth / heart rate, per band (delta theta alpha beta gamma high-gamma), as
  ``remove_bcg_artifacts(...)[1]["coupling"]`` reports it (:func:`bcg_coupling_report`, 2-s windows,
  at most 16 channels); for ``none`` the report's ``before`` values;
* ``BCG left``: the R-peak-locked average (0 to 0.9 s after every R peak, its mean removed), RMS over
  time, median over the 32 EEG channels, in uV. Averaging beats does not remove everything that is not
  BCG: the same measure at random times (the floor) is printed below the table;
* ``alpha r``: correlation of the log alpha (8-13 Hz) power of O1/Oz/O2 (mean over the three, 2-s
  windows, 4 s left out at either end) with the generator's true alpha log power;
* ``s``: wall seconds of ``remove_bcg_artifacts`` (R peaks + cleaning, the coupling report not
  included; one BLAS thread).

Usage::

    python benchmarks/bench_bcg_coupling.py --out /tmp/bcg_coupling [--subjects 2] [--minutes 4] [--seed 58]

The simulated data in ``--out`` are reused when they were made with the same subjects, minutes and
seed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: label -> keyword arguments of remove_bcg_artifacts (None: not cleaned)
CLEANINGS: dict[str, dict | None] = {
    "none": None,
    "PCA-OBS MNE (crossfade=None)": dict(method="pca_obs", crossfade=None),
    "PCA-OBS edge-to-edge (crossfade=0)": dict(method="pca_obs", crossfade=0.0),
    "PCA-OBS cross-faded (0.5, default)": dict(method="pca_obs", crossfade=0.5),
    "AAS": dict(method="aas"),
}
WINDOW_S = 2.0  # band-power windows (s), for the coupling report and the alpha check
EDGE_S = 4.0  # alpha check: windows whose centre is closer than this to either end are left out
ALPHA_HZ = (8.0, 13.0)
POSTERIOR = ("O1", "Oz", "O2")  # the channels nearest the generator's alpha source
BCG_SPAN_S = (0.0, 0.9)  # R-locked average: from the R peak to 0.9 s after it (the artefact starts 0.21 s after it)
SHORT = {"high_gamma": "hgam"}  # column labels


def simulate(out: Path, subjects: int, minutes: float, seed: int) -> None:
    """Run sim_user_physio.py into ``out`` unless it already holds data made with these settings."""
    want = {"subjects": subjects, "minutes": minutes, "seed": seed}
    stamp = out / "bench_bcg_coupling_sim.json"
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return
    cmd = [sys.executable, str(HERE / "sim_user_physio.py"), "--out", str(out), "--subjects", str(subjects), "--minutes", f"{minutes:g}",
           "--seed", str(seed)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps(want))


def load(out: Path, sub: str):
    """The subject's BDF (ECG and Resp typed, Status dropped) and the true alpha log power (16 Hz from t = 0)."""
    import mne

    raw = mne.io.read_raw_bdf(out / "bids" / f"sub-{sub}" / "eeg" / f"sub-{sub}_task-rest_eeg.bdf", preload=True, verbose=False)
    raw.set_channel_types({"ECG": "ecg", "Resp": "resp"}, verbose=False)
    raw.drop_channels(["Status"])
    with np.load(out / "truth" / f"sub-{sub}_truth.npz") as truth:
        alpha = np.asarray(truth["alpha_logpow_16hz"], dtype=np.float64)
    return raw, alpha


def r_peaks(raw) -> np.ndarray:
    """R-peak times (s), found as remove_bcg_artifacts finds them (MNE find_ecg_events on the ECG channel)."""
    import mne

    events = mne.preprocessing.find_ecg_events(raw, ch_name="ECG", verbose=False)[0]
    qrs = (events[:, 0] - raw.first_samp) / float(raw.info["sfreq"])
    return qrs[(qrs > 0) & (qrs < raw.times[-1])].astype(np.float64)


def locked_average_uv(x: np.ndarray, sf: float, onsets: np.ndarray) -> float:
    """Median over channels of the RMS (uV) of the average of ``x`` (V, shape (n_channels, n_times)) over BCG_SPAN_S after ``onsets``."""
    a, b = int(round(BCG_SPAN_S[0] * sf)), int(round(BCG_SPAN_S[1] * sf))
    s = np.round(onsets * sf).astype(np.int64)
    s = s[(s + a >= 0) & (s + b <= x.shape[1])]
    avg = np.mean([x[:, i + a : i + b] for i in s], axis=0)
    avg -= avg.mean(axis=1, keepdims=True)
    return float(np.median(np.sqrt(np.mean(avg**2, axis=1)))) * 1e6


def alpha_truth_r(raw, alpha_16hz: np.ndarray) -> float:
    """r between the posterior channels' mean log alpha power per WINDOW_S window and the true alpha log power there."""
    from scipy.signal import resample_poly, welch

    sf = float(raw.info["sfreq"])
    q = max(1, int(sf // 250.0))
    sfd = sf / q
    x = raw.get_data(picks=list(POSTERIOR)) * 1e6
    x = resample_poly(x - x.mean(axis=1, keepdims=True), 1, q, axis=-1)
    length = int(round(WINDOW_S * sfd))
    n_win = x.shape[1] // length
    frames = x[:, : n_win * length].reshape(len(POSTERIOR), n_win, length)
    nper = int(round(sfd))
    f, p = welch(frames, fs=sfd, window="hann", nperseg=nper, noverlap=nper // 2, axis=-1)
    band = (f >= ALPHA_HZ[0]) & (f < ALPHA_HZ[1])
    power = np.log(p[..., band].mean(axis=-1)).mean(axis=0)  # (n_win,)
    centres = (np.arange(n_win) + 0.5) * WINDOW_S
    true = np.interp(centres, np.arange(len(alpha_16hz)) / 16.0, alpha_16hz)
    keep = (centres > EDGE_S) & (centres < raw.times[-1] - EDGE_S)
    return float(np.corrcoef(power[keep], true[keep])[0, 1])


def measure_subject(raw, alpha_16hz: np.ndarray, seed: int) -> tuple[list[dict], float]:
    """Every cleaning's row for one recording, and the floor of the BCG measure (random onsets, default cleaning)."""
    from eeg2fmri.preprocessing.cleaning import bcg_coupling_report, remove_bcg_artifacts

    sf = float(raw.info["sfreq"])
    qrs = r_peaks(raw)
    eeg = [n for n, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg"]
    rows, floor = [], float("nan")
    for label, kw in CLEANINGS.items():
        seconds = float("nan")
        if kw is None:
            cleaned = raw
        else:
            t0 = time.perf_counter()
            cleaned, _ = remove_bcg_artifacts(raw, coupling=False, **kw)
            seconds = time.perf_counter() - t0
        # the report remove_bcg_artifacts(coupling=True) returns as info["coupling"], computed outside the timing
        rep = bcg_coupling_report(raw, cleaned, qrs, picks=eeg, resp_channel="Resp", window=WINDOW_S, **({} if kw is None else kw))
        side = "before" if kw is None else "after"
        x = cleaned.get_data(picks=eeg)
        rows.append(dict(cleaning=label, resp=rep["respiration"][side], hr=rep["heart_rate"][side], bcg_uv=locked_average_uv(x, sf, qrs),
                         alpha_r=alpha_truth_r(cleaned, alpha_16hz), seconds=seconds, n_windows=rep["n_windows"],
                         n_channels=len(rep["channels"])))
        if kw is not None and kw.get("crossfade") == 0.5:
            rng = np.random.default_rng(seed)
            onsets = np.sort(rng.uniform(0.0, raw.times[-1] - BCG_SPAN_S[1], len(qrs)))
            floor = locked_average_uv(x, sf, onsets)
    return rows, floor


def table_cells(rows: list[dict], bands: list[str]) -> list[str]:
    """The printed cells of one cleaning: its rows' values (one subject, or the mean over subjects)."""
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    resp = " ".join(f"{np.mean([r['resp'][b] for r in rows]):5.2f}" for b in bands)
    hr = " ".join(f"{np.mean([r['hr'][b] for r in rows]):5.2f}" for b in bands)
    secs = "-" if np.isnan(mean("seconds")) else f"{mean('seconds'):.1f}"
    return [resp, hr, f"{mean('bcg_uv'):.2f}", f"{mean('alpha_r'):.2f}", secs]


def commit_label(repo: Path) -> str:
    """Short HEAD commit, with '+ uncommitted changes in src/' when the package source differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "src"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes in src/" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the simulated data (reused when made with the same settings)")
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=58, help="generator seed (subject i uses default_rng([seed, i])); also the floor's random onsets")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = ap.parse_args(argv)
    import mne
    from threadpoolctl import threadpool_limits

    from eeg2fmri.preprocessing.cleaning import COUPLING_BANDS
    from eeg2fmri.utils.logs import set_log_level

    mne.set_log_level("ERROR")
    set_log_level("error")  # the coupling report's warnings are what the table shows
    argv_s = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# commit {commit_label(HERE.parent)}; command: python benchmarks/bench_bcg_coupling.py {argv_s}", flush=True)
    t_all = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    simulate(args.out, args.subjects, args.minutes, args.seed)
    t_sim = time.perf_counter() - t0
    results, floors = {}, {}
    with threadpool_limits(limits=args.threads):
        for i in range(args.subjects):
            sub = f"{i + 1:02d}"
            raw, alpha = load(args.out, sub)
            results[sub], floors[sub] = measure_subject(raw, alpha, args.seed)
    bands = list(COUPLING_BANDS)
    first = results["01"][0]
    print(f"\n## BCG cleaning vs physiology: sim_user_physio.py seed {args.seed}, {args.subjects} subjects x {args.minutes:g} min, "
          f"32 EEG channels at 1024 Hz\n")
    print(f"resp / HR: median |r| over {first['n_channels']} channels of per-{WINDOW_S:g}-s log band power ({first['n_windows']} windows) "
          f"with respiration depth / heart rate, bands {' '.join(bands)}")
    short = " ".join(f"{SHORT.get(b, b):>5s}" for b in bands)
    head = ["sub", "cleaning", f"resp |r| {short}", f"HR |r| {short}", "BCG left uV", "alpha r", "s"]
    body = []
    for sub, rows in list(results.items()) + ([("mean", None)] if len(results) > 1 else []):
        for k, label in enumerate(CLEANINGS):
            per = [results[s][k] for s in results] if rows is None else [rows[k]]
            body.append([sub, label, *table_cells(per, bands)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    for row in [head] + body:
        print("  ".join(x.ljust(w) if j < 2 else x.rjust(w) for j, (x, w) in enumerate(zip(row, widths))))
    print("\nBCG left at random times (the measure's floor; cross-faded output, as many epochs as beats): "
          + ", ".join(f"sub-{s} {v:.2f} uV" for s, v in floors.items()))
    print(f"simulation {t_sim:.0f} s; total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
