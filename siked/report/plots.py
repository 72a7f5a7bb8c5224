"""The report's four figures and ``siked compare --plot``'s (matplotlib's object-oriented API on
Agg canvases: no pyplot, no global backend), one colour per strategy everywhere (:data:`PALETTE`).

Each ``plot_*`` draws from a loaded run (:func:`plot_dynamics`: several runs) and returns the
PNG's path, or None when there is nothing to draw yet.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from siked.mix import format_kl
from siked.report.load import IterationData, RunData
from siked.report.metrics import (
    _first_number,
    best_iteration,
    ci_of,
    dataset_result,
    eval_choice,
    eval_datasets,
    fmt_num,
    primary_dataset,
    self_generation_choice,
    self_generation_yield,
    teacher_choice,
    teacher_distribution,
)
from siked.rundir import VALIDATION, accuracy_of
from siked.strategies import NO_STRATEGY

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: One colour per strategy, used by every figure.
PALETTE: dict[str, str] = {
    "cot": "#1f77b4",  # blue
    "l2m": "#ff7f0e",  # orange
    "pot": "#2ca02c",  # green
    NO_STRATEGY: "#9e9e9e",  # grey: no / unknown strategy
}
#: Colours for strategies outside :data:`PALETTE` (picked by a stable hash of the name).
_EXTRA_COLOURS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#7b4173", "#393b79")
#: Colours of the three distributions of the mixing figure (distinct from the strategy colours).
DIST_COLOURS: dict[str, str] = {"P_LLM": "#6a3d9a", "P_student": "#e6ab02", "P_train": "#d62728"}
#: Colours of the datasets in the accuracy figure (validation is black).
_DATASET_COLOURS = ("#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79")

#: The figures, by key: their file names in ``report/``.
FIGURES = {
    "strategy_choice": "strategy_choice.png",
    "mixing": "mixing.png",
    "accuracy": "accuracy.png",
    "strategy_accuracy": "strategy_accuracy.png",
}


def strategy_colour(name: str) -> str:
    """The colour of a strategy: :data:`PALETTE`, else a stable colour from a spare list.

    >>> strategy_colour("pot")
    '#2ca02c'
    >>> strategy_colour("eqn") == strategy_colour("eqn")
    True
    """
    if name in PALETTE:
        return PALETTE[name]
    return _EXTRA_COLOURS[sum(map(ord, name)) % len(_EXTRA_COLOURS)]


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _stacked_shares(
    ax: Axes, labels: list[str], dists: list[dict[str, float]], keys: list[str], title: str
) -> None:
    import numpy as np

    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for k in keys:
        vals = np.array([100 * float(d.get(k, 0.0) or 0.0) for d in dists])
        if not vals.any():
            continue
        bars = ax.bar(x, vals, 0.65, bottom=bottom, color=strategy_colour(k), label=k)
        for rect, v, b in zip(bars, vals, bottom, strict=True):
            if v >= 7:
                ax.text(
                    rect.get_x() + rect.get_width() / 2,
                    b + v / 2,
                    f"{v:.0f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white",
                    fontweight="bold",
                )
        bottom += vals
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of solutions (%)")
    ax.set_title(title, fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)


def plot_strategy_choice(run: RunData, path: Path) -> Path | None:
    """Figure 1: D_LLM's strategy distribution vs the student's choices per iteration."""
    strategies = run.strategies
    teacher = teacher_distribution(run)
    primary = primary_dataset(eval_datasets(run))
    eval_labels, eval_dists = [], []
    gen_labels, gen_dists = [], []
    for it in run.iterations:
        if primary:
            d = eval_choice(dataset_result(it, primary), strategies)
            if d:
                eval_labels.append(f"iter {it.iteration}")
                eval_dists.append(d)
        g = self_generation_choice(run, it)
        if g:
            gen_labels.append(f"iter {it.iteration}")
            gen_dists.append(g)
    panels = []
    if eval_dists:
        panels.append((eval_labels, eval_dists, f"Student on {primary} (free choice)"))
    if gen_dists:
        panels.append((gen_labels, gen_dists, "Student self-generation (all samples)"))
    if not panels and not teacher and not teacher_choice(run):
        return None
    if not panels:
        panels.append(([], [], "Student: no evaluation or samples yet"))
    chosen = teacher_choice(run)
    keys: list[str] = []
    for d in [teacher, chosen, *eval_dists, *gen_dists]:
        for k in d:
            if k not in keys:
                keys.append(k)
    keys = [k for k in strategies if k in keys] + [k for k in keys if k not in strategies]
    keys = [k for k in keys if k != NO_STRATEGY] + ([NO_STRATEGY] if NO_STRATEGY in keys else [])

    fig = _new_figure(max(5.0, 3.2 * len(panels) + 1.2 * max(len(p[0]) for p in panels)), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (labels, dists, title) in zip(axes, panels, strict=True):
        head_labels = (["Teacher D_LLM\n(forced yield)"] if teacher else []) + (
            ["Teacher\n(free choice)"] if chosen else []
        )
        labs = head_labels + labels
        ds = ([teacher] if teacher else []) + ([chosen] if chosen else []) + dists
        _stacked_shares(ax, labs, ds, keys, title)
        if head_labels and labels:
            ax.axvline(len(head_labels) - 0.5, color="black", lw=0.8, ls=":")
    handles, labels_ = axes[0].get_legend_handles_labels()
    seen = dict(zip(labels_, handles, strict=True))
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        seen.update(dict(zip(lab, h, strict=True)))
    ordered = [k for k in keys if k in seen]
    fig.legend(
        [seen[k] for k in ordered],
        ordered,
        title="strategy",
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{run.name}: strategy distribution, teacher vs student", fontsize=12)
    return _save(fig, path)


def plot_mixing(run: RunData, path: Path) -> Path | None:
    """Figure 2: per SIKeD iteration, P_LLM / P_student / P_train, alpha and KL in the title."""
    import numpy as np

    its = [
        it
        for it in run.iterations
        if it.iteration > 0 and it.stats and isinstance(it.stats.get("p_train"), dict)
    ]
    if not its:
        return None
    strategies = run.strategies
    n = len(its)
    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig = _new_figure(3.3 * ncols + 1.6, 3.3 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    x = np.arange(len(strategies))
    width = 0.26
    names = [("P_LLM", "p_llm"), ("P_student", "p_student"), ("P_train", "p_train")]
    legend = {
        "P_LLM": "P_LLM: share in D_LLM\n(forced teacher's yield)",
        "P_student": "P_student: student's\ncorrect samples",
        "P_train": "P_train: training mix",
    }
    for idx, it in enumerate(its):
        ax = axes[idx // ncols][idx % ncols]
        st = it.stats or {}
        for j, (label, key) in enumerate(names):
            dist = st.get(key)
            if not isinstance(dist, dict):
                continue
            vals = [float(dist.get(s) or 0.0) for s in strategies]
            ax.bar(x + (j - 1) * width, vals, width, color=DIST_COLOURS[label], label=label)
        ax.set_xticks(x, strategies)
        for tick, s in zip(ax.get_xticklabels(), strategies, strict=True):
            tick.set_color(strategy_colour(s))
            tick.set_fontweight("bold")
        ax.set_ylim(0, 1.0)
        target = st.get("alpha_target")
        target_txt = f" (target {target:.2f})" if isinstance(target, int | float) else ""
        ax.set_title(
            f"iter {it.iteration}: α = {fmt_num(st.get('alpha'), 2)}{target_txt}\n"
            f"KL = {format_kl(st.get('kl'), st.get('kl_support'))}, "
            f"KL(all) = {fmt_num(st.get('kl_all'), 3)}",
            fontsize=10 if not target_txt else 9,
        )
        ax.grid(axis="y", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if idx % ncols == 0:
            ax.set_ylabel("probability")
        ax.set_xlabel("strategy")
    for idx in range(n, nrows * ncols):
        axes[idx // ncols][idx % ncols].set_visible(False)
    from matplotlib.patches import Patch

    handles = [Patch(color=DIST_COLOURS[k], label=legend[k]) for k, _ in names]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    fig.suptitle(
        f"{run.name}: training mix per iteration (siked's reading of the paper's Figure 2)\n"
        "KL = KL(P_train ‖ P_student), KL(all) = KL(P_train ‖ P_student over all samples)",
        fontsize=11,
    )
    return _save(fig, path)


def plot_accuracy(run: RunData, path: Path) -> Path | None:
    """Figure 3: accuracy per iteration and dataset (validation dashed), 95 % CI error bars."""
    datasets = eval_datasets(run)
    if not datasets:
        return None
    fig = _new_figure(7.5, 4.4)
    ax = fig.subplots()
    k = len(datasets)
    iters_all: list[int] = []
    colour_i = 0
    for j, d in enumerate(datasets):
        xs, ys, lo, hi = [], [], [], []
        for it in run.iterations:
            r = dataset_result(it, d)
            acc = accuracy_of(r)
            if acc is None:
                continue
            ci = ci_of(r)
            xs.append(it.iteration + (j - (k - 1) / 2) * 0.04)
            ys.append(100 * acc)
            lo.append(100 * (acc - ci[0]) if ci else 0.0)
            hi.append(100 * (ci[1] - acc) if ci else 0.0)
            iters_all.append(it.iteration)
        if not xs:
            continue
        if d == VALIDATION:
            colour, style = "black", "--"
        else:
            colour, style = _DATASET_COLOURS[colour_i % len(_DATASET_COLOURS)], "-"
            colour_i += 1
        ax.errorbar(
            xs,
            ys,
            yerr=[[max(v, 0.0) for v in lo], [max(v, 0.0) for v in hi]],
            color=colour,
            ls=style,
            marker="o",
            ms=5,
            capsize=3,
            lw=1.6,
            label=d,
        )
    if not iters_all:
        return None
    best = best_iteration(run)
    if best is not None:
        ax.axvline(best, color="grey", ls=":", lw=1.2, label=f"best on validation (iter {best})")
    ticks = sorted(set(iters_all))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlim(min(ticks) - 0.4, max(ticks) + 0.4)
    ax.set_xlabel("iteration (0 = distillation)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_title(f"{run.name}: accuracy per iteration (error bars: 95 % CI)", fontsize=11)
    return _save(fig, path)


def _grouped_bars(
    ax: Axes,
    groups: list[str],
    series: dict[str, list[float | None]],
    notes: dict[str, list[str]] | None = None,
) -> None:
    """Bars per group (x) and strategy (colour), heights in %; a value label on each bar."""
    import numpy as np

    keys = list(series)
    width = 0.8 / max(len(keys), 1)
    x = np.arange(len(groups))
    small = len(groups) * len(keys) > 12
    for j, s in enumerate(keys):
        vals = series[s]
        xs = x + (j - (len(keys) - 1) / 2) * width
        heights = [100 * v if v is not None else 0.0 for v in vals]
        ax.bar(xs, heights, width, color=strategy_colour(s), label=s)
        for i, (xi, v) in enumerate(zip(xs, vals, strict=True)):
            if v is None:
                continue
            label = f"{100 * v:.0f}"
            if notes and notes.get(s) and notes[s][i]:
                label += "\n" + notes[s][i]
            ax.text(xi, 100 * v + 1, label, ha="center", va="bottom", fontsize=6 if small else 7)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def plot_strategy_accuracy(run: RunData, path: Path) -> Path | None:
    """Figure 4: per-strategy accuracy per iteration (primary dataset) and the self-generation
    yield per strategy."""
    strategies = run.strategies
    primary = primary_dataset(eval_datasets(run))
    acc_groups: list[str] = []
    acc: dict[str, list[float | None]] = {}
    counts_txt: dict[str, list[str]] = {}
    if primary:
        evaluated = [
            (it, r)
            for it in run.iterations
            if (r := dataset_result(it, primary))
            and isinstance(r.get("per_strategy_accuracy"), dict)
        ]
        found = {s for _, r in evaluated for s in r["per_strategy_accuracy"]}
        keys = [s for s in strategies if s in found] + sorted(
            found - set(strategies) - {NO_STRATEGY}
        )
        for it, r in evaluated:
            acc_groups.append(f"iter {it.iteration}")
            psa, counts = r["per_strategy_accuracy"], r.get("strategy_counts") or {}
            for s in keys:
                v = psa.get(s)
                acc.setdefault(s, []).append(float(v) if isinstance(v, int | float) else None)
                c = counts.get(s)
                counts_txt.setdefault(s, []).append(f"n={c}" if isinstance(c, int) else "")
    yields = [(it.iteration, self_generation_yield(run, it)) for it in run.iterations]
    yields = [(n, y) for n, y in yields if any(v is not None for v in y.values())]
    has_acc = any(v is not None for vals in acc.values() for v in vals)
    if not has_acc and not yields:
        return None
    panels = int(has_acc) + int(bool(yields))
    n_groups = max(len(acc_groups), len(yields))
    panel_w = 2.4 + 1.1 * n_groups
    if panels == 2 and n_groups > 4:  # many iterations: stack the panels
        fig = _new_figure(panel_w + 1.3, 8.2)
        axes = [row[0] for row in fig.subplots(2, 1, squeeze=False)]
    else:
        fig = _new_figure(panels * panel_w + 1.3, 4.3)
        axes = list(fig.subplots(1, panels, squeeze=False)[0])
    shown: list[str] = []
    if has_acc:
        ax = axes.pop(0)
        _grouped_bars(ax, acc_groups, acc, counts_txt)
        ax.set_xlabel("iteration")
        ax.set_ylabel("accuracy of answers with that strategy (%)")
        ax.set_title(f"Per-strategy accuracy on {primary}\n(n = times chosen)", fontsize=10)
        shown += list(acc)
    if yields:
        ax = axes.pop(0)
        keys = [s for s in strategies if any(y.get(s) is not None for _, y in yields)]
        _grouped_bars(
            ax, [f"iter {n}" for n, _ in yields], {s: [y.get(s) for _, y in yields] for s in keys}
        )
        ax.set_xlabel("model that generated the samples")
        ax.set_ylabel("correct samples (%)")
        ax.set_title(
            "Self-generation yield per strategy\n(correct / generated, → D_self)", fontsize=10
        )
        shown += [s for s in keys if s not in shown]
    from matplotlib.patches import Patch

    legend_keys = [s for s in strategies if s in shown] + [s for s in shown if s not in strategies]
    fig.legend(
        handles=[Patch(color=strategy_colour(s), label=s) for s in legend_keys],
        title="strategy",
        loc="outside right center",
        frameon=False,
    )
    fig.suptitle(f"{run.name}: strategies per iteration", fontsize=12)
    return _save(fig, path)


def _series(
    runs: Sequence[RunData], value: Callable[[RunData, IterationData], float | None]
) -> list[tuple[str, list[int], list[float]]]:
    """Per run: (name, iterations, values) where ``value`` is known."""
    out = []
    for run in runs:
        pts = [(it.iteration, value(run, it)) for it in run.iterations]
        xs = [n for n, v in pts if v is not None]
        ys = [float(v) for _, v in pts if v is not None]
        if xs:
            out.append((run.name, xs, ys))
    return out


def _own_correct(run: RunData, it: IterationData) -> float | None:
    """Share of the samples the model of iteration ``it`` generated that were correct."""
    return _first_number(it.sample_stats or {}, ("yield",))


def _mix_number(key: str) -> Callable[[RunData, IterationData], float | None]:
    def get(run: RunData, it: IterationData) -> float | None:
        return _first_number(it.stats or {}, (key,))

    return get


def _validation(run: RunData, it: IterationData) -> float | None:
    return accuracy_of(dataset_result(it, VALIDATION))


def dynamics_series(
    runs: Sequence[RunData],
) -> dict[str, list[tuple[str, list[int], list[float]]]]:
    """What :func:`plot_dynamics`'s top row draws: per quantity, per run (name, iterations,
    values), fractions (not %); iterations without the quantity are left out."""
    return {
        "validation": _series(runs, _validation),
        "own_correct": _series(runs, _own_correct),
        "alpha": _series(runs, _mix_number("alpha")),
        "kl": _series(runs, _mix_number("kl")),
    }


def plot_dynamics(runs: Sequence[RunData], path: Path, focus: RunData | None = None) -> Path | None:
    """The mechanism across iterations, several runs on one figure (``siked compare --plot``).

    Top row, one line per run: validation accuracy, the share of its own samples each model
    solved, the mix's alpha (the teacher rows' share: it falls as the student's own correct
    rationales replace them) and KL(P_train ‖ P_student).
    Bottom row, for ``focus`` (default: the first run with self-generated samples): the share of
    correct samples per strategy the student chose and how often it chose each strategy.
    """
    found = dynamics_series(runs)
    panels = [  # (y label, title, series, in %)
        ("validation accuracy (%)", "greedy, held out", found["validation"], True),
        (
            "own samples correct (%)",
            "samples of the model of iteration n",
            found["own_correct"],
            True,
        ),
        ("alpha", "teacher rows' share in the mix of iteration n", found["alpha"], False),
        ("KL(P_train ‖ P_student)", "mix of iteration n", found["kl"], False),
    ]
    if focus is None:
        focus = next((r for r in runs if any(it.sample_stats for it in r.iterations)), None)
    if not any(found.values()):
        return None
    fig = _new_figure(15.0, 7.6 if focus else 3.9)
    grid = fig.subplots(2 if focus else 1, 4, squeeze=False)
    colours = {r.name: _DATASET_COLOURS[i % len(_DATASET_COLOURS)] for i, r in enumerate(runs)}
    ticks: set[int] = {it.iteration for r in runs for it in r.iterations}
    for ax, (ylabel, title, series, pct) in zip(grid[0], panels, strict=True):
        for name, xs, ys in series:
            vals = [100 * y for y in ys] if pct else ys
            ax.plot(xs, vals, marker="o", ms=4, lw=1.5, color=colours[name], label=name)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        if not series:
            ax.text(0.5, 0.5, "none yet", ha="center", va="center", transform=ax.transAxes)
    if focus is not None:
        its = [it for it in focus.iterations if it.sample_stats]
        strategies = focus.strategies
        yields = {s: [self_generation_yield(focus, it).get(s) for it in its] for s in strategies}
        choice = {s: [self_generation_choice(focus, it).get(s) for it in its] for s in strategies}
        for ax, data, ylabel in (
            (grid[1][0], yields, "correct samples of that strategy (%)"),
            (grid[1][1], choice, "samples written in that strategy (%)"),
        ):
            for s, shares in data.items():
                pts = [
                    (it.iteration, 100 * v)
                    for it, v in zip(its, shares, strict=True)
                    if v is not None
                ]
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        marker="o",
                        ms=4,
                        lw=1.5,
                        color=strategy_colour(s),
                        label=s,
                    )
            ax.set_ylabel(ylabel)
            ax.set_ylim(0, 102)
            ax.set_title(f"{focus.name}: self-generation per strategy", fontsize=9)
            ax.legend(fontsize=8, frameon=False)
        for ax in grid[1][2:]:
            ax.set_visible(False)
    for ax in grid.flat:
        if ax.get_visible():
            ax.set_xticks(sorted(ticks))
            ax.set_xlabel("iteration (0 = distillation)")
            ax.grid(alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
    handles, labels = grid[0][0].get_legend_handles_labels()
    for ax in grid[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        handles += [x for x, n in zip(h, lab, strict=True) if n not in labels]
        labels += [n for n in lab if n not in labels]
    if handles:
        fig.legend(handles, labels, title="run", loc="outside right center", frameon=False)
    fig.suptitle("SIKeD's mechanism per iteration", fontsize=12)
    return _save(fig, path)
