"""Metrics for synthesised BOLD, with the uncertainty an honest evaluation needs.

Our own metrics (what we report first):

* voxel-wise temporal Pearson r (:func:`pearson_r`, :func:`voxelwise_r`,
  :func:`r_map`, :func:`summarize_r`, :func:`roi_r`), the measure that says
  whether the *fluctuations* of the BOLD signal are predicted, not only the
  mean anatomy;
* intensity errors inside a brain mask with an explicit data range
  (:func:`rmse`, :func:`mae`, :func:`psnr`, :func:`ssim3d`,
  :func:`ssim3d_series`);
* block-bootstrap confidence intervals over time (:func:`block_bootstrap_ci`,
  :func:`bootstrap_median_r`, :func:`paired_bootstrap`, :func:`centred_interval`) and the fraction of a
  noise ceiling reached (:func:`ceiling_fraction`).

Peer-parity metrics, reproducing the definitions of the published
"EEG-to-fMRI" package (Calhas & Henriques) so that numbers can be compared
with theirs: :func:`calhas_rmse` and :func:`calhas_ssim`. They are *their*
definitions, not ours: they include the background of the grid and rescale
the data range per slice, which rewards reproducing the mean anatomy.

Array conventions: voxel-by-time matrices are ``(n_times, n_voxels)``; 4D
volumes are ``(X, Y, Z, n_times)`` (the NIfTI order), with 3D masks
``(X, Y, Z)``. Everything is computed in float64, in chunks where the data
can be large, so float32 inputs are fine.
"""

from __future__ import annotations

# Every name of the former single module eeg2fmri.evaluation.metrics stays importable from here,
# the private helpers included (tests and evaluation.protocol use a few).
from eeg2fmri.evaluation.metrics._common import (  # noqa: F401 (private helpers: kept reachable as before the split)
    _BOOT_ELEMS,
    _CHUNK_ELEMS,
    _REL_VAR_FLOOR,
    _STATS_ELEMS,
    K1,
    K2,
    _as_mask,
    _as_real_array,
    _check_data_range,
    _mask_shapes,
    _prepare_pair,
    _select,
)
from eeg2fmri.evaluation.metrics.bootstrap import (  # noqa: F401 (private helpers: kept reachable as before the split)
    _boot_median_r,
    _check_block_args,
    _interval,
    _prepare_boot,
    _scalar,
    _weights,
    block_bootstrap_ci,
    block_bootstrap_indices,
    bootstrap_median_r,
    bootstrap_p_value,
    centred_interval,
    paired_bootstrap,
)
from eeg2fmri.evaluation.metrics.correlation import (  # noqa: F401 (private helpers: kept reachable as before the split)
    _nanmedian_rows,
    _voxel_series,
    ceiling_fraction,
    median_r,
    pearson_r,
    r_map,
    roi_r,
    summarize_r,
    voxelwise_r,
)
from eeg2fmri.evaluation.metrics.intensity import (  # noqa: F401 (private helpers: kept reachable as before the split)
    _prepare_ssim3d,
    _ssim3d_volumes,
    _ssim_map,
    mae,
    psnr,
    rmse,
    ssim3d,
    ssim3d_series,
)
from eeg2fmri.evaluation.metrics.peers import (  # noqa: F401 (private helpers: kept reachable as before the split)
    _CALHAS_EPS,
    _CALHAS_SIGMA,
    _CALHAS_STEP,
    _CALHAS_WIN,
    _calhas_volumes,
    _gauss_1d,
    _valid_filter_2d,
    calhas_rmse,
    calhas_ssim,
)

__all__ = [
    "block_bootstrap_ci",
    "block_bootstrap_indices",
    "bootstrap_median_r",
    "bootstrap_p_value",
    "centred_interval",
    "calhas_rmse",
    "calhas_ssim",
    "ceiling_fraction",
    "mae",
    "median_r",
    "paired_bootstrap",
    "pearson_r",
    "psnr",
    "r_map",
    "rmse",
    "roi_r",
    "ssim3d",
    "ssim3d_series",
    "summarize_r",
    "voxelwise_r",
]
