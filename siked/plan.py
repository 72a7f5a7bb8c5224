"""Plan a run without running it: what each stage will make and what the run needs.

:func:`make_plan` reads a :class:`~siked.config.SikedConfig` and the data files (no model
weights, no network) and returns a :class:`Plan`; :func:`format_plan` prints it
(``siked plan CONFIG``, also after the config in ``siked run --dry-run CONFIG``).

Per stage it gives the questions, samples and training examples, and per iteration the tokens
and optimizer steps of training. Counts of questions and generations are exact (the data is
loaded and split as the loop does). Training sizes are **upper bounds** that assume every
question is solved by every strategy (the teacher's and the student's real yields are only
known after the run); ``bias`` other than ``none`` keeps at most one row per question. Tokens
per example are measured on the gold teacher's rationales (GSM8K's human solutions rewritten
into each strategy, :mod:`siked.engines.gold`) of the first :data:`TOKEN_SAMPLE` training
questions, rendered as training examples with the student's chat template when its tokenizer
is on this machine, else estimated at :data:`CHARS_PER_TOKEN` characters per token. For an LLM
teacher they are a proxy (its rationales are usually longer).

What the run needs: every model id and whether it resolves offline (:func:`siked.models.
inspect_model`), whether the student's tokenizer has a chat template (when that can be known
offline), whether vLLM and a GPU are needed and present, and the data files' checksums.
"""

from __future__ import annotations

import math
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siked.config import SikedConfig, TrainConfig

#: training questions whose gold rationales are tokenised for the length estimates
TOKEN_SAMPLE = 200
#: characters per token assumed when the student's tokenizer is not on this machine
CHARS_PER_TOKEN = 4.0
#: chat-template tokens around a training example assumed without a tokenizer
TEMPLATE_TOKENS = 12


@dataclass
class Line:
    """One line of the plan: a label, the value, and an optional note."""

    label: str
    value: str
    note: str = ""


@dataclass
class Section:
    title: str
    lines: list[Line] = field(default_factory=list)

    def add(self, label: str, value: Any, note: str = "") -> None:
        self.lines.append(Line(label, str(value), note))


@dataclass
class Plan:
    name: str
    sections: list[Section] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # known blockers: the run would fail
    numbers: dict[str, Any] = field(default_factory=dict)  # the figures, for tests and tools

    @property
    def ok(self) -> bool:
        return not self.problems


# --------------------------------------------------------------------------- helpers


def fmt_int(n: float | int) -> str:
    """Thousands with a thin separator.

    >>> fmt_int(1234567), fmt_int(12)
    ('1,234,567', '12')
    """
    return f"{round(n):,}"


def optimizer_steps(examples: int, tokens_per_example: float, cfg: TrainConfig) -> dict[str, Any]:
    """Optimizer steps and tokens per step of one training iteration (one process).

    Without packing a step takes ``per_device_batch_size x gradient_accumulation_steps``
    examples; with ``train.packing`` it takes as many rows of
    ``max_length`` tokens, each holding ``max_length / tokens_per_example`` examples.

    >>> optimizer_steps(1000, 250, TrainConfig(per_device_batch_size=2, gradient_accumulation_steps=4))
    {'rows_per_step': 8, 'examples_per_step': 8.0, 'tokens_per_step': 2000, 'steps_per_epoch': 125, 'steps': 375, 'packing': False}
    """
    per_step = cfg.per_device_batch_size * cfg.gradient_accumulation_steps
    packing = cfg.packing
    if packing:
        per_row = max(cfg.max_length / max(tokens_per_example, 1.0), 1.0)
        rows = math.ceil(examples / per_row)
        examples_per_step = per_step * per_row
    else:
        rows = examples
        examples_per_step = float(per_step)
    steps_per_epoch = math.ceil(rows / per_step) if rows else 0
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(steps_per_epoch * cfg.epochs)
    return {
        "rows_per_step": per_step,
        "examples_per_step": round(examples_per_step, 1),
        "tokens_per_step": round(examples_per_step * tokens_per_example),
        "steps_per_epoch": steps_per_epoch,
        "steps": steps,
        "packing": packing,
    }


