"""The openvino engine: its request logic on a scripted pipeline, its converter cache on a fake
optimum-cli, and (integration) the real default student converted by optimum-intel and run by
OpenVINO GenAI against the hf engine."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from skip_policy import require

from siked.config import EngineConfig
from siked.engines import ENGINES, sample_seed
from siked.engines.base import EngineError, prompt_seeds
from siked.engines.openvino import (
    BFLOAT16,
    EXPORT_ENV,
    FLOAT32,
    MARKER,
    OpenVINOEngine,
    export_dir,
    export_openvino,
    find_optimum_cli,
    greedy_mismatch,
    openvino_computes_bf16,
)

require("openvino_genai", reason="pip install 'siked[openvino]'")

pytestmark = pytest.mark.timeout(600)

EOS = 2


class WordTokenizer:
    """One token per character; 2 is EOS (decoded as nothing)."""

    bos_token = None
    eos_token_id = EOS
    chat_template = None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i != EOS)


class Handle:
    def __init__(self, ids: list[int], reason: str, steps: int) -> None:
        self.ids, self.reason, self.left = ids, reason, steps
        self.cancelled = False

    def get_status(self) -> Any:
        name = "CANCEL" if self.cancelled else "RUNNING" if self.left > 0 else "FINISHED"
        return SimpleNamespace(name=name)

    def read_all(self) -> list[Any]:
        return [
            SimpleNamespace(generated_ids=self.ids, finish_reason=SimpleNamespace(name=self.reason))
        ]

    def cancel(self) -> None:
        self.cancelled = True


class ScriptedPipeline:
    """``reply(prompt_text, config) -> (text, finish)``; records the order of calls."""

    def __init__(self, reply: Any, fail_at_step: int | None = None) -> None:
        self.reply, self.fail_at_step = reply, fail_at_step
        self.calls: list[Any] = []
        self.handles: list[Handle] = []
        self.steps = 0

    def add_request(self, rid: int, ids: Any, cfg: Any) -> Handle:
        text = "".join(chr(int(i)) for i in ids.data[0])
        self.calls.append(("add", rid, text, cfg))
        out, reason = self.reply(text, cfg)
        h = Handle([ord(c) for c in out], reason, steps=2)
        self.handles.append(h)
        return h

    def step(self) -> None:
        self.steps += 1
        self.calls.append(("step",))
        if self.fail_at_step == self.steps:
            raise RuntimeError("boom")
        for h in self.handles:
            h.left -= 1

    def has_non_finished_requests(self) -> bool:
        return any(h.left > 0 and not h.cancelled for h in self.handles)


def engine(
    pipe: ScriptedPipeline, tmp_path: Path, batch_size: int = 4, dtype: str = "auto"
) -> OpenVINOEngine:
    model = tmp_path / "m"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "generation_config.json").write_text('{"eos_token_id": [2, 3]}')
    cfg = EngineConfig(engine="openvino", batch_size=batch_size, dtype=dtype)  # type: ignore[arg-type]
    return OpenVINOEngine(cfg, str(model), pipeline=pipe, tokenizer=WordTokenizer())


@pytest.mark.parametrize(
    ("dtype", "native_bf16", "want"),
    [
        ("auto", False, FLOAT32),  # as the hf engine's auto: bf16 only where the CPU computes it
        ("auto", True, BFLOAT16),
        ("float32", True, FLOAT32),
        ("bfloat16", True, BFLOAT16),
    ],
)
def test_the_precision_follows_dtype(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, native_bf16: bool, want: Any
) -> None:
    monkeypatch.setattr("siked.models.cpu_supports_bf16", lambda: native_bf16)
    monkeypatch.setattr("siked.engines.openvino.openvino_computes_bf16", lambda: native_bf16)
    e = engine(ScriptedPipeline(lambda t, c: ("", "STOP")), tmp_path, dtype=dtype)
    assert e.plugin == want
    assert want["INFERENCE_PRECISION_HINT"] in repr(e)


def test_bfloat16_where_openvino_computes_float32_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a CPU without native bf16 (AVX2 only) OpenVINO ignores the bf16 hint and computes
    float32 (measured: the compiled model reports f32): a config that asks for bfloat16 would
    record a precision it did not get, so it fails before anything runs."""
    monkeypatch.setattr("siked.engines.openvino.openvino_computes_bf16", lambda: False)
    cfg = EngineConfig(engine="openvino", dtype="bfloat16")
    with pytest.raises(EngineError, match=r"no native bf16.*float32"):
        OpenVINOEngine.check_ready(cfg)
    with pytest.raises(EngineError, match="no native bf16"):
        engine(ScriptedPipeline(lambda t, c: ("", "STOP")), tmp_path, dtype="bfloat16")


