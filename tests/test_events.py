"""Event regressors (prepare option ``events``): a recording's stimulus markers as per-frame series after the EEG
features; ``ridge_hrf`` and ``stimulus_glm`` read them, the flagship does not, ``synthesize`` computes them from the
EEG-only recording's markers, ``benchmark`` shows the stimulus GLM as a row."""

from __future__ import annotations

import json

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError

STIM = ("Stimulus/S  1", "Stimulus/S  2")


def _with_stimuli(raw, seed: int, *, t0: float = 3.0, block: bool = False):
    """A copy of ``raw`` with stimulus annotations (two conditions, jittered 2-5 s apart, from ``t0`` s), a recorder note and
    a BAD span; with ``block``, condition 2 as 12-s blocks. Returns (raw, {name: onsets})."""
    rng = np.random.default_rng(seed)
    end = raw.times[-1] - 14.0  # (a block ends inside the recording)
    t = t0 + np.cumsum(rng.uniform(2.0, 5.0, 200))
    t = t[t < end]
    cond = rng.integers(0, 2, len(t))
    out = raw.copy()
    on = list(out.annotations.onset - out.first_time)
    du = list(out.annotations.duration)
    de = list(out.annotations.description)
    times = {}
    for k, name in enumerate(STIM):
        sel = t[cond == k]
        if block and k == 1:
            sel = sel[::4]
        times[name] = sel
        on += list(sel)
        du += [12.0 if (block and k == 1) else 0.0] * len(sel)
        de += [name] * len(sel)
    on += [1.0, 5.0]
    du += [0.0, 0.5]
    de += ["Comment/impedance ok", "BAD_blink"]
    out.set_annotations(mne.Annotations(np.asarray(on) + out.first_time, du, de, orig_time=out.annotations.orig_time))
    return out, times


def _brute(events, conditions, starts, flen, ends=None):
    """Loop version of event_regressors (one frame, one event at a time)."""
    ends = np.asarray(starts) + flen if ends is None else ends
    out = np.zeros((len(starts), len(conditions)))
    for j, names in enumerate(conditions.values()):
        for name, (on, du) in events.items():
            if name not in names:
                continue
            for a, d in zip(on, du):
                for i, (s, e) in enumerate(zip(starts, ends)):
                    if d < flen:
                        out[i, j] += s <= a < e
                    else:
                        out[i, j] += max(0.0, min(e, a + d) - max(s, a)) / flen
    return out


def test_event_regressors_count_onsets_and_cover_blocks():
    from eeg2fmri.preprocessing.events import event_regressors

    rng = np.random.default_rng(3)
    events = {"a": (np.sort(rng.uniform(0, 60, 25)), np.zeros(25)), "b": (np.array([4.0, 30.3]), np.array([7.5, 2.0])),
              "c": (np.array([1.0]), np.array([0.1]))}
    conds = {"A": ["a"], "BC": ["b", "c"]}
    for starts, flen in ((np.arange(0, 60, 2.0), 2.0), (np.arange(0, 60, 0.5), 2.0), (np.arange(0.3, 58, 1.7), 1.7)):
        got = event_regressors(events, conds, starts, flen)
        assert got.dtype == np.float32 and got.shape == (len(starts), 2)
        np.testing.assert_allclose(got, _brute(events, conds, starts, flen), atol=1e-6)
    # one event under two names (a marker and its trigger code): counted once
    dup = {"Stimulus/S  1": (np.array([3.0, 9.0]), np.zeros(2)), "STI 014/1": (np.array([3.0005, 9.0]), np.zeros(2))}
    twice = event_regressors(dup, {"s1": ["S 1", "1"]}, np.arange(0, 12, 2.0), 2.0)
    assert twice.sum() == 2 and twice[1, 0] == 1 and twice[4, 0] == 1
    # frames anchored on jittered onsets: counted up to the next frame's start, never twice and never lost
    from eeg2fmri.preprocessing.events import contiguous_ends

    st = np.cumsum(np.r_[0.0, 2.0 + rng.uniform(-0.05, 0.05, 40)])
    on = np.sort(rng.choice(np.arange(0.0, st[-1], 0.01), 60, replace=False))  # (at least 10 ms apart: 60 events)
    both = event_regressors({"a": (on, np.zeros(60))}, {"A": ["a"]}, st, 2.0, ends=contiguous_ends(st, 2.0))
    assert both.sum() == 60
    np.testing.assert_array_equal(contiguous_ends(np.array([0.0, 2.0, 1.0]), 2.0), [2.0, 4.0, 3.0])  # (not in time order: starts + flen)
    # frames that tile the recording: every short event counted once, a block's frames sum to its length in frames
    got = event_regressors(events, conds, np.arange(0, 64, 2.0), 2.0)
    assert got[:, 0].sum() == 25
    assert got[:, 1].sum() == pytest.approx(7.5 / 2 + 1 + 1)  # the 7.5-s block, the 2-s block, the 0.1-s event


