"""Shared tiny fixtures: a simulated dataset with a different size on every axis."""

from __future__ import annotations

import pytest

# Tiny but complete: 2 subjects, 3 minutes, 12 mm voxels, 16 channels at 100 Hz.
TINY = dict(n_subjects=2, minutes=3.0, voxel_size=12.0, n_channels=16, n_regions=8, n_networks=3, sfreq=100.0, seed=7)


@pytest.fixture(scope="session")
def tiny_bids(tmp_path_factory):
    from eeg2fmri.simulate import simulate_dataset

    root = tmp_path_factory.mktemp("sim") / "bids"
    return simulate_dataset(root, progress_bar=False, **TINY)


@pytest.fixture(scope="session")
def tiny_prepared(tiny_bids):
    from eeg2fmri.datasets import prepare_dataset

    return prepare_dataset(tiny_bids, progress_bar=False)


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test (tiny tensors: threading only adds overhead), restored after."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def split(tiny_prepared):
    """The within-subject split of the tiny prepared dataset (one per test module)."""
    from eeg2fmri.datasets.targets import make_split

    return make_split(tiny_prepared, "within")


@pytest.fixture(scope="module")
def prepared_dir(tiny_prepared, tmp_path_factory):
    """The tiny prepared dataset saved to disk, a fresh copy per test module (commands read folders)."""
    return tiny_prepared.save(tmp_path_factory.mktemp("prep") / "prepared")


@pytest.fixture(autouse=True)
def _plugins_named_stay_in_their_test():
    """Plugins a test names (EEG2FMRI_PLUGINS, a config's plugins) are recorded in provenance and resolved configs
    (eeg2fmri.utils.plugins.named_plugins): forgotten after the test, as the registry is."""
    import eeg2fmri.utils.plugins as plugins

    saved = dict(plugins._named)
    yield
    plugins._named.clear()
    plugins._named.update(saved)