def test_what_openvino_says_it_computes_is_what_the_check_says() -> None:
    """The real OpenVINO on this machine: a model compiled with the bf16 hint computes bf16
    exactly where :func:`openvino_computes_bf16` says so (on an AVX2-only CPU, float32)."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([1, 8], np.float32)
    model = ov.Model([ops.matmul(x, ops.constant(np.eye(8, dtype=np.float32)), False, False)], [x])
    compiled = ov.Core().compile_model(model, "CPU", dict(BFLOAT16))
    got = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    assert ("bf16" in got) == openvino_computes_bf16(), got


def test_float16_is_refused_before_anything_runs(tmp_path: Path) -> None:
    cfg = EngineConfig(engine="openvino", dtype="float16")
    with pytest.raises(EngineError, match="float32 or bfloat16, not float16"):
        OpenVINOEngine.check_ready(cfg)
    with pytest.raises(EngineError, match="float32 or bfloat16"):
        engine(ScriptedPipeline(lambda t, c: ("", "STOP")), tmp_path, dtype="float16")


def test_the_models_sampling_defaults_are_not_applied(tmp_path: Path) -> None:
    """The GenerationConfig built for the pipeline says what was asked and nothing of the
    model's generation_config.json (an instruct model's repetition_penalty, top_k, ...)."""
    pipe = ScriptedPipeline(lambda t, c: ("ok", "STOP"))
    e = engine(pipe, tmp_path)
    (tmp_path / "m" / "generation_config.json").write_text(
        '{"eos_token_id": [2, 3], "repetition_penalty": 5.0, "top_k": 1, "presence_penalty": 1.0,'
        ' "frequency_penalty": 1.0, "no_repeat_ngram_size": 2, "min_new_tokens": 9}'
    )
    e.generate(["q"], n=1, temperature=0.7, top_p=0.95, max_tokens=8, seed=1)
    ((_, _, _, c),) = [call for call in pipe.calls if call[0] == "add"]
    assert (c.do_sample, c.max_new_tokens) == (True, 8)
    assert (c.temperature, c.top_p) == (pytest.approx(0.7), pytest.approx(0.95))  # float32
    assert (c.repetition_penalty, c.presence_penalty, c.frequency_penalty) == (1.0, 0.0, 0.0)
    assert c.top_k >= 2**31 and c.no_repeat_ngram_size >= 2**31  # both off
    assert c.min_new_tokens == 0


def test_openvino_is_a_registered_engine() -> None:
    assert ENGINES.get("openvino") == "siked.engines.openvino:OpenVINOEngine"
    assert EngineConfig(engine="openvino").openvino_export is None


def test_completions_are_cut_at_stops_and_eos_with_reasons_and_counts(tmp_path: Path) -> None:
    replies = {
        "a": ("x = 1\nQuestion: more", "STOP"),  # the pipeline stopped at the stop string
        "b": ("done" + chr(EOS), "STOP"),  # EOS: not counted, not in the text
        "c": ("abcdef", "LENGTH"),  # max_tokens
    }
    e = engine(ScriptedPipeline(lambda t, c: replies[t]), tmp_path)
    out = e.generate(["a", "b", "c"], max_tokens=6, stop=["\nQuestion:"])
    got = [(r[0].text, r[0].finish_reason, r[0].prompt_tokens, r[0].completion_tokens) for r in out]
    assert got == [
        ("x = 1", "stop", 1, len("x = 1\nQuestion: more")),
        ("done", "stop", 1, 4),
        ("abcdef", "length", 1, 6),
    ]
    assert e.stats.completion_tokens == 20 + 4 + 6 and e.stats.prompts == 3


def test_requests_keep_the_hf_engines_decoding_settings(tmp_path: Path) -> None:
    pipe = ScriptedPipeline(lambda t, c: ("", "STOP"))
    e = engine(pipe, tmp_path)
    e.generate(["p"], max_tokens=7, stop=["\nQ:"])
    greedy = pipe.calls[0][3]
    assert (greedy.do_sample, greedy.max_new_tokens, greedy.apply_chat_template) == (
        False,
        7,
        False,
    )
    assert greedy.stop_strings == {"\nQ:"} and greedy.include_stop_str_in_output
    assert greedy.stop_token_ids == {2, 3}  # generation_config's and the tokenizer's
    e.generate(["p"], n=2, temperature=0.7, top_p=0.9, seed=5)
    sampled = [c[3] for c in pipe.calls if c[0] == "add"][1:]
    assert all(c.do_sample and c.temperature == pytest.approx(0.7) for c in sampled)
    assert all(c.top_p == pytest.approx(0.9) for c in sampled)
    assert all(c.top_k > 10**9 for c in sampled)  # no top-k, as in the hf engine


def test_each_sample_is_a_request_seeded_by_prompt_and_index(tmp_path: Path) -> None:
    pipe = ScriptedPipeline(lambda t, c: (f"{t}-{c.rng_seed}", "STOP"))
    e = engine(pipe, tmp_path)
    out = e.generate(["p", "q"], n=3, temperature=0.7, seed=11)
    seeds = prompt_seeds(["p", "q"], 11)
    want = [
        [f"{p}-{sample_seed(s, j)}" for j in range(3)] for p, s in zip("pq", seeds, strict=True)
    ]
    assert [[c.text for c in r] for r in out] == want
    # the same prompt alone, or in another order, gets the same samples
    again = e.generate(["q"], n=3, temperature=0.7, seed=11)
    assert [c.text for c in again[0]] == want[1]


def test_greedy_asks_once_per_prompt_and_repeats_it_n_times(tmp_path: Path) -> None:
    pipe = ScriptedPipeline(lambda t, c: (t.upper(), "STOP"))
    out = engine(pipe, tmp_path).generate(["ab", "cd"], n=3)
    assert [[c.text for c in r] for r in out] == [["AB"] * 3, ["CD"] * 3]
    assert sum(c[0] == "add" for c in pipe.calls) == 2


def test_the_first_request_runs_a_step_alone_to_fill_the_prefix_cache(tmp_path: Path) -> None:
    pipe = ScriptedPipeline(lambda t, c: ("ok", "STOP"))
    engine(pipe, tmp_path).generate(["s1", "s2", "s3"])
    assert [c[0] for c in pipe.calls[:3]] == ["add", "step", "add"]
    single = ScriptedPipeline(lambda t, c: ("ok", "STOP"))
    engine(single, tmp_path).generate(["s1"])
    assert [c[0] for c in single.calls] == ["add", "step", "step"]


def test_an_interrupted_call_cancels_its_requests(tmp_path: Path) -> None:
    pipe = ScriptedPipeline(lambda t, c: ("ok", "STOP"), fail_at_step=2)
    e = engine(pipe, tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        e.generate(["a", "b"])
    assert all(h.cancelled for h in pipe.handles)
    assert not pipe.has_non_finished_requests()


def test_a_closed_engine_refuses_to_generate(tmp_path: Path) -> None:
    e = engine(ScriptedPipeline(lambda t, c: ("", "STOP")), tmp_path)
    e.close()
    with pytest.raises(EngineError, match="closed"):
        e.generate(["a"])


# -- the converter ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def checks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The IRs that greedy_mismatch was asked about; a fake IR passes (integration tests run the
    real check on the real student)."""
    asked: list[Path] = []
    if request.node.get_closest_marker("integration") is None:
        import siked.engines.openvino as ov

        def passes(ir: Path, src: Path, tokens: int = 8) -> str | None:
            asked.append(src)
            return None

        monkeypatch.setattr(ov, "greedy_mismatch", passes)
    return asked


