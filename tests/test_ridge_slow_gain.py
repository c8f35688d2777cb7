"""ridge_hrf's ``slow_gain``: the slow-potential entry (prepare option ``slow_potential``) as a band of its own penalty.

The columns it scales are checked against marked inputs for every basis (with and without event regressors), the
per-output choice against separate fits at fixed gains (same predictions), the shared choice, persistence, the refit
on more windows, and the errors; ``DataSpec`` carries the band names and what the outputs are."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models.ridge_hrf import SLOW_GAINS, RidgeHRF
from eeg2fmri.utils.validation import Eeg2fmriInputError

N_CH, N_B, N_T, N_OUT = 5, 4, 9, 6
NAMES = ("theta", "alpha", "slow_potential", "beta")  # (not last: the entry is found by its name)
SLOW = NAMES.index("slow_potential")


def _spec(kind: str = "regions", names=NAMES, events: tuple[str, ...] = ()) -> DataSpec:
    return DataSpec("bandpower", (N_CH, N_B + len(events), N_T), (N_OUT,), 100.0, 2.0, freqs=(6.0, 10.0, 0.055, 20.0),
                    frame_rate=0.5, band_names=names, output_kind=kind, event_names=events)


def _data(seed: int, n: int):
    """Windows and targets: output 0 driven by the slow entry of channel 0, output 1 by the alpha entry of channel 1,
    the others noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_CH, N_B, N_T)).astype(np.float32)
    y = 0.6 * rng.standard_normal((n, N_OUT))
    y[:, 0] += x[:, 0, SLOW, -4:].sum(-1)
    y[:, 1] += x[:, 1, 1, -4:].sum(-1)
    return x, y


@pytest.mark.parametrize("hrf", ["lags", "basis", "canonical"])
@pytest.mark.parametrize("events", [(), ("go", "stop")])
def test_slow_columns_are_the_slow_entry_of_every_channel(hrf, events):
    """The columns the gain scales are exactly the features computed from the slow entry (the only non-zero input)."""
    spec = _spec(events=events)
    model = RidgeHRF(spec, hrf=hrf)
    rng = np.random.default_rng(3)
    x = np.zeros((2, N_CH, N_B + len(events), N_T))
    x[:, :, SLOW] = rng.uniform(1, 2, (2, N_CH, N_T))
    f = model._features(x, hrf)
    cols = model._slow_columns(f.shape[1])
    marked = np.flatnonzero(np.abs(f[0]) > 1e-9)
    np.testing.assert_array_equal(np.sort(cols), marked)
    k = {"lags": N_T, "basis": 3, "canonical": 1}[hrf]
    assert len(cols) == N_CH * k


def test_no_slow_entry_means_no_slow_columns_and_the_gain_is_ignored():
    x, y = _data(0, 150)
    xv, yv = _data(1, 60)
    spec = _spec(names=("theta", "alpha", "gamma", "beta"))
    a = RidgeHRF(spec, hrf="lags").fit(x, y, xv, yv)
    b = RidgeHRF(spec, hrf="lags", slow_gain=4.0).fit(x, y, xv, yv)
    assert a._slow_index is None and a._slow_columns(100).size == 0
    assert a.slow_gain_ == 1.0 and b.slow_gain_ == 1.0
    np.testing.assert_array_equal(a.predict(xv), b.predict(xv))
    # names that do not match the band count (e.g. a model built before band_names existed): no slow columns either
    c = RidgeHRF(dataclasses.replace(spec, band_names=("slow_potential",)), hrf="lags")
    assert c._slow_index is None


