"""siked's per-example attention for padding-free batches (siked.attention)."""

from __future__ import annotations

import pytest
import torch

from siked.attention import segments


def test_segments_of_a_padding_free_row() -> None:
    assert segments(torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])) == [(0, 3), (3, 5), (5, 9)]
    assert segments(torch.tensor([[3, 4, 0]])) == [(0, 2), (2, 3)]
    assert segments(torch.tensor([[]], dtype=torch.long)) == []


def test_cu_seq_lens_are_the_segments() -> None:
    from siked.attention import cu_seq_lens

    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    cu = cu_seq_lens(pos)
    assert cu.dtype == torch.int32
    assert list(zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True)) == segments(pos)


def test_fused_kernel_only_on_cuda_half_precision() -> None:
    from siked.attention import fused_varlen_kernel

    assert fused_varlen_kernel(torch.zeros(1, 2, 3, 4), 0.0) is None  # CPU: per-example sdpa
    assert fused_varlen_kernel(torch.zeros(1, 2, 3, 4, dtype=torch.bfloat16), 0.0) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("given_bounds", [True, False])
def test_fused_varlen_equals_separate_passes_on_cuda(given_bounds: bool) -> None:
    """On a GPU the fused kernel gives what causal sdpa gives on each example alone (GQA)."""
    from siked.attention import cu_seq_lens, varlen_sdpa

    torch.manual_seed(0)
    lengths = [5, 17, 1, 33]
    pos = torch.cat([torch.arange(n) for n in lengths])[None].cuda()
    n = sum(lengths)
    q = torch.randn(1, 8, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, 2, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(1, 2, n, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    kw: dict[str, object] = {"position_ids": pos}
    if given_bounds:
        kw.update(cu_seq_lens_q=cu_seq_lens(pos), max_length_q=max(lengths))
    out, _ = varlen_sdpa(torch.nn.Module(), q, k, v, None, **kw)
    out.float().sum().backward()  # the fused kernel has a backward
    ref = []
    s = 0
    for length in lengths:
        sl = slice(s, s + length)
        ref.append(
            torch.nn.functional.scaled_dot_product_attention(
                q[:, :, sl], k[:, :, sl], v[:, :, sl], is_causal=True, enable_gqa=True
            )
        )
        s += length
    expected = torch.cat(ref, dim=2).transpose(1, 2)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=2e-2, rtol=2e-2)
