"""Mixing D_self with D_LLM: variants, bias, tie-breaking, alpha, distributions, KL."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from siked.cli import main
from siked.config import AlphaSchedule, MixConfig
from siked.io import read_jsonl, write_jsonl
from siked.mix import (
    MixError,
    apply_bias,
    dedupe,
    kl_divergence,
    mix,
    mix_files,
    priority,
    solve_counts,
    strategy_distribution,
)

S = ["cot", "l2m", "pot"]


def row(
    qid: str,
    strategy: str,
    source: str = "teacher",
    correct: bool = True,
    sample: int = 0,
    text: str | None = None,
    status: str = "ok",
) -> dict[str, Any]:
    return {
        "qid": qid,
        "question": f"question {qid}",
        "gold": "1",
        "strategy": strategy,
        "text": text if text is not None else f"{source} {strategy} {qid} {sample}",
        "answer": "1" if correct else "2",
        "correct": correct,
        "rule": "marker",
        "status": status,
        "source": source,
        "iteration": -1 if source == "teacher" else 0,
        "sample": sample,
    }


def teacher(qids: list[str], strategies: list[str] = S) -> list[dict[str, Any]]:
    return [row(q, s) for q in qids for s in strategies]


def keys(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["qid"], r["strategy"], r["source"]) for r in rows]


CONTRACT_KEYS = {
    "iteration",
    "variant",
    "adaptive_scope",
    "bias",
    "self_per_strategy",
    "tie_break",
    "alpha",
    "alpha_target",
    "kl",
    "kl_support",
    "kl_all",
    "kl_epsilon",
    "p_llm",
    "p_student",
    "p_student_all",
    "p_train",
    "rows",
    "counts",
    "questions",
    "questions_covered",
    "questions_solved_by_student",
}


# --------------------------------------------------------------------------- variants


def test_variants_without_bias() -> None:
    t = teacher(["q1", "q2"])
    st = [row("q1", "cot", "student"), row("q3", "pot", "student", correct=False)]
    cfg = MixConfig(variant="all", bias="none")
    res = mix(t, st, cfg, 1, 3, S)
    assert len(res.rows) == 7  # 6 teacher + 1 student
    assert res.stats["counts"]["student"] == {"cot": 1, "l2m": 0, "pot": 0}
    assert res.stats["counts"]["teacher"] == {"cot": 2, "l2m": 2, "pot": 2}

    # adaptive, the authors' scope: teacher rows of the strategies q1 was not solved with
    res = mix(t, st, cfg.model_copy(update={"variant": "adaptive"}), 1, 3, S)
    assert keys(res.rows) == [
        ("q1", "cot", "student"),
        ("q1", "l2m", "teacher"),
        ("q1", "pot", "teacher"),
    ] + [("q2", s, "teacher") for s in S]
    assert res.stats["adaptive_scope"] == "strategy"

    # adaptive per question: no teacher row at all for a question the student solved
    cfg_q = cfg.model_copy(update={"variant": "adaptive", "adaptive_scope": "question"})
    res = mix(t, st, cfg_q, 1, 3, S)
    assert keys(res.rows) == [("q1", "cot", "student")] + [("q2", s, "teacher") for s in S]
    assert res.stats["adaptive_scope"] == "question"

    res = mix(t, st, cfg.model_copy(update={"variant": "self"}), 1, 3, S)
    assert keys(res.rows) == [("q1", "cot", "student")]
    assert res.stats["alpha"] == 0.0


def test_only_valid_correct_rows_count() -> None:
    t = [row("q1", "cot"), row("q1", "pot", correct=False), row("q1", "eqn")]
    st = [
        row("q1", "cot", "student", correct=False),
        row("q1", "pot", "student", status="timeout"),
        row("q1", "none", "student", status="no_answer"),
        row("q2", "l2m", "student"),
    ]
    res = mix(t, st, MixConfig(variant="all", bias="none"), 1, 1, S)
    assert keys(res.rows) == [("q1", "cot", "teacher"), ("q2", "l2m", "student")]
    assert res.stats["questions_solved_by_student"] == 1
    assert res.stats["questions"] == 2


def test_empty_self_mix() -> None:
    res = mix(
        teacher(["q1"]),
        [row("q1", "cot", "student", correct=False)],
        MixConfig(variant="self"),
        1,
        1,
        S,
    )
    assert res.rows == []
    assert res.stats["alpha"] is None and res.stats["p_train"] is None and res.stats["kl"] is None
    assert res.stats["p_student"] is None
    assert res.stats["p_student_all"] == {"cot": 1.0, "l2m": 0.0, "pot": 0.0, "none": 0.0}


# --------------------------------------------------------------------------- bias


@pytest.mark.parametrize(
    ("bias", "order"),
    [
        ("pot", ["pot", "cot", "l2m"]),
        ("cot", ["cot", "pot", "l2m"]),
        ("l2m", ["l2m", "pot", "cot"]),
    ],
)
def test_bias_orders(bias: str, order: list[str]) -> None:
    assert priority(bias, S) == order
    # with the top strategies removed one by one, the next in the order is chosen
    for i in range(3):
        available = order[i:]
        res = mix(teacher(["q1"], available), [], MixConfig(variant="all", bias=bias), 1, 1, S)
        assert [r["strategy"] for r in res.rows] == [order[i]]


def test_bias_none_keeps_all() -> None:
    res = mix(teacher(["q1"]), [], MixConfig(variant="all", bias="none"), 1, 1, S)
    assert len(res.rows) == 3


def test_bias_prefers_student_on_same_strategy() -> None:
    t = teacher(["q1"])
    st = [row("q1", "pot", "student", sample=4), row("q1", "cot", "student", sample=0)]
    cfg = MixConfig(variant="all", bias="pot", tie_break="student")
    res = mix(t, st, cfg, 1, 1, S)
    assert keys(res.rows) == [("q1", "pot", "student")]
    # a higher-priority teacher strategy still beats a lower-priority student one
    res = mix(t, st[1:], cfg, 1, 1, S)
    assert keys(res.rows) == [("q1", "pot", "teacher")]


def _solved_by_both(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every question solved with pot by the teacher and by the student."""
    qids = [f"q{i:03d}" for i in range(n)]
    return teacher(qids), [row(q, "pot", "student", sample=1) for q in qids]


