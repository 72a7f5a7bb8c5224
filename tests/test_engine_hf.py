"""The hf engine on a tiny randomly initialised Llama with a small offline tokenizer."""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from siked.config import EngineConfig
from siked.engines import make_engine
from siked.engines.base import EngineError
from siked.engines.hf import (
    HFEngine,
    RowSampler,
    nucleus_mask_by_sort,
    sample_rows,
    set_linear_kernel,
    set_weight_layout,
)

pytestmark = pytest.mark.timeout(120)

CORPUS = [
    "Natalia sold 48 clips in April and half as many in May. The answer is 72.",
    "Question: how many apples? answer = 3 + 4",
    "least to most: first, how many? then the answer is 7.",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROMPTS = ["hello", "The answer is 7 and", "Q", "how many apples are there in May?"]


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # a tiny model gains nothing from threads, and they crawl on a busy machine
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny() -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.decoder = decoders.Fuse()
    alphabet = list(string.ascii_letters + string.digits + string.punctuation + " \n")
    trainer = trainers.BpeTrainer(
        vocab_size=200, special_tokens=["<pad>", "<s>", "</s>", "<unk>"], initial_alphabet=alphabet
    )
    tok.train_from_iterator(CORPUS * 5, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    return model, tokenizer


def engine(tiny: Any, batch_size: int = 4) -> HFEngine:
    cfg = EngineConfig(engine="hf", batch_size=batch_size)
    e = make_engine(cfg, model_and_tokenizer=tiny)
    assert isinstance(e, HFEngine)
    return e


def texts(rows: list[list[Any]]) -> list[list[str]]:
    return [[c.text for c in row] for row in rows]


def test_chunks_are_sized_in_batches(tiny: Any) -> None:
    """The stages' automatic chunk: 8 batches of rows (servers: 2048 generations)."""
    from siked.student import auto_chunk_size

    e = engine(tiny, batch_size=4)
    assert e.chunk_generations == 32 and auto_chunk_size(e, 10) == 3


def test_encode(tiny: Any) -> None:
    e = engine(tiny)
    tok = tiny[1]
    chat = e.encode([{"role": "user", "content": "hi"}])
    assert tok.decode(chat) == "<s>user: hi\nassistant:"
    assert e.encode("<s>hi") == tok("<s>hi", add_special_tokens=False)["input_ids"]
    assert tok.decode(e.encode("hi")).endswith("hi")


def test_batches_keep_prompt_order_and_padding_is_harmless(tiny: Any) -> None:
    alone = [engine(tiny, 1).generate([p], max_tokens=12)[0][0] for p in PROMPTS]
    batched = engine(tiny, 3).generate(PROMPTS, max_tokens=12)
    assert [r[0].text for r in batched] == [c.text for c in alone]
    assert [r[0].prompt_tokens for r in batched] == [len(tiny[1](p)["input_ids"]) for p in PROMPTS]
    assert all(r[0].completion_tokens == 12 and r[0].finish_reason == "length" for r in batched)
    assert len({c.text for c in alone}) == len(PROMPTS)


def test_greedy_n_repeats_one_generation(tiny: Any) -> None:
    e = engine(tiny)
    rows = e.generate(PROMPTS[:2], n=3, max_tokens=8)
    assert all(len(set(r)) == 1 and len(r) == 3 for r in texts(rows))
    assert e.stats.requests == 1  # 2 rows (one per prompt, not per sample), one generate batch
    assert e.stats.completions == 6


def test_sampling_is_reproducible_whatever_the_batch(tiny: Any) -> None:
    seeds = [11, 12, 13, 14]
    kw: dict[str, Any] = {"n": 3, "temperature": 1.0, "top_p": 0.9, "max_tokens": 10}
    together = texts(engine(tiny, 5).generate(PROMPTS, seed=seeds, **kw))
    # one prompt at a time, in reverse order, another batch size
    alone = [
        texts(engine(tiny, 2).generate([p], seed=[s], **kw))[0]
        for p, s in reversed(list(zip(PROMPTS, seeds, strict=True)))
    ][::-1]
    assert together == alone
    # different sample index -> different text; different seed -> different text
    assert all(len(set(r)) == 3 for r in together)
    other = texts(engine(tiny).generate(PROMPTS[:1], seed=[99], **kw))[0]
    assert other != together[0]
    # a base int seed is combined with each prompt: the order of prompts does not matter
    a = texts(engine(tiny).generate(PROMPTS[:2], seed=5, **kw))
    b = texts(engine(tiny).generate(PROMPTS[1::-1], seed=5, **kw))
    assert a == b[::-1]


def test_stop_strings(tiny: Any) -> None:
    e = engine(tiny)
    full = e.generate(PROMPTS, max_tokens=24)
    for p, row in zip(PROMPTS, full, strict=True):
        text = row[0].text
        stop = text[8:11]
        assert stop and text.find(stop) >= 1
        cut = e.generate([p], max_tokens=24, stop=[stop, "never-seen"])[0][0]
        assert cut.text == text[: text.find(stop)]
        assert cut.finish_reason == "stop"
        assert cut.completion_tokens is not None and cut.completion_tokens < 24


def test_eos_ends_a_row(tiny: Any) -> None:
    model, tok = tiny
    e = engine(tiny)
    first = e.generate(["hello"], max_tokens=10)[0][0]
    ids = tok(first.text, add_special_tokens=False)["input_ids"]
    eos_candidate = ids[3]  # pretend the 4th generated token is the end of the turn
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [2, eos_candidate]
    try:
        c = engine(tiny).generate(["hello"], max_tokens=10)[0][0]
    finally:
        model.generation_config.eos_token_id = old
    assert c.finish_reason == "stop"
    assert c.completion_tokens is not None and c.completion_tokens <= 3
    assert first.text.startswith(c.text)


MANY = [
    f"{w} {i}" * (1 + i % 4) for i, w in enumerate(["hello", "Q", "how many", "The answer"] * 4)
]


@pytest.mark.parametrize("batch_size", [3, 7])
def test_batches_equal_batch_one_greedy(tiny: Any, batch_size: int) -> None:
    """More prompts than a batch, varied lengths (left padding), EOS and stop strings ending
    rows early: batched greedy outputs are those of ``generate`` at batch 1 (no padding)."""
    model, tok = tiny
    kw: dict[str, Any] = {"max_tokens": 9, "stop": ["how many", "never"]}
    first = engine(tiny, 1).generate(MANY[1:2], max_tokens=9)[0][0]
    eos_candidate = tok(first.text, add_special_tokens=False)["input_ids"][3]
    old = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [2, eos_candidate]
    try:
        ref = engine(tiny, 1).generate(MANY, **kw)
        got = engine(tiny, batch_size).generate(MANY, **kw)
    finally:
        model.generation_config.eos_token_id = old
    assert [[c.to_dict() for c in r] for r in got] == [[c.to_dict() for c in r] for r in ref]
    reasons = Counter(r[0].finish_reason for r in got)
    assert reasons["stop"] and reasons["length"]  # both ways of ending were exercised
    assert any(r[0].text and not any(s in r[0].text for s in kw["stop"]) for r in got)


def _sample_by_full_sort(
    scores: torch.Tensor, seeds: list[int], t: float, top_p: float
) -> list[int]:
    """The definition: softmax, nucleus by a full stable sort, inverse CDF over the vocabulary."""
    probs = torch.softmax(scores.double() / t, dim=-1)
    probs = probs.masked_fill(~nucleus_mask_by_sort(probs, top_p), 0.0)
    cdf = probs.cumsum(dim=-1)
    u = torch.cat(
        [
            torch.rand(1, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
            for s in seeds
        ]
    )
    at = torch.searchsorted(cdf, u.unsqueeze(1) * cdf[:, -1:], right=True)
    return at.clamp_(max=scores.shape[-1] - 1).squeeze(1).tolist()


def test_sample_rows_equals_the_full_sort() -> None:
    torch.manual_seed(0)
    # bf16 logits: many exact ties, as a bf16 model gives; flat rows need the full sort
    peaked = (torch.randn(96, 3000) * 4).to(torch.bfloat16).float()
    flat = (torch.randn(8, 3000) * 0.01).to(torch.bfloat16).float()
    ties = torch.zeros(8, 3000)
    ties[:, 5:15] = 3.0  # ten equal top tokens: the nucleus cuts through them
    for scores in (peaked, flat, ties, torch.cat([peaked, flat, ties])):
        seeds = list(range(scores.shape[0]))
        for t, top_p in ((1.0, 0.05), (0.7, 0.5), (0.7, 0.95), (1.3, 0.999), (0.7, 1.0)):
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            got = sample_rows(scores, gens, t, top_p).tolist()
            assert got == _sample_by_full_sort(scores, seeds, t, top_p), (t, top_p)


def test_sample_rows_is_per_row() -> None:
    scores = torch.randn(6, 50)
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    together = sample_rows(scores, gens, 0.7, 0.9)
    alone = [
        int(sample_rows(scores[r : r + 1], [torch.Generator().manual_seed(r)], 0.7, 0.9))
        for r in range(6)
    ]
    assert together.tolist() == alone
    with pytest.raises(ValueError):
        sample_rows(scores, gens, 0.0, 1.0)


def ids(rows: int) -> torch.LongTensor:
    return torch.zeros(rows, 1, dtype=torch.long)  # type: ignore[return-value]


def test_row_sampler_matches_the_distribution() -> None:
    probs = torch.tensor([0.5, 0.3, 0.2])
    scores = probs.log().repeat(4000, 1)
    gens = [torch.Generator().manual_seed(i) for i in range(4000)]
    picks = RowSampler(gens, 1.0, 1.0)(ids(4000), scores).argmax(-1)
    freq = Counter(picks.tolist())
    assert abs(freq[0] / 4000 - 0.5) < 0.03 and abs(freq[2] / 4000 - 0.2) < 0.03
    gens = [torch.Generator().manual_seed(i) for i in range(4000)]
    nucleus = RowSampler(gens, 1.0, 0.6)(ids(4000), scores).argmax(-1)
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 < 0.6 so token 1 is in, token 2 is not
    gens = [torch.Generator().manual_seed(i) for i in range(10)]
    out = RowSampler(gens, 1.0, 0.4)(ids(10), scores[:10])
    assert out.argmax(-1).tolist() == [0] * 10
    assert torch.isinf(out).sum() == 20


def test_bad_arguments_and_close(tiny: Any) -> None:
    e = engine(tiny)
    with pytest.raises(ValueError):
        e.generate(["a"], n=0)
    with pytest.raises(ValueError):
        e.generate("a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seeds"):
        e.generate(["a", "b"], seed=[1])
    e.close()
    assert e.model is not None  # a model passed in belongs to the caller


def test_progress_bar(tiny: Any, capsys: pytest.CaptureFixture[str]) -> None:
    engine(tiny).generate(PROMPTS, max_tokens=4, progress="sampling")
    assert "sampling" in capsys.readouterr().err


def test_no_chat_template(tiny: Any) -> None:
    model, tok = tiny
    tok2 = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer, eos_token="</s>", pad_token="<pad>"
    )
    e = make_engine(EngineConfig(engine="hf"), model_and_tokenizer=(model, tok2))
    with pytest.raises(EngineError, match="chat template"):
        e.generate([[{"role": "user", "content": "hi"}]])


@pytest.mark.integration
def test_default_student_generates() -> None:
    cfg = EngineConfig(engine="hf", device="cpu", batch_size=2)
    with make_engine(cfg) as e:
        rows = e.generate(
            [[{"role": "user", "content": "What is 2 + 3?"}], [{"role": "user", "content": "Hi!"}]],
            max_tokens=16,
            stop=["\n\n"],
        )
    assert [len(r) for r in rows] == [1, 1]
    for r in rows:
        c = r[0]
        assert c.text.strip() and "\n\n" not in c.text
        assert c.completion_tokens is not None and 0 < c.completion_tokens <= 16
        assert c.prompt_tokens is not None and c.prompt_tokens > 5


# -- weight layout ----------------------------------------------------------------------------


def _linear_weights(model: Any) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_weight_layout_changes_memory_order_not_values(tiny: Any) -> None:
    model, _ = tiny
    set_weight_layout(model, column_major=False)  # engines of earlier tests changed it
    before = [w.detach().clone() for w in _linear_weights(model)]
    distinct = len({id(w) for w in _linear_weights(model)})  # a tied weight counts once
    assert set_weight_layout(model, column_major=True) == distinct
    for w, b in zip(_linear_weights(model), before, strict=True):
        assert w.t().is_contiguous() and torch.equal(w, b)
    assert set_weight_layout(model, column_major=True) == 0  # idempotent
    assert set_weight_layout(model, column_major=False) == distinct
    for w, b in zip(_linear_weights(model), before, strict=True):
        assert w.is_contiguous() and torch.equal(w, b)


def test_column_major_weights_change_how_not_what_is_computed(tiny: Any) -> None:
    model, tok = tiny
    ids = tok(PROMPTS, return_tensors="pt", padding=True).input_ids
    set_linear_kernel(model, "torch")
    before = [w.detach().clone() for w in _linear_weights(model)]
    with torch.inference_mode():
        ref = model(input_ids=ids).logits
    set_linear_kernel(model, "column-major")
    assert all(w.t().is_contiguous() for w in _linear_weights(model))
    with torch.inference_mode():
        got = model(input_ids=ids).logits
    for w, b in zip(_linear_weights(model), before, strict=True):
        assert torch.equal(w, b)
    assert torch.allclose(got, ref, atol=1e-5) and not torch.equal(got, torch.zeros_like(got))
    set_linear_kernel(model, "torch")
    assert all(w.is_contiguous() for w in _linear_weights(model))


def test_unknown_linear_kernel_is_refused(tiny: Any) -> None:
    with pytest.raises(ValueError, match="expected one of torch, column-major"):
        set_linear_kernel(tiny[0], "blas")


@pytest.mark.parametrize("kernel", ["torch", "column-major"])
def test_every_linear_kernel_gives_the_engine_the_same_texts(tiny: Any, kernel: str) -> None:
    """Greedy and seeded samples of each kernel equal torch's on the tiny model (float rounding
    could in principle flip a near-tie; it does not here)."""
    cfg = EngineConfig(engine="hf", batch_size=4)
    kw: dict[str, Any] = {"max_tokens": 12, "stop": ["Q"]}
    ref = HFEngine(cfg, model_and_tokenizer=tiny, linear_kernel="torch")
    greedy = texts(ref.generate(PROMPTS, **kw))
    sampled = texts(ref.generate(PROMPTS, n=3, temperature=1.0, seed=7, **kw))
    e = HFEngine(cfg, model_and_tokenizer=tiny, linear_kernel=kernel)
    assert e.linear_kernel == kernel
    assert texts(e.generate(PROMPTS, **kw)) == greedy
    assert texts(e.generate(PROMPTS, n=3, temperature=1.0, seed=7, **kw)) == sampled
    set_linear_kernel(tiny[0], "torch")


def test_engine_default_for_cpu_float32(tiny: Any) -> None:
    e = HFEngine(EngineConfig(engine="hf"), model_and_tokenizer=tiny)
    assert e.linear_kernel == "column-major"
    assert all(w.t().is_contiguous() for w in _linear_weights(tiny[0]))
    set_linear_kernel(tiny[0], "torch")


def test_weights_of_other_dtypes_stay_row_major(tiny: Any) -> None:
    model, tok = tiny
    half = type(model)(model.config).to(torch.bfloat16).eval()
    e = HFEngine(EngineConfig(engine="hf"), model_and_tokenizer=(half, tok))
    assert e.linear_kernel == "torch"
    assert all(w.is_contiguous() for w in _linear_weights(half))


# -- the model's generation_config.json -------------------------------------------------------

#: what an instruct model's generation_config.json may say (Qwen2: repetition_penalty 1.1,
#: top_k 20), exaggerated so that applying it changes a greedy text
SAMPLING_DEFAULTS = {
    "do_sample": True,
    "temperature": 0.01,
    "top_k": 1,
    "repetition_penalty": 5.0,
    "no_repeat_ngram_size": 2,
}


@pytest.mark.integration
def test_sampling_defaults_of_the_model_are_not_applied(tmp_path: Any) -> None:
    """The real bundled student, given a generation_config.json with sampling defaults: the
    config ``generate`` actually uses holds none of them, and the text is the one the student
    writes without them."""
    import json
    import shutil

    from siked.models import BUNDLED_STUDENT, resolve_model

    student = tmp_path / "student"
    shutil.copytree(resolve_model(BUNDLED_STUDENT), student)
    gen_path = student / "generation_config.json"
    gen_path.write_text(json.dumps({**json.loads(gen_path.read_text()), **SAMPLING_DEFAULTS}))
    prompt = [[{"role": "user", "content": "Count from 1 to 20, one number per line."}]]
    cfg = EngineConfig(engine="hf", device="cpu", batch_size=1)
    used: list[Any] = []
    with HFEngine(cfg, str(student)) as e:
        real = e.model._prepare_generation_config

        def spy(*args: Any, **kwargs: Any) -> Any:
            out = real(*args, **kwargs)
            used.append(out[0])
            return out

        e.model._prepare_generation_config = spy  # type: ignore[method-assign]
        got = texts(e.generate(prompt, max_tokens=24))
    with HFEngine(cfg, BUNDLED_STUDENT) as plain:
        expected = texts(plain.generate(prompt, max_tokens=24))
    assert got == expected
    (config,) = used  # transformers' generate: its config, read back
    assert (config.do_sample, config.repetition_penalty, config.no_repeat_ngram_size) == (
        False,
        1.0,
        0,
    )
