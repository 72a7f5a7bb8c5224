"""Stage: fine-tune the student on rationales (TRL ``SFTTrainer`` + PEFT LoRA, or full SFT).

Input is a JSON-lines file of :class:`siked.records.Record` rows. Each row becomes one
conversational prompt/completion example (:func:`siked.chat.training_example`): the prompt is
the student's system + user messages, the completion the assistant turn ``"[cot]: <rationale>"``.
The loss is on the completion only (the prompt's labels are ``-100``).

``train(data, model, out_dir, cfg)`` writes::

    out_dir/adapter/          the LoRA adapter (PEFT format) + tokenizer      (method: lora)
    out_dir/merged/           base + adapter merged: a plain HF model directory with tokenizer
                              and chat template (transformers, vLLM); for method: full, the model
    out_dir/train_log.json    loss history, eval loss, tokens/s, peak memory, seconds, ...
    out_dir/train_config.yaml the resolved TrainConfig
    out_dir/README.md         a short model card
    out_dir/checkpoints/      Trainer checkpoints while training (removed when done)
    out_dir/train_done.json   written last: a finished run is not retrained

A run killed at any point resumes from its last checkpoint when ``train`` is called again with
the same inputs. SIKeD iterations continue from the previous model by passing the previous
iteration's ``merged/`` directory as ``model`` (merge, then train a fresh LoRA).

Batching. With ``padding_free`` (the default) each batch is flattened into one sequence with
restarting ``position_ids``: no padding, and examples never attend to each other. Attention runs
per example: ``flash_attention_2``'s varlen kernel on CUDA when ``flash-attn`` is installed, else
:func:`siked.attention.varlen_sdpa` (PyTorch's fused varlen kernel on CUDA in half precision,
sdpa on each example alone elsewhere, CPU included;
``tests/test_train.py`` checks both against separate forward passes). With ``packing`` the
examples are first packed best-fit-decreasing (TRL's ``bfd``) into rows of ``max_length``
tokens, and ``per_device_batch_size`` counts packed rows: the authors' setting, which puts
several examples into each row and so changes the optimizer steps per epoch. ``padding_free:
false`` pads the batches and groups them by length. See ``docs/training.md``.

Distributed training runs unchanged under ``accelerate launch`` (DDP, FSDP, DeepSpeed; see
``configs/accelerate/``); only the main process writes the outputs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siked import __version__, chat
from siked.config import TrainConfig, to_yaml
from siked.errors import DataError, SikedError
from siked.io import atomic_write_json, atomic_write_text, read_json, read_jsonl, sha256_file
from siked.io import sha256_json as _sha256_json
from siked.lock import locks_outputs
from siked.models import BUNDLED, best_device, is_bundled, pick_dtype, resolve_model

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DONE_FILE = "train_done.json"
INPUTS_FILE = "train_inputs.json"
CHECKPOINTS = "checkpoints"
# TrainConfig keys that do not change the trained weights (a resumed run may change them).
_COSMETIC_KEYS = ("logging_steps", "save_steps", "report_to", "save_merged", "ddp_timeout")


class TrainError(SikedError):
    """Training cannot start or continue (bad data, stale checkpoints, ...)."""


@dataclass
class TrainResult:
    adapter_dir: Path | None  # None for full fine-tuning
    merged_dir: Path | None  # None when cfg.save_merged is False (LoRA only)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        """The directory to sample from / continue training from."""
        d = self.merged_dir or self.adapter_dir
        assert d is not None
        return d


# --------------------------------------------------------------------------- data


def load_examples(
    path: str | Path, forced: str | None = None, system: bool = True
) -> list[dict[str, Any]]:
    """Read rationale records and turn them into prompt/completion examples.

    Each example keeps ``qid`` (or the question) as ``group`` so that a held-out split never
    shares a question with the training split. ``system=False`` folds the instruction into the
    user turn (a chat template without a system role, see :func:`siked.chat.supports_system_role`).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"training data not found: {path}")
    try:
        rows = read_jsonl(path)
    except ValueError as e:
        raise DataError(str(e)) from None
    examples = []
    for i, row in enumerate(rows, 1):
        missing = [k for k in ("question", "strategy", "text") if not isinstance(row.get(k), str)]
        if missing:
            raise DataError(f"{path}:{i}: record needs string fields {missing}")
        ex: dict[str, Any] = chat.training_example(
            row["question"], row["strategy"], row["text"], forced=forced, system=system
        )
        ex["group"] = str(row.get("qid") or row["question"])
        ex["strategy"] = row["strategy"]
        examples.append(ex)
    if not examples:
        raise DataError(f"{path}: no training records")
    return examples


