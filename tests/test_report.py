"""The run report and `siked compare`, on synthetic run directories (no model needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synthetic_run import make_synthetic_run

from siked.cli import main
from siked.console import format_duration
from siked.report import (
    FIGURES,
    PALETTE,
    ReportError,
    best_iteration,
    compare,
    compare_rows,
    format_mix,
    load_run,
    strategy_colour,
    write_report,
)
from siked.report.plots import dynamics_series

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path: Path) -> None:
    """A PNG of a sensible size with actual content (not a blank canvas)."""
    import matplotlib.image as mpimg

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) > 10_000, f"{path} is suspiciously small"
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert 300 <= h <= 2000 and 400 <= w <= 2600, (path, w, h)
    assert img[..., :3].std() > 0.05, f"{path} looks blank"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    return {
        "demo": make_synthetic_run(base, "demo", iterations=3, seed=0),
        "adaptive": make_synthetic_run(
            base, "adaptive", iterations=2, seed=1, mix_overrides={"variant": "adaptive"}
        ),
        "distill": make_synthetic_run(base, "distill", method="distill", seed=2),
    }


def test_synthetic_run_follows_the_contract(runs: dict[str, Path]) -> None:
    run = runs["demo"]
    for rel in (
        "config.yaml",
        "manifest.json",
        "summary.json",
        "teacher/kept.jsonl",
        "teacher/samples.jsonl",
        "teacher/stats.json",
    ):
        assert (run / rel).is_file(), rel
    for n in range(4):
        d = run / f"iter_{n:02d}"
        for rel in ("train.jsonl", "stats.json", "eval/eval.json", "eval/predictions.jsonl"):
            assert (d / rel).is_file(), (n, rel)
        assert (d / "samples.jsonl").is_file() == (n < 3)
    summary = json.loads((run / "summary.json").read_text())
    assert [r["iteration"] for r in summary["iterations"]] == [0, 1, 2, 3]
    manifest = json.loads((run / "manifest.json").read_text())
    assert "iter_01/mix" in manifest["stages"] and "teacher" in manifest["stages"]
    assert not (runs["distill"] / "iter_01").exists()


def test_full_report(runs: dict[str, Path]) -> None:
    path = write_report(runs["demo"])  # its speed: benchmarks/speed_claims.py
    assert path == runs["demo"] / "report" / "report.md"
    text = path.read_text()
    for name in FIGURES.values():
        assert_real_png(path.parent / name)
        assert f"]({name})" in text
    for heading in ("## Summary", "## Provenance", "## Teacher data", "## Self-generation"):
        assert heading in text
    assert "Missing pieces" not in text
    summary = json.loads((runs["demo"] / "summary.json").read_text())
    best = summary["best_iteration"]
    assert f"**{best}** (best)" in text
    assert "gsm8k:test:60" in text and "svamp:40" in text
    stats1 = json.loads((runs["demo"] / "iter_01" / "stats.json").read_text())
    assert f"{stats1['alpha']:.2f}" in text and f"{stats1['kl']:.3f}" in text
    assert "config.yaml" in text and "iter_01/train" in text  # provenance: config and stages


def test_figure_2_quantities_are_labelled_and_the_free_choice_shown(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "demo"
    shutil.copytree(runs["demo"], run)
    text = write_report(run).read_text()
    stats1 = json.loads((run / "iter_01" / "stats.json").read_text())
    assert "KL (all)" in text and f"{stats1['kl_all']:.3f}" in text
    assert "siked's interpretation of the paper's Figure 2" in text
    assert "forced teacher's yield" in text
    # what a bias does to alpha and KL, under the summary table and under Figure 2
    assert text.count("Do not read it as the paper's curve") == 1
    assert text.count("α drops at once") == 2
    assert "mostly measures how much of the mix is PoT" in text
    assert "Free choice" not in text
    # a measured free choice of the teacher (teacher.free_choice_n) is reported and drawn
    tstats = json.loads((run / "teacher" / "stats.json").read_text())
    tstats["free_choice"] = {
        "n": 1,
        "questions": 40,
        "samples": 40,
        "p_choice": {"cot": 0.25, "l2m": 0.0, "pot": 0.7, "none": 0.05},
        "accuracy": 0.8,
        "per_strategy": {
            "cot": {"chosen": 10, "correct": 8, "accuracy": 0.8},
            "l2m": {"chosen": 0, "correct": 0, "accuracy": None},
            "pot": {"chosen": 28, "correct": 24, "accuracy": 24 / 28},
        },
    }
    (run / "teacher" / "stats.json").write_text(json.dumps(tstats))
    text = write_report(run).read_text()
    assert "**Free choice**" in text and "| pot | 70.0 | 28 | 85.7 |" in text
    assert_real_png(run / "report" / FIGURES["strategy_choice"])


def test_report_is_regenerated(runs: dict[str, Path], tmp_path: Path) -> None:
    run = shutil.copytree(runs["demo"], tmp_path / "demo")
    write_report(run)
    assert (run / "report" / "mixing.png").exists()
    # the run goes back to iteration 0 only: the stale mixing figure must disappear
    for n in (1, 2, 3):
        shutil.rmtree(run / f"iter_{n:02d}")
    text = write_report(run).read_text()
    assert not (run / "report" / "mixing.png").exists()
    assert "no SIKeD iteration yet" in text


def test_partial_run(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, "partial", iterations=2)
    for n in (1, 2):
        shutil.rmtree(run / f"iter_{n:02d}")
    for rel in ("summary.json", "iter_00/eval/eval.json", "iter_00/samples.jsonl"):
        (run / rel).unlink()
    (run / "iter_00" / "sample_stats.json").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stopped"] = None
    manifest["best_iteration"] = None
    manifest["stages"]["iter_00/eval"]["status"] = "running"
    (run / "manifest.json").write_text(json.dumps(manifest))

    text = write_report(run).read_text()
    assert "## Missing pieces" in text
    assert "`iter_00/eval/eval.json`" in text and "`summary.json`" in text
    assert "in progress (running: iter_00/eval)" in text
    assert_real_png(run / "report" / FIGURES["strategy_choice"])  # teacher data is there
    for key in ("mixing", "accuracy", "strategy_accuracy"):
        assert not (run / "report" / FIGURES[key]).exists()
    assert text.count("_Not drawn:") == 3
    assert best_iteration(load_run(run)) is None


def test_teacher_only_and_empty_runs(tmp_path: Path) -> None:
    run = make_synthetic_run(tmp_path, "t", iterations=1)
    for p in run.iterdir():
        if p.name.startswith("iter_") or p.name == "summary.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    text = write_report(run).read_text()
    assert "iter_00/ (no iteration yet)" in text
    assert (run / "report" / FIGURES["strategy_choice"]).exists()  # from teacher/stats.json

    empty = tmp_path / "empty"
    empty.mkdir()
    text = write_report(empty).read_text()
    assert "`config.yaml`" in text and "`manifest.json`" in text
    assert not list((empty / "report").glob("*.png"))


def test_broken_files_do_not_raise(runs: dict[str, Path], tmp_path: Path) -> None:
    run = shutil.copytree(runs["demo"], tmp_path / "broken")
    (run / "iter_02" / "eval" / "eval.json").write_text("{not json")
    (run / "iter_01" / "stats.json").write_text("[1, 2]")
    (run / "iter_03" / "eval" / "eval.json").write_text(
        json.dumps({"datasets": {"validation": {"accuracy": "high"}, "gsm8k:test:60": None}})
    )
    text = write_report(run).read_text()
    assert "iter_02/eval/eval.json: unreadable" in text
    assert "iter_01/stats.json: not a JSON object" in text
    assert (run / "report" / FIGURES["accuracy"]).exists()


def test_missing_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ReportError):
        write_report(tmp_path / "nope")
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err


def test_distill_report(runs: dict[str, Path]) -> None:
    text = write_report(runs["distill"]).read_text()
    assert "none (distillation baseline)" in text
    assert "no SIKeD iteration yet" in text
    for key in ("strategy_choice", "accuracy", "strategy_accuracy"):
        assert_real_png(runs["distill"] / "report" / FIGURES[key])


def test_untrained_run_has_no_mixing(tmp_path: Path) -> None:
    # `method: base` (the untrained student) trains on nothing: no mixing in compare or report
    base = make_synthetic_run(tmp_path, "untrained", method="base", seed=3)
    line = next(row for row in compare([base]).splitlines() if row.startswith("| untrained "))
    assert "| untrained | base | — |" in line
    assert "none (untrained student)" in write_report(base).read_text()


def test_compare_time_is_the_manifest_stage_seconds(runs: dict[str, Path]) -> None:
    manifest = json.loads((runs["demo"] / "manifest.json").read_text())
    total = sum(float(st["seconds"]) for st in manifest["stages"].values())
    _, rows = compare_rows([runs["demo"]])
    assert rows[0]["seconds"] == pytest.approx(total)
    header, *_, line = [r for r in compare([runs["demo"]]).splitlines() if r.startswith("| ")]
    assert header.rstrip(" |").endswith("| time")
    assert line.rstrip(" |").endswith(format_duration(total))


def test_a_reused_stage_counts_the_time_it_took_where_it_was_made(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """`siked run --reuse` copies a stage in seconds; the arm's time still counts what the
    stage cost (its donor's seconds), so arms that share iteration 0 compare fairly."""
    run = tmp_path / "demo"
    shutil.copytree(runs["demo"], run)
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    total = sum(float(st["seconds"]) for st in manifest["stages"].values())
    train = manifest["stages"]["iter_00/train"]
    own = float(train["seconds"])
    train.update(reused_from=str(runs["distill"]), donor_seconds=own, seconds=1.5)
    path.write_text(json.dumps(manifest))
    _, rows = compare_rows([run])
    assert rows[0]["seconds"] == pytest.approx(total)
    report = write_report(run).read_text()
    assert f"iter_00/train | done (copied from {runs['distill']})" in report


def test_untagged_answers_in_the_summary_table(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "demo"
    shutil.copytree(runs["demo"], run)
    for it in (0, 1):
        path = run / f"iter_{it:02d}" / "eval" / "eval.json"
        result = json.loads(path.read_text())
        for i, d in enumerate(result["datasets"].values()):
            d["untagged"] = 10 * it + i + 1
        path.write_text(json.dumps(result))
    n = len(result["datasets"])
    text = write_report(run).read_text()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| iter "))
    header, table = lines[start], lines[start + 2 : start + 4]  # iterations 0 and 1
    column = [c.strip() for c in header.split("|")].index("untagged")
    cells = [line.split("|")[column].strip() for line in table]
    assert cells == [str(n * (n + 1) // 2), str(10 * n + n * (n + 1) // 2)], table


def test_compare(runs: dict[str, Path]) -> None:
    table = compare([runs["demo"], runs["distill"]])
    lines = table.splitlines()
    header = lines[0]
    for col in ("run", "method", "mixing", "best iter", "gsm8k:test:60", "svamp:40", "asdiv:40"):
        assert col in header
    assert "strategy mix (gsm8k:test:60)" in header
    demo_line = next(line for line in lines if line.startswith("| demo "))
    distill_line = next(line for line in lines if line.startswith("| distill "))
    assert "| distill | — | 0 |" in distill_line
    assert "all, bias pot, α auto" in demo_line

    # the numbers are those of the best-on-validation iteration
    datasets, rows = compare_rows([runs["demo"]])
    best = json.loads((runs["demo"] / "summary.json").read_text())["best_iteration"]
    ev = json.loads((runs["demo"] / f"iter_{best:02d}" / "eval" / "eval.json").read_text())
    gsm = ev["datasets"]["gsm8k:test:60"]
    assert rows[0]["best_iteration"] == best
    assert rows[0]["accuracy"]["gsm8k:test:60"] == pytest.approx(gsm["accuracy"])
    assert f"{100 * gsm['accuracy']:.1f}" in demo_line
    counts = gsm["strategy_counts"]
    mix_txt = format_mix({k: v / gsm["n"] for k, v in counts.items() if v or k != "none"})
    assert mix_txt.split(" / ")[0] in demo_line
    assert datasets == ["gsm8k:test:60", "svamp:40", "asdiv:40"]
    assert table.count("**") >= 2  # the best value of each column is bold

    with_ci = compare([runs["demo"], runs["adaptive"]], ci=True)
    assert "[" in with_ci and "95 % Wilson" in with_ci


def test_compare_partial_and_errors(runs: dict[str, Path], tmp_path: Path) -> None:
    empty = tmp_path / "fresh"
    empty.mkdir()
    table = compare([runs["demo"], empty])
    assert "Not evaluated yet: fresh" in table
    with pytest.raises(ReportError):
        compare([])
    with pytest.raises(ReportError):
        compare([tmp_path / "missing"])


def test_cli_report_and_compare(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs["adaptive"])]) == 0
    out = capsys.readouterr().out
    assert "report.md" in out and "mixing.png" in out
    target = tmp_path / "table.md"
    assert (
        main(["compare", str(runs["demo"]), str(runs["adaptive"]), "--out", str(target), "--ci"])
        == 0
    )
    out = capsys.readouterr().out
    assert "| adaptive |" in out
    assert target.read_text().startswith("| run | method |")


def test_palette() -> None:
    assert PALETTE["cot"] != PALETTE["l2m"] != PALETTE["pot"]
    assert strategy_colour("cot") == PALETTE["cot"]
    assert strategy_colour("anything") not in (PALETTE["cot"], PALETTE["l2m"], PALETTE["pot"])


def _paired_run(root: Path, name: str, solved: dict[str, list[bool]]) -> Path:
    """A minimal run directory whose best iteration (0) has these predictions."""
    run = root / name
    ev = run / "iter_00" / "eval"
    ev.mkdir(parents=True)
    (run / "config.yaml").write_text(f"name: {name}\nmethod: distill\n")
    datasets = {"validation": {"accuracy": 0.5, "n": 2, "correct": 1}}
    rows = [{"dataset": "validation", "qid": "v0", "correct": True}]
    for dataset, flags in solved.items():
        datasets[dataset] = {"accuracy": sum(flags) / len(flags), "n": len(flags)}
        rows += [{"dataset": dataset, "qid": f"q{i}", "correct": c} for i, c in enumerate(flags)]
    (ev / "eval.json").write_text(json.dumps({"datasets": datasets}))
    (ev / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"name": name, "best_iteration": 0, "iterations": [{"iteration": 0}]}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_paired_comparison_known_answer(tmp_path: Path) -> None:
    from siked.report import compare_paired
    from siked.stats import paired_difference

    # 20 questions: both solve 5, only A 10, only B 2, neither 3
    a = [True] * 5 + [True] * 10 + [False] * 2 + [False] * 3
    b = [True] * 5 + [False] * 10 + [True] * 2 + [False] * 3
    r = paired_difference(a, b)
    assert (r.n, r.a_correct, r.b_correct, r.a_only, r.b_only) == (20, 15, 7, 10, 2)
    assert r.diff == pytest.approx(0.4)
    assert r.p_mcnemar == pytest.approx(2 * (1 + 12 + 66) / 4096)  # exact binomial, by hand
    lo, hi = r.ci95
    assert 0.05 < lo < 0.4 < hi < 0.75  # sd of the per-question difference 0.66, se 0.15
    assert paired_difference(a, b).ci95 == r.ci95  # seeded
    same = paired_difference(a, a)
    assert (same.diff, same.ci95, same.p_mcnemar) == (0.0, (0.0, 0.0), 1.0)

    ref = _paired_run(tmp_path, "combined", {"svamp:20": b, "gsm8k:test:3": [True, False, True]})
    siked = _paired_run(tmp_path, "siked", {"svamp:20": a, "gsm8k:test:3": [True, False, True]})
    table = compare_paired([ref, siked])
    svamp = next(ln for ln in table.splitlines() if "svamp:20" in ln)
    assert "| siked | combined | svamp:20 | 20 | 75.0 vs 35.0 | +40.0 [" in svamp
    assert "| 10 / 2 | 0.0386 |" in svamp
    gsm = next(ln for ln in table.splitlines() if "gsm8k:test:3" in ln)
    assert "+0.0 [+0.0, +0.0]" in gsm and "| 0 / 0 | 1 |" in gsm
    assert "validation" not in table.split("\n\n")[0]

    # only questions both answered are paired
    part = _paired_run(tmp_path, "part", {"svamp:20": a[:8]})
    assert "| part | combined | svamp:20 | 8 |" in compare_paired([ref, part])
    with pytest.raises(ReportError, match="at least two"):
        compare_paired([ref])


def test_paired_comparison_of_runs_still_running_says_which_have_no_test_answers(
    tmp_path: Path,
) -> None:
    """An experiment collected while its arms run: an arm not evaluated yet, or evaluated on
    validation only (test sets come once, at the end), has no row and is named in the note;
    the reference must have test answers."""
    from siked.report import compare_paired

    ref = _paired_run(tmp_path, "ref", {"svamp:2": [True, False]})
    done = _paired_run(tmp_path, "done", {"svamp:2": [True, True]})
    validation_only = _paired_run(tmp_path, "validating", {})
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.yaml").write_text("name: started\nmethod: siked\n")
    table = compare_paired([ref, validation_only, done, started])
    rows, note = table.split("\n\n", 1)
    assert "| done | ref | svamp:2 |" in rows
    assert "validating" not in rows and "started" not in rows
    assert "No test answers yet: validating, started." in note
    with pytest.raises(ReportError, match="started: no evaluated iteration"):
        compare_paired([started, ref])


def test_paired_comparison_needs_one_prediction_per_question(tmp_path: Path) -> None:
    from siked.report import compare_paired

    ref = _paired_run(tmp_path, "ref", {"svamp:2": [True, False]})
    other = _paired_run(tmp_path, "all-mode", {"svamp:2": [True, False]})
    preds = other / "iter_00" / "eval" / "predictions.jsonl"
    preds.write_text(preds.read_text() + json.dumps({"dataset": "svamp:2", "qid": "q0"}) + "\n")
    with pytest.raises(ReportError, match="several predictions"):
        compare_paired([ref, other])


def test_cli_compare_paired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ref = _paired_run(tmp_path, "ref", {"svamp:2": [True, False]})
    other = _paired_run(tmp_path, "other", {"svamp:2": [True, True]})
    assert main(["compare", str(ref), str(other), "--paired"]) == 0
    assert "| other | ref | svamp:2 | 2 | 100.0 vs 50.0 | +50.0 [" in capsys.readouterr().out


def test_dynamics_series_reads_each_iteration(runs: dict[str, Path]) -> None:
    demo, distill = load_run(runs["demo"]), load_run(runs["distill"])
    series = dynamics_series([demo, distill])
    by_name = {k: {name: (xs, ys) for name, xs, ys in v} for k, v in series.items()}
    xs, ys = by_name["own_correct"]["demo"]
    assert xs == [0, 1, 2]  # the last model of a run samples nothing
    for n, y in zip(xs, ys, strict=True):
        stats = json.loads((runs["demo"] / f"iter_{n:02d}" / "sample_stats.json").read_text())
        assert y == stats["yield"]
    xs, ys = by_name["alpha"]["demo"]
    assert xs == [0, 1, 2, 3] and ys[0] == 1.0 and all(0 <= y <= 1 for y in ys)
    assert "distill" not in by_name["alpha"] or by_name["alpha"]["distill"][0] == [0]
    assert "distill" not in by_name["own_correct"]  # distillation never samples
    xs, ys = by_name["validation"]["distill"]
    assert xs == [0] and 0 <= ys[0] <= 1


def test_cli_compare_plot(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dynamics.png"
    assert main(["compare", str(runs["demo"]), str(runs["adaptive"]), "--plot", str(target)]) == 0
    assert f"figure written to {target}" in capsys.readouterr().out
    assert_real_png(target)


def _on_machine(run: Path, *invocation_isas: list[str]) -> Path:
    """``run`` with a manifest whose invocations ran on CPUs with these instruction sets."""
    invocations = [{"cpu": "AMD EPYC", "seconds": 1.0, "isa": isa} for isa in invocation_isas]
    manifest = {"name": run.name, "stages": {}, "invocations": invocations}
    manifest["machine"] = {"cpu": "AMD EPYC", "isa": invocation_isas[-1]}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_runs_computed_with_and_without_native_bf16_are_named_in_the_notes(
    tmp_path: Path,
) -> None:
    """dtype auto and train.bf16 null compute in bf16 on a CPU with AVX512-BF16 or AMX and in
    float32 elsewhere, which by itself changes answers question by question: a table that
    mixes the two says which run computed on which."""
    from siked.report import compare, compare_paired

    bf16 = ["avx2", "avx512f", "avx512_bf16"]
    a = _on_machine(_paired_run(tmp_path, "a", {"svamp:2": [True, False]}), bf16)
    b = _on_machine(_paired_run(tmp_path, "b", {"svamp:2": [True, True]}), bf16)
    c = _on_machine(_paired_run(tmp_path, "c", {"svamp:2": [False, True]}), ["avx2"])
    d = _on_machine(_paired_run(tmp_path, "d", {"svamp:2": [False, True]}), bf16, ["avx2"])
    for text in (compare([a, b]), compare_paired([a, b])):
        assert "bf16" not in text.split("\n\n")[1]  # one kind of CPU: nothing to say
    for text in (compare([a, b, c, d]), compare_paired([a, b, c, d])):
        note = text.split("\n\n")[1]
        assert "native bf16 (AVX512-BF16 or AMX): a, b; without: c; both (resumed): d" in note
    # evidence from before invocations recorded their instruction sets: the manifest's machine
    old = _paired_run(tmp_path, "old", {"svamp:2": [True, False]})
    manifest = {"name": "old", "stages": {}, "invocations": [{"cpu": "AMD EPYC"}]}
    manifest["machine"] = {"cpu": "AMD EPYC", "isa": ["avx2"]}
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert "without: old" in compare([a, old]).split("\n\n")[1]