def fake_cli(tmp_path: Path, body: str = "") -> Path:
    """An optimum-cli that writes an IR file and appends its arguments to calls.txt."""
    cli = tmp_path / "bin" / "optimum-cli"
    cli.parent.mkdir(exist_ok=True)
    head = textwrap.dedent(
        """
        import sys, pathlib
        here = pathlib.Path(__file__).parent
        with open(here / "calls.txt", "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\\n")
        """
    )
    tail = 'out = pathlib.Path(sys.argv[-1])\n(out / "openvino_model.xml").write_text("<net/>")\n'
    cli.write_text(f"#!{sys.executable}\n{head}{textwrap.dedent(body)}\n{tail}")
    cli.chmod(cli.stat().st_mode | stat.S_IEXEC)
    return cli


def model_dir(tmp_path: Path) -> Path:
    m = tmp_path / "runs" / "merged"
    m.mkdir(parents=True)
    (m / "config.json").write_text("{}")
    (m / "model.safetensors").write_bytes(b"w1")
    return m


def test_export_converts_once_and_again_when_the_model_changes(tmp_path: Path) -> None:
    cli, m = fake_cli(tmp_path), model_dir(tmp_path)
    out = export_openvino(m, str(cli))
    assert out == export_dir(m) == m.with_name("merged.openvino")
    assert (out / "openvino_model.xml").is_file() and (out / MARKER).is_file()
    calls = (cli.parent / "calls.txt").read_text().splitlines()
    assert len(calls) == 1 and "--weight-format fp32" in calls[0] and str(m) in calls[0]
    assert export_openvino(m, str(cli)) == out  # cached
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 1
    (m / "model.safetensors").write_bytes(b"w2-retrained")
    export_openvino(m, str(cli))
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 2
    assert not [p for p in m.parent.iterdir() if p.name.startswith(".merged.openvino.tmp")]