def _gpu_visible() -> bool:
    """A CUDA GPU on this machine (the driver's files; torch is not imported)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def _model_line(name: str | None, engine: str) -> tuple[str, bool | None]:
    """How a model id resolves offline, and its chat template when known."""
    from siked.models import inspect_model

    if engine == "gold":
        return "GSM8K's human solutions (offline)", None
    if engine == "openai":
        return f"{name or '?'}: served by the server at base_url (not checked here)", None
    if not name:
        return "the iteration's student", None
    info = inspect_model(name)
    where = info.where if info.available else f"{info.where} (needs network or a local copy)"
    return f"{name}: {where}", info.chat_template


# --------------------------------------------------------------------------- token lengths


@dataclass
class Lengths:
    """Mean tokens per training example and per rationale, by strategy."""

    example: dict[str, float]
    rationale: dict[str, float]
    source: str  # how they were measured


def _student_tokenizer(name: str) -> tuple[Any, str] | None:
    """The student's tokenizer when it is on this machine (no weights, no network)."""
    from siked.models import _DONE_FILE, bundled_cache_dir, inspect_model, is_bundled

    info = inspect_model(name)
    if not info.available or info.chat_template is not True:
        return None
    path = info.where
    if is_bundled(name):
        target = bundled_cache_dir(name.split(":", 1)[1].strip().lower())
        if not (target / _DONE_FILE).is_file():
            return None  # converted on first use: that loads the weights
        path = str(target)
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path), f"the student's tokenizer ({name})"
    except Exception:  # an unreadable tokenizer: fall back to the character estimate
        return None


def measure_lengths(cfg: SikedConfig, train: list[Any]) -> Lengths:
    """Tokens of the gold rationales of the first :data:`TOKEN_SAMPLE` training questions."""
    from siked.chat import training_example
    from siked.data import load_gsm8k_solutions
    from siked.gsm8k_rationales import gold_rationale

    problems = train[:TOKEN_SAMPLE]
    texts: dict[str, list[tuple[str, str]]] = {s: [] for s in cfg.strategies}
    if cfg.data.train.name == "gsm8k":
        sols = load_gsm8k_solutions(cfg.data.train.split, data_dir=cfg.data.dir)
        for p in problems:
            sol = sols.get(p.id)
            if sol is None:
                continue
            for s in cfg.strategies:
                text = gold_rationale(sol, s, p.question, cfg.teacher.prompt_style)
                if text:
                    texts[s].append((p.question, text))
    tok = _student_tokenizer(cfg.student.model)
    forced = cfg.strategies[0] if len(cfg.strategies) == 1 else None
    example: dict[str, float] = {}
    rationale: dict[str, float] = {}
    for s, items in texts.items():
        if not items:
            continue
        ex_n: list[float] = []
        ra_n: list[float] = []
        for question, text in items:
            ex = training_example(question, s, text, forced)
            if tok is not None:
                rendered = tok[0].apply_chat_template(
                    ex["prompt"] + ex["completion"], tokenize=False
                )
                ex_n.append(len(tok[0](rendered, add_special_tokens=False)["input_ids"]))
                ra_n.append(len(tok[0](text, add_special_tokens=False)["input_ids"]))
            else:
                chars = sum(len(m["content"]) for m in ex["prompt"] + ex["completion"])
                ex_n.append(chars / CHARS_PER_TOKEN + TEMPLATE_TOKENS)
                ra_n.append(len(text) / CHARS_PER_TOKEN)
        example[s] = statistics.fmean(ex_n)
        rationale[s] = statistics.fmean(ra_n)
    n = max((len(v) for v in texts.values()), default=0)
    how = (
        tok[1]
        if tok is not None
        else f"~{CHARS_PER_TOKEN:g} characters per token (the student's tokenizer is not here)"
    )
    source = f"gold rationales of {n} training questions, {how}"
    if not example:
        source = "no gold rationales for this training set: assumed 250 tokens per example"
    return Lengths(example, rationale, source)