def test_all_and_adaptive_differ_under_a_bias() -> None:
    """The authors' ``all`` keeps the student's and the teacher's row of a strategy and lets an
    unstable sort pick one; ``adaptive`` never has the teacher's row. So the two variants must
    not select the same rows, nor give the same alpha, on the same inputs."""
    t, st = _solved_by_both(200)
    runs = {
        variant: mix(t, st, MixConfig(variant=variant, bias="pot"), 1, 3, S, seed=7)
        for variant in ("all", "adaptive")
    }
    assert keys(runs["all"].rows) != keys(runs["adaptive"].rows)
    assert runs["adaptive"].stats["alpha"] == 0.0  # the student solved everything with pot
    assert 0.35 < runs["all"].stats["alpha"] < 0.65  # the seeded coin: about half each
    assert runs["all"].stats["tie_break"] == "seeded"
    # one row per question either way, all pot
    assert {r["strategy"] for r in runs["all"].rows} == {"pot"}
    assert len(runs["all"].rows) == len(runs["adaptive"].rows) == 200


def test_tie_break_seeded_is_seeded() -> None:
    t, st = _solved_by_both(100)
    cfg = MixConfig(variant="all", bias="pot")
    a = mix(t, st, cfg, 1, 3, S, seed=7)
    assert keys(a.rows) == keys(mix(list(reversed(t)), st[::-1], cfg, 1, 3, S, seed=7).rows)
    assert keys(a.rows) != keys(mix(t, st, cfg, 1, 3, S, seed=8).rows)
    assert keys(a.rows) != keys(mix(t, st, cfg, 2, 3, S, seed=7).rows)  # redrawn per iteration
    # tie_break: student -> all == adaptive under a bias (siked's former rule)
    student = MixConfig(variant="all", bias="pot", tie_break="student")
    adaptive = MixConfig(variant="adaptive", bias="pot")
    assert keys(mix(t, st, student, 1, 3, S).rows) == keys(mix(t, st, adaptive, 1, 3, S).rows)


def test_bias_ties_among_students() -> None:
    st = [
        row("q1", "pot", "student", sample=5, text="b"),
        row("q1", "pot", "student", sample=2, text="c"),
        row("q1", "pot", "student", sample=2, text="a"),
    ]
    for _ in range(5):
        random.shuffle(st)
        chosen = apply_bias(st, "pot", S)
        assert len(chosen) == 1 and chosen[0]["sample"] == 2
        # same sample index: the lowest text hash decides, whatever the input order
        assert chosen[0]["text"] == apply_bias(list(reversed(st)), "pot", S)[0]["text"]


