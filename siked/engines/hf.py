"""Engine on a transformers causal LM: static batches through ``generate``, seeded per sample.

Each (prompt, sample) pair is one *row*. Greedy decoding (``temperature == 0``) generates one
row per prompt and repeats it ``n`` times. Rows are sorted longest prompt first and cut into
batches of ``batch_size``; each batch is left-padded and decoded by transformers' ``generate``
until its longest row ends (a row that ended earlier waits as padding).

This engine is the portable fallback (any transformers model, CPU or GPU): the openvino engine
is the CPU default and vllm the GPU one. Its own continuous-batching loop (a key/value slot
buffer behind transformers' cache interface, rows leaving and joining the batch) was removed:
it depended on transformers' cache internals and would break on an upgrade, and the faster
engines batch continuously already.

**Reproducible sampling.** transformers samples every row of a batch from the global RNG, so a
row's sample would depend on the other rows. Here each row draws from its own
``torch.Generator`` seeded with ``derive_seed(seed_i, j)`` (:func:`sample_rows`: temperature,
then top-p, then inverse-CDF over the vocabulary with one uniform draw), so sample ``j`` of prompt
``i`` is a function of ``(seed_i, j)`` and the prompt alone, whatever the batch size, order or
neighbours -- up to floating-point differences in the logits of different batch shapes, which only
matter where a uniform lands within rounding distance of a token boundary (bf16 logits move more
with the batch shape than float32 ones).

**Linear layers on a CPU in float32** (:func:`set_linear_kernel`). torch multiplies by a linear
weight with MKL, which is slow for the few rows of a decode step; the engine keeps CPU float32
weights column-major (``"column-major"``, :func:`set_weight_layout`; 2-4x faster at 4-48 rows on
an Intel Xeon, benchmarks/README.md). That changes no weight's value; results differ from
row-major weights by float rounding only.

**Stop strings** end a row as soon as its generated text contains one (only the last few tokens
are decoded per step, :class:`StopOnStrings`), and the text is cut before the first stop
string. Chat-message prompts get the tokenizer's chat template; text prompts are used as is (a
BOS token is added only when the tokenizer adds one and the text does not start with it).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from siked.config import EngineConfig
from siked.engines.base import (
    Completion,
    Engine,
    EngineError,
    GenerateRequest,
    Prompt,
    generate_progress,
    merge_eos_ids,
    seed_or_fresh,
    token_completion,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

#: batches of rows per call a stage's automatic chunk aims at (:attr:`HFEngine.chunk_generations`)
CHUNK_BATCHES = 8

#: Candidate sizes tried for the top-p nucleus before a full sort of the vocabulary.
NUCLEUS_CANDIDATES = (64, 1024)


# --------------------------------------------------------------------------------------------
# sampling


def nucleus_mask_by_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The tokens top-p sampling keeps (``True``): sort each row's probabilities in descending
    order (ties in vocabulary order, a stable sort) and keep every token whose probability mass
    *before* it is below ``top_p`` (so the most likely token is always kept).

    >>> p = torch.tensor([[0.1, 0.4, 0.2, 0.2, 0.1]], dtype=torch.float64)
    >>> nucleus_mask_by_sort(p, 0.7).tolist()  # 0.4, then the first 0.2: 0.6 < 0.7 keeps the next
    [[False, True, True, True, False]]
    >>> nucleus_mask_by_sort(p, 0.5).tolist()  # of the tied 0.2s, the lower token id is kept
    [[False, True, True, False, False]]
    """
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
    keep_sorted = (sorted_p.cumsum(dim=-1) - sorted_p) < top_p
    return torch.zeros_like(keep_sorted).scatter(1, order, keep_sorted)


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index where each row's cumulative ``probs`` (in the given order) first exceeds ``u`` times
    the row's total."""
    cdf = probs.cumsum(dim=-1)
    at = torch.searchsorted(cdf, u.unsqueeze(1) * cdf[:, -1:], right=True)
    return at.clamp_(max=probs.shape[-1] - 1).squeeze(1)


