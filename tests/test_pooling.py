"""Masked mean pooling and Whisper frame arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.pooling import lengths_to_mask, masked_mean, whisper_frame_count


def test_masked_mean_matches_numpy_mean_over_real_positions():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lengths = [5, 2, 1]
    expected = np.stack([hidden[b, :n].astype(np.float64).mean(0) for b, n in enumerate(lengths)])
    pooled = masked_mean(torch.from_numpy(hidden), lengths_to_mask(lengths, 5))
    assert pooled.dtype == torch.float32
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_masked_mean_ignores_values_at_masked_positions():
    hidden = torch.zeros(1, 4, 2)
    hidden[0, :2] = 1.0
    hidden[0, 2:] = 1e6  # padding garbage must not leak in
    pooled = masked_mean(hidden, torch.tensor([[True, True, False, False]]))
    assert torch.equal(pooled, torch.ones(1, 2))


def test_masked_mean_supports_non_prefix_masks():
    hidden = torch.arange(6, dtype=torch.float32).reshape(1, 3, 2)  # rows [0,1],[2,3],[4,5]
    pooled = masked_mean(hidden, torch.tensor([[0, 1, 1]]))
    assert pooled.tolist() == [[3.0, 4.0]]


def test_masked_mean_fp16_input_accumulates_in_float32():
    # 4000 values of 60000 overflow an fp16 sum (max 65504) but their mean is representable.
    hidden = torch.full((1, 4000, 1), 60000.0, dtype=torch.float16)
    pooled = masked_mean(hidden, torch.ones(1, 4000, dtype=torch.bool))
    assert pooled.dtype == torch.float32
    assert pooled.item() == pytest.approx(60000.0, rel=1e-3)


def test_masked_mean_rejects_empty_rows_with_their_index():
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        masked_mean(torch.ones(2, 3, 4), torch.tensor([[1, 0, 0], [0, 0, 0]]))


@pytest.mark.parametrize(
    ("hidden_shape", "mask_shape"), [((2, 3), (2, 3)), ((2, 3, 4), (2, 4)), ((2, 3, 4), (3, 3))]
)
def test_masked_mean_rejects_bad_shapes(hidden_shape, mask_shape):
    with pytest.raises(ValueError, match="must be"):
        masked_mean(torch.ones(hidden_shape), torch.ones(mask_shape))


def test_masked_mean_rejects_non_binary_masks():
    with pytest.raises(ValueError, match="0/1"):
        masked_mean(torch.ones(1, 2, 3), torch.tensor([[0.5, 1.0]]))


def test_lengths_to_mask():
    assert lengths_to_mask([0, 2, 3], 3).tolist() == [
        [False, False, False], [True, True, False], [True, True, True]
    ]
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        lengths_to_mask([4], 3)


@pytest.mark.parametrize(
    ("n_samples", "frames"),
    [(0, 0), (1, 1), (320, 1), (321, 2), (16_000, 50), (16_001, 51), (480_000, 1500), (10**6, 1500)],
)
def test_whisper_frame_count(n_samples, frames):
    # 16 kHz, 10 ms mel hop, stride-2 conv: one encoder frame per 20 ms = 320 samples, 30 s = 1500.
    assert whisper_frame_count(n_samples) == frames


def test_whisper_frame_count_rejects_negative():
    with pytest.raises(ValueError):
        whisper_frame_count(-1)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pool_layers_is_pool_of_every_layer_bit_for_bit(pooling):
    """Extraction pools all layers under one mask in one call: the same bits as pooling each
    layer on its own (stored activations do not depend on which path computed them)."""
    from core.pooling import pool, pool_layers

    gen = torch.Generator().manual_seed(0)
    states = [torch.randn(3, 7, 5, generator=gen) * (i + 1) for i in range(4)]
    mask = torch.tensor([[1, 1, 1, 0, 0, 0, 0], [1] * 7, [0, 1, 1, 1, 0, 1, 0]], dtype=torch.bool)
    expected = torch.stack([pool(h, mask, pooling) for h in states], dim=1)
    got = pool_layers(states, mask, pooling)
    assert got.shape == (3, 4, 5) and got.dtype == torch.float32
    assert torch.equal(got, expected)


def test_pool_layers_rejects_empty_rows_bad_masks_and_mismatched_layers():
    from core.pooling import pool_layers

    states = [torch.ones(2, 3, 4), torch.ones(2, 3, 4)]
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        pool_layers(states, torch.tensor([[1, 0, 0], [0, 0, 0]]), "mean")
    with pytest.raises(ValueError, match="only 0/1"):
        pool_layers(states, torch.tensor([[1, 2, 0], [1, 0, 0]]), "mean")
    with pytest.raises(ValueError, match="match"):
        pool_layers(states, torch.ones(2, 4), "mean")
    with pytest.raises(ValueError, match="do not match"):
        pool_layers([*states, torch.ones(2, 5, 4)], torch.ones(2, 3), "mean")
    with pytest.raises(ValueError, match="pooling must be"):
        pool_layers(states, torch.ones(2, 3), "max")


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_pool_token_states_is_pool_on_the_same_positions_bit_for_bit(pooling):
    """The live page pools one input's token states with the same arithmetic as extraction."""
    from core.models.base import TokenStates, pool_token_states
    from core.pooling import pool

    gen = torch.Generator().manual_seed(1)
    layers = [torch.randn(6, 4, generator=gen), torch.randn(2, 4, generator=gen)]
    masks = [np.array([0, 1, 1, 1, 0, 1], dtype=bool), np.array([1, 1], dtype=bool)]
    states = TokenStates("c", [h.numpy() for h in layers], [[""] * len(h) for h in layers],
                         [None, None], masks)
    expected = np.stack([pool(h[None], torch.from_numpy(m)[None], pooling)[0].numpy()
                         for h, m in zip(layers, masks)])
    assert np.array_equal(pool_token_states(states, pooling), expected)
