"""Grouped bars of per-hole scores, one group per metric and one bar per condition: the chart
of the repo-level benchmark and of the commit replay (both score a line against the truth
with the same metrics, `bench/repo.py`)."""

from __future__ import annotations

from typing import Any

#: The scores both benchmarks report (label, summary key), shares in 0..1.
METRICS = [("exact match", "exact_share"), ("edit similarity", "edit_similarity"),
           ("identifier EM", "identifier_em"), ("identifier F1", "identifier_f1")]


def score_bars(ax: Any, summary: dict[str, dict[str, Any]], metrics: list[tuple[str, str]],
               colors: dict[str, str], title: str) -> None:
    """Draw on the matplotlib axes `ax`; values in % written on the bars."""
    names = list(summary)
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        values = [100 * summary[name][key] for _, key in metrics]
        xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(metrics))]
        bars = ax.bar(xs, values, width, label=name, color=colors.get(name))
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=1)
    ax.set_xticks(range(len(metrics)), [m for m, _ in metrics])
    ax.set_ylabel("% (mean over holes)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, ncols=len(names))
    ax.grid(axis="y", alpha=0.3)
