"""The fused score as one value (fer/fusion.py): parsed, checked, written and applied alike by
every consumer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer.errors import FerError
from fer.fusion import GRID, REFERENCE, Fusion


def test_the_reference_weights_are_the_default():
    assert (REFERENCE.w_roi, REFERENCE.w_global) == (0.55, 0.45) and Fusion() == REFERENCE
    assert REFERENCE.to_dict() == {"roi": 0.55, "global": 0.45}
    assert str(REFERENCE) == "roi=0.55,global=0.45"
    assert Fusion.parse(str(REFERENCE)) == REFERENCE == Fusion.from_dict(REFERENCE.to_dict())
    assert Fusion.from_config({}) == REFERENCE
    assert Fusion.from_config({"fusion_roi": 1, "fusion_global": 0}) == Fusion(1.0, 0.0)


def test_apply_is_the_weighted_sum_with_the_global_net_alone_without_rois():
    zg = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    zr = np.array([[0.0, 10.0], [np.nan, np.nan]], np.float32)  # no ROIs: ignored, NaN or not
    z = Fusion(0.5, 0.5).apply(zr, zg, np.array([True, False]))
    assert z.dtype == np.float64 and z.tolist() == [[0.5, 5.0], [0.0, 1.0]]
    assert zg.tolist() == [[1.0, 0.0], [0.0, 1.0]]  # the inputs are not touched


def test_numpy_and_torch_combine_alike():
    rng = np.random.default_rng(0)
    zr, zg = rng.normal(size=(4, 7)).astype(np.float32), rng.normal(size=(4, 7)).astype(np.float32)
    fusion = Fusion(0.7, 0.2)
    on_tensors = fusion.combine(torch.from_numpy(zr), torch.from_numpy(zg)).numpy()
    assert np.array_equal(on_tensors, fusion.combine(zr, zg))
    assert np.allclose(fusion.apply(zr, zg, np.ones(4, bool)), 0.7 * zr + 0.2 * zg)


def test_the_grid_and_the_share():
    assert GRID[0] == 0.0 and GRID[-1] == 1.0 and len(GRID) == 21
    assert [f.w_roi for f in Fusion.grid()] == list(GRID)
    assert all(f.w_global == 1.0 - f.w_roi for f in Fusion.grid())
    assert Fusion(0.55, 0.45).roi_share == pytest.approx(0.55)
    assert Fusion(0.2, 0.2).roi_share == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roi=0.5", "expected exactly the keys roi and global"),
        ("roi=0.5,global=x", "expected roi=W,global=W with numbers"),
        ("roi=0,global=0", "not both 0"),
        ("roi=1.5,global=0", r"each in \[0, 1\]"),
        ("roi=nan,global=0.5", r"each in \[0, 1\]"),
    ],
)
def test_bad_weights_are_one_line_errors(text, message):
    with pytest.raises(FerError, match=message):
        Fusion.parse(text)


def test_bad_records_name_where_they_come_from():
    with pytest.raises(FerError, match=r"^fusion\.json: expected \{'roi': W, 'global': W\}"):
        Fusion.from_dict({"roi": 1}, "fusion.json")
    with pytest.raises(FerError, match=r"^fusion\.json: fusion weights .*not both 0"):
        Fusion.from_dict({"roi": 0, "global": 0}, "fusion.json")
    with pytest.raises(FerError, match="expected numbers"):
        Fusion("0.5", 0.5)