def split_by_group(
    examples: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold out ``fraction`` of the *questions* (all their rationales) for validation."""
    groups = sorted({e["group"] for e in examples})
    if fraction <= 0 or len(groups) < 2:
        return examples, []
    rng = random.Random(seed)
    rng.shuffle(groups)
    n_eval = min(max(1, round(len(groups) * fraction)), len(groups) - 1)
    held = set(groups[:n_eval])
    return [e for e in examples if e["group"] not in held], [
        e for e in examples if e["group"] in held
    ]


def example_length(tokenizer: PreTrainedTokenizerBase, example: dict[str, Any]) -> int:
    """Token count of prompt + completion as the chat template renders them."""
    text = tokenizer.apply_chat_template(
        example["prompt"] + example["completion"], tokenize=False, add_generation_prompt=False
    )
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _drop_too_long(
    tokenizer: PreTrainedTokenizerBase, examples: list[dict[str, Any]], max_length: int
) -> tuple[list[dict[str, Any]], int, int]:
    """Drop examples longer than ``max_length`` (a truncated rationale loses its answer)."""
    kept, dropped, tokens = [], 0, 0
    for e in examples:
        n = example_length(tokenizer, e)
        if n > max_length:
            dropped += 1
        else:
            kept.append(e)
            tokens += n
    return kept, dropped, tokens


def _to_dataset(examples: list[dict[str, Any]]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_list(
        [{"prompt": e["prompt"], "completion": e["completion"]} for e in examples]
    )


# --------------------------------------------------------------------------- precision


def use_bf16(cfg: TrainConfig) -> bool:
    """bf16 mixed precision: ``cfg.bf16`` if set, else where the hardware computes bf16."""
    if cfg.bf16 is not None:
        return cfg.bf16
    import torch

    from siked.models import best_device

    return pick_dtype("auto", best_device()) == torch.bfloat16


def _load_dtype(cfg: TrainConfig, bf16: bool) -> str:
    """Weights dtype at load.

    LoRA: the frozen base in bf16 (PEFT keeps the LoRA weights in fp32 and autocast computes in
    bf16): half the memory and, on CPU, about twice the speed of fp32 weights with autocast.
    Full fine-tuning keeps fp32 master weights. Under FSDP everything loads in fp32 and FSDP's
    mixed-precision policy casts (FSDP shards want one dtype per parameter group).
    """
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    return "bfloat16" if (bf16 and cfg.method == "lora" and not fsdp) else "float32"


# --------------------------------------------------------------------------- helpers


def process_state(timeout_s: float | None = None) -> Any:
    """accelerate's process state; under a launcher the first call creates the process group,
    so :func:`train` makes it first, with ``train.ddp_timeout`` (a group created by a bare
    ``PartialState()`` has NCCL's 10-minute default, and the Trainer's ``ddp_timeout`` comes too
    late to change it)."""
    from datetime import timedelta

    from accelerate import PartialState

    if timeout_s is None:
        return PartialState()
    # the Trainer's own state (use_cpu where no GPU is: gloo processes, MULTI_CPU)
    cpu = best_device() == "cpu"
    return PartialState(cpu=cpu, timeout=timedelta(seconds=timeout_s))


def process_group_timeout() -> float | None:
    """Seconds of the default process group's timeout, or None outside a distributed run."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    group: Any = dist.group.WORLD
    device = torch.device("cuda" if dist.get_backend() == "nccl" else "cpu")
    try:
        return float(group._get_backend(device).options._timeout.total_seconds())
    except (AttributeError, RuntimeError):  # pragma: no cover - a backend without options
        return None


def is_main_process() -> bool:
    return bool(process_state().is_main_process)


def _barrier() -> None:
    process_state().wait_for_everyone()


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (
        rss / (1 << 20) if sys.platform == "darwin" else rss / 1024
    )  # bytes on macOS, KiB on Linux


def _inputs_fingerprint(
    data: Path, eval_data: Path | None, model: str, cfg: TrainConfig
) -> dict[str, Any]:
    cfg_dump = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _COSMETIC_KEYS}
    return {
        "data_sha256": sha256_file(data),
        "eval_data_sha256": sha256_file(eval_data) if eval_data else None,
        "model": model,
        "config_sha256": _sha256_json(cfg_dump),
    }