def test_bias_applies_from_iteration_0_by_default() -> None:
    # the authors' PoT-biased chain trains its first model on one rationale per question
    t = teacher(["q1", "q2"])
    res = mix(t, [], MixConfig(bias="pot"), 0, 3, S)
    assert keys(res.rows) == [("q1", "pot", "teacher"), ("q2", "pot", "teacher")]
    assert res.stats["bias"] == "pot" and res.stats["p_train"] == {"cot": 0, "l2m": 0, "pot": 1}
    # a question the teacher did not solve with pot keeps its next-priority rationale
    res = mix([row("q1", "cot"), row("q1", "l2m")], [], MixConfig(bias="pot"), 0, 3, S)
    assert keys(res.rows) == [("q1", "cot", "teacher")]
    # bias none (the authors' unbiased chain): all of D_LLM, one row per question and strategy
    res = mix(t, [], MixConfig(bias="none"), 0, 3, S)
    assert len(res.rows) == 6 and res.stats["bias"] == "none"
    # the former siked behaviour, as an option: iteration 0 unbiased whatever the bias
    res = mix(t, [], MixConfig(bias="pot", bias_iteration_0=False), 0, 3, S)
    assert len(res.rows) == 6 and res.stats["bias"] == "none"
    assert MixConfig().bias_iteration_0 is True


def test_one_self_row_per_question_and_strategy() -> None:
    st = [
        row("q1", "cot", "student", sample=3),
        row("q1", "cot", "student", sample=1),
        row("q1", "cot", "student", sample=7),
        row("q1", "pot", "student", sample=4),
        row("q1", "pot", "student", sample=2),
        row("q2", "l2m", "student", sample=0),
    ]
    cfg = MixConfig(variant="self", bias="none")
    assert cfg.self_per_strategy == 1  # the authors' default
    res = mix([], st, cfg, 1, 3, S)
    assert [(r["qid"], r["strategy"], r["sample"]) for r in res.rows] == [
        ("q1", "cot", 1),
        ("q1", "pot", 2),
        ("q2", "l2m", 0),
    ]
    # P_student still describes every correct sample, not the kept rows
    assert res.stats["p_student"] == pytest.approx(
        {"cot": 0.5, "l2m": 1 / 6, "pot": 1 / 3}, abs=1e-6
    )
    # more rows per question and strategy as an option, all of them with null
    res = mix([], st, cfg.model_copy(update={"self_per_strategy": 2}), 1, 3, S)
    assert [(r["qid"], r["strategy"], r["sample"]) for r in res.rows] == [
        ("q1", "cot", 1),
        ("q1", "cot", 3),
        ("q1", "pot", 2),
        ("q1", "pot", 4),
        ("q2", "l2m", 0),
    ]
    assert len(mix([], st, cfg.model_copy(update={"self_per_strategy": None}), 1, 3, S).rows) == 6
    # duplicates do not use up the quota: two identical texts count once
    dup = [
        row("q1", "cot", "student", sample=0, text="a"),
        row("q1", "cot", "student", sample=1, text="a "),
    ]
    dup.append(row("q1", "cot", "student", sample=2, text="b"))
    res = mix([], dup, cfg.model_copy(update={"self_per_strategy": 2}), 1, 3, S)
    assert sorted(r["sample"] for r in res.rows) == [0, 2]


def test_adaptive_scope_with_bias() -> None:
    # q1: the student solved it with cot only; q2: not at all
    t = teacher(["q1", "q2"])
    st = [row("q1", "cot", "student")]
    cfg = MixConfig(variant="adaptive", bias="pot")
    res = mix(t, st, cfg, 1, 3, S)
    # strategy scope: the teacher's pot rationale of q1 is added and wins the pot bias
    assert keys(res.rows) == [("q1", "pot", "teacher"), ("q2", "pot", "teacher")]
    res = mix(t, st, cfg.model_copy(update={"adaptive_scope": "question"}), 1, 3, S)
    assert keys(res.rows) == [("q1", "cot", "student"), ("q2", "pot", "teacher")]


# --------------------------------------------------------------------------- dedupe