def _mean_example_tokens(cfg: SikedConfig, lengths: Lengths, biased: bool) -> float:
    """Mean tokens of a training example: the top-priority strategy's under a bias (most
    questions are solved with it), else the mean over strategies."""
    from siked.mix import priority

    if not lengths.example:
        return 250.0
    if biased:
        for s in priority(cfg.mix.bias, cfg.strategies):
            if s in lengths.example:
                return lengths.example[s]
    return statistics.fmean(lengths.example.values())


# --------------------------------------------------------------------------- the plan


def make_plan(cfg: SikedConfig) -> Plan:
    """The plan of ``cfg`` (see the module docstring); loads data files, no model weights."""
    from siked import data as data_mod
    from siked.evaluate import resolve_datasets
    from siked.loop import split_train_validation

    plan = Plan(cfg.name)
    nums = plan.numbers
    S = len(cfg.strategies)

    # ---- data
    sec = Section("data")
    plan.sections.append(sec)
    root, source = data_mod.data_dir_source(cfg.data.dir)
    bad = [f"{s.path} ({s.status})" for s in data_mod.file_status(cfg.data.dir) if s.status != "ok"]
    sec.add("data directory", root, f"from {source}")
    train, val = split_train_validation(cfg)
    evals = resolve_datasets(cfg.data.eval, cfg.seed, cfg.data.dir)
    N = len(train)
    nums.update(train_questions=N, validation_questions=len(val))
    sec.add(
        "training questions",
        fmt_int(N),
        f"{cfg.data.train.name}:{cfg.data.train.split}, after {len(val)} held out for "
        f"validation, offset {cfg.data.offset}"
        + (f", limit {cfg.data.train.limit}" if cfg.data.train.limit else ""),
    )
    sec.add("validation questions", fmt_int(len(val)), "selects the best iteration")
    n_eval = sum(len(ps) for _, ps in evals)
    nums["eval_questions"] = {name: len(ps) for name, ps in evals}
    sec.add(
        "evaluation questions",
        fmt_int(n_eval),
        ", ".join(f"{name} {len(ps)}" for name, ps in evals),
    )
    sec.add("data files", "all ok" if not bad else "PROBLEM: " + ", ".join(bad))
    if bad:
        plan.problems.append("data files missing or altered: " + ", ".join(bad))

    lengths = measure_lengths(cfg, train)
    sec = Section("tokens per training example (prompt + response)")
    plan.sections.append(sec)
    for strat, n in lengths.example.items():
        sec.add(strat, f"~{n:.0f}", f"rationale alone ~{lengths.rationale[strat]:.0f}")
    sec.add("measured on", lengths.source)
    nums["tokens_per_example"] = {k: round(v, 1) for k, v in lengths.example.items()}

    # ---- teacher
    t = cfg.teacher
    untrained = cfg.method == "base"  # the student as it is: no teacher, no training
    if untrained:
        sec = Section("teacher (none: method base evaluates the student as it is)")
        plan.sections.append(sec)
    else:
        _teacher_section(cfg, plan, N, S, lengths)
    d_llm = 0 if untrained else N * S * t.keep_per_strategy
    nums["d_llm_max"] = d_llm
    nums["teacher_samples"] = 0 if untrained else N * S * t.n

    # ---- iterations
    iterations = 0 if cfg.method == "distill" else cfg.loop.iterations
    biased = cfg.mix.bias != "none"
    tokens_ex = _mean_example_tokens(cfg, lengths, biased)
    per_q_eval = 1 if (cfg.eval.mode == "free" and S > 1) else S
    if S == 1:
        per_q_eval = 1
    # validation after every iteration; the test sets too, or once on the final student
    every = cfg.loop.test_every_iteration
    generations_eval = (len(val) + (n_eval if every else 0)) * per_q_eval
    final_tests = 0 if every else n_eval * per_q_eval
    eval_how = f"greedy, mode {cfg.eval.mode}, <= {cfg.eval.max_tokens} new tokens, " + (
        "validation included" if every else "validation only"
    )
    samples_per_iter = N * cfg.sample.k * (S if cfg.sample.mode == "forced" else 1)
    nums["iterations"] = []
    for it in range(iterations + 1):
        if untrained:
            sec = Section("iteration 0 (the student as it is: no training)")
            plan.sections.append(sec)
            sec.add("evaluation", f"{fmt_int(generations_eval)} generations", eval_how)
            nums["iterations"].append(
                {
                    "iteration": 0,
                    "examples_max": 0,
                    "tokens_per_example": 0.0,
                    **optimizer_steps(0, 0.0, cfg.train),
                    "eval_generations": generations_eval,
                    "samples": 0,
                }
            )
            continue
        if it == 0:
            bias0 = biased and cfg.mix.bias_iteration_0
            rows = N if bias0 else d_llm
            how = (
                f"bias {cfg.mix.bias} from iteration 0: one rationale per question"
                if bias0
                else "all of D_LLM"
            )
            tok0 = _mean_example_tokens(cfg, lengths, bias0)
            title = "iteration 0 (multi-strategy distillation)"
        else:
            rows, how = _siked_rows(cfg, N, d_llm, S)
            tok0 = tokens_ex
            title = f"iteration {it} (SIKeD, {cfg.mix.variant})"
        steps = optimizer_steps(rows, tok0, cfg.train)
        sec = Section(title)
        plan.sections.append(sec)
        sec.add("training examples", f"<= {fmt_int(rows)}", how)
        sec.add("tokens", f"<= {fmt_int(rows * tok0)} per epoch", f"~{tok0:.0f} per example")
        batch = f"{cfg.train.per_device_batch_size} x {cfg.train.gradient_accumulation_steps} " + (
            "packed rows" if steps["packing"] else "examples"
        )
        sec.add(
            "optimizer steps",
            f"<= {fmt_int(steps['steps'])}",
            f"{cfg.train.epochs:g} epochs of <= {fmt_int(steps['steps_per_epoch'])} steps; "
            f"{batch} per step (~{steps['examples_per_step']:g} examples, "
            f"~{fmt_int(steps['tokens_per_step'])} tokens) on one process",
        )
        sec.add("evaluation", f"{fmt_int(generations_eval)} generations", eval_how)
        sampled = it < iterations
        if sampled:
            sec.add(
                "self-generation",
                f"{fmt_int(samples_per_iter)} samples",
                f"{fmt_int(N)} questions x k {cfg.sample.k}"
                + (f" x {S} strategies (forced)" if cfg.sample.mode == "forced" else " (free)")
                + f", T {cfg.sample.temperature:g}, <= {cfg.sample.max_tokens} new tokens "
                "(skipped if the run stops here)",
            )
        nums["iterations"].append(
            {
                "iteration": it,
                "examples_max": rows,
                "tokens_per_example": round(tok0, 1),
                **steps,
                "eval_generations": generations_eval,
                "samples": samples_per_iter if sampled else 0,
            }
        )

    its = nums["iterations"]
    nums["final_test_generations"] = final_tests
    nums["eval_generations"] = sum(i["eval_generations"] for i in its) + final_tests
    if final_tests:
        sec = Section("test sets (once, on the best-on-validation student)")
        plan.sections.append(sec)
        sec.add(
            "evaluation",
            f"{fmt_int(final_tests)} generations",
            f"greedy, mode {cfg.eval.mode}, <= {cfg.eval.max_tokens} new tokens",
        )
    sec = Section(f"totals (iterations 0-{iterations}, if the run does not stop early)")
    plan.sections.append(sec)
    sec.add("teacher samples", fmt_int(nums["teacher_samples"]))
    sec.add("optimizer steps", f"<= {fmt_int(sum(i['steps'] for i in its))}")
    sec.add("evaluation generations", fmt_int(nums["eval_generations"]))
    sec.add("self-generated samples", fmt_int(sum(i["samples"] for i in its)))

    _needs(cfg, plan)
    return plan