def _last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest *complete* checkpoint (its trainer_state.json is written last).

    A kill while a checkpoint is written leaves a partial ``checkpoint-N``; it is removed so
    that resuming starts from the previous complete one.
    """
    if not ckpt_dir.is_dir():
        return None
    steps = []
    for d in ckpt_dir.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir():
            steps.append((int(m.group(1)), d))
    for _, d in sorted(steps, reverse=True):
        if (d / "trainer_state.json").is_file():
            return str(d)
        if is_main_process():
            log.warning("removing incomplete checkpoint %s", d)
            shutil.rmtree(d, ignore_errors=True)
    return None


def _set_distinct_pad(tokenizer: PreTrainedTokenizerBase) -> None:
    """Use a pad token other than EOS when the vocabulary has one (SmolLM2: ``<|endoftext|>``).

    Labels are masked by position, not by value, so pad == eos would also be correct; a
    distinct pad token lets the Trainer count real (non-pad) tokens exactly.
    """
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    for cand in (tokenizer.unk_token, "<|endoftext|>", "<pad>", "<|finetune_right_pad_id|>"):
        if cand and cand != tokenizer.eos_token and cand in tokenizer.get_vocab():
            tokenizer.pad_token = cand
            return
    tokenizer.pad_token = tokenizer.eos_token


def count_parameters(params: Iterable[Any]) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts.

    Under DeepSpeed ZeRO-3 a partitioned parameter is an empty placeholder (``numel() == 0``);
    its full size is ``ds_numel``.
    """
    trainable = total = 0
    for p in params:
        n = int(getattr(p, "ds_numel", None) or p.numel())
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def _weights_sha256(model: Any) -> str:
    """Hash of the trainable parameters (all ranks of a DDP run must agree)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.requires_grad:
            h.update(name.encode())
            h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class _StepTimer:
    """Trainer callback measuring the wall time of the optimizer steps of this session."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.start = time.perf_counter()
                timer.tokens0 = state.num_input_tokens_seen

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.end = time.perf_counter()
                timer.tokens1 = state.num_input_tokens_seen

        self.callback = _CB()
        self.start = self.end = 0.0
        self.tokens0 = self.tokens1 = 0


class _StepBar:
    """Training steps as one progress bar (rate, ETA, last loss), on the main process only.

    Replaces the Trainer's own progress/printer callbacks, which print every metrics dict to
    the terminal: here they go to the ``siked.train`` logger (a run's ``siked.log``).
    """

    def __init__(self, show: bool) -> None:
        from transformers import TrainerCallback

        outer = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if show and state.is_world_process_zero:
                    from tqdm.auto import tqdm

                    outer.bar = tqdm(
                        total=state.max_steps,
                        initial=state.global_step,
                        desc="train",
                        unit="step",
                        dynamic_ncols=True,
                    )

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if outer.bar is not None:
                    outer.bar.update(state.global_step - outer.bar.n)

            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if not state.is_world_process_zero or not logs:
                    return
                log.info("step %d: %s", state.global_step, json.dumps(logs, default=str))
                if outer.bar is not None and "loss" in logs:
                    outer.bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

            def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if outer.bar is not None:
                    outer.bar.close()
                    outer.bar = None

        self.bar: Any = None
        self.callback = _CB()


# --------------------------------------------------------------------------- merge


def stop_at_turn_end(generation_config: Any, tokenizer: PreTrainedTokenizerBase) -> None:
    """Add the token that ends the student's turn (:func:`siked.chat.turn_end_token`) to the
    model's ``eos_token_id``, which transformers' ``generate`` and vLLM stop at."""
    end = chat.turn_end_token(tokenizer)
    if end is None:
        return
    end_id = tokenizer.convert_tokens_to_ids(end)
    eos = generation_config.eos_token_id
    ids = [] if eos is None else list(eos) if isinstance(eos, list | tuple) else [eos]
    if end_id not in ids:
        generation_config.eos_token_id = [*ids, end_id] if ids else end_id


@contextlib.contextmanager
def _zero3_off() -> Iterator[None]:
    """Load models as plain (unpartitioned) ones while a DeepSpeed ZeRO-3 config is alive
    (a context manager and a decorator).

    ``from_pretrained`` enters ``deepspeed.zero.Init`` (a collective over all ranks) whenever
    transformers' global DeepSpeed config says ZeRO-3; accelerate keeps that config alive after
    training. It is unset for the block and restored afterwards.
    """
    try:
        from transformers.integrations import deepspeed as hf_ds
    except ImportError:  # pragma: no cover - transformers always has it
        yield
        return
    if not hf_ds.is_deepspeed_zero3_enabled():
        yield
        return
    # the module keeps the config as a weak reference; there is no public getter for it
    saved = hf_ds._hf_deepspeed_config_weak_ref
    hf_ds.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_ds._hf_deepspeed_config_weak_ref = saved


