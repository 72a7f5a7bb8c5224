"""siked's per-example attention for padding-free batches (siked.attention)."""

from __future__ import annotations

import torch

from siked.attention import segments


def test_segments_of_a_padding_free_row() -> None:
    assert segments(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])) == [(0, 3), (3, 5), (5, 9)]
    assert segments(torch.tensor([[3, 4, 0]])) == [(0, 2), (2, 3)]
    assert segments(torch.tensor([[]], dtype=torch.long)) == []