def sample_rows(
    scores: torch.Tensor,
    generators: Sequence[torch.Generator],
    temperature: float,
    top_p: float,
) -> torch.Tensor:
    """One token per row of ``scores`` ``[rows, vocab]``, row ``r`` drawn with ``generators[r]``.

    Softmax (float64) of ``scores / temperature``, the top-p nucleus
    (:func:`nucleus_mask_by_sort`), then the inverse CDF in vocabulary order at one uniform draw
    of the row's generator, so the draw does not depend on how ties were sorted or on the other
    rows.

    The nucleus is found among the ``NUCLEUS_CANDIDATES`` most likely tokens (``torch.topk``)
    and the CDF is summed over its tokens only, in vocabulary order, which gives exactly the
    partial sums of the full masked vocabulary (adding the zeros in between changes nothing).
    A row whose nucleus does not end inside the candidates, or ends inside a group of equal
    probabilities, takes the full sort instead; the result is the same either way
    (``tests/test_engine_hf.py`` checks it against the full computation).
    """
    if temperature <= 0:
        raise ValueError("sample_rows needs temperature > 0")
    if scores.shape[0] != len(generators):
        raise RuntimeError(f"{scores.shape[0]} rows but {len(generators)} generators")
    probs = torch.softmax(scores.double() / temperature, dim=-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
    u = u.to(probs.device)
    vocab = probs.shape[-1]
    if top_p >= 1.0:
        return _inverse_cdf(probs, u)
    tokens = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    todo = torch.arange(probs.shape[0], device=probs.device)
    for k in NUCLEUS_CANDIDATES:
        if todo.numel() == 0 or k >= vocab:
            break
        vals, idx = probs[todo].topk(k + 1, dim=-1)  # descending: a full sort's values
        kept = (vals[:, :k].cumsum(dim=-1) - vals[:, :k]) < top_p
        m = kept.sum(dim=-1)
        prefix = kept.long().cumprod(dim=-1).sum(dim=-1) == m
        last = vals.gather(1, (m - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        after = vals.gather(1, m.unsqueeze(1)).squeeze(1)
        fits = (m < k) & prefix & (after < last)  # a clean cut inside the candidates
        if bool(fits.any()):
            cand_p, cand_i = vals[fits, :k], idx[fits, :k]
            inside = torch.arange(k, device=probs.device) < m[fits].unsqueeze(1)
            cand_p = cand_p.masked_fill(~inside, 0.0)
            cand_i = cand_i.masked_fill(~inside, vocab)  # dropped ones sort last
            cand_i, order = cand_i.sort(dim=-1)
            at = _inverse_cdf(cand_p.gather(1, order), u[todo[fits]])
            tokens[todo[fits]] = cand_i.gather(1, at.unsqueeze(1)).squeeze(1)
        todo = todo[~fits]
    if todo.numel():
        rows = probs[todo]
        rows = rows.masked_fill(~nucleus_mask_by_sort(rows, top_p), 0.0)
        tokens[todo] = _inverse_cdf(rows, u[todo])
    return tokens


class RowSampler(LogitsProcessor):
    """:func:`sample_rows` as a logits processor for ``generate``: masks every other token.

    Used with greedy decoding, so the masked scores make ``argmax`` return the sampled token.
    """

    def __init__(
        self, generators: Sequence[torch.Generator], temperature: float, top_p: float
    ) -> None:
        if temperature <= 0:
            raise ValueError("RowSampler needs temperature > 0")
        self.generators = list(generators)
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        tokens = sample_rows(scores, self.generators, self.temperature, self.top_p)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens.unsqueeze(1), 0.0)


def _generator(seed: int | None) -> torch.Generator:
    return torch.Generator().manual_seed(seed_or_fresh(seed))


# --------------------------------------------------------------------------------------------
# stop strings


class StopOnStrings(StoppingCriteria):
    """Stop each row of ``generate`` once its generated text holds a stop string; remember when."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str], prompt_width: int
    ) -> None:
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.prompt_width = prompt_width
        self.tail = stop_tail(self.stops)
        self.stopped_at: dict[int, int] = {}  # row -> generated tokens when it stopped

    def __call__(
        self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any
    ) -> torch.BoolTensor:
        n_gen = input_ids.shape[1] - self.prompt_width
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        rows = [r for r in range(input_ids.shape[0]) if r not in self.stopped_at]
        if n_gen <= 0 or not rows:
            done[list(self.stopped_at)] = True
            return done  # type: ignore[return-value]
        start = max(self.prompt_width, input_ids.shape[1] - self.tail)
        texts = self.tokenizer.batch_decode(input_ids[rows, start:], skip_special_tokens=True)
        for r, text in zip(rows, texts, strict=True):
            if any(s in text for s in self.stops):
                self.stopped_at[r] = n_gen
        done[list(self.stopped_at)] = True
        return done  # type: ignore[return-value]


def stop_tail(stops: Sequence[str]) -> int:
    """Tokens to decode to see a stop string end: a string of k chars spans at most k tokens
    (+ a margin for partial UTF-8 bytes)."""
    return max(len(s) for s in stops) + 3


# --------------------------------------------------------------------------------------------
# the engine


def set_weight_layout(model: Any, column_major: bool) -> int:
    """Store every linear layer's weight column-major (its transpose contiguous) or row-major.

    Only the memory order changes, never a value, so the model computes the same. Decoding on a
    CPU multiplies a few rows (the running ones) by each weight, and MKL's float32 GEMM does that
    2-4x faster with column-major weights at 4-48 rows, about as fast from 64 rows, 8 % slower at
    1 row (measured on an Intel Xeon, benchmarks/README.md), so :class:`HFEngine` keeps CPU
    float32 weights so. A weight shared by two layers (tied embeddings) is changed once. Returns
    how many weights changed.
    """
    seen: set[int] = set()
    changed = 0
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, torch.nn.Linear) or id(module.weight) in seen:
                continue
            w = module.weight
            seen.add(id(w))
            if column_major and not w.t().is_contiguous():
                w.data = w.data.t().contiguous().t()
                changed += 1
            elif not column_major and not w.is_contiguous():
                w.data = w.data.contiguous()
                changed += 1
    return changed


#: How linear layers multiply (:func:`set_linear_kernel`); ``"torch"``: as loaded.
LINEAR_KERNELS = ("torch", "column-major")


def encode_prompt(tokenizer: Any, prompt: Prompt, model_name: str) -> list[int]:
    """Token ids of a prompt: text as given (the tokenizer's special tokens unless the text
    already starts with BOS), chat messages through the chat template."""
    if isinstance(prompt, str):
        text = prompt
        bos = tokenizer.bos_token
        add_special = not (bos and text.startswith(bos))
    else:
        if not getattr(tokenizer, "chat_template", None):
            raise EngineError(
                f"{model_name}: the tokenizer has no chat template; pass text prompts"
            )
        text = str(
            tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        )
        add_special = False
    ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
    if not ids:
        raise EngineError("a prompt encodes to zero tokens")
    return list(ids)


def set_linear_kernel(model: Any, kernel: str) -> None:
    """Make every ``nn.Linear`` of ``model`` multiply with ``kernel`` (:data:`LINEAR_KERNELS`).

    ``"torch"``: row-major weights (as loaded). ``"column-major"``: column-major weights
    (:func:`set_weight_layout`). Both use torch's ``F.linear``; no weight's value changes.
    """
    if kernel not in LINEAR_KERNELS:
        raise ValueError(f"linear kernel {kernel!r}: expected one of {', '.join(LINEAR_KERNELS)}")
    set_weight_layout(model, column_major=kernel == "column-major")


def _resolve_device(device: str | None) -> str:
    if device:
        return device
    from siked.models import best_device

    return best_device()


class HFEngine(Engine):
    """Generate with a transformers causal LM (see the module docstring)."""

    name = "hf"

    def __init__(
        self,
        cfg: EngineConfig,
        model: str | None = None,
        *,
        model_and_tokenizer: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
        linear_kernel: str | None = None,
    ) -> None:
        """``linear_kernel``: how the linear layers multiply (:func:`set_linear_kernel`); default
        on a CPU in float32 ``"column-major"``, elsewhere ``"torch"``. A given model is changed
        in place, its values kept.

        The model's ``generation_config`` keeps its token ids only
        (:func:`neutral_generation_config`): sampling is what ``generate`` is asked for, not the
        defaults of the model's ``generation_config.json``."""
        super().__init__()
        self.cfg = cfg
        self.batch_size = cfg.batch_size
        self._owns_model = model_and_tokenizer is None
        if model_and_tokenizer is not None:
            self.model, self.tokenizer = model_and_tokenizer
            self.model_name = str(getattr(self.model, "name_or_path", "") or "<given>")
        else:
            from siked.models import BUNDLED_STUDENT, load_model, load_tokenizer

            self.model_name = model or cfg.model or BUNDLED_STUDENT
            self.tokenizer = load_tokenizer(self.model_name)
            self.model = load_model(
                self.model_name, dtype=cfg.dtype, device=_resolve_device(cfg.device)
            )
        self.model.eval()
        self.model.generation_config = neutral_generation_config(self.model.generation_config)
        first = next(self.model.parameters())
        self.device = first.device
        if linear_kernel is None:
            linear_kernel = "torch"
            if self.device.type == "cpu" and first.dtype == torch.float32:
                linear_kernel = "column-major"
        set_linear_kernel(self.model, linear_kernel)
        self.linear_kernel = linear_kernel
        log.info("hf engine: linear layers multiply with %s", linear_kernel)
        pad = self.tokenizer.pad_token_id
        eos = self._eos_ids()
        if pad is None:
            if not eos:
                raise EngineError(f"{self.model_name}: the tokenizer has no pad and no EOS token")
            pad = eos[0]
        self.pad_id: int = int(pad)
        self.eos_ids: list[int] = eos

    @property
    def chunk_generations(self) -> int:
        """About :data:`CHUNK_BATCHES` batches of rows: a chunk's last batch may be partly
        empty, so chunks are kept long relative to a batch."""
        return CHUNK_BATCHES * self.batch_size

    @classmethod
    def auto_dtype(cls, cfg: EngineConfig) -> str | None:
        """The torch dtype ``auto`` picks for the configured device (:func:`pick_dtype`)."""
        from siked.models import pick_dtype

        return str(pick_dtype("auto", _resolve_device(cfg.device))).removeprefix("torch.")

    def __repr__(self) -> str:
        return f"HFEngine(model={self.model_name!r}, device={str(self.device)!r})"

    def _eos_ids(self) -> list[int]:
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        return merge_eos_ids(gen_eos, self.tokenizer.eos_token_id)

    def close(self) -> None:
        if self._owns_model and getattr(self, "model", None) is not None:
            self.model = None  # type: ignore[assignment]
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # -- prompts ---------------------------------------------------------------------------
    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (chat messages get the chat template)."""
        return encode_prompt(self.tokenizer, prompt, self.model_name)

    # -- generation ------------------------------------------------------------------------
    def _generate(self, prompts: list[Prompt], request: GenerateRequest) -> list[list[Completion]]:
        if getattr(self, "model", None) is None:
            raise EngineError("the hf engine is closed")
        encoded = [self.encode(p) for p in prompts]
        # rows: (prompt index, sample index), longest prompts first
        rows = [(i, j) for i in range(len(encoded)) for j in range(request.samples)]
        rows.sort(key=lambda r: (-len(encoded[r[0]]), r[0], r[1]))
        results: dict[tuple[int, int], Completion] = {}
        bar = generate_progress(request.progress, len(rows), unit="seq")
        try:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                t0 = time.perf_counter()
                ids = [encoded[i] for i, _ in batch]
                done = self._generate_batch(ids, [request.seed(i, j) for i, j in batch], request)
                results.update(zip(batch, done, strict=True))
                if bar is not None:
                    tokens = sum(c.completion_tokens or 0 for c in done)
                    bar.set_postfix(tok_s=f"{tokens / max(time.perf_counter() - t0, 1e-9):.0f}")
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        last = request.samples - 1  # greedy: the one row repeated
        return [[results[(i, min(j, last))] for j in range(request.n)] for i in range(len(prompts))]

    def _generate_batch(
        self, ids: list[list[int]], seeds: list[int | None], request: GenerateRequest
    ) -> list[Completion]:
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):  # left padding
            input_ids[r, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            attention[r, width - len(x) :] = 1
        kwargs: dict[str, Any] = {}
        if request.temperature > 0:
            gens = [_generator(s) for s in seeds]
            sampler = RowSampler(gens, request.temperature, request.top_p)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        stops = request.stops
        criterion = StopOnStrings(self.tokenizer, stops, width) if stops else None
        if criterion is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([criterion])
        with torch.inference_mode():
            out = cast(Any, self.model).generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                max_new_tokens=request.max_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_ids or None,
                **kwargs,
            )
        self.stats.add(requests=1)
        generated = out[:, width:].cpu().tolist()
        stopped_at = criterion.stopped_at if criterion is not None else {}
        return [
            self._completion(gen, len(x), stopped_at.get(r), stops)
            for r, (gen, x) in enumerate(zip(generated, ids, strict=True))
        ]

    def _completion(
        self, gen: list[int], prompt_tokens: int, stopped_at: int | None, stops: Sequence[str]
    ) -> Completion:
        c = token_completion(
            gen, self._decode, self.eos_ids, stops, prompt_tokens, stopped_at=stopped_at
        )
        self.stats.add(prompt_tokens=prompt_tokens, completion_tokens=c.completion_tokens or 0)
        return c

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))


#: the fields of a model's generation config the hf engine keeps: which tokens start, pad and
#: end a sequence (sampling settings and logits processors are dropped)
GENERATION_TOKEN_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def neutral_generation_config(gen: Any) -> GenerationConfig:
    """``gen`` (a model's ``generation_config``) with its token ids only.

    transformers' ``generate`` fills every setting it is not given from the model's
    ``generation_config.json``: an instruct model's ``repetition_penalty: 1.1`` or ``top_k: 20``
    (kept in the merged students siked saves) would apply to every request. With this config
    what is not asked for is transformers' neutral default.

    >>> g = neutral_generation_config(GenerationConfig(eos_token_id=2, repetition_penalty=1.1))
    >>> g.eos_token_id, g.repetition_penalty
    (2, None)
    """
    kept = {k: getattr(gen, k, None) for k in GENERATION_TOKEN_FIELDS}
    return GenerationConfig(**{k: v for k, v in kept.items() if v is not None})
