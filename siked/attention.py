"""Per-example causal attention for padding-free training batches on any device.

A padding-free batch (TRL's ``padding_free`` / ``packing``) is one flattened sequence of several
examples whose ``position_ids`` restart at 0 where an example starts. A varlen flash kernel
(``flash_attention_2``, CUDA only) attends within each example. With plain sdpa, transformers
builds a block-diagonal causal mask over the whole flattened sequence and the kernel computes
(sum of lengths)^2 scores, most of them masked.

:func:`varlen_sdpa` is the equivalent of the varlen kernel without ``flash-attn``: on a CUDA
GPU in fp16/bf16 it calls PyTorch's own fused varlen flash kernel
(``torch.nn.attention.varlen.varlen_attn``, torch >= 2.10) once for all examples, with the
example boundaries TRL's collator computed (``cu_seq_lens_q``, ``max_length_q``: no host
synchronisation per layer); elsewhere (CPU, fp32) it cuts the flattened sequence at the restarts
and runs causal sdpa on each example alone. Either way the work is sum(length^2) and no mask is
materialised. Registered with transformers as
``attn_implementation="siked_varlen"`` (:func:`register`); batches that are not padding-free
(several rows, or no ``position_ids``) fall back to transformers' own sdpa path, so the model
stays usable for anything else.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch

#: The name under which :func:`register` makes :func:`varlen_sdpa` available to transformers.
NAME = "siked_varlen"


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """``(start, end)`` of each example in a flattened row: a new one starts where the position
    is 0 (or does not follow the previous position).

    >>> segments(torch.tensor([[0, 1, 2, 0, 1, 0]]))
    [(0, 3), (3, 5), (5, 6)]
    >>> segments(torch.tensor([[5, 6, 7]]))
    [(0, 3)]
    """
    pos = position_ids.reshape(-1)
    if pos.numel() == 0:
        return []
    starts = torch.ones_like(pos, dtype=torch.bool)
    starts[1:] = pos[1:] != pos[:-1] + 1
    idx = [*starts.nonzero().flatten().tolist(), pos.numel()]
    return list(itertools.pairwise(idx))


def _bounds(cu_seq_lens: torch.Tensor | None, position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """Example bounds from TRL's ``cu_seq_lens_q`` (computed once per batch by its collator)
    when given, else from ``position_ids``."""
    if cu_seq_lens is None:
        return segments(position_ids)
    idx = cu_seq_lens.tolist()
    return list(itertools.pairwise(idx))


def cu_seq_lens(position_ids: torch.Tensor) -> torch.Tensor:
    """Cumulative example bounds (int32, on ``position_ids``' device, no host synchronisation)
    of a flattened row, as a varlen kernel takes them.

    >>> cu_seq_lens(torch.tensor([[0, 1, 2, 0, 1, 0]])).tolist()
    [0, 3, 5, 6]
    """
    pos = position_ids.reshape(-1)
    starts = torch.ones_like(pos, dtype=torch.bool)
    starts[1:] = pos[1:] != pos[:-1] + 1
    end = torch.tensor([pos.numel()], device=pos.device)
    return torch.cat([starts.nonzero().flatten(), end]).to(torch.int32)


def fused_varlen_kernel(query: torch.Tensor, dropout: float) -> Any:
    """PyTorch's fused varlen flash attention where it runs (CUDA, fp16/bf16, no dropout), else
    None (then :func:`varlen_sdpa` loops over the examples)."""
    if not query.is_cuda or query.dtype not in (torch.float16, torch.bfloat16) or dropout:
        return None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch < 2.10
        return None
    return varlen_attn


def varlen_sdpa(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: causal sdpa within each example of a flattened row.

    ``query`` is ``[1, heads, tokens, dim]``, ``key``/``value`` ``[1, kv_heads, tokens, dim]``;
    returns ``[1, tokens, heads, dim]`` like transformers' sdpa path.
    """
    position_ids = kwargs.get("position_ids")
    padding_free = (
        query.shape[0] == 1
        and attention_mask is None
        and key.shape[2] == query.shape[2]  # no cache: training / a full forward
    )
    if position_ids is None or not padding_free:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    kernel = fused_varlen_kernel(query, dropout)
    if kernel is not None:
        cu = kwargs.get("cu_seq_lens_q")
        cu = cu_seq_lens(position_ids) if cu is None else cu.to(torch.int32)
        longest = kwargs.get("max_length_q")
        if longest is None:
            longest = int((cu[1:] - cu[:-1]).max())
        out = kernel(
            query[0].transpose(0, 1),  # [tokens, heads, dim]
            key[0].transpose(0, 1),
            value[0].transpose(0, 1),
            cu,
            cu,
            int(longest),
            int(longest),
            scale=scaling,
            window_size=(-1, 0),  # causal
            enable_gqa=gqa,
        )
        return out.unsqueeze(0), None
    outs = [
        torch.nn.functional.scaled_dot_product_attention(
            query[:, :, s:e],
            key[:, :, s:e],
            value[:, :, s:e],
            dropout_p=dropout,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for s, e in _bounds(kwargs.get("cu_seq_lens_q"), position_ids)
    ]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _mask(batch_size: int, **kwargs: Any) -> Any:
    """No mask for a padding-free row (the segments come from ``position_ids``); transformers'
    sdpa mask otherwise."""
    no_cache = kwargs.get("kv_length") == kwargs.get("q_length")
    if batch_size == 1 and kwargs.get("attention_mask") is None and no_cache:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(batch_size=batch_size, **kwargs)


def register() -> str:
    """Register :func:`varlen_sdpa` with transformers (idempotent); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_sdpa)
    AttentionMaskInterface.register(NAME, _mask)
    return NAME
