"""Classical kernels and pattern matching."""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcnn import kernels
from tests import rounding


def step_image(axis: int) -> jnp.ndarray:
    """12x12: zeros, then ones from row 6 (axis 0) or column 6 (axis 1) on."""
    image = np.zeros((12, 12), np.float32)
    if axis == 0:
        image[6:, :] = 1.0
    else:
        image[:, 6:] = 1.0
    return jnp.asarray(image)


def test_blur_averages_the_articles_left_edge_patch_to_85() -> None:
    patch = np.zeros((3, 3), np.float32)
    patch[:, 0] = 255.0
    out = kernels.apply_kernel(patch, kernels.BLUR, padding="valid")
    np.testing.assert_allclose(out, [[85.0]], rtol=1e-6)


@pytest.mark.parametrize("name", ["blur", "sharpen"])
def test_flat_regions_are_unchanged(name: str) -> None:
    flat = jnp.full((6, 6), 0.7, jnp.float32)
    kernel = kernels.CLASSICAL[name]
    out = kernels.apply_kernel(flat, kernel, padding="valid")
    # Sharpen's 5 and -1s cancel: the bound is relative to sum(|terms|), not to 0.7
    # (9 products of float32 numbers; 0.7 itself differs from float32(0.7) by u).
    abs_sum = 0.7 * float(np.abs(np.asarray(kernel, np.float64)).sum())
    bound = rounding.float32_vs_exact(abs_sum, 9)
    rounding.assert_within(out, np.full((4, 4), 0.7), bound)


def test_edge_kernels_respond_only_to_their_orientation() -> None:
    horizontal, vertical = step_image(0), step_image(1)
    h_on_h = kernels.apply_kernel(horizontal, kernels.EDGE_HORIZONTAL, padding="valid")
    h_on_v = kernels.apply_kernel(vertical, kernels.EDGE_HORIZONTAL, padding="valid")
    v_on_v = kernels.apply_kernel(vertical, kernels.EDGE_VERTICAL, padding="valid")
    np.testing.assert_array_equal(h_on_v, 0.0)
    h_v = kernels.apply_kernel(horizontal, kernels.EDGE_VERTICAL, padding="valid")
    np.testing.assert_array_equal(h_v, 0.0)
    # valid output row r covers image rows r..r+2; the dark->bright step is at row 6
    np.testing.assert_allclose(h_on_h[4:6], 4.0)
    np.testing.assert_allclose(np.delete(np.asarray(h_on_h), [4, 5], axis=0), 0.0)
    np.testing.assert_allclose(v_on_v[:, 4:6], 4.0)


def test_same_padding_keeps_image_size() -> None:
    assert kernels.apply_kernel(jnp.ones((28, 28)), kernels.SHARPEN).shape == (28, 28)


def test_match_pattern_peaks_where_patch_was_cut() -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(20, 17)).astype(np.float32)
    for row, col in [(0, 0), (5, 9), (17, 14)]:
        response = kernels.match_pattern(image, image[row : row + 3, col : col + 3])
        assert response.shape == (18, 15)
        assert kernels.best_match(response) == (row, col)
        # dot / (|window| |patch|): the dot and both squared norms are float32 sums of 9
        # positive terms (gamma(9) each), each square root halves its norm's error and
        # adds u, then one product and one division: within gamma(9 + 9 + 4) of 1.
        np.testing.assert_allclose(response[row, col], 1.0, rtol=rounding.gamma(22))


def test_match_pattern_finds_every_copy_of_an_edge() -> None:
    image = np.zeros((16, 16), np.float32)
    image[2:14, 3] = 1.0  # a vertical line
    response = np.asarray(kernels.match_pattern(image, image[5:8, 2:5]))
    peaks = np.argwhere(response > 1 - 1e-6)
    assert {tuple(p) for p in peaks} == {(r, 2) for r in range(2, 12)}
    assert float(response.max()) <= 1 + 1e-6


def test_raw_matching_is_plain_convolution() -> None:
    rng = np.random.default_rng(1)
    image = rng.normal(size=(9, 9)).astype(np.float32)
    patch = image[2:5, 3:6]
    raw = kernels.match_pattern(image, patch, normalize=False)
    # match_pattern(normalize=False) is apply_kernel: the same computation, bit for bit.
    np.testing.assert_array_equal(raw, kernels.apply_kernel(image, patch, padding="valid"))
    np.testing.assert_allclose(raw[2, 3], float(np.sum(patch * patch)), rtol=1e-5)


def test_all_zero_windows_score_zero() -> None:
    image = np.zeros((8, 8), np.float32)
    image[0:3, 0:3] = 1.0
    response = np.asarray(kernels.match_pattern(image, image[0:3, 0:3]))
    assert response[5, 5] == 0.0
    assert np.all(np.isfinite(response))


def test_errors_name_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape("apply_kernel: image must be 2-D (H, W)")):
        kernels.apply_kernel(jnp.ones((1, 8, 8, 1)), kernels.BLUR)
    with pytest.raises(ValueError, match=re.escape("match_pattern: patch must be 2-D (kh, kw)")):
        kernels.match_pattern(jnp.ones((8, 8)), jnp.ones(3))
    with pytest.raises(TypeError, match="apply_kernel: image must have a real floating dtype"):
        kernels.apply_kernel(jnp.ones((8, 8), jnp.int32), kernels.BLUR)
