"""The run's terminal output and log file (siked.console)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from siked.console import run_console, say


def test_terminal_gets_stage_lines_the_log_gets_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as tf_logging

    log_file = tmp_path / "run" / "siked.log"
    bars_before = tf_logging.is_progress_bar_enabled()
    with run_console(log_file):
        say("iter 00 train: 3 examples")
        warnings.warn("old api", FutureWarning, stacklevel=1)
        logging.getLogger("siked.train").info("step 1: {'loss': 1.0}")
        logging.getLogger("siked.mix").warning("alpha target not reachable")
        logging.getLogger("siked.models").info("converting once", extra={"console": True})
        tf_logging.get_logger("transformers.x").warning("from transformers")
        assert not tf_logging.is_progress_bar_enabled()
    out, err = capsys.readouterr()
    assert out == "[siked] iter 00 train: 3 examples\n"
    assert "alpha target not reachable" in err  # warnings of siked's own still show
    assert "[siked] converting once" in err  # a step a person should know about
    assert "old api" not in err and "step 1" not in err and "from transformers" not in err
    text = log_file.read_text()
    for line in (
        "iter 00 train: 3 examples",
        "old api",
        "step 1:",
        "alpha target",
        "from transformers",
    ):
        assert line in text, line
    assert tf_logging.is_progress_bar_enabled() == bars_before  # restored


def test_verbose_shows_it_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with run_console(tmp_path / "siked.log", verbose=True):
        say("hello")
        warnings.warn("old api", FutureWarning, stacklevel=1)
        logging.getLogger("siked.train").info("step 1")
    out, err = capsys.readouterr()
    assert out == "[siked] hello\n"  # said once, not echoed again by the log handler
    assert "old api" in err and "step 1" in err


def test_gguf_conversion_bar_follows_the_quiet_switch(tmp_path: Path) -> None:
    """transformers' GGUF reader calls tqdm directly; a quiet run hides that bar too."""
    import transformers.modeling_gguf_pytorch_utils as reader

    from siked.models import _gguf_bar_follows_transformers

    original = reader.tqdm
    with run_console(tmp_path / "siked.log"), _gguf_bar_follows_transformers():
        assert reader.tqdm(range(3)).disable
    assert reader.tqdm is original
    with _gguf_bar_follows_transformers():
        assert reader.tqdm is original  # not quiet: the bar shows