def test_a_failed_export_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, body='print("KeyError: llama4"); sys.exit(3)')
    m = model_dir(tmp_path)
    with pytest.raises(EngineError, match=r"(?s)exit 3.*KeyError: llama4"):
        export_openvino(m, str(cli))
    assert sorted(p.name for p in m.parent.iterdir()) == ["merged", "merged.openvino.lock"]


IR_CLI = """
import struct
from safetensors.numpy import load_file
src = pathlib.Path(sys.argv[sys.argv.index("-m") + 1])
out = pathlib.Path(sys.argv[-1])
tensors = load_file(str(src / "model.safetensors"))
layers, blob = [], struct.pack("<q", 576)
layers.append('<layer id="0" name="Constant_1" type="Const"><data element_type="i64" '
              'shape="" offset="0" size="8"/></layer>')
for i, (name, t) in enumerate(sorted(tensors.items()), 1):
    raw = t.astype("<f4").tobytes()
    layers.append(f'<layer id="{i}" name="self.{name}" type="Const"><data element_type="f32" '
                  f'shape="{t.size}" offset="{len(blob)}" size="{len(raw)}"/></layer>')
    blob += raw
(out / "openvino_model.xml").write_text("<net><layers>" + "".join(layers) + "</layers></net>")
(out / "openvino_model.bin").write_bytes(blob)
(out / "openvino_tokenizer.xml").write_text("<net/>")
sys.exit(0)
"""


def weights_model(root: Path, name: str, scale: float, config: str = '{"layers": 2}') -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    m = root / name / "merged"
    m.mkdir(parents=True)
    (m / "config.json").write_text(config)
    rng = np.random.default_rng(0)
    w = {"model.a": rng.normal(size=(3, 4)), "model.b": rng.normal(size=5)}
    save_file(
        {k: (v * scale).astype(np.float32) for k, v in w.items()}, str(m / "model.safetensors")
    )
    return m