@_zero3_off()
def merge_adapter(
    base: str | Path,
    adapter_dir: str | Path,
    out_dir: str | Path,
    dtype: str | None = None,
) -> Path:
    """Merge a LoRA adapter into its base model and save a plain HF model directory.

    The merge is computed in fp32 on the CPU; the result is saved in ``dtype`` (default: the
    base checkpoint's own dtype), with the adapter's tokenizer and chat template. Written into
    a temporary directory and renamed, so ``out_dir`` is either complete or absent.

    After DeepSpeed ZeRO-3 training only the main process merges, so it runs with transformers'
    ZeRO-3 switch off (:func:`_zero3_off`): inside ``deepspeed.zero.Init`` a process loading
    alone would wait for the others forever.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    base_path = resolve_model(str(base))
    out_dir = Path(out_dir)
    if dtype is None:
        saved = getattr(AutoConfig.from_pretrained(base_path), "dtype", None)
        dtype = str(saved).replace("torch.", "") if saved is not None else "float32"
    save_dtype = pick_dtype(dtype, "cpu")
    base_model = AutoModelForCausalLM.from_pretrained(
        base_path, dtype=torch.float32, device_map=None
    )
    peft_model: Any = PeftModel.from_pretrained(base_model, str(adapter_dir))
    merged = peft_model.merge_and_unload().to(save_dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
    try:
        merged.config.pad_token_id = tokenizer.pad_token_id
        merged.generation_config.pad_token_id = tokenizer.pad_token_id
        stop_at_turn_end(merged.generation_config, tokenizer)
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# --------------------------------------------------------------------------- train


def flash_attention() -> str | None:
    """``"flash_attention_2"`` on an Ampere or newer GPU with ``flash-attn`` installed, else None.

    ``is_flash_attn_2_available`` only checks the package: flash-attn 2 has kernels for
    compute capability 8.0 and up, so V100 (7.0) and T4 (7.5) use sdpa.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    if torch.cuda.get_device_capability() < (8, 0):
        return None
    from transformers.utils import is_flash_attn_2_available

    return "flash_attention_2" if is_flash_attn_2_available() else None


def varlen_attention() -> str:
    """The per-example sdpa attention for padding-free batches, registered with transformers."""
    from siked.attention import register

    return register()


def renamed_args(fields: Collection[str], *, checkpointing: bool, sampling: str) -> dict[str, Any]:
    """The ``SFTConfig`` arguments that transformers renamed, under the name ``fields`` has.

    ``activation_checkpointing`` exists from transformers 5.23 (``gradient_checkpointing`` is
    its deprecated alias there, the only name before); ``train_sampling_strategy``
    (``"random"`` | ``"group_by_length"``) replaced the boolean ``group_by_length`` in 5.2.
    vLLM pins older transformers than siked's development version, so both forms occur.

    >>> renamed_args({"gradient_checkpointing", "train_sampling_strategy"}, checkpointing=True,
    ...              sampling="group_by_length")
    {'gradient_checkpointing': True, 'train_sampling_strategy': 'group_by_length'}
    >>> renamed_args({"activation_checkpointing", "gradient_checkpointing", "group_by_length"},
    ...              checkpointing=False, sampling="random")
    {'activation_checkpointing': False, 'group_by_length': False}
    """
    if sampling not in ("random", "group_by_length"):
        raise ValueError(f"unknown sampling strategy {sampling!r}")
    out: dict[str, Any] = {}
    if "activation_checkpointing" in fields:
        out["activation_checkpointing"] = checkpointing
    else:
        out["gradient_checkpointing"] = checkpointing
    if "train_sampling_strategy" in fields:
        out["train_sampling_strategy"] = sampling
    else:
        out["group_by_length"] = sampling == "group_by_length"
    return out


def _sft_config(
    cfg: TrainConfig,
    ckpt_dir: Path,
    bf16: bool,
    has_eval: bool,
    progress: bool,
    dtype: str,
    padding_free: bool,
    attn_implementation: str | None,
    packing: bool = False,
) -> Any:
    import torch
    from trl import SFTConfig

    from siked.models import best_device

    model_init: dict[str, Any] = {"dtype": dtype, "device_map": None}
    if attn_implementation:
        model_init["attn_implementation"] = attn_implementation
    try:
        return SFTConfig(
            output_dir=str(ckpt_dir),
            num_train_epochs=cfg.epochs,
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.per_device_batch_size,
            per_device_eval_batch_size=cfg.per_device_batch_size,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type=cfg.lr_scheduler,
            # transformers reads a float in (0, 1) as a ratio of the total steps
            warmup_steps=cfg.warmup_ratio if cfg.warmup_ratio > 0 else cfg.warmup_steps,
            weight_decay=cfg.weight_decay,
            seed=cfg.seed,
            data_seed=cfg.seed,
            bf16=bf16,
            # older GPUs without bf16: fp16 mixed precision (fp32 weights, loss scaling)
            fp16=bool(not bf16 and cfg.bf16 is None and torch.cuda.is_available()),
            use_cpu=best_device() == "cpu",
            logging_steps=cfg.logging_steps,
            logging_first_step=True,
            save_strategy="steps",
            save_steps=cfg.save_steps,
            save_total_limit=2,
            eval_strategy="epoch" if has_eval else "no",
            report_to=cfg.report_to,
            ddp_timeout=cfg.ddp_timeout,
            disable_tqdm=True,  # siked's own bar (_StepBar); metrics go to the log
            include_num_input_tokens_seen="non_padding",
            # data: prompt/completion, loss on the completion only
            completion_only_loss=True,
            assistant_only_loss=False,
            # padding-free: TRL does not truncate (too long examples were dropped before); else
            # padded batches of similar lengths. Packing: rows of max_length tokens (bfd never
            # truncates here: no example is longer than max_length)
            padding_free=padding_free or packing,
            packing=packing,
            packing_strategy="bfd",
            max_length=cfg.max_length if packing else None if padding_free else cfg.max_length,
            model_init_kwargs=model_init,
            dataset_kwargs={},
            ddp_find_unused_parameters=False,
            save_only_model=False,
            **renamed_args(
                {f.name for f in dataclasses.fields(SFTConfig)},
                checkpointing=cfg.gradient_checkpointing,
                sampling="random" if padding_free or packing else "group_by_length",
            ),
        )
    except ValueError as e:  # e.g. an unknown train.lr_scheduler
        raise TrainError(f"invalid training settings: {e}") from e