def test_dedupe_normalised_text_student_wins() -> None:
    a = row("q1", "cot", "teacher", text="x =  1\nanswer")
    b = row("q1", "cot", "student", text="x = 1 answer", sample=3)
    c = row("q1", "cot", "student", text="x = 1 answer ", sample=1)
    kept = dedupe([a, b, c])
    assert len(kept) == 1 and kept[0]["source"] == "student" and kept[0]["sample"] == 1
    # different strategies or questions are not duplicates
    assert (
        len(
            dedupe(
                [a, row("q1", "l2m", text="x = 1 answer"), row("q2", "cot", text="x = 1 answer")]
            )
        )
        == 3
    )

    res = mix([a], [b], MixConfig(variant="all", bias="none"), 1, 1, S)
    assert keys(res.rows) == [("q1", "cot", "student")]


# --------------------------------------------------------------------------- alpha


def test_alpha_auto_is_teacher_share() -> None:
    t = teacher([f"q{i}" for i in range(4)])  # 12 teacher rows
    st = [row(f"q{i}", "cot", "student") for i in range(4)]
    res = mix(t, st, MixConfig(variant="all", bias="none"), 1, 1, S)
    assert res.stats["alpha"] == pytest.approx(12 / 16)
    assert res.stats["alpha_target"] == "auto"


@pytest.mark.parametrize(
    ("target", "n_teacher", "n_student"),
    [(0.5, 10, 10), (0.25, 3, 10), (0.9, 30, 3), (0.0, 0, 10), (1.0, 30, 0)],
)
def test_alpha_number(target: float, n_teacher: int, n_student: int) -> None:
    t = teacher([f"q{i:02d}" for i in range(10)])  # 30 teacher rows
    st = [row(f"q{i:02d}", "cot", "student", text=f"s{i}") for i in range(10)]  # 10 student rows
    res = mix(t, st, MixConfig(variant="all", bias="none", alpha=target), 1, 1, S, seed=3)
    counts = res.stats["counts"]
    assert sum(counts["teacher"].values()) == n_teacher
    assert sum(counts["student"].values()) == n_student
    assert res.stats["alpha_target"] == target
    assert res.stats["alpha"] == pytest.approx(n_teacher / (n_teacher + n_student), abs=1e-6)


def test_alpha_unreachable_keeps_rows() -> None:
    res = mix(teacher(["q1"]), [], MixConfig(variant="all", bias="none", alpha=0.3), 1, 1, S)
    assert res.stats["alpha"] == 1.0 and res.stats["alpha_target"] == 0.3 and len(res.rows) == 3


def test_alpha_schedule() -> None:
    t = teacher([f"q{i:02d}" for i in range(20)])  # 60 teacher rows
    st = [row(f"q{i:02d}", "cot", "student") for i in range(20)]
    cfg = MixConfig(variant="all", bias="none", alpha=AlphaSchedule(start=0.9, end=0.2))
    first = mix(t, st, cfg, 1, 3, S)
    last = mix(t, st, cfg, 3, 3, S)
    middle = mix(t, st, cfg, 2, 3, S)
    assert first.stats["alpha_target"] == pytest.approx(0.9)
    assert middle.stats["alpha_target"] == pytest.approx(0.55)
    assert last.stats["alpha_target"] == pytest.approx(0.2)
    for res in (first, middle, last):
        assert abs(res.stats["alpha"] - res.stats["alpha_target"]) < 0.03
    assert first.stats["alpha"] > middle.stats["alpha"] > last.stats["alpha"]


def test_solve_counts_never_exceeds_available() -> None:
    rng = random.Random(0)
    for _ in range(300):
        t, s, a = rng.randint(0, 50), rng.randint(0, 50), rng.random()
        nt, ns = solve_counts(t, s, a)
        assert 0 <= nt <= t and 0 <= ns <= s
        assert nt == t or ns == s  # only one side is subsampled
        if t and s:
            # no other feasible choice on the cut side does better
            share = nt / (nt + ns) if nt + ns else 0
            if nt < t:
                alts = [c / (c + s) for c in range(t + 1) if c + s]
            else:
                alts = [t / (t + c) for c in range(s + 1) if t + c]
            assert abs(share - a) <= min(abs(x - a) for x in alts) + 1e-12


# --------------------------------------------------------------------------- distributions and KL