@pytest.mark.parametrize("apt", [True, False, "guarded"])
def test_per_target_gains_give_the_predictions_of_separate_fits(apt):
    """Each output's prediction equals that of a model fitted with its chosen gain fixed, penalties as chosen there
    (one for all, per output or guarded), after the coefficients are brought onto one standardisation: the model
    returned is the one whose validation errors chose the gains (a review found the penalty chosen again per group)."""
    x, y = _data(0, 240)
    xv, yv = _data(1, 90)
    xt, _ = _data(2, 50)
    spec = _spec("regions")
    model = RidgeHRF(spec, hrf="lags", alpha_per_target=apt).fit(x, y, xv, yv)
    assert np.shape(model.slow_gain_) == (N_OUT,) and set(np.unique(model.slow_gain_)) <= set(SLOW_GAINS)
    assert model.slow_gain_[0] >= 1.0  # the slow-driven output keeps the slow entry
    assert model.slow_gain_[1] < model.slow_gain_[0]
    assert model.components_ is None and model.coef_.shape == (N_CH * N_B * N_T, N_OUT)
    pred = model.predict(xt)
    val = ((yv - model.predict(xv)) ** 2).mean(0)
    best = np.full(N_OUT, np.inf)
    for g in SLOW_GAINS:
        single = RidgeHRF(spec, hrf="lags", alpha_per_target=apt, slow_gain=float(g)).fit(x, y, xv, yv)
        best = np.minimum(best, ((yv - single.predict(xv)) ** 2).mean(0))
        cols = np.flatnonzero(model.slow_gain_ == g)
        np.testing.assert_allclose(pred[:, cols], single.predict(xt)[:, cols], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(model.alpha_)[cols], np.broadcast_to(single.alpha_, (N_OUT,))[cols])
    np.testing.assert_allclose(val, best, rtol=1e-4)  # every output at the lowest validation error it was chosen by


def test_per_target_predicts_both_kinds_of_output_better_than_one_gain():
    x, y = _data(0, 240)
    xv, yv = _data(1, 90)
    xt, yt = _data(2, 120)

    def r(m, j):
        return np.corrcoef(m.predict(xt)[:, j], yt[:, j])[0, 1]

    per = RidgeHRF(_spec("regions"), hrf="lags").fit(x, y, xv, yv)
    shared = RidgeHRF(_spec("regions"), hrf="lags", slow_gain="shared").fit(x, y, xv, yv)
    assert np.ndim(shared.slow_gain_) == 0 and shared.slow_gain_ in SLOW_GAINS
    assert r(per, 0) > 0.8 and r(per, 1) > 0.8
    assert r(per, 0) + r(per, 1) >= r(shared, 0) + r(shared, 1) - 1e-3


def test_auto_is_per_target_for_regions_and_gain_1_for_voxels():
    x, y = _data(0, 200)
    xv, yv = _data(1, 80)
    regions = RidgeHRF(_spec("regions"), hrf="lags").fit(x, y, xv, yv)
    voxels = RidgeHRF(_spec("voxels"), hrf="lags").fit(x, y, xv, yv)
    assert regions._slow_rule() == "per_target" and voxels._slow_rule() == 1.0
    assert np.ndim(regions.slow_gain_) == 1 and voxels.slow_gain_ == 1.0
    one = RidgeHRF(_spec("voxels"), hrf="lags", slow_gain=1.0).fit(x, y, xv, yv)
    np.testing.assert_array_equal(one.predict(xv), voxels.predict(xv))  # voxels: gain 1, the fit before slow_gain existed
    # without validation windows a per-output choice has nothing to choose on: one gain by GCV
    gcv = RidgeHRF(_spec("regions"), hrf="lags").fit(x, y)
    assert np.ndim(gcv.slow_gain_) == 0 and gcv.slow_gain_ in SLOW_GAINS


