"""The one Pearson r, Laplace NLL and JSON conversion of eeg2fmri.utils."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.stats import laplace_nll, pearson_columns, pearson_from_sums


def _pair(n=57, m=9, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, m))
    b = 0.6 * a + rng.standard_normal((n, m))
    a[:, 3] = 2.5  # constant in a
    b[:, 6] = -1.0  # constant in b
    return a, b


def test_pearson_columns_matches_scipy_and_marks_constant_columns():
    a, b = _pair()
    r = pearson_columns(a, b)
    const = {3, 6}
    for j in range(a.shape[1]):
        if j in const:
            assert np.isnan(r[j])
        else:
            assert r[j] == pytest.approx(stats.pearsonr(a[:, j], b[:, j]).statistic, abs=1e-12)
    r0 = pearson_columns(a, b, constant=0.0)
    assert r0[3] == 0.0 and r0[6] == 0.0
    np.testing.assert_array_equal(np.delete(r0, [3, 6]), np.delete(r, [3, 6]))
    # float32 input is computed in float64; chunking does not change the values
    np.testing.assert_allclose(pearson_columns(a.astype(np.float32), b.astype(np.float32)), r, atol=1e-6, equal_nan=True)


def test_pearson_columns_chunks(monkeypatch):
    import eeg2fmri.utils.stats as S

    a, b = _pair(n=40, m=25, seed=1)
    whole = pearson_columns(a, b)
    monkeypatch.setattr(S, "CHUNK_ELEMS", 40 * 3)
    np.testing.assert_array_equal(pearson_columns(a, b), whole)


def test_pearson_from_sums_numpy_and_torch_match_pearson_columns():
    a, b = _pair(seed=2)
    sums = (len(a), a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), (a * b).sum(0))
    r, ok = pearson_from_sums(*sums)
    ref = pearson_columns(a, b)
    np.testing.assert_allclose(r, ref, atol=1e-10, equal_nan=True)
    assert ok.tolist() == (~np.isnan(ref)).tolist()
    rt, okt = pearson_from_sums(*(torch.as_tensor(v, dtype=torch.float64) for v in sums))
    np.testing.assert_allclose(rt.numpy(), r, atol=1e-12, equal_nan=True)
    assert okt.tolist() == ok.tolist()


def test_laplace_nll_formula():
    g = torch.Generator().manual_seed(0)
    p, s, y = (torch.randn(4, 7, generator=g) for _ in range(3))
    want = ((y - p).abs() / s.exp() + s).mean() + math.log(2.0)
    torch.testing.assert_close(laplace_nll(p, s, y), want)
    assert laplace_nll(p.double(), s.double(), y.double()).dtype == torch.float32


def test_to_jsonable():
    obj = {"a": np.float32(1.5), "b": np.arange(3), 2: (np.int64(4), np.bool_(True)), "p": Path("x/y"),
           "_private": np.zeros(2), "nan": float("nan"), "arr": np.array([np.inf, 1.0]), "t": torch.tensor(2.0)}
    plain = to_jsonable(obj)
    assert plain["a"] == 1.5 and plain["b"] == [0, 1, 2] and plain["2"] == [4, True] and plain["p"] == str(Path("x/y"))
    assert "_private" in plain and math.isnan(plain["nan"]) and plain["t"] == 2.0
    strict = to_jsonable(obj, drop_private=True, finite=True)
    assert "_private" not in strict and strict["nan"] is None and strict["arr"] == [None, 1.0]
    json.dumps(strict, allow_nan=False)