def test_event_times_match_mne_events_from_annotations(tiny_bids):
    """event_times reads what MNE reads: the same onsets (in samples from the first) per name as mne.events_from_annotations."""
    from eeg2fmri.preprocessing.events import event_times, stimulus_names

    raw = mne.io.read_raw_brainvision(next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr")), preload=False, verbose=False)
    raw, times = _with_stimuli(raw, 0)
    ev, ids = mne.events_from_annotations(raw, verbose=False)
    got = event_times(raw)
    for name, code in ids.items():
        samples = ev[ev[:, 2] == code, 0] - raw.first_samp
        np.testing.assert_allclose(np.round(got[name][0] * raw.info["sfreq"]), np.sort(samples))
    names = stimulus_names(raw)
    assert sorted(names) == list(STIM)  # not the scanner markers, the comment or the BAD span
    for n in STIM:
        np.testing.assert_allclose(names[n], times[n], atol=1e-9)


def test_resolve_events_forms_and_messages():
    from eeg2fmri.preprocessing.events import resolve_events

    found = [{"Stimulus/S  1": np.array([1.0, 5.0]), "standard": np.array([1.0, 5.0]), "Stimulus/S  2": np.array([3.0]),
              "Response/R  8": np.array([9.0])}, {"Stimulus/S  2": np.array([2.0, 8.0])}]
    assert resolve_events(None, found) is None
    # auto: names with >= 2 events; a marker and the events.tsv trial type of the same events are one condition (the plain
    # name first; a recording with only one of them still finds its events)
    assert resolve_events("auto", found) == {"Stimulus/S  2": ["Stimulus/S  2"], "standard": ["standard", "Stimulus/S  1"]}
    assert resolve_events(["S 2"], found) == {"S 2": ["S 2"]}
    # a marker named by the user pools its events.tsv row (user test 51: a block marker of one sample lost its 20 s)
    assert resolve_events(["S 1"], found) == {"S 1": ["S 1", "standard"]}
    assert resolve_events({"deviant": "S 2", "std": ["S 1", "standard"]}, found) == {"deviant": ["S 2"], "std": ["S 1", "standard"]}
    with pytest.raises(Eeg2fmriInputError, match=r"expected condition 'S 9' \(\['S 9'\]\) to match events of the recordings, found none; they hold"):
        resolve_events(["S 9"], found)
    with pytest.raises(Eeg2fmriInputError, match=r"expected at least one condition, got an empty mapping"):
        resolve_events({}, found)
    assert resolve_events(" Auto", found) == resolve_events("auto", found)
    with pytest.raises(Eeg2fmriInputError, match=r"condition 'R128': expected stimulus marker names, got the scanner marker name\(s\) \['R128'\]"):
        resolve_events(["R128"], found)
    with pytest.raises(Eeg2fmriInputError, match=r"found none; they hold .*\. Did you mean \['standard'\]\?"):
        resolve_events(["standrad"], found)
    with pytest.raises(Eeg2fmriInputError, match=r"conditions 'a' and 'b' name the same markers \(\['S  2'\]\); expected each condition once"):
        resolve_events({"a": "S 2", "b": ["S  2"]}, found)
    with pytest.raises(Eeg2fmriInputError, match=r"conditions 'a' and 'b' name the same markers"):
        resolve_events({"a": "S 2", "b": "Stimulus/S  2"}, found)
    with pytest.raises(Eeg2fmriInputError, match=r"expected 'auto', a list of marker names or a mapping condition -> names, got 3"):
        resolve_events(3, found)
    with pytest.raises(Eeg2fmriInputError, match=r"expected condition -> marker name or list of names, got 'x': 5"):
        resolve_events({"x": 5}, found)
    with pytest.raises(Eeg2fmriInputError, match=r"='auto': expected stimulus markers in the recordings .* found none"):
        resolve_events("auto", [{}])
    many = [{f"S{i}": np.arange(3.0) for i in range(40)}]
    with pytest.raises(Eeg2fmriInputError, match=r"found 40 marker names .* expected at most 32 conditions"):
        resolve_events("auto", many)


@pytest.fixture(scope="module")
def event_runs(tiny_bids, tmp_path_factory):
    """The tiny dataset's runs as FIF files with stimulus annotations (condition 2 as blocks in sub-02) and their BOLD."""
    out = tmp_path_factory.mktemp("events")
    runs, times = [], {}
    for k, s in enumerate(("sub-01", "sub-02")):
        raw = mne.io.read_raw_brainvision(next((tiny_bids / s / "eeg").glob("*_eeg.vhdr")), preload=True, verbose=False)
        raw.set_channel_types({"ECG": "ecg", "EOG": "eog"}, on_unit_change="ignore", verbose=False)
        raw, times[s] = _with_stimuli(raw, k, block=k == 1)
        path = out / f"{s}_raw.fif"
        raw.save(path, verbose="error")
        runs.append({"eeg": str(path), "bold": str(next((tiny_bids / s / "func").glob("*_bold.nii*"))), "subject": s[4:]})
    return runs, times


@pytest.fixture(scope="module")
def event_prepared(event_runs):
    from eeg2fmri.datasets import prepare_dataset

    return prepare_dataset(event_runs[0], {"notch": 50, "events": "auto"}, progress_bar=False)


def test_prepare_appends_event_regressors_after_the_eeg_features(event_prepared, event_runs, tiny_prepared):
    from eeg2fmri.datasets.windows import dataset_spec
    from eeg2fmri.preprocessing.representations.bandpower import frame_starts

    ds = event_prepared
    assert ds.config.events == {n: [n] for n in STIM} and ds.config.event_names == list(STIM)
    n_b = len(tiny_prepared.config.bands)
    spec = dataset_spec(ds, 9)
    assert spec.event_names == STIM and spec.input_shape == (16, n_b + 2, 9) and spec.n_eeg_features == n_b
    runs, times = event_runs
    for run, own, s in zip(ds.runs, tiny_prepared.runs, ("sub-01", "sub-02")):
        f = np.asarray(run.features)
        assert f.shape == (len(own.features), 16, n_b + 2)
        np.testing.assert_allclose(f[:, :, :n_b], np.asarray(own.features), atol=1e-4)  # the EEG features unchanged (FIF: float32 data)
        assert (f[:, :, n_b:] == f[:, :1, n_b:]).all()  # the same regressors on every channel
        starts, _ = frame_starts(np.asarray(run.onsets), ds.tr, 1, np.inf, "x")
        flen = ds.tr
        # (condition 2: 12-s blocks in sub-02; sub-01's events of it carry no duration and take the recorded 12 s)
        assert ds.config.event_durations == {STIM[1]: 12.0}
        events = {n: (times[s][n], np.full(len(times[s][n]), 12.0 if n == STIM[1] else 0.0)) for n in STIM}
        # each frame counts the events up to the next frame's start (frames anchored on jittered markers: no gap, no overlap)
        ends = np.r_[starts[1:], starts[-1] + flen]
        want = _brute(events, {n: [n] for n in STIM}, starts, flen, ends)
        np.testing.assert_allclose(f[:, 0, n_b:], want, atol=1e-5)  # (FIF: float32 onsets)
        first, last = starts[0], ends[-1]
        for k, n in enumerate(STIM[:1]):  # short events inside the frames: each counted exactly once
            assert f[:, 0, n_b + k].sum() == np.sum((times[s][n] >= first) & (times[s][n] < last))


def test_prepare_events_refusals(event_runs):
    from eeg2fmri.datasets import prepare_dataset

    runs = event_runs[0]
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option events: expected representation one of \['bandpower', 'tangent'\] .* got 'stft'"):
        prepare_dataset(runs, {"notch": 50, "events": "auto", "representation": "stft"}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"expected condition 'S 77' \(\['S 77'\]\) to match events of the recordings, found none; they hold 'Stimulus/S  "):
        prepare_dataset(runs, {"notch": 50, "events": ["S 77"]}, progress_bar=False)


def test_dataspec_checks_event_names():
    from eeg2fmri.datasets.spec import DataSpec

    spec = DataSpec("bandpower", (4, 5, 9), (7,), 100.0, 2.0, frame_rate=0.5, event_names=("a", "b"))
    assert spec.n_events == 2 and spec.n_eeg_features == 3
    assert DataSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(Eeg2fmriInputError, match=r"expected event regressors after at least one EEG feature on axis 1 of frame-based windows, got 2"):
        DataSpec("raw", (4, 500), (7,), 100.0, 2.0, event_names=("a", "b"))
    with pytest.raises(Eeg2fmriInputError, match=r"got 2 event name\(s\) for input_kind='bandpower', input_shape=\(4, 2, 9\)"):
        DataSpec("bandpower", (4, 2, 9), (7,), 100.0, 2.0, event_names=("a", "b"))


def _design(seed: int, n: int = 420, c: int = 5, b: int = 3, t: int = 8, n_out: int = 6):
    """Windows (n, c, b + 2, t) of noise EEG features and two event series, targets driven by the events' HRF response
    (outputs 0-2) or by one EEG feature (outputs 3-5)."""
    from eeg2fmri.datasets.spec import DataSpec
    from eeg2fmri.preprocessing.hrf import double_gamma_hrf

    rng = np.random.default_rng(seed)
    total = n + t
    eeg = rng.standard_normal((total, c, b))
    ev = (rng.random((total, 2)) < 0.3).astype(float)
    h = double_gamma_hrf(1.0, length=t)[:t]
    resp = np.stack([np.convolve(ev[:, k], h)[:total] for k in range(2)], 1)
    drive = np.convolve(eeg[:, 1, 0], h)[:total]
    y = np.zeros((total, n_out))
    y[:, 0], y[:, 1], y[:, 2] = resp[:, 0], resp[:, 1], resp[:, 0] - resp[:, 1]
    y[:, 3:] = drive[:, None] * np.array([1.0, -0.5, 0.8])
    y /= y.std(0)
    y += 0.3 * rng.standard_normal(y.shape)
    feats = np.concatenate([eeg, np.repeat(ev[:, None, :], c, axis=1)], axis=2)  # (total, c, b + 2)
    x = np.stack([feats[i + 1 - t : i + 1].transpose(1, 2, 0) for i in range(t - 1, total)])[:n]
    spec = DataSpec("bandpower", (c, b + 2, t), (n_out,), 100.0, 1.0, frame_rate=1.0, event_names=("e1", "e2"))
    return spec, x.astype(np.float32), y[t - 1 : t - 1 + n].astype(np.float32)


def _r(p, y):
    return np.array([np.corrcoef(p[:, k], y[:, k])[0, 1] for k in range(y.shape[1])])


def test_ridge_hrf_reads_events_as_asked():
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.models.stimulus_glm import StimulusGLM

    spec, x, y = _design(0)
    tr, va, te = slice(0, 250), slice(250, 330), slice(330, 420)
    fit = {k: RidgeHRF(spec, inputs=k).fit(x[tr], y[tr], x[va], y[va]) for k in ("all", "eeg", "events")}
    r = {k: _r(m.predict(x[te]), y[te]) for k, m in fit.items()}
    assert (r["events"][:3] > 0.8).all() and (np.abs(r["events"][3:]) < 0.3).all()  # a stimulus GLM: the event-driven outputs only
    assert (r["eeg"][3:] > 0.8).all() and (np.abs(r["eeg"][:3]) < 0.3).all()
    assert (r["all"] > 0.75).all()  # both
    glm = StimulusGLM(spec).fit(x[tr], y[tr], x[va], y[va])
    np.testing.assert_allclose(glm.predict(x[te]), fit["events"].predict(x[te]), atol=1e-5)
    # "eeg" does not read the event block, "events" not the EEG block
    x2 = x.copy()
    x2[:, :, 3:] = 0.0
    np.testing.assert_allclose(fit["eeg"].predict(x2[te]), fit["eeg"].predict(x[te]), atol=1e-5)
    x3 = x.copy()
    x3[:, :, :3] = 0.0
    np.testing.assert_allclose(fit["events"].predict(x3[te]), fit["events"].predict(x[te]), atol=1e-5)
    # the event block is read from channel 0 only; input_weights are the exact gradient of the (linear) prediction
    for m in fit.values():
        w = m.input_weights(np.array([0]))
        assert w.shape == spec.input_shape and not w[1:, 3:].any()
        d = np.random.default_rng(1).standard_normal(spec.input_shape).astype(np.float32) * 0.1
        diff = m.predict(x[te][:1] + d)[0, 0] - m.predict(x[te][:1])[0, 0]
        assert diff == pytest.approx(float((w * d).sum()), rel=1e-3, abs=1e-5)
    assert fit["all"].event_gain_ in (1.0, 4.0, 16.0, 64.0) and fit["eeg"].event_gain_ == 1.0
    # a saved model predicts the same (the gain lives in the saved scales)
    again = RidgeHRF(spec, inputs="all").load_state_dict(fit["all"].state_dict())
    np.testing.assert_allclose(again.predict(x[te]), fit["all"].predict(x[te]), atol=1e-6)
    assert again.event_gain_ == fit["all"].event_gain_


def test_event_model_refusals():
    from eeg2fmri.datasets.spec import DataSpec
    from eeg2fmri.models.ridge_hrf import RidgeHRF
    from eeg2fmri.models.stimulus_glm import StimulusGLM

    plain = DataSpec("bandpower", (5, 3, 8), (6,), 100.0, 1.0, frame_rate=1.0)
    with pytest.raises(Eeg2fmriInputError, match=r"stimulus_glm: expected windows with event regressors .* got windows without; prepare"):
        StimulusGLM(plain)
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: inputs='events' \(a stimulus GLM\) needs windows with event regressors"):
        RidgeHRF(plain, inputs="events")
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected inputs one of \['all', 'eeg', 'events'\], got 'both'"):
        RidgeHRF(plain, inputs="both")
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected event_gain \"auto\" or a positive number, got -1"):
        RidgeHRF(plain, event_gain=-1)
    spec, x, y = _design(1, n=60)
    m = RidgeHRF(spec).fit(x, y)
    with pytest.raises(Eeg2fmriInputError, match=r"expected windows of shape \(n, 5, 5, 8\), got \(60, 5, 3, 8\); .*\(with the same event regressors\)"):
        m.predict(x[:, :, :3])


