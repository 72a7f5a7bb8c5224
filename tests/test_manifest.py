"""The manifest's timing covers every invocation of a run; the machine it records."""

from __future__ import annotations

from pathlib import Path

import pytest

from siked.io import read_json
from siked.machine import ISA_FLAGS, machine_info, memory_gb, parse_cpuinfo
from siked.manifest import Manifest, precision_change

BF16 = ["avx2", "avx512f", "avx512_bf16"]
AVX2 = ["avx2"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_resumed_run_reports_the_seconds_of_every_invocation(tmp_path: Path) -> None:
    path, clock = tmp_path / "manifest.json", Clock()
    first = Manifest(path, "r", "h", clock=clock)
    with first.running("teacher", {"x": 1}):
        clock.now += 30.0
    clock.now += 12.0  # killed after this, before the manifest changed again
    second = Manifest(path, "r", "h", clock=clock)
    clock.now += 5.0
    assert second.timing() == {"seconds": 35.0, "invocations": [30.0, 5.0]}
    saved = read_json(path)["invocations"]
    assert [inv["seconds"] for inv in saved] == [30.0, 5.0]
    assert saved[1]["cpu"] == machine_info()["cpu"]


def test_each_invocation_keeps_the_instruction_sets_of_its_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a run resumed on another machine of the same name ("AMD EPYC" with and without
    # AVX512-BF16, which decides bf16 or float32 under dtype auto): the record says which part
    # ran where, not only the last machine
    path = tmp_path / "manifest.json"
    for isa in (["avx2", "avx512f", "avx512_bf16"], ["avx2"]):
        monkeypatch.setattr(
            "siked.manifest.machine_info", lambda isa=isa: {"cpu": "AMD EPYC", "isa": isa}
        )
        Manifest(path, "r", "h")
    saved = read_json(path)
    assert [inv["isa"] for inv in saved["invocations"]] == [
        ["avx2", "avx512f", "avx512_bf16"],
        ["avx2"],
    ]
    assert saved["machine"]["isa"] == ["avx2"]


def test_cpuinfo_gives_the_model_and_the_instruction_sets() -> None:
    text = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
    )
    assert parse_cpuinfo(text) == (
        "Intel(R) Xeon(R) Platinum 8480+",
        ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"],
    )
    assert parse_cpuinfo("") == (None, [])
    assert memory_gb("MemTotal:       24683772 kB\n") == 25.3


def test_machine_info_names_more_than_the_architecture() -> None:
    info = machine_info()
    assert info["cpu"] != info["arch"] or not Path("/proc/cpuinfo").exists()
    assert set(info["isa"]) <= set(ISA_FLAGS)
    assert info["cpus"] >= 1 and info["versions"]["torch"] and info["versions"]["transformers"]


@pytest.mark.parametrize(
    ("isas", "auto", "warned"),
    [
        ([BF16, AVX2], True, "started on a CPU with native bf16 and resumes on one without"),
        ([AVX2, BF16], True, "started on a CPU without native bf16 and resumes on one with"),
        ([BF16, AVX2], False, None),  # precision pinned in the config: nothing changes
        ([BF16, BF16], True, None),
        ([None, AVX2], True, None),  # an invocation from before they kept their ISA: unknown
        ([AVX2], True, None),
    ],
)
def test_a_run_resumed_on_a_cpu_of_the_other_precision_says_so(
    isas: list[list[str] | None], auto: bool, warned: str | None
) -> None:
    invocations = [{"cpu": "AMD EPYC"} if isa is None else {"isa": isa} for isa in isas]
    said = precision_change(invocations, auto)
    if warned is None:
        assert said is None
    else:
        assert said is not None and warned in said and "float32" in said