def test_a_retrained_model_of_the_same_architecture_reuses_the_kept_graph(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, checks: list[Path]
) -> None:
    cli = fake_cli(tmp_path, body=IR_CLI)
    layouts = tmp_path / "layouts"
    first = export_openvino(weights_model(tmp_path, "it0", 1.0), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 1
    assert len(list(layouts.iterdir())) == 1  # the graph and its layout, kept
    second_src = weights_model(tmp_path, "it1", 2.0)
    with caplog.at_level("INFO", logger="siked.engines.openvino"):
        second = export_openvino(second_src, str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 1  # no conversion
    assert "no conversion" in caplog.text
    assert checks == [second_src]  # the written weights were checked, the conversion not
    # what the converter itself writes for that model
    again = weights_model(tmp_path, "check", 2.0)
    converted = export_openvino(again, str(cli), tmp_path / "none")
    for f in ("openvino_model.xml", "openvino_model.bin", "openvino_tokenizer.xml"):
        assert (second / f).read_bytes() == (converted / f).read_bytes()
    assert (second / "openvino_model.bin").read_bytes() != (
        first / "openvino_model.bin"
    ).read_bytes()
    assert (second / MARKER).is_file()
    # another architecture is converted
    export_openvino(weights_model(tmp_path, "other", 1.0, '{"layers": 3}'), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 3


def test_written_weights_that_compute_otherwise_are_converted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import siked.engines.openvino as ov

    cli = fake_cli(tmp_path, body=IR_CLI)
    layouts = tmp_path / "layouts"
    export_openvino(weights_model(tmp_path, "it0", 1.0), str(cli), layouts)
    monkeypatch.setattr(ov, "greedy_mismatch", lambda ir, src: "greedy tokens [1] where [2]")
    with caplog.at_level("WARNING", logger="siked.engines.openvino"):
        out = export_openvino(weights_model(tmp_path, "it1", 2.0), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 2  # converted after all
    assert "differs (greedy tokens [1] where [2]); converting" in caplog.text
    assert (out / "openvino_model.bin").is_file() and (out / MARKER).is_file()


def test_a_kept_layout_that_does_not_fit_falls_back_to_converting(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path, body=IR_CLI)
    layouts = tmp_path / "layouts"
    export_openvino(weights_model(tmp_path, "it0", 1.0), str(cli), layouts)
    (layout,) = layouts.glob("*/siked-layout.json")
    layout.write_text(layout.read_text().replace('"model.b"', '"model.gone"'))
    out = export_openvino(weights_model(tmp_path, "it1", 2.0), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 2
    assert (out / "openvino_model.bin").is_file()


def test_a_kept_graph_that_vanishes_while_copied_falls_back_to_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = fake_cli(tmp_path, body=IR_CLI)
    layouts = tmp_path / "layouts"
    export_openvino(weights_model(tmp_path, "it0", 1.0), str(cli), layouts)
    real_copy = shutil.copy2

    def copy2(src: Any, dst: Any) -> Any:  # another process replaces the kept graph meanwhile
        if str(layouts) in str(src):
            raise FileNotFoundError(src)
        return real_copy(src, dst)

    monkeypatch.setattr(shutil, "copy2", copy2)
    out = export_openvino(weights_model(tmp_path, "it1", 2.0), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 2
    assert (out / "openvino_model.bin").is_file() and (out / MARKER).is_file()


def test_a_conversion_whose_weights_cannot_be_placed_keeps_no_layout(tmp_path: Path) -> None:
    cli = fake_cli(tmp_path)  # writes a graph without weights
    layouts = tmp_path / "layouts"
    export_openvino(weights_model(tmp_path, "it0", 1.0), str(cli), layouts)
    export_openvino(weights_model(tmp_path, "it1", 2.0), str(cli), layouts)
    assert len((cli.parent / "calls.txt").read_text().splitlines()) == 2
    assert not layouts.exists() or not list(layouts.iterdir())


def test_export_needs_a_local_model_directory(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"no config\.json"):
        export_openvino(tmp_path, "optimum-cli")


def test_the_converter_is_found_by_setting_env_or_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = fake_cli(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.delenv(EXPORT_ENV, raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "env" / ".venv"))
    with pytest.raises(EngineError, match="make openvino"):
        find_optimum_cli()
    assert find_optimum_cli(str(cli)) == str(cli)
    monkeypatch.setenv(EXPORT_ENV, str(cli))
    assert find_optimum_cli() == str(cli)
    monkeypatch.setenv(EXPORT_ENV, str(tmp_path / "missing"))
    with pytest.raises(EngineError, match=EXPORT_ENV):
        find_optimum_cli()
    monkeypatch.delenv(EXPORT_ENV)
    monkeypatch.setenv("PATH", str(cli.parent))
    assert find_optimum_cli() == str(cli)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    beside = tmp_path / "env" / ".venv-openvino" / "bin"
    beside.mkdir(parents=True)
    shutil.copy(cli, beside / "optimum-cli")
    assert find_optimum_cli() == str(beside / "optimum-cli")


def test_a_run_without_the_converter_fails_before_its_first_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from siked.config import load_config
    from siked.loop import check_engines
    from siked.plan import format_plan, make_plan

    root = Path(__file__).resolve().parents[1]
    cfg = load_config(root / "configs" / "quickstart.yaml")
    assert cfg.sample.engine == cfg.eval.engine == "openvino"
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    monkeypatch.delenv(EXPORT_ENV, raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "env" / ".venv"))
    with pytest.raises(EngineError, match="make openvino"):
        check_engines(cfg)
    plan = make_plan(cfg)
    assert not plan.ok and "converter               NOT found" in format_plan(plan)
    monkeypatch.setenv(EXPORT_ENV, str(fake_cli(tmp_path)))
    check_engines(cfg)
    hf = load_config(root / "configs" / "quickstart.yaml", ["sample.engine=hf", "eval.engine=hf"])
    monkeypatch.delenv(EXPORT_ENV)
    check_engines(hf)  # no openvino engine, nothing to find
    assert "OpenVINO" not in format_plan(make_plan(hf))


# -- the real thing -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layouts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("layouts")


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory: pytest.TempPathFactory, layouts: Path) -> Path:
    """The bundled student in a temporary directory, converted (beside it) by optimum-cli."""
    from siked.models import BUNDLED_STUDENT, resolve_model

    try:
        find_optimum_cli()
    except EngineError as e:
        pytest.skip(str(e))
    dst = tmp_path_factory.mktemp("ov") / "student"
    shutil.copytree(resolve_model(BUNDLED_STUDENT), dst)
    export_openvino(dst, layouts=layouts)
    return dst


QUESTIONS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
    "A book costs $12. How much do 4 books cost?",
    "Sara had 20 stickers and gave away 8. How many are left?",
]


@pytest.mark.integration
def test_the_default_student_on_openvino_writes_what_the_hf_engine_writes(
    student_copy: Path,
) -> None:
    from siked.chat import student_prompt
    from siked.engines.hf import HFEngine
    from siked.student import stop_strings

    stops = stop_strings(["cot", "l2m", "pot"], None)
    cfg = EngineConfig(engine="openvino", batch_size=4, dtype="float32")
    ov_engine = OpenVINOEngine(cfg, str(student_copy))
    assert (export_dir(student_copy) / "openvino_model.xml").is_file()
    prompts = [student_prompt(ov_engine.tokenizer, q) for q in QUESTIONS]
    with HFEngine(cfg.model_copy(update={"engine": "hf"}), str(student_copy)) as hf:
        want = hf.generate(prompts, max_tokens=48, stop=stops)
    got = ov_engine.generate(prompts, max_tokens=48, stop=stops)
    assert [r[0].text for r in got] == [r[0].text for r in want]
    assert [r[0].finish_reason for r in got] == [r[0].finish_reason for r in want]
    assert [r[0].completion_tokens for r in got] == [r[0].completion_tokens for r in want]
    # samples depend on the seed only: alone, or with other prompts, in another order
    both = ov_engine.generate(prompts[:2], n=2, temperature=0.7, top_p=0.95, max_tokens=24, seed=3)
    alone = ov_engine.generate(
        prompts[1:2], n=2, temperature=0.7, top_p=0.95, max_tokens=24, seed=3
    )
    assert [c.text for c in both[1]] == [c.text for c in alone[0]]
    assert both[1][0].text != both[1][1].text or both[1][0].text == ""
    ov_engine.close()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


@pytest.mark.integration
def test_a_retrained_student_in_the_kept_graph_is_its_own_conversion_byte_for_byte(
    student_copy: Path, layouts: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    retrained = tmp_path / "a" / "student"
    shutil.copytree(student_copy, retrained)
    weights = load_file(str(retrained / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for name, t in weights.items():  # every tensor moves, as a full fine-tune would move it
        weights[name] = t + 0.01 * torch.randn(t.shape, generator=gen, dtype=t.dtype)
    save_file(weights, str(retrained / "model.safetensors"), metadata={"format": "pt"})
    with caplog.at_level("INFO", logger="siked.engines.openvino"):
        patched = export_openvino(retrained, layouts=layouts)
    assert "no conversion" in caplog.text and "differs" not in caplog.text  # the check passed
    assert greedy_mismatch(patched, retrained) is None
    broken = tmp_path / "c" / "student"  # the same model with its embeddings negated
    shutil.copytree(retrained, broken, ignore=shutil.ignore_patterns("*.openvino*"))
    embed = next(name for name in weights if "embed" in name)
    save_file({**weights, embed: -weights[embed]}, str(broken / "model.safetensors"))
    assert "greedy tokens" in (greedy_mismatch(patched, broken) or "")
    converted_src = tmp_path / "b" / "student"
    shutil.copytree(retrained, converted_src, ignore=shutil.ignore_patterns("*.openvino*"))
    converted = export_openvino(converted_src, layouts=tmp_path / "fresh")
    files = sorted(p.name for p in converted.iterdir() if p.name != MARKER)
    assert files == sorted(p.name for p in patched.iterdir() if p.name != MARKER)
    for f in files:
        assert (patched / f).read_bytes() == (converted / f).read_bytes(), f