@pytest.mark.parametrize("kind", ["regions", "voxels"])
def test_state_round_trip_and_refit(kind):
    x, y = _data(0, 200)
    xv, yv = _data(1, 80)
    xt, yt = _data(2, 60)
    model = RidgeHRF(_spec(kind), hrf="lags").fit(x, y, xv, yv)
    again = RidgeHRF(_spec(kind), hrf="lags").load_state_dict(model.state_dict())
    np.testing.assert_array_equal(np.asarray(again.slow_gain_), np.asarray(model.slow_gain_))
    np.testing.assert_array_equal(again.predict(xt), model.predict(xt))
    before = model.predict(xt)
    model.refit_chosen(np.concatenate([x, xv]), np.concatenate([y, yv]))
    np.testing.assert_array_equal(np.asarray(again.slow_gain_), np.asarray(model.slow_gain_))  # the choices kept
    after = model.predict(xt)
    assert not np.allclose(after, before)  # new coefficients ...
    assert np.corrcoef(after[:, 0], yt[:, 0])[0, 1] > 0.8  # ... that still predict


@pytest.mark.parametrize("bad", ["per_voxel", 0.0, -1.0, True, float("nan")])
def test_invalid_slow_gain_is_refused(bad):
    with pytest.raises(Eeg2fmriInputError, match=r"ridge_hrf: expected slow_gain one of \['auto', 'shared', 'per_target'\] or a positive "
                                                   r"number, got .*; pass e\.g\. slow_gain=0\.25"):
        RidgeHRF(_spec(), slow_gain=bad)


def test_dataspec_output_kind_and_band_names():
    with pytest.raises(Eeg2fmriInputError, match="output_kind"):
        _spec(kind="parcels")
    d = _spec().to_dict()
    assert DataSpec.from_dict(d) == _spec()
    assert DataSpec.from_dict(d).band_names == NAMES
    old = {k: v for k, v in d.items() if k not in ("band_names", "output_kind")}  # saved before these fields existed
    s = DataSpec.from_dict(old)
    assert s.band_names == () and s.output_kind == "voxels"


def test_dataset_spec_names_bands_and_outputs(tiny_prepared):
    from eeg2fmri.datasets.windows import dataset_spec

    spec = dataset_spec(tiny_prepared, 5)
    assert spec.band_names == tuple(tiny_prepared.bands) and len(spec.band_names) == spec.input_shape[1]
    assert spec.output_kind == "voxels"
    roi = dataclasses.replace(tiny_prepared, rois={"names": ["a", "b"], "labels": [1, 2]})
    assert dataset_spec(roi, 5, (2,)).output_kind == "regions"


def test_region_targets_end_to_end_with_the_flagship(tiny_bids, tiny_prepared, tmp_path):
    """Prepared with slow_potential and an atlas: ridge_hrf (per-region gains, reported by fit_model) and the flagship,
    whose linear path is a ridge_hrf on the same band power, train and predict."""
    import nibabel as nib

    from eeg2fmri.datasets.prepared import prepare_dataset
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model

    labels = np.zeros(tiny_prepared.mask.shape, np.int16)
    xs = np.nonzero(tiny_prepared.mask)[0]
    cuts = np.quantile(xs, [1 / 3, 2 / 3])
    for i, j, k in np.argwhere(tiny_prepared.mask):
        labels[i, j, k] = 2 + int(i > cuts[0]) + int(i > cuts[1])  # labels 2, 3, 4
    atlas = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, tiny_prepared.affine), atlas)
    ds = prepare_dataset(tiny_bids, {"atlas": str(atlas), "slow_potential": "auto"}, progress_bar=False)
    split = make_split(ds, "within")
    ridge = fit_model(ds, split, "ridge_hrf")
    assert ridge.spec.output_kind == "regions" and ridge.spec.band_names[-1] == "slow_potential"
    gains = ridge.info["slow_gain"]
    assert isinstance(gains, float) or sum(gains["per_target"].values()) == ds.n_outputs
    net = fit_model(ds, split, "eeg2fmri_net", train_config={"optimizer": {"max_epochs": 2}}, progress_bar=False)
    x = np.stack([r.features[r.window_end[-3] - net.spec.input_shape[2] : r.window_end[-3]].transpose(1, 2, 0) for r in ds.runs[:2]])
    for fit in (ridge, net):
        pred = fit.model.predict(x)
        assert pred.shape == (2, ds.n_outputs) and np.isfinite(pred).all()