def test_flagship_does_not_read_the_event_regressors(one_torch_thread):
    import torch

    from eeg2fmri.models import build_model

    spec, x, y = _design(2, n=40)
    torch.manual_seed(0)
    net = build_model("eeg2fmri_net", spec, n_sources=2, seed=0).eval()
    assert net.n_bands == 3 and net.training_features == 3
    xt = torch.from_numpy(x)
    with torch.no_grad():
        a = net(xt)
        x2 = xt.clone()
        x2[:, :, 3:] = 5.0
        b = net(x2)
        c = net(xt[:, :, :3])  # windows without their events (training batches copy only the EEG block)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_synthesize_reads_the_recordings_events_as_prepare_did(event_prepared, event_runs, tmp_path, caplog):
    import logging

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.datasets.windows import valid_volumes, window_matrix
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.training import fit_model, save_fit

    ds = event_prepared
    sp = make_split(ds, "within")
    eeg = event_runs[0][0]["eeg"]
    times = event_runs[1]["sub-01"]
    run = ds.runs[0]
    vols = valid_volumes(run, sp.n_frames)
    x, _, _ = window_matrix(ds, {0: vols}, sp.n_frames)
    for name in ("stimulus_glm", "ridge_hrf"):
        fitted = fit_model(ds, sp, name, {"hrf": "canonical"}, targets=split_targets(ds, sp))
        assert fitted.model.spec.event_names == STIM
        saved = save_fit(fitted, tmp_path / name)
        out = synthesize(eeg, saved, tmp_path / f"{name}_bold.nii.gz", progress_bar=False, volumes="markers")
        side = json.loads((tmp_path / f"{name}_bold.json").read_text())
        assert side["EventRegressors"] == {n: len(times[n]) for n in STIM}
        data = np.asarray(nib.load(out).dataobj)[ds.mask].T  # (volumes, voxels)
        # the prepared run's windows (its volumes timed by the same markers) give the same predictions: output volume j
        # starts at StartTime + j * TR (s from the first EEG sample), as the prepared volumes' onsets count
        ref = fitted.model.predict(x)
        j = np.round((np.asarray(run.onsets)[vols] - side["StartTime"]) / side["RepetitionTime"]).astype(int)
        ok = (j >= 0) & (j < len(data))
        assert ok.mean() > 0.8
        if name == "stimulus_glm":  # events alone: the same regressors on the same frames
            np.testing.assert_allclose(data[j[ok]], ref[ok], atol=1e-4 * np.abs(ref).max())
        else:  # the EEG features standardised over the whole recording instead of the prepared run's frames: nearly
            r = [np.corrcoef(data[j[ok], v], ref[ok, v])[0, 1] for v in range(0, ref.shape[1], 7)]
            assert np.median(r) > 0.99
    # a recording without the training's stimulus names: warned, its regressors zero
    from eeg2fmri.evaluation.uncertainty import calibrate_uncertainty
    from eeg2fmri.models.calibration import save_calibration

    save_calibration(saved, calibrate_uncertainty(fitted.model, ds, sp, split_targets(ds, sp)))
    synthesize(eeg, saved, tmp_path / "all_bold.nii.gz", progress_bar=False, volumes="markers")
    side = json.loads((tmp_path / "all_bold.json").read_text())
    raw = mne.io.read_raw_fif(eeg, preload=True, verbose=False)
    raw.annotations.rename({n: n.replace("S  ", "X  ") for n in STIM})
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(raw, saved, tmp_path / "none_bold.nii.gz", progress_bar=False)
    assert "reads event regressors of condition(s) ['Stimulus/S  1', 'Stimulus/S  2']" in caplog.text
    assert "this recording holds none of their events" in caplog.text
    none_side = json.loads((tmp_path / "none_bold.json").read_text())
    assert none_side["EventRegressors"] == {n: 0 for n in STIM}
    # the validation evidence was measured with the events: said not to carry over (user test 51)
    assert none_side["ValidationR"]["conditions_missing_here"]["conditions"] == list(STIM)
    assert "conditions_missing_here" not in side["ValidationR"]