def test_distributions() -> None:
    t = [row("q1", "cot"), row("q1", "pot"), row("q2", "pot"), row("q2", "l2m")]
    st = [
        row("q1", "cot", "student", sample=0),
        row("q1", "cot", "student", sample=1),
        row("q2", "pot", "student", sample=0),
        row("q2", "pot", "student", sample=1, correct=False),
        row("q3", "none", "student", sample=0, status="no_answer", correct=False),
    ]
    cfg = MixConfig(
        variant="adaptive", adaptive_scope="question", bias="none", self_per_strategy=None
    )
    res = mix(t, st, cfg, 1, 1, S)
    s = res.stats
    assert s["p_llm"] == {"cot": 0.25, "l2m": 0.25, "pot": 0.5}
    assert s["p_student"] == pytest.approx({"cot": 2 / 3, "l2m": 0.0, "pot": 1 / 3}, abs=1e-6)
    assert s["p_student_all"] == {"cot": 0.4, "l2m": 0.0, "pot": 0.4, "none": 0.2}
    assert s["p_train"] == pytest.approx({"cot": 2 / 3, "l2m": 0.0, "pot": 1 / 3}, abs=1e-6)
    assert s["kl"] == pytest.approx(0.0, abs=1e-6)  # adaptive, both solved: P_train == P_student
    # KL against every sample of the student (the `none` answers included)
    assert s["kl_all"] == pytest.approx(kl_divergence(s["p_train"], s["p_student_all"]), abs=1e-6)
    assert s["kl_all"] > 0
    assert strategy_distribution(res.rows, S) == s["p_train"]


def test_kl_known_values() -> None:
    p, q = {"cot": 0.5, "pot": 0.5}, {"cot": 0.25, "pot": 0.75}
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kl_divergence(p, q, eps=0) == pytest.approx(expected)
    assert kl_divergence(p, p) == 0.0
    assert kl_divergence(q, q, eps=0.1) == 0.0
    # smoothing keeps a zero in Q finite, and more smoothing makes it smaller
    zero_q = {"cot": 1.0, "pot": 0.0}
    assert math.isinf(kl_divergence(p, zero_q, eps=0))
    k6, k3 = kl_divergence(p, zero_q, eps=1e-6), kl_divergence(p, zero_q, eps=1e-3)
    assert math.isfinite(k6) and k6 > k3 > 0
    # missing keys count as zero probability
    assert kl_divergence({"cot": 1.0}, {"cot": 1.0, "pot": 0.0}) == pytest.approx(0.0, abs=1e-5)


def test_mix_kl_matches_definition() -> None:
    t = teacher([f"q{i}" for i in range(5)])
    st = [row(f"q{i}", "cot", "student") for i in range(3)]
    cfg = MixConfig(variant="all", bias="none", kl_epsilon=1e-4)
    s = mix(t, st, cfg, 1, 1, S).stats
    assert s["kl_epsilon"] == 1e-4
    assert s["kl"] == pytest.approx(kl_divergence(s["p_train"], s["p_student"], 1e-4), abs=1e-6)


def test_iteration_0_is_plain_distillation() -> None:
    t = [*teacher(["q1", "q2"]), row("q3", "cot", correct=False)]
    res = mix(t, [], MixConfig(variant="self", alpha=0.2, bias="none"), 0, 3, S)
    s = res.stats
    assert len(res.rows) == 6 and s["alpha"] == 1.0 and s["kl"] is None
    assert s["p_student"] is None and s["p_student_all"] is None
    assert s["p_train"] == s["p_llm"]
    assert s["questions"] == 3 and s["questions_covered"] == 2
    with pytest.raises(MixError):
        mix(t, [row("q1", "cot", "student")], MixConfig(), 0, 3, S)


# --------------------------------------------------------------------------- contract and determinism


def test_stats_contract_and_json() -> None:
    res = mix(teacher(["q1"]), [row("q1", "cot", "student")], MixConfig(), 2, 3, S)
    assert set(res.stats) == CONTRACT_KEYS
    assert set(res.stats["counts"]) == {"teacher", "student"}
    assert res.stats["kl_support"] == 1  # one correct student sample behind P_student
    json.dumps(res.stats)  # serialisable


