"""Scoreboard on data we did not generate: the flagship against ``ridge_hrf`` on the user-testing helpers' generators.

Each generator below was written by a helper that had not read the package's simulators (their docstrings say when and
how); they write BIDS datasets in real formats (BrainVision, EDF, EEGLAB, fMRIPrep derivatives, int16 NIfTI, oblique or
LAS grids, jittered or missing markers) and a ground-truth atlas of the regions the EEG drives. This script draws the
datasets (``GENERATOR:SEED``; seeds never used for a design choice unless you pass them), prepares each as a user
would (the tangent representation, the marker names and confounds the generator's files need), runs
``eeg2fmri benchmark --models eeg2fmri_net ridge_hrf --atlas`` per protocol and prints one table: whole-mask median
voxel r, the paired Δ (flagship − ``ridge_hrf``) with its CI, the ROI r (median over the atlas regions of the
ROI-mean series' r), and the flagship's blend weight per fold.

    python benchmarks/bench_independent.py --out OUT --datasets fmriprep:5 khz:5 formats kuramoto:0 --protocols within loso
    python benchmarks/bench_independent.py --out OUT --table          (the table of what OUT holds)

Generators (``benchmarks/sim_user_*.py``): ``fmriprep`` (session 16; seeds 0-4 were design/held-out data of the rank
guard), ``khz`` (sim_user_5khz.py at 1 kHz, session 16; seeds 0-3 used likewise), ``formats`` (session 18, user test 4;
one fixed dataset), ``blobs`` (session 12; one fixed dataset), ``kuramoto`` (session 20), ``hmm`` (session 20; each
subject on its own scanner grid, so ``hmm:SEED:SUBJECT`` is a single-subject dataset, within only), ``eeglab`` (session 21,
user test 7: EEGLAB files, two sessions per subject, markers only in events.tsv, one bad channel per run; seed 7 was the
user test's), ``alpha`` (session 33, user test 44: resting-state alpha-BOLD after Goldman 2002 / Laufs 2003, EDF, an
oblique int16 6 mm grid cropped through the occipital pole; seed 44 was the user test's), ``epilepsy`` (session 33, user
test 45: interictal discharges with a different focus per subject, events.tsv listing only the clinician's spike marks,
BrainVision, TR 2.5 s; seed 45 was the user test's), ``oddball`` (session 34, user test 48: an auditory oddball whose
single-trial evoked responses drive auditory cortex, TPJ and ACC, BrainVision with stimulus and scanner markers; seed 48
was the user test's), ``blocks`` (session 35, user test 51: checkerboard blocks and button presses drive visual and
motor cortex, the thalamus follows spontaneous alpha; BrainVision block markers of one sample, durations in events.tsv;
seed 0 was the user test's). Task designs: ``--prepare-config '{"events": "auto"}' --tag events`` adds the stimulus
markers as event regressors (and the stimulus_glm row). Datasets and results are
kept in OUT and reused (delete a folder to redo it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAP32 = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4", "T8", "TP9", "CP5",
         "CP1", "CP2", "CP6", "TP10", "P7", "P3", "Pz", "P4", "P8", "PO9", "O1", "Oz", "O2", "PO10"]


def _spec(name: str, seed: int | None, d: Path, subject: str | None = None) -> dict:
    """Generation command, BIDS root, prepare arguments and atlas of one dataset (generated into folder ``d``)."""
    py = sys.executable
    if name == "hmm":  # every subject on its own scanner grid: one single-subject dataset per subject (within only)
        if not subject:
            raise SystemExit("hmm: name a subject (hmm:SEED:SUBJECT, e.g. hmm:0:01): its subjects are on their own scanner grids")
        return {"gen": [py, str(HERE / "sim_user_hmm.py"), str(d), "--seed", str(seed or 0)], "bids": d / "bids",
                "prepare": ["--subjects", subject], "config": {"marker": "TR"},
                "atlas": d / "groundtruth" / f"sub-{subject}_atlas.nii.gz", "single_subject": True}
    if name == "fmriprep":
        bids = d / "bids"
        return {"gen": [py, str(HERE / "sim_user_fmriprep.py"), str(bids), str(seed or 0)], "bids": bids,
                "prepare": ["--derivatives", str(bids / "derivatives" / "fmriprep"), "--space", "MNI152NLin2009cAsym"],
                "config": {"marker": ["TR", "Volume"], "confounds": ["trans_*", "rot_*", "csf", "white_matter", "framewise_displacement"]},
                "atlas": d / "atlas_labels.nii.gz"}
    if name == "khz":
        bids = d / "bids"
        return {"gen": [py, str(HERE / "sim_user_5khz.py"), str(bids), "--sfreq", "1000", "--seed", str(seed or 0)], "bids": bids,
                "prepare": [], "config": {"marker": ["R128", "S  1"]}, "atlas": bids / "derivatives" / "gt" / "blobs.nii.gz"}
    if name == "formats":
        return {"gen": [py, str(HERE / "sim_user_formats.py"), str(d)], "bids": d / "bids", "prepare": [],
                "config": {"marker": ["TR", "V"], "channels": CAP32, "channel_positions": "standard_1020"},
                "atlas": d / "groundtruth" / "atlas.nii.gz"}
    if name == "blobs":
        return {"gen": [py, str(HERE / "sim_user_blobs.py"), str(d / "bids")], "bids": d / "bids", "prepare": [], "config": {},
                "atlas": None}
    if name == "kuramoto":
        return {"gen": [py, str(HERE / "sim_user_kuramoto.py"), str(d), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "R128"}, "atlas": d / "groundtruth" / "atlas.nii.gz"}
    if name == "eeglab":  # EEGLAB .set/.fdt, 2 sessions, markers only in events.tsv, a bad channel per run (user test 7)
        return {"gen": [py, str(HERE / "sim_user_eeglab.py"), str(d / "bids"), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "volume"}, "atlas": d / "bids" / "groundtruth" / "atlas.nii.gz"}
    if name == "alpha":  # resting-state alpha-BOLD (occipital negative, thalamus positive, frontal theta), EDF, oblique int16 grid (user test 44)
        return {"gen": [py, str(HERE / "sim_user_alpha.py"), str(d), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "R128"}, "atlas": d / "groundtruth" / "atlas.nii.gz"}
    if name == "epilepsy":  # interictal discharges, a different focus per subject, BrainVision, TR 2.5 s (user test 45)
        return {"gen": [py, str(HERE / "sim_user_epilepsy.py"), str(d / "bids"), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "R128"}, "atlas": d / "bids" / "groundtruth" / "atlas.nii.gz"}
    if name == "oddball":  # auditory oddball: evoked N1/P3 drive auditory cortex, TPJ, ACC; BrainVision with stimulus markers (user test 48)
        return {"gen": [py, str(HERE / "sim_user_oddball.py"), str(d / "bids"), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "R128"}, "atlas": d / "bids" / "groundtruth" / "atlas.nii.gz"}
    if name == "blocks":  # checkerboard blocks + button presses; thalamus follows spontaneous alpha (user test 51)
        return {"gen": [py, str(HERE / "sim_user_blocks.py"), str(d / "bids"), "--seed", str(seed or 0)], "bids": d / "bids", "prepare": [],
                "config": {"marker": "R128"}, "atlas": d / "bids" / "groundtruth" / "atlas.nii.gz"}
    raise SystemExit(f"unknown generator {name!r}; expected one of fmriprep, khz, formats, blobs, kuramoto, hmm, eeglab, alpha, epilepsy, "
                     "oddball, blocks")


def _run(cmd: list[str], log: Path) -> float:
    t = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    if rc:
        raise SystemExit(f"command failed ({rc}), see {log}: {' '.join(cmd)}")
    return time.perf_counter() - t


def run_dataset(key: str, out: Path, protocols: list[str], device: str, hparams: str | None = None, tag: str = "",
                train_config: str | None = None, prepare_config: str | None = None) -> None:
    name, seed, subject = ([*key.split(":"), None, None])[:3]
    d = out / key.replace(":", "_")  # prepared data and results (hmm:0:01 -> hmm_0_01, generated into hmm_0)
    gen = out / f"{name}_{seed}" if subject else d
    d.mkdir(parents=True, exist_ok=True)
    gen.mkdir(parents=True, exist_ok=True)
    s = _spec(name, int(seed) if seed else None, gen, subject)
    times = json.loads((d / "times.json").read_text()) if (d / "times.json").exists() else {}
    if not s["bids"].exists():
        times["generate_s"] = _run(s["gen"], gen / "generate.log")
    if s.get("single_subject"):
        protocols = [p for p in protocols if p == "within"]
    prep = d / f"prep_tangent{tag}" if prepare_config else d / "prep_tangent"
    if not (prep / "manifest.json").exists():
        cfg = {**s["config"], "representation": "tangent", **(json.loads(prepare_config) if prepare_config else {})}
        times["prepare_s"] = _run(["eeg2fmri", "prepare", str(s["bids"]), "--out", str(prep), *s["prepare"], "--config", json.dumps(cfg), "-q"],
                                  d / "prepare.log")
    for p in protocols:
        res = d / f"bench_{p}{tag}"
        if (res / "leaderboard.json").exists():
            continue
        cmd = ["eeg2fmri", "benchmark", str(prep), "--models", "eeg2fmri_net", "ridge_hrf", "--protocol", p, "--out", str(res), "-q",
               "--no-report", "--device", device]
        if s["atlas"] is not None:
            cmd += ["--atlas", str(s["atlas"])]
        if hparams:
            cmd += ["--hparams", hparams]
        if train_config:
            cmd += ["--train-config", train_config]
        times[f"benchmark_{p}{tag}_s"] = _run(cmd, d / f"bench_{p}.log")
        (d / "times.json").write_text(json.dumps(times, indent=1))
        print(f"done {key} {p}{tag} in {times[f'benchmark_{p}{tag}_s']:.0f} s", flush=True)
    (d / "times.json").write_text(json.dumps(times, indent=1))


def _f(v: float | None, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def table(out: Path) -> None:
    """One row per dataset and protocol, from the leaderboard.json files under ``out``."""
    rows = []
    for lb in sorted(out.glob("*/bench_*/leaderboard.json")):
        d = json.loads(lb.read_text())
        by = {r["name"]: r for r in d["leaderboard"]}
        net, ref, glm = by.get("eeg2fmri_net"), by.get("ridge_hrf"), by.get("stimulus_glm")
        if net is None or ref is None:
            continue
        ci = net.get("diff_ci") or [None, None]
        verdict = "ahead" if ci[0] is not None and ci[0] > 0 else "behind" if ci[1] is not None and ci[1] < 0 else "tie"
        w = net.get("ridge_weight") or []
        tag = lb.parent.name.removeprefix(f"bench_{d['protocol']}")
        rows.append([lb.parent.parent.name + tag, d["protocol"], str(len(d["subjects"])), _f(ref["median_r"]), _f(net["median_r"]),
                     f"{net['diff_vs_reference']:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci[0] is not None else "-", verdict,
                     _f(ref.get("roi_median_r")), _f(net.get("roi_median_r")), _f(glm.get("roi_median_r")) if glm else "-",
                     " ".join(f"{x:g}" for x in w), _f(net.get("null_p95_median_r"))])
    head = ["dataset", "protocol", "subjects", "ridge_hrf r", "flagship r", "Δ flagship − ridge_hrf [95% CI]", "whole mask",
            "ridge_hrf ROI r", "flagship ROI r", "stimulus GLM ROI r", "blend weight per fold", "null p95 (flagship)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    ahead = sum(r[6] == "ahead" for r in rows)
    behind = sum(r[6] == "behind" for r in rows)
    roi = [(float(r[8]) - float(r[7])) for r in rows if r[7] != "-" and r[8] != "-"]
    print(f"\nwhole-mask Δ CI above 0 in {ahead} of {len(rows)}, below 0 in {behind}; "
          f"ROI r flagship − ridge_hrf: mean {sum(roi) / max(len(roi), 1):+.3f}, ahead in {sum(x > 0 for x in roi)} of {len(roi)}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--datasets", nargs="*", default=[], help="GENERATOR[:SEED] ...")
    ap.add_argument("--protocols", nargs="+", default=["within", "loso"], choices=["within", "loso"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--hparams", help="benchmark --hparams (JSON: model name -> hyperparameters) for a variant; give it a --tag")
    ap.add_argument("--train-config", help="benchmark --train-config (JSON, e.g. '{\"split\": {\"val_subjects\": \"next\"}}') for a "
                                           "variant; give it a --tag")
    ap.add_argument("--prepare-config", help="prepare options (JSON) added to the generator's, e.g. '{\"events\": \"auto\"}' (stimulus "
                                             "markers as event regressors; benchmark then adds the stimulus_glm row); give it a --tag")
    ap.add_argument("--tag", default="", help="suffix of the result folders (bench_PROTOCOL_TAG) of a variant; rows show it")
    ap.add_argument("--table", action="store_true", help="print the table of what OUT holds (after running --datasets, if any)")
    a = ap.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    t = time.perf_counter()
    for key in a.datasets:
        run_dataset(key, a.out, a.protocols, a.device, a.hparams, f"_{a.tag}" if a.tag else "", a.train_config, a.prepare_config)
    if a.datasets:
        print(f"{len(a.datasets)} dataset(s) in {time.perf_counter() - t:.0f} s; commit {os.environ.get('EEG2FMRI_COMMIT', _commit())}")
    if a.table or a.datasets:
        table(a.out)


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