def build_trainer(
    base_path: str,
    tokenizer: PreTrainedTokenizerBase,
    train_examples: list[dict[str, Any]],
    eval_examples: list[dict[str, Any]],
    cfg: TrainConfig,
    checkpoint_dir: str | Path,
    progress: bool = True,
    callbacks: list[Any] | None = None,
    padding_free: bool | None = None,
) -> Any:
    """The configured ``trl.SFTTrainer`` (LoRA via ``peft_config`` or full) for these examples.

    ``padding_free`` None follows ``cfg.padding_free`` (see the module docstring); True/False
    forces it (tests, benchmarks). Padding-free batches attend per example: flash attention's
    varlen kernel where available, else :func:`siked.attention.varlen_sdpa`.
    """
    import torch
    from trl import SFTTrainer

    bf16 = use_bf16(cfg)
    if bf16 and not torch.cuda.is_available() and not _cpu_bf16_ok():
        raise TrainError(
            "train.bf16 is true but this CPU has no native bf16 (AVX512-BF16 or AMX): set "
            "train.bf16 to false (or null) to train in float32, or run on a CPU with native bf16"
        )
    attn = flash_attention()
    if padding_free is None:
        padding_free = cfg.padding_free
    if (padding_free or cfg.packing) and attn is None:
        attn = varlen_attention()
    args = _sft_config(
        cfg,
        Path(checkpoint_dir),
        bf16,
        bool(eval_examples),
        progress,
        _load_dtype(cfg, bf16),
        padding_free,
        attn,
        packing=cfg.packing,
    )
    peft_config = lora_config(cfg) if cfg.method == "lora" else None
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer = SFTTrainer(
        model=base_path,
        args=args,
        train_dataset=_to_dataset(train_examples),
        eval_dataset=_to_dataset(eval_examples) if eval_examples else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[*(callbacks or []), _StepBar(progress).callback],
    )
    trainer.remove_callback(PrinterCallback)  # prints every metrics dict
    trainer.remove_callback(ProgressCallback)
    return trainer