def test_benchmark_adds_the_stimulus_glm_row(event_prepared, tiny_prepared):
    from eeg2fmri.workflows.benchmark import leaderboard_notes, run_benchmark

    bench = run_benchmark(event_prepared, "within", ["ridge_hrf"], n_boot=20, progress_bar=False)
    names = [r["name"] for r in bench["leaderboard"]]
    assert "stimulus_glm" in names and "ridge_hrf" in names
    assert {r["name"] for r in bench["leaderboard"] if r.get("reads_events")} == {"ridge_hrf", "stimulus_glm"}
    assert any(n.startswith("event regressors (the stimulus markers, prepare option events) are read by: ") for n in leaderboard_notes(bench["leaderboard"]))
    eeg = run_benchmark(event_prepared, "within", ["ridge_hrf"], n_boot=20, progress_bar=False, hparams={"ridge_hrf": {"inputs": "eeg"}})
    assert {r["name"] for r in eeg["leaderboard"] if r.get("reads_events")} == {"stimulus_glm"}
    plain = run_benchmark(tiny_prepared, "within", ["ridge_hrf"], n_boot=20, progress_bar=False)
    assert "stimulus_glm" not in [r["name"] for r in plain["leaderboard"]]


def test_benchmark_command_leaves_the_stimulus_glm_of_all_out_without_events(tiny_prepared, tmp_path, monkeypatch, capsys):
    """--models all lists stimulus_glm; on data without event regressors it is left out (asked by name: a row saying why)."""
    import eeg2fmri.models
    from eeg2fmri.cli import main

    prepared = tmp_path / "prep"
    tiny_prepared.save(prepared)
    monkeypatch.setattr(eeg2fmri.models, "list_models", lambda: ["mean", "ridge_hrf", "stimulus_glm"])
    assert main(["benchmark", str(prepared), "--models", "all", "--protocol", "within", "--out", str(tmp_path / "b"), "-q",
                 "--no-report", "--n-boot", "20"]) == 0
    rows = json.loads((tmp_path / "b" / "leaderboard.json").read_text())["leaderboard"]
    assert "stimulus_glm" not in [r["name"] for r in rows]
    capsys.readouterr()
    assert main(["benchmark", str(prepared), "--models", "stimulus_glm", "--protocol", "within", "--out", str(tmp_path / "c"), "-q",
                 "--no-report", "--n-boot", "20"]) == 1  # (a model that could not be trained: its row says why)
    assert "stimulus_glm not trained: stimulus_glm: expected windows with event regressors" in capsys.readouterr().out


