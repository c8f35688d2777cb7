"""User test 47 (2 mm MNI BOLD, 235,375 voxels): warnings before memory runs out, a clear error when it does, and an
early refusal of fMRIPrep masks on a resampled grid."""

from __future__ import annotations

import logging

import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_memory_check_estimates_and_warns_only_when_it_will_not_fit(tiny_prepared, monkeypatch, caplog):
    import eeg2fmri.training.fit as fit

    p = len(tiny_prepared.ch_names) * len(tiny_prepared.config.bands) * 9
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 10**9}  # 4 TB: fits
    monkeypatch.setattr(fit.os, "sysconf", lambda k: pages[k])
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        est = fit.memory_check(tiny_prepared, 9, "train")
    assert est == pytest.approx(3.0 * 4 * p * tiny_prepared.n_outputs)
    assert not caplog.records
    pages["SC_PHYS_PAGES"] = int(est / 4096)  # the estimate is the whole memory: more than half of it
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        fit.memory_check(tiny_prepared, 9, "benchmark")
    msg = caplog.records[-1].getMessage()
    assert msg.startswith("benchmark: the linear models' coefficients alone will need about")
    assert f"({p} lag features x {tiny_prepared.n_outputs} outputs, float32" in msg and "prepare option voxel_size" in msg


def test_out_of_memory_is_a_clear_error_on_the_command_line(monkeypatch, capsys, tmp_path):
    from eeg2fmri import cli
    from eeg2fmri.commands import evaluate as cmd

    def boom(args):
        raise MemoryError("Unable to allocate 3.03 GiB for an array with shape (3456, 235375) and data type float32")

    monkeypatch.setattr(cmd, "run", boom)
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eeg2fmri evaluate: error: out of memory (Unable to allocate 3.03 GiB")
    assert "prepare option voxel_size" in err and "Traceback" not in err


@pytest.mark.parametrize("opt", [{"voxel_size": 4}, {"grid": [20, 24, 20]}])
def test_fmriprep_masks_on_a_resampled_grid_are_refused_before_any_work(opt):
    from eeg2fmri.datasets.prepared import PrepareConfig, _validate_config

    what = "voxel_size=4" if "voxel_size" in opt else r"grid=\[20, 24, 20\]"
    with pytest.raises(Eeg2fmriInputError, match=rf"prepare options mask='fmriprep' and {what}: expected the BOLD's own grid with "
                                                 r"fMRIPrep's brain masks .* use mask 'mni' \(BOLD in MNI space\) or 'data'"):
        _validate_config(PrepareConfig(mask="fmriprep", **opt))


def test_benchmark_warns_before_it_fits(tiny_prepared, monkeypatch, caplog):
    import eeg2fmri.training.fit as fit
    from eeg2fmri.workflows import run_benchmark

    monkeypatch.setattr(fit.os, "sysconf", lambda k: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 1}[k])  # a 4 kB machine
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        run_benchmark(tiny_prepared, "within", ["mean"], n_boot=0, progress_bar=False)
    assert any(r.getMessage().startswith("benchmark: the linear models' coefficients alone will need about") for r in caplog.records)