def _teacher_section(cfg: SikedConfig, plan: Plan, N: int, S: int, lengths: Lengths) -> None:
    """The teacher's samples, its prompt style's exemplars, D_LLM's upper bound."""
    from siked import data as data_mod
    from siked.strategies import exemplar_questions
    from siked.text import collapse_whitespace

    t = cfg.teacher
    sec = Section(f"teacher ({t.engine}{': ' + t.model if t.model else ''})")
    plan.sections.append(sec)
    prompts = N * S
    sec.add(
        "samples",
        fmt_int(prompts * t.n),
        f"{fmt_int(N)} questions x {S} strategies x n {t.n}, <= {t.max_tokens} new tokens each",
    )
    spec = cfg.data.train
    split_questions = {
        collapse_whitespace(p.question)
        for p in data_mod.load_problems(spec.name, spec.split, data_dir=cfg.data.dir)
    }
    shown = len(exemplar_questions(t.prompt_style, list(cfg.strategies)) & split_questions)
    sec.add(
        "prompt style",
        t.prompt_style,
        f"its {shown} exemplar questions are left out of the training and validation questions"
        if shown
        else f"its exemplars are not {spec.name}:{spec.split} questions",
    )
    if t.engine != "gold" and lengths.rationale:
        mean_r = statistics.fmean(lengths.rationale.values())
        sec.add(
            "completion tokens",
            f"~{fmt_int(prompts * t.n * mean_r)}",
            f"~{mean_r:.0f} per sample (gold rationales as a proxy)",
        )
    d_llm = N * S * t.keep_per_strategy
    sec.add(
        "D_LLM",
        f"<= {fmt_int(d_llm)} rationales",
        f"keep_per_strategy {t.keep_per_strategy}; upper bound: every question solved by every "
        "strategy",
    )
    if t.free_choice_n:
        sec.add(
            "free-choice pass",
            fmt_int(N * t.free_choice_n),
            f"{fmt_int(N)} questions x free_choice_n {t.free_choice_n} (measures the teacher's "
            "own strategy choice; not trained on)",
        )