def test_explain_reports_the_event_regressors_apart(event_prepared, tmp_path):
    """explain on models of data with event regressors: the events get their own rows (share of the attribution), the
    channel/band/lag shares are of the EEG entries; the stimulus GLM's attribution is all on the events."""
    from eeg2fmri.commands.explain import method_line
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.explain import explain, explanation_rows
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.explain import explain_fitted

    ds = event_prepared
    sp = make_split(ds, "within")
    for name in ("stimulus_glm", "ridge_hrf"):
        fitted = fit_model(ds, sp, name, {"hrf": "canonical"}, targets=split_targets(ds, sp))
        res = explain(fitted.model, ds, sp, target="voxel:3", n_windows=8, progress_bar=False)
        agg = res["methods"]["integrated_gradients"]
        assert agg["event_names"] == list(STIM) and len(agg["band"]) == len(ds.config.bands)
        rows = [r for r in explanation_rows(res) if r["axis"] == "event"]
        assert [r["name"] for r in rows] == list(STIM)
        line = method_line("integrated_gradients", agg, res)  # the console summary names the events' share too
        assert f"event regressors {100 * agg['event_share']:.0f} % of the attribution ({STIM[0]} " in line
        if name == "stimulus_glm":
            assert "event regressors 100 %" in line
            assert agg["event_share"] == pytest.approx(1.0) and not np.any(agg["channel"])
        else:
            assert 0 <= agg["event_share"] < 1 and sum(agg["channel"]) == pytest.approx(1.0)
    out, _ = explain_fitted(fitted.model, ds, sp, tmp_path / "explain", target="voxel:3", n_windows=8, progress_bar=False)
    assert (out / "events.png").is_file()


