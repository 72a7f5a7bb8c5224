"""The docs stay true: every config key is documented, README commands match CI, the README's
generated tables equal the committed evidence they come from."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import BaseModel

from siked.config import EngineConfig, SikedConfig

ROOT = Path(__file__).resolve().parents[1]


def config_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and ann.__name__ != "DatasetSpec":
            keys.extend(config_keys(ann, f"{prefix}{name}."))
        else:
            keys.append(prefix + name)
    return keys


def test_every_config_key_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"\| `([a-z0-9_.]+)` \|", doc))
    engine_keys = set(EngineConfig.model_fields)
    missing = []
    for key in config_keys(SikedConfig):
        leaf = key.rsplit(".", 1)[-1]
        section = key.split(".")[0]
        if key in documented:
            continue
        if section in ("teacher", "sample", "eval") and leaf in engine_keys and leaf in documented:
            continue  # shared engine keys are documented once
        missing.append(key)
    assert not missing, f"undocumented config keys: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    last = [ln for ln in ci if ln.strip() and not ln.startswith(("#", "set ", "cd "))][-1]
    assert last.strip() in (ROOT / "README.md").read_text()


def _readme_blocks() -> ModuleType:

    spec = importlib.util.spec_from_file_location(
        "readme_blocks", ROOT / "scripts" / "readme_blocks.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_blocks_are_refreshed_from_their_files(tmp_path: Path) -> None:
    mod = _readme_blocks()
    (tmp_path / "t.md").write_text("| a |\n")
    text = "x\n<!-- BEGIN t.md -->\nold\n<!-- END t.md -->\ny\n"
    assert mod.refresh(text, tmp_path) == "x\n<!-- BEGIN t.md -->\n| a |\n<!-- END t.md -->\ny\n"
    assert mod.blocks(text) == [("t.md", "old\n")]


@pytest.mark.parametrize("name", ["README.md"])
def test_generated_blocks_equal_the_committed_evidence(name: str) -> None:
    mod = _readme_blocks()
    text = (ROOT / name).read_text()
    stale = [path for path, content in mod.blocks(text) if content != (ROOT / path).read_text()]
    assert not stale, f"{name}: run `python scripts/readme_blocks.py` to refresh {stale}"