def prepare_tokenizer(base_path: str) -> PreTrainedTokenizerBase:
    """The tokenizer as training uses it: a pad token distinct from EOS, right padding, and a
    chat template (:data:`siked.chat.DEFAULT_CHAT_TEMPLATE` for a base model without one)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_path)
    chat.ensure_chat_template(tokenizer)
    _set_distinct_pad(tokenizer)
    tokenizer.padding_side = "right"
    return tokenizer


def _model_card(
    out: Path, model: str, base_path: str, cfg: TrainConfig, metrics: dict[str, Any]
) -> str:
    spec = BUNDLED.get(model.split(":", 1)[1].strip().lower()) if is_bundled(model) else None
    hub = spec.hub_id if spec else None
    base_line = f"`{model}`" + (f" ({hub})" if hub else "")
    loss = metrics.get("train_loss")
    eval_loss = metrics.get("eval_loss")
    lines = [
        f"# SIKeD student: {out.name}",
        "",
        f"Fine-tuned from {base_line} with siked {__version__} (TRL SFTTrainer"
        + (f", LoRA r={cfg.lora_r} alpha={cfg.lora_alpha}" if cfg.method == "lora" else ", full")
        + ") on "
        + f"{metrics.get('train_examples')} rationales of {metrics.get('train_questions')} questions.",
        "",
        "The student chooses a strategy for each math word problem and starts its response with",
        "its tag: `[cot]: ` (chain of thought), `[l2m]: ` (least-to-most), `[pot]: ` (a Python",
        "program that sets `answer`). Prompt it with `siked.chat.student_prompt`.",
        "",
        f"- base: `{base_path}`",
        f"- epochs {cfg.epochs}, max_steps {cfg.max_steps}, lr {cfg.learning_rate} ({cfg.lr_scheduler}), "
        f"batch {cfg.per_device_batch_size} x {cfg.gradient_accumulation_steps} x {metrics.get('world_size')}",
        f"- final train loss: {loss:.4f}" if isinstance(loss, float) else "- final train loss: n/a",
    ]
    if isinstance(eval_loss, float):
        lines.append(f"- validation loss: {eval_loss:.4f}")
    lines += [
        f"- strategies: {json.dumps(metrics.get('strategy_counts', {}))}",
        "",
        "`adapter/` holds the LoRA adapter, `merged/` the merged model (transformers / vLLM);",
        "`train_log.json` the loss history and throughput, `train_config.yaml` the settings.",
        "",
    ]
    return "\n".join(lines)


def _load_done(out_dir: Path, fingerprint: dict[str, Any]) -> TrainResult | None:
    done = out_dir / DONE_FILE
    if not done.is_file():
        return None
    info = read_json(done)
    if info.get("inputs") != fingerprint:
        raise TrainError(
            f"{out_dir} holds a finished training run with other inputs (data, model or config "
            "changed); remove it or choose another output directory"
        )
    adapter = out_dir / "adapter"
    merged = out_dir / "merged"
    metrics = (
        read_json(out_dir / "train_log.json") if (out_dir / "train_log.json").is_file() else {}
    )
    return TrainResult(
        adapter_dir=adapter if adapter.is_dir() else None,
        merged_dir=merged if merged.is_dir() else None,
        metrics=metrics,
    )


def lora_config(cfg: TrainConfig) -> Any:
    """PEFT's ``LoraConfig`` of the training config (rank, alpha, dropout, target modules)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def one_gpu_env(device_count: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment that gives a training process started without a launcher one GPU.

    A plain process that sees several GPUs trains on all of them through ``DataParallel``,
    which splits the padding-free batch's sequence boundaries across devices; the loop's
    training child gets the first visible GPU instead (multi-GPU training is ``accelerate
    launch``, which sets ``WORLD_SIZE``).

    >>> one_gpu_env(4, {"CUDA_VISIBLE_DEVICES": "2,3,5,7"})
    {'CUDA_VISIBLE_DEVICES': '2'}
    >>> one_gpu_env(4, {}), one_gpu_env(1, {}), one_gpu_env(4, {"WORLD_SIZE": "4"})
    ({'CUDA_VISIBLE_DEVICES': '0'}, {}, {})
    """
    if device_count <= 1 or int(environ.get("WORLD_SIZE", "1")) > 1:
        return {}
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return {"CUDA_VISIBLE_DEVICES": visible or "0"}


def check_launch(device_count: int, environ: Mapping[str, str]) -> None:
    """Refuse to train on several GPUs without a launcher (``DataParallel``: see
    :func:`one_gpu_env`), naming the two ways out."""
    if one_gpu_env(device_count, environ):
        raise TrainError(
            f"{device_count} GPUs are visible but this process was not started by a launcher: "
            "train on one GPU (CUDA_VISIBLE_DEVICES=0 siked train ...; `siked run` does this "
            "itself with loop.train_subprocess) or on all of them with `accelerate launch "
            f"--config_file configs/accelerate/ddp.yaml --num_processes {device_count} "
            "-m siked train ...` (docs/training.md)"
        )


def _warn_if_not_sharded(trainer: Any) -> None:
    """accelerate turns an FSDP config on for GPU (and other accelerator) processes only: gloo
    processes on CPUs train as plain data parallel. Said, not silent."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not (
        trainer.is_fsdp_enabled
    ):
        log.warning(
            "an FSDP config was given, but accelerate shards only on GPUs: these %s processes "
            "train as plain data parallel (every process holds the whole model)",
            trainer.accelerator.distributed_type.value,
        )


def _locked_dirs(args: Mapping[str, Any]) -> list[Any]:
    """``out_dir`` on the main process; every rank of ``accelerate launch`` runs :func:`train`,
    but only the main one (global rank 0, ``RANK``) writes the outputs, so only it locks."""
    return [args["out_dir"]] if os.environ.get("RANK", "0") == "0" else []