def test_classify_eeg_source_leaves_the_event_regressors_out(event_prepared, tiny_prepared):
    """The classifier's EEG features must not contain the stimulus markers its labels come from."""
    from eeg2fmri.workflows.classify import source_series

    got, want = source_series(event_prepared, "eeg"), source_series(tiny_prepared, "eeg")
    assert sorted(got) == sorted(want)
    for a, b in ((got[i], want[i]) for i in got):
        assert a.shape == b.shape
        ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
        np.testing.assert_allclose(a[ok], b[ok], atol=1e-4)


def test_event_conditions_must_match_across_datasets(event_prepared, tiny_prepared):
    import dataclasses

    from eeg2fmri.evaluation.crossdata import check_same_space

    with pytest.raises(Eeg2fmriInputError, match=r"event regressors \{'Stimulus/S  1': \['Stimulus/S  1'\], .*\} vs none"):
        check_same_space(event_prepared, tiny_prepared)
    brief = dataclasses.replace(event_prepared, config=dataclasses.replace(event_prepared.config, event_durations=None))
    with pytest.raises(Eeg2fmriInputError, match=r"event durations \{'Stimulus/S  2': 12\.0\} vs none"):
        check_same_space(event_prepared, brief)


def test_auto_events_leave_the_runs_own_scanner_markers_out(tiny_bids):
    """A layout's own volume marker (CWL: 'mri', NeuroBOLT: 'R149') and its segment marker are never a condition of 'auto'."""
    from eeg2fmri.io.layouts._base import LayoutRun
    from eeg2fmri.preprocessing.events import run_marker_names, stimulus_names

    raw = mne.io.read_raw_brainvision(next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr")), preload=False, verbose=False)
    raw, _ = _with_stimuli(raw, 3)
    raw.annotations.rename({d: "mri" for d in set(raw.annotations.description) if "R128" in d})
    raw.annotations.append(raw.annotations.onset[:3] - raw.first_time + raw.first_time, 0.0, "Stimulus/S 99")
    rec = LayoutRun(eeg_path=tiny_bids, bold_path=tiny_bids, subject="01", session=None, task="rest", run=None, marker=("mri",),
                    meta={"segment_marker": "Stimulus/S 99"})
    assert run_marker_names(rec, ["R128"]) == ("mri", "R128", "Stimulus/S 99")
    assert sorted(stimulus_names(raw, run_marker_names(rec, ["R128"]))) == list(STIM)
    assert "mri" in stimulus_names(raw, ["R128"])  # (without the layout's marker it would be a condition)


def test_synthesize_a_model_of_several_frames_per_tr_at_its_training_tr(tiny_bids, tmp_path):
    """frames_per_tr > 1: synthesize without --tr writes one volume per training TR (it was refused: 'tr=2.0 s: expected
    the training TR or ...'), each the model's prediction on the window ending with that volume."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import eeg_representation
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import load_model
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.training import fit_model, save_fit

    ds = prepare_dataset(tiny_bids, {"frames_per_tr": 2}, progress_bar=False)
    sp = make_split(ds, "within")
    saved = save_fit(fit_model(ds, sp, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(ds, sp)), tmp_path / "m2")
    eeg = next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr"))
    out = synthesize(eeg, saved, tmp_path / "s_bold.nii.gz", progress_bar=False, first_onset=0)
    img = nib.load(out)
    assert img.header.get_zooms()[3] == pytest.approx(2.0)
    side = json.loads((tmp_path / "s_bold.json").read_text())
    lm = load_model(saved)
    raw = mne.io.read_raw_brainvision(eeg, preload=True, verbose=False).pick(side["ChannelsUsed"])
    feats = eeg_representation(raw, ds.config, tr=2.0)["features"]  # frames of 1 s from the first sample
    n = lm.meta["window"]["n_frames"]
    data = np.asarray(img.dataobj)[ds.mask].T
    # output volume j starts at StartTime + 2 j s; its window is the n frames that end at the volume's end
    e0 = int(round((side["StartTime"] + 2.0) / 1.0))
    x = np.stack([feats[e0 + 2 * j - n : e0 + 2 * j].transpose(1, 2, 0) for j in range(len(data))])
    ref = lm.model.predict(x)
    # (the streamed band power interpolates the one-shot envelope samples: ~1 % of the range at 1-s frames)
    np.testing.assert_allclose(data, ref, atol=3e-2 * np.abs(ref).max())
    r = [np.corrcoef(data[:, v], ref[:, v])[0, 1] for v in range(0, ref.shape[1], 11)]
    assert np.median(r) > 0.995
    # one frame off would be far worse: the grid is the volumes'
    k = min(len(data), (len(feats) - e0 - 1) // 2 + 1)  # (windows one frame later that fit in the recording)
    off = lm.model.predict(np.stack([feats[e0 + 2 * j - n + 1 : e0 + 2 * j + 1].transpose(1, 2, 0) for j in range(k)]))
    r_off = [np.corrcoef(data[:k, v], off[:, v])[0, 1] for v in range(0, ref.shape[1], 11)]
    assert np.median(r_off) < np.median(r) - 0.01


def test_synthesize_says_nothing_of_events_a_model_does_not_read(tiny_bids, caplog):
    import logging

    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.synthesis.synthesize import _event_rows

    raw = mne.io.read_raw_brainvision(next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr")), preload=False, verbose=False)
    cfg = PrepareConfig(events={"x": ["S 42"]})
    starts = np.arange(0, 100, 2.0)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        rows, counts = _event_rows(raw, cfg, starts, 2.0, "rec", reads_events=False)
    assert counts == {"x": 0} and not rows.any() and "holds none of their events" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        _event_rows(raw, cfg, starts, 2.0, "rec", reads_events=True)
    assert "holds none of their events" in caplog.text


def test_evaluate_and_benchmark_keep_the_trained_event_conditions(event_prepared, tiny_prepared, tmp_path, capsys):
    """evaluate refuses data prepared without the model's event regressors; benchmark --hparams reaches the stimulus GLM row."""
    from eeg2fmri.cli import main
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.training import fit_model, save_fit
    from eeg2fmri.workflows.evaluate import evaluate_run

    sp = make_split(event_prepared, "within")
    saved = save_fit(fit_model(event_prepared, sp, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(event_prepared, sp)),
                     tmp_path / "model")
    plain = tmp_path / "plain"
    tiny_prepared.save(plain)
    with pytest.raises(Eeg2fmriInputError, match=r"plain: expected the event regressors the model was trained with \(\{'Stimulus/S  1'.* got none; "
                                                 r"prepare the data with the prepare options events and event_durations"):
        evaluate_run(model=saved, data=plain, out=tmp_path / "ev", n_boot=0, progress_bar=False)
    prepared = tmp_path / "events"
    event_prepared.save(prepared)
    assert main(["benchmark", str(prepared), "--models", "ridge_hrf", "--protocol", "within", "--out", str(tmp_path / "b"), "-q",
                 "--no-report", "--n-boot", "20", "--hparams", '{"stimulus_glm": {"hrf": "lags"}}']) == 0
    capsys.readouterr()


def test_flagship_linear_path_reads_the_event_regressors(event_prepared, tmp_path, one_torch_thread):
    """The flagship's network reads the EEG features only; its linear path (band-power ridge) reads the event regressors
    too, as ridge_hrf does -- after a save and load as well."""
    import torch

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.datasets.windows import valid_volumes, window_matrix
    from eeg2fmri.models import load_model
    from eeg2fmri.training import fit_model, save_fit

    ds = event_prepared
    sp = make_split(ds, "within")
    fitted = fit_model(ds, sp, "eeg2fmri_net", {"n_sources": 2, "seed": 0}, targets=split_targets(ds, sp),
                       train_config={"optimizer": {"max_epochs": 2}, "trainer": {"progress_bar": False}})
    net = fitted.model.module.eval()
    assert net._reads == (True, float(net.ridge_weight) > 0)
    x, _, _ = window_matrix(ds, {0: valid_volumes(ds.runs[0], sp.n_frames)[:20]}, sp.n_frames)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    moved = xt.clone()
    moved[:, :, -2:, :] += 1.0
    with torch.no_grad():
        lin, lin_moved = net.ridge_prediction(xt), net.ridge_prediction(moved)
        assert not torch.allclose(lin, lin_moved)  # the linear path reads them
        with pytest.raises(Eeg2fmriInputError, match=r"eeg2fmri_net: its linear path reads the event regressors \['Stimulus/S  1', 'Stimulus/S  2'\]"):
            net.ridge_prediction(xt[:, :, :-2])
        before = net(xt)
    saved = save_fit(fitted, tmp_path / "net")
    again = load_model(saved).model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(xt), before)


