"""The docs stay true: every config key is documented, README commands match CI, the README's
generated tables equal the committed evidence they come from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from load_script import load_script
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


def test_every_documented_config_key_exists() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"\| `([a-z0-9_.]+)` \|", doc))
    keys = set(config_keys(SikedConfig))
    leaves = {k.rsplit(".", 1)[-1] for k in keys}
    not_keys = {"extends"}  # a directive of the YAML file (load_config), not a field
    unknown = sorted(k for k in documented - not_keys if k not in keys and k not in leaves)
    assert not unknown, f"docs/configuration.md documents keys the config lacks: {unknown}"


SECTION_KEY = re.compile(r"`((data|teacher|student|train|sample|mix|loop|eval)\.([a-z_][\w.]*))`?")


def test_every_key_the_docs_name_exists() -> None:
    """A backticked ``section.key`` in the docs is a config key, a name of the module of that
    name (``loop.run``), a file (``mix.py``), or the example of an error (``x.y: unknown key``)."""
    import importlib

    keys = set(config_keys(SikedConfig))
    unknown = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in SECTION_KEY.finditer(text):
            key, section, rest = m.groups()
            if key in keys or any(key.startswith(k + ".") for k in keys):
                continue
            if rest in ("py", "json") or text.startswith(": unknown key", m.end()):
                continue
            module = importlib.import_module(
                f"siked.{'evaluate' if section == 'eval' else section}"
            )
            if not hasattr(module, rest.split(".")[0]):
                unknown.append(f"{doc.name}: {key}")
    assert not unknown, unknown


def test_packaged_data_exists() -> None:
    """Every pattern of ``[tool.setuptools.package-data]`` matches a file of the package."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, patterns in data["package-data"].items():
        for pattern in patterns:
            assert list((ROOT / package).glob(pattern)), f"{package}/{pattern}: no such file"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    last = [ln for ln in ci if ln.strip() and not ln.startswith(("#", "set ", "cd "))][-1]
    assert last.strip() in (ROOT / "README.md").read_text()


def _readme_blocks() -> ModuleType:
    return load_script("readme_blocks")


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


# The README's reading of the CPU table quotes numbers of the SIKeD arms' evidence; each claim is
# attributed to the last arm the paragraph names before it.
_CLAIMS = {
    "solved": re.compile(r"solved (\d+) of (?:its )?(\d+) (?:own )?samples"),
    "mix": re.compile(r"(\d+) student\s+rows and (\d+) teacher\s+rows[ ,(]*alpha ([0-9.]+)"),
    "rationales": re.compile(r"(\d+) rationales"),
}


def _evidence(arm: str, claim: str) -> tuple[float, ...]:
    run = ROOT / "results" / "cpu-table" / arm
    if claim == "solved":
        s = json.loads((run / "iter_00" / "sample_stats.json").read_text())
        return (s["correct"], s["generated"])
    if claim == "rationales":
        return (json.loads((run / "iter_00" / "stats.json").read_text())["rows"],)
    m = json.loads((run / "iter_01" / "stats.json").read_text())
    return (sum(m["counts"]["student"].values()), sum(m["counts"]["teacher"].values()), m["alpha"])


def readme_claims(text: str, arms: list[str]) -> list[tuple[str, str, tuple[str, ...]]]:
    """(arm, claim, numbers as written) of every claim in ``text`` that names an arm before it."""
    found = []
    for para in re.split(r"\n\s*\n|\n- ", text):
        for claim, pattern in _CLAIMS.items():
            for m in pattern.finditer(para):
                named = [(para.rfind(a, 0, m.start()), a) for a in arms]
                pos, arm = max(named)
                if pos >= 0:
                    found.append((arm, claim, m.groups()))
    return found


def test_readme_claims_are_read_from_their_arm() -> None:
    text = "x\n\n- distill-combined and siked-none, which trains on 591 rationales: solved 3 of 8 "
    text += "samples, 2 student rows and 5 teacher rows (alpha 0.9)\n"
    assert readme_claims(text, ["siked-none", "distill-combined"]) == [
        ("siked-none", "solved", ("3", "8")),
        ("siked-none", "mix", ("2", "5", "0.9")),
        ("siked-none", "rationales", ("591",)),
    ]


def test_readme_numbers_of_the_siked_arms_equal_their_evidence() -> None:
    arms = sorted(p.name for p in (ROOT / "results" / "cpu-table").iterdir() if p.is_dir())
    claims = readme_claims((ROOT / "README.md").read_text(), arms)
    assert {arm for arm, claim, _ in claims if claim == "mix"} == {"siked-none", "siked-pot"}
    wrong = []
    for arm, claim, numbers in claims:
        want = _evidence(arm, claim)
        # a number written with d decimals is the evidence rounded to d decimals
        decimals = [len(n.partition(".")[2]) for n in numbers]
        if [round(w, d) for w, d in zip(want, decimals, strict=True)] != [
            float(n) for n in numbers
        ]:
            wrong.append(f"{arm} {claim}: README {numbers}, evidence {want}")
    assert not wrong, wrong
