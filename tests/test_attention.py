"""siked's attention functions against PyTorch's sdpa (siked.attention)."""

from __future__ import annotations

import pytest
import torch

from siked.attention import decode_sdpa, segments


def _reference(q, k, v, mask):  # type: ignore[no-untyped-def]
    rep = q.shape[1] // k.shape[1]
    k2, v2 = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k2, v2, attn_mask=mask)
    return out.transpose(1, 2)


@pytest.mark.parametrize("heads,kv_heads", [(9, 3), (4, 4), (8, 1)])
def test_decode_equals_sdpa_with_repeated_kv(heads: int, kv_heads: int) -> None:
    torch.manual_seed(0)
    b, n, d = 5, 23, 16
    q = torch.randn(b, heads, 1, d)
    cache = torch.randn(b, kv_heads, n + 7, d)  # a view of a larger buffer, as in the engine
    k, v = cache[:, :, :n], torch.randn(b, kv_heads, n + 7, d)[:, :, :n]
    mask = torch.rand(b, 1, 1, n) > 0.3
    mask[:, :, :, -1] = True  # every row sees at least its own token
    got, weights = decode_sdpa(torch.nn.Module(), q, k, v, mask)
    assert weights is None and got.shape == (b, 1, heads, d)
    torch.testing.assert_close(got, _reference(q, k, v, mask), atol=1e-5, rtol=1e-5)
    masked_out = mask.clone()
    masked_out[0, :, :, 0] = not bool(mask[0, 0, 0, 0])  # flipping one key changes row 0 only
    other, _ = decode_sdpa(torch.nn.Module(), q, k, v, masked_out)
    assert not torch.allclose(other[0], got[0]) and torch.allclose(other[1:], got[1:])


def test_decode_falls_back_to_sdpa_for_prompts() -> None:
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 6, 8), torch.randn(2, 2, 6, 8), torch.randn(2, 2, 6, 8)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()[None, None].expand(2, 1, 6, 6)
    module = torch.nn.Module()
    module.num_key_value_groups = 2  # type: ignore[assignment]
    got, _ = decode_sdpa(module, q, k, v, causal)
    torch.testing.assert_close(got, _reference(q, k, v, causal))


def test_segments_of_a_padding_free_row() -> None:
    assert segments(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])) == [(0, 3), (3, 5), (5, 9)]
    assert segments(torch.tensor([[3, 4, 0]])) == [(0, 2), (2, 3)]