def test_datasets_check_names_the_stimulus_markers(event_runs, tiny_bids, tmp_path, capsys):
    from eeg2fmri.cli import main

    runs, times = event_runs
    table = tmp_path / "runs.tsv"
    table.write_text("eeg\tbold\tsubject\n" + "".join(f"{r['eeg']}\t{r['bold']}\t{r['subject']}\n" for r in runs))
    assert main(["datasets", "--check", str(table)]) == 0
    out = capsys.readouterr().out
    n1 = sum(len(t[STIM[0]]) for t in times.values())
    assert f"stimulus markers in the recordings: 'Stimulus/S  1' ({n1}x)" in out
    assert "prepare --config '{\"events\": \"auto\"}'" in out and "Comment" not in out.split("stimulus markers")[1].split("\n")[0]
    assert main(["datasets", "--check", str(tiny_bids)]) == 0
    assert "stimulus markers" not in capsys.readouterr().out  # (scanner markers only)


def test_block_durations_survive_markers_without_them():
    """User test 51: a BrainVision block marker of one sample beside its events.tsv row of 20 s is one 20-s block (not an
    impulse), and a recording that gives the markers alone (an EEG-only .vhdr) gets the training's recorded duration."""
    from eeg2fmri.preprocessing.events import condition_durations, event_regressors

    starts, flen = np.arange(0, 100, 2.0), 2.0
    marker = {"Stimulus/S 11": (np.array([10.0, 50.0]), np.array([0.002, 0.002]))}
    both = {**marker, "checkerboard": (np.array([10.0005, 50.0]), np.array([20.0, 20.0]))}
    conds = {"checkerboard": ["checkerboard", "Stimulus/S 11"]}
    full = event_regressors(both, conds, starts, flen)
    assert full.sum() == pytest.approx(20.0) and full[5:15, 0].tolist() == [1.0] * 10  # two 20-s blocks of 10 frames
    assert event_regressors(marker, conds, starts, flen).sum() == 2  # the markers alone: impulses ...
    durations = condition_durations([both], conds)
    assert durations == {"checkerboard": 20.0} and condition_durations([marker], conds) == {}
    np.testing.assert_array_equal(event_regressors(marker, conds, starts, flen, durations=durations), full)  # ... or blocks
    # events that carry a duration keep it (an 8-s block stays 8 s); only those without one take the recorded duration, and
    # a file of markers alone beside files with durations does not switch the durations off (user test 53)
    mixed = {"blk": (np.array([4.0, 40.0, 70.0]), np.array([8.0, 20.0, 0.002]))}
    got = event_regressors(mixed, {"b": ["blk"]}, starts, flen, durations={"b": 20.0})
    assert got.sum() == pytest.approx(4 + 10 + 10)
    assert condition_durations([both, marker, marker], conds) == {"checkerboard": 20.0}