def test_deterministic_and_order_independent() -> None:
    rng = random.Random(1)
    t = teacher([f"q{i:02d}" for i in range(30)])
    st = [
        row(
            f"q{i:02d}",
            rng.choice(S),
            "student",
            correct=rng.random() < 0.6,
            sample=j,
            text=f"{i}-{j}",
        )
        for i in range(30)
        for j in range(4)
    ]
    cfg = MixConfig(variant="all", bias="none", alpha=0.4)
    a = mix(t, st, cfg, 1, 3, S, seed=7)
    t2, st2 = list(t), list(st)
    rng.shuffle(t2)
    rng.shuffle(st2)
    b = mix(t2, st2, cfg, 1, 3, S, seed=7)
    assert a.rows == b.rows and a.stats == b.stats
    c = mix(t, st, cfg, 1, 3, S, seed=8)
    assert c.stats["counts"] == a.stats["counts"] or c.stats["rows"] == a.stats["rows"]
    assert [r["text"] for r in c.rows] != [r["text"] for r in a.rows]  # another subsample
    assert a.rows == sorted(
        a.rows, key=lambda r: (r["qid"], r["strategy"], r["source"] != "student")
    )


def test_inputs_are_not_mutated() -> None:
    t = teacher(["q1"])
    before = json.dumps(t, sort_keys=True)
    mix(t, [], MixConfig(), 0, 1, S)
    assert json.dumps(t, sort_keys=True) == before


# --------------------------------------------------------------------------- files and CLI


def test_mix_files(tmp_path) -> None:
    write_jsonl(tmp_path / "kept.jsonl", teacher(["q1", "q2"]))
    write_jsonl(tmp_path / "samples.jsonl", [row("q1", "pot", "student")])
    res = mix_files(
        tmp_path / "kept.jsonl",
        tmp_path / "samples.jsonl",
        tmp_path / "iter_01",
        MixConfig(),
        1,
        3,
        S,
    )
    assert read_jsonl(tmp_path / "iter_01" / "train.jsonl") == res.rows
    assert json.loads((tmp_path / "iter_01" / "stats.json").read_text()) == res.stats
    with pytest.raises(MixError):
        mix_files(tmp_path / "nope.jsonl", None, tmp_path / "x", MixConfig(), 0, 1, S)


def test_cli_mix(tmp_path, capsys) -> None:
    write_jsonl(tmp_path / "kept.jsonl", teacher([f"q{i}" for i in range(10)]))
    write_jsonl(
        tmp_path / "samples.jsonl",
        [row(f"q{i}", "cot", "student", sample=j) for i in range(10) for j in range(3)],
    )
    out = tmp_path / "iter_02"
    rc = main(
        [
            "mix",
            "--teacher",
            str(tmp_path / "kept.jsonl"),
            "--student",
            str(tmp_path / "samples.jsonl"),
            "--out",
            str(out),
            "--bias",
            "none",
            "--alpha",
            "0.9:0.2",
            "--iteration",
            "2",
            "--iterations",
            "3",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["alpha_target"] == pytest.approx(0.55) and stats["bias"] == "none"
    assert stats["rows"] == len(read_jsonl(out / "train.jsonl"))
    assert "rows" in capsys.readouterr().out

    # iteration 0 (no --student): D_LLM only
    rc = main(
        ["mix", "--teacher", str(tmp_path / "kept.jsonl"), "--out", str(tmp_path / "iter_00")]
    )
    assert rc == 0
    assert json.loads((tmp_path / "iter_00" / "stats.json").read_text())["alpha"] == 1.0


def test_cli_mix_errors(tmp_path, capsys) -> None:
    write_jsonl(tmp_path / "kept.jsonl", teacher(["q1"]))
    write_jsonl(tmp_path / "samples.jsonl", [row("q1", "cot", "student", correct=False)])
    args = ["mix", "--teacher", str(tmp_path / "kept.jsonl"), "--out", str(tmp_path / "o")]
    assert main([*args, "--student", str(tmp_path / "samples.jsonl"), "--variant", "self"]) == 2
    assert "empty" in capsys.readouterr().err
    assert not (tmp_path / "o" / "train.jsonl").exists()
    assert main([*args, "--alpha", "lots"]) == 2
    assert main([*args, "--alpha", "1.5"]) == 2
    assert "mix.alpha" in capsys.readouterr().err
    assert main([*args, "--set", "varient=self"]) == 2  # siked mix takes --set like the others
    assert "mix.varient: unknown key" in capsys.readouterr().err
    assert main(["mix", "--teacher", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