@locks_outputs("train", _locked_dirs)
def train(
    data: str | Path,
    model: str,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    eval_data: str | Path | None = None,
    progress: bool = True,
    *,
    forced: str | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on the rationales in ``data``; see the module docstring.

    ``forced`` names the strategy of a single-strategy baseline: the student's instruction
    then names it (as at evaluation with a forced strategy) instead of asking for a choice.

    ``model`` is a hub id, a local directory (e.g. the previous iteration's ``merged/``) or
    ``bundled:smollm2-135m-instruct``. Held-out validation loss is computed on ``eval_data``
    if given, else on ``cfg.eval_fraction`` of the questions. Returns the adapter and merged
    directories and the metrics also written to ``train_log.json``. The main process holds
    ``out_dir``'s lock (:mod:`siked.lock`) while it runs.
    """
    cfg = cfg or TrainConfig()
    t_start = time.perf_counter()
    data = Path(data)
    out = Path(out_dir)
    eval_path = Path(eval_data) if eval_data is not None else None
    if not data.is_file():
        raise DataError(f"training data not found: {data}")
    if eval_path is not None and not eval_path.is_file():
        raise DataError(f"validation data not found: {eval_path}")

    fingerprint = _inputs_fingerprint(data, eval_path, model, cfg)
    fingerprint["forced"] = forced
    finished = _load_done(out, fingerprint)
    if finished is not None:
        log.info("%s: training already finished, not retraining", out)
        return finished

    ckpt_dir = out / CHECKPOINTS
    resume = _last_checkpoint(ckpt_dir)
    if resume is not None:
        inputs_file = out / INPUTS_FILE
        if inputs_file.is_file() and read_json(inputs_file) != fingerprint:
            raise TrainError(
                f"{ckpt_dir} holds checkpoints of a training run with other inputs (data, model "
                "or config changed); remove it or choose another output directory"
            )
        log.info("resuming from %s", resume)

    import torch
    from accelerate.utils import gather_object

    check_launch(torch.cuda.device_count(), os.environ)
    process_state(cfg.ddp_timeout)  # before anything else creates the process group
    base_path = resolve_model(model)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / INPUTS_FILE, fingerprint)
        atomic_write_text(out / "train_config.yaml", to_yaml(cfg))

    tokenizer = prepare_tokenizer(base_path)
    system = chat.supports_system_role(tokenizer)
    default_template = tokenizer.chat_template == chat.DEFAULT_CHAT_TEMPLATE

    examples = load_examples(data, forced, system)
    if eval_path is not None:
        train_ex, eval_ex = examples, load_examples(eval_path, forced, system)
    else:
        train_ex, eval_ex = split_by_group(examples, cfg.eval_fraction, cfg.seed)
    train_ex, dropped, train_tokens = _drop_too_long(tokenizer, train_ex, cfg.max_length)
    eval_ex, eval_dropped, _ = _drop_too_long(tokenizer, eval_ex, cfg.max_length)
    if dropped or eval_dropped:
        log.warning(
            "dropped %d training and %d validation examples longer than max_length=%d tokens",
            dropped,
            eval_dropped,
            cfg.max_length,
        )
    if not train_ex:
        raise DataError(f"{data}: every example is longer than max_length={cfg.max_length}")

    timer = _StepTimer()
    with _tensorboard_dir(cfg, out), lm_head_on_completions():
        trainer = build_trainer(
            base_path, tokenizer, train_ex, eval_ex, cfg, ckpt_dir, progress, [timer.callback]
        )
        tmodel: Any = trainer.model
        _warn_if_not_sharded(trainer)
        trainable, total = count_parameters(tmodel.parameters())
        train_out = trainer.train(resume_from_checkpoint=resume)
        eval_metrics = trainer.evaluate() if eval_ex else {}
    bf16, load_dtype = bool(trainer.args.bf16), _load_dtype(cfg, bool(trainer.args.bf16))

    # the same trainable weights on every rank (DDP); sharded runs hash their own shard
    sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
    weights_hash = None if sharded else _weights_sha256(trainer.model)
    world = trainer.accelerator.num_processes
    hashes = gather_object([weights_hash]) if world > 1 else [weights_hash]

    adapter_dir = out / "adapter" if cfg.method == "lora" else None
    final_dir = adapter_dir if adapter_dir is not None else out / "merged"
    trainer.save_model(str(final_dir))  # gathers FSDP/ZeRO-3 shards; writes on the main process
    if trainer.is_world_process_zero():
        tokenizer.padding_side = "left"  # what generation wants
        tokenizer.save_pretrained(str(final_dir))
        if cfg.method == "full":  # the model itself (LoRA: merge_adapter does it)
            gen = trainer.model.generation_config
            stop_at_turn_end(gen, tokenizer)
            gen.save_pretrained(str(final_dir))

    seconds_steps = max(timer.end - timer.start, 1e-9)
    tokens = timer.tokens1 - timer.tokens0
    history = trainer.state.log_history
    metrics: dict[str, Any] = {
        "model": model,
        "base_path": base_path,
        "data": str(data),
        "method": cfg.method,
        "world_size": world,
        "distributed_type": str(trainer.accelerator.distributed_type.value),
        "device": str(trainer.args.device),
        "bf16": bf16,
        "load_dtype": load_dtype,
        "padding_free": bool(trainer.args.padding_free),
        "attn_implementation": getattr(tmodel.config, "_attn_implementation", None),
        "chat_system_role": system,  # False: the instruction opens the user turn
        "chat_template": "siked-default" if default_template else "model",
        "train_examples": len(train_ex),
        "train_questions": len({e["group"] for e in train_ex}),
        "eval_examples": len(eval_ex),
        "dropped_too_long": dropped + eval_dropped,
        "strategy_counts": _counts(e["strategy"] for e in train_ex),
        "train_tokens_per_epoch": train_tokens,
        "trainable_params": trainable,
        "total_params": total,
        "global_steps": trainer.state.global_step,
        "resumed_from": resume,
        "train_loss": train_out.training_loss,
        "eval_loss": eval_metrics.get("eval_loss"),
        "loss_history": [
            {"step": h["step"], "epoch": h.get("epoch"), "loss": h["loss"]}
            for h in history
            if "loss" in h
        ],
        "eval_history": [
            {"step": h["step"], "epoch": h.get("epoch"), "eval_loss": h["eval_loss"]}
            for h in history
            if "eval_loss" in h
        ],
        "tokens_seen": tokens,
        "tokens_per_second": tokens / seconds_steps,
        "train_seconds": round(seconds_steps, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if torch.cuda.is_available()
        else None,
        "weights_sha256_by_rank": hashes,
        "process_group_timeout_s": process_group_timeout(),
        "versions": _versions(),
    }
    del trainer
    merged_dir: Path | None = None
    if cfg.method == "full":
        merged_dir = final_dir
    elif cfg.save_merged:
        merged_dir = out / "merged"
    if is_main_process():
        if merged_dir is not None and adapter_dir is not None:
            merge_adapter(base_path, adapter_dir, merged_dir)
        metrics["seconds"] = round(time.perf_counter() - t_start, 3)
        atomic_write_json(out / "train_log.json", metrics)
        atomic_write_text(out / "README.md", _model_card(out, model, base_path, cfg, metrics))
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        atomic_write_json(
            out / DONE_FILE,
            {"inputs": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        )
    _barrier()
    return TrainResult(adapter_dir=adapter_dir, merged_dir=merged_dir, metrics=metrics)


@contextlib.contextmanager
def lm_head_on_completions() -> Iterator[bool]:
    """While training, TRL's fused LM head projects only the completion positions on a CPU too.

    TRL's ``SFTTrainer`` (1.16) scores the loss with a fused LM head that projects, in tiles, only
    the positions whose label is not ``-100`` on CUDA and XPU, but every position on other
    devices (to keep tile shapes fixed for compilers such as Neuron's), masking the rest after.
    On a CPU that computes the prompt's logits, forward and backward, only to discard them: the
    prompt is about 40 % of a siked example, and the LM head (49 152 x 576 for SmolLM2) is the
    largest matrix product of the model. Within this context a CPU takes TRL's compact path
    (the same per-token log-probabilities and entropy, on the kept rows only; tested against
    the full path). Yields whether it applies: with a TRL that has no such switch
    (``trl.trainer.utils._use_triton``) nothing changes.
    """
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - TRL is a dependency
        yield False
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None or not hasattr(trl_utils, "add_fused_lm_head"):
        yield False
        return

    def compact(device: Any) -> bool:
        return bool(device.type == "cpu" or original(device))

    trl_utils._use_triton = compact
    try:
        yield True
    finally:
        trl_utils._use_triton = original


@contextlib.contextmanager
def _tensorboard_dir(cfg: TrainConfig, out: Path) -> Iterator[None]:
    """Tensorboard logs go to ``out_dir/tensorboard`` (not into checkpoints/, removed when done).

    transformers reads the directory from ``TENSORBOARD_LOGGING_DIR``; a value the user set wins.
    """
    report = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to)
    if not ("tensorboard" in report or "all" in report) or "TENSORBOARD_LOGGING_DIR" in os.environ:
        yield
        return
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / "tensorboard")
    try:
        yield
    finally:
        os.environ.pop("TENSORBOARD_LOGGING_DIR", None)


def _cpu_bf16_ok() -> bool:
    from siked.models import cpu_supports_bf16

    return cpu_supports_bf16()


def _counts(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    v = {"siked": __version__}
    for lib in ("torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        with contextlib.suppress(md.PackageNotFoundError):
            v[lib] = md.version(lib)
    return v