def test_prepare_records_block_durations_and_checks_the_option(event_runs, capsys):
    from eeg2fmri.datasets import prepare_dataset

    runs, times = event_runs
    ds = prepare_dataset(runs, {"notch": 50, "events": "auto"}, progress_bar=False)
    # condition 2: 12-s blocks in sub-02; in sub-01 events without a duration (0 s), which take the recorded 12 s
    assert ds.config.event_durations == {STIM[1]: 12.0}
    off = prepare_dataset(runs, {"notch": 50, "events": "auto", "event_durations": {STIM[1]: 0}}, progress_bar=False)
    assert off.config.event_durations is None  # (0 switches a condition's duration off)
    n_b = len(ds.config.bands)
    # sub-01's events of condition 2 are 12-s blocks with the duration, impulses without it
    assert (np.asarray(ds.runs[0].features)[:, 0, n_b + 1] > 0).sum() > 3 * (np.asarray(off.runs[0].features)[:, 0, n_b + 1] > 0).sum()
    given = prepare_dataset(runs, {"notch": 50, "events": "auto", "event_durations": {STIM[0]: 3}}, progress_bar=False)
    assert given.config.event_durations == {STIM[0]: 3, STIM[1]: 12.0}  # (given on top of the recorded ones)
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option event_durations: expected durations of the conditions \['Stimulus/S  1', "
                                                 r"'Stimulus/S  2'\], got \['nope'\] as well"):
        prepare_dataset(runs, {"notch": 50, "events": "auto", "event_durations": {"nope": 3}}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"event_durations=\{'a': 3\}: expected together with the option events"):
        prepare_dataset(runs, {"notch": 50, "event_durations": {"a": 3}}, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"event_durations: expected a mapping condition -> seconds >= 0, got \{'a': -1\}"):
        prepare_dataset(runs, {"notch": 50, "events": "auto", "event_durations": {"a": -1}}, progress_bar=False)


def test_synthesize_refuses_a_stimulus_glm_without_its_events(event_prepared, event_runs, tmp_path):
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.training import fit_model, save_fit

    sp = make_split(event_prepared, "within")
    saved = save_fit(fit_model(event_prepared, sp, "stimulus_glm", targets=split_targets(event_prepared, sp)), tmp_path / "glm")
    raw = mne.io.read_raw_fif(event_runs[0][0]["eeg"], preload=True, verbose=False)
    raw.annotations.rename({n: n.replace("S  ", "X  ") for n in STIM})
    with pytest.raises(Eeg2fmriInputError, match=r"expected events of the model's conditions \['Stimulus/S  1', 'Stimulus/S  2'\] .* the model "
                                                 r"reads only them \(a stimulus GLM\) and this recording holds none"):
        synthesize(raw, saved, tmp_path / "none_bold.nii.gz", progress_bar=False)
    out = synthesize(event_runs[0][0]["eeg"], saved, tmp_path / "ok_bold.nii.gz", progress_bar=False)
    use = json.loads(out.with_name("ok_bold.json").read_text())["StatisticalUse"]
    assert "a GLM of these conditions on it is circular" in use