def _siked_rows(cfg: SikedConfig, n: int, d_llm: int, s: int) -> tuple[int, str]:
    """Upper bound of the rows of a SIKeD iteration's mix, and how it is reached."""
    m = cfg.mix
    if m.bias != "none":
        return n, f"bias {m.bias}: one rationale per question (student or teacher)"
    per = m.self_per_strategy
    d_self = (
        n * s * per
        if per is not None
        else n * cfg.sample.k * (s if cfg.sample.mode == "forced" else 1)
    )
    teacher = 0 if m.variant == "self" else d_llm
    how = (
        f"D_self <= {fmt_int(d_self)} (self_per_strategy {per})"
        + (f" + D_LLM <= {fmt_int(teacher)}" if teacher else "")
        + (
            f" ({m.variant}, {m.adaptive_scope} scope: less as the student solves more)"
            if m.variant == "adaptive"
            else ""
        )
    )
    if m.alpha != "auto":
        how += "; alpha subsamples one side"
    return d_self + teacher, how


def _needs(cfg: SikedConfig, plan: Plan) -> None:
    sec = Section("needs")
    plan.sections.append(sec)
    student, template = _model_line(cfg.student.model, "hf")
    sec.add("student", student)
    if template is None:
        sec.add("chat template", "unknown offline", "checked when the run starts")
    elif template:
        sec.add("chat template", "yes")
    else:
        sec.add(
            "chat template",
            "no",
            "a base checkpoint: siked's default template is used (the authors use instruct ones)",
        )
    from siked.models import inspect_model

    info = inspect_model(cfg.student.model)
    if info.kind == "bundled" and not info.available:
        plan.problems.append(info.where)
    teacher, _ = _model_line(cfg.teacher.model, cfg.teacher.engine)
    sec.add("teacher", teacher)
    engines = {"teacher": cfg.teacher, "sample": cfg.sample, "eval": cfg.eval}
    vllm = [k for k, e in engines.items() if e.engine == "vllm"]
    if cfg.method == "distill":
        vllm = [k for k in vllm if k != "sample"]
    if vllm:
        _vllm_line(sec, vllm, [engines[k].vllm_executable for k in vllm])
    ov = [k for k, e in engines.items() if e.engine == "openvino"]
    if cfg.method == "distill":
        ov = [k for k in ov if k != "sample"]
    if ov:
        _openvino_lines(sec, plan, ov, engines[ov[0]].openvino_export)
    gpus = cfg.teacher.tensor_parallel_size if cfg.teacher.engine == "vllm" else 0
    need_gpu = bool(vllm)
    here = "a GPU is visible here" if _gpu_visible() else "no GPU visible here"
    if need_gpu:
        sec.add(
            "GPU",
            "needed",
            (f"teacher: {gpus} GPUs (tensor_parallel_size); " if gpus else "")
            + f"student: 1 GPU; {here}",
        )
    else:
        sec.add("GPU", "not needed", f"runs on CPU (slowly for large students); {here}")
    from siked.loop import preflight_problems

    plan.problems += preflight_problems(cfg)