def test_cross_dataset_refuses_another_slow_potential(tiny_prepared):
    """Two datasets prepared with and without slow_potential (or with another band) are not compared."""
    from eeg2fmri.evaluation.crossdata import check_same_space

    def with_slow(band):
        return dataclasses.replace(tiny_prepared, config=dataclasses.replace(tiny_prepared.config, slow_potential=band))

    with pytest.raises(Eeg2fmriInputError, match=r"slow_potential \[0\.01, 0\.1\] vs none; for the slow potential, prepare both with "
                                                   r"the same prepare option slow_potential \(--config '\{\"slow_potential\": \[0\.01, 0\.1\]\}'\)"):
        check_same_space(with_slow([0.01, 0.1]), tiny_prepared)
    with pytest.raises(Eeg2fmriInputError, match=r"slow_potential \[0\.01, 0\.1\] vs \[0\.02, 0\.1\]"):
        check_same_space(with_slow([0.01, 0.1]), with_slow([0.02, 0.1]))
    check_same_space(with_slow("auto"), with_slow([0.01, 0.1]))  # "auto" is that band: alike


def test_per_target_on_a_factored_fit_says_it_keeps_dense_coefficients(caplog):
    """Voxel-sized outputs (more than the windows): the factored form is given up by slow_gain='per_target', and said."""
    import logging

    rng = np.random.default_rng(5)
    n_out = 500
    spec = dataclasses.replace(_spec("voxels"), output_shape=(n_out,))
    x, xv = (rng.standard_normal((n, N_CH, N_B, N_T)).astype(np.float32) for n in (60, 40))
    w = rng.standard_normal((N_CH * N_B * N_T, n_out)) * (rng.random(n_out) < 0.5)  # half the outputs driven
    y, yv = (a.reshape(len(a), -1) @ w / 30 + rng.standard_normal((len(a), n_out)) for a in (x, xv))
    assert RidgeHRF(spec, hrf="lags", slow_gain=1.0).fit(x, y, xv, yv).components_ is not None  # (factored at one gain)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        model = RidgeHRF(spec, hrf="lags", slow_gain="per_target").fit(x, y, xv, yv)
    assert np.unique(model.slow_gain_).size > 1  # (noise outputs and driven ones: several gains chosen)
    assert model.components_ is None and model.coef_.shape == (N_CH * N_B * N_T, n_out)
    assert caplog.text.count("slow_gain='per_target' keeps one (n_features, n_outputs) = (180, 500) coefficient matrix") == 1


def test_train_prints_the_slow_gains():
    """`eeg2fmri train`'s line of choices names the slow-potential gain (one, or per output), from fit_model's info."""
    from eeg2fmri.commands.train import choices_line

    one = choices_line({"hrf": "lags", "slow_gain": 0.25, "alpha": 10.0})
    assert "slow-potential columns weighted 0.25x the bands" in one
    per = choices_line({"hrf": "lags", "slow_gain": {"per_target": {"0.25": 2, "4": 1}}, "alpha": 10.0})
    assert "slow-potential columns' gain per output (gain x outputs): 0.25 x 2, 4 x 1" in per


def test_benchmark_notes_the_slow_gains_unless_all_are_one():
    from eeg2fmri.workflows.benchmark import leaderboard_notes

    def notes(gains):
        return [n for n in leaderboard_notes([{"name": "ridge_hrf", "role": "reference", "slow_gain": gains}]) if "slow-potential" in n]

    assert notes([1.0, 0.25]) == ["ridge_hrf (reference): the slow-potential columns' gain (penalty 1 / gain^2 times the bands') per fold: 1; 0.25"]
    assert "per output 0.25 x 3, 4 x 1" in notes([{"per_target": {"0.25": 3, "4": 1}}, 1.0])[0]
    assert notes([1.0, 1.0]) == []  # (voxels, the default: nothing chosen, nothing said)