def _vllm_line(sec: Section, stages: list[str], executables: list[str | None]) -> None:
    """Where each stage's ``vllm`` command is (``vllm_executable``, else as the engine looks:
    :func:`~siked.engines.vllm.find_vllm`). A missing one is noted, not a problem of the plan: a
    GPU run is often planned elsewhere than where it runs (the run checks it before starting)."""
    from siked.engines.base import EngineError
    from siked.engines.vllm import find_vllm

    found, missing = [], []
    for exe in dict.fromkeys(executables):
        try:
            found.append(find_vllm(exe))
        except EngineError:
            missing.append(exe or "vllm")
    where = ", ".join(found + [f"{m} NOT found" for m in missing])
    sec.add(
        "vLLM",
        "needed" + (", NOT found here" if missing else ", found"),
        f"engines: {', '.join(stages)}: {where} (make vllm, or pip install 'siked[vllm]')",
    )


def _openvino_lines(sec: Section, plan: Plan, stages: list[str], executable: str | None) -> None:
    """What the openvino engine needs: openvino-genai here, and optimum-cli to convert."""
    from siked.engines.base import EngineError
    from siked.engines.openvino import (
        GENAI_MISSING,
        INSTALL_HINT,
        find_optimum_cli,
        genai_installed,
    )

    installed = genai_installed()
    sec.add(
        "OpenVINO",
        "needed" + (", installed" if installed else ", NOT installed here"),
        f"engines: {', '.join(stages)} ({INSTALL_HINT})",
    )
    if not installed:
        plan.problems.append(GENAI_MISSING)
    try:
        sec.add("converter", "found", find_optimum_cli(executable))
    except EngineError as e:
        sec.add("converter", "NOT found", "optimum-cli (make openvino)")
        plan.problems.append(str(e))


def format_plan(plan: Plan) -> str:
    """The plan as aligned text, one section per stage."""
    width = max((len(ln.label) for sec in plan.sections for ln in sec.lines), default=10)
    vwidth = max((len(ln.value) for sec in plan.sections for ln in sec.lines), default=10)
    vwidth = min(vwidth, 28)
    out = [f"plan of run {plan.name} (upper bounds; nothing is run)"]
    for sec in plan.sections:
        out.append("")
        out.append(sec.title)
        for ln in sec.lines:
            row = f"  {ln.label:<{width}}  {ln.value:<{vwidth}}"
            out.append((row + ("  " + ln.note if ln.note else "")).rstrip())
    out.append("")
    if plan.problems:
        out.append("PROBLEMS (the run would fail):")
        out += [f"  - {p}" for p in plan.problems]
    else:
        out.append("no known problem")
    return "\n".join(out)
