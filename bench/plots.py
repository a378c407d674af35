"""Charts for a HumanEval run: scores per configuration and latency CDFs.

Drawn from the result JSON alone (not from live objects), so an old run can be re-plotted:
`plot_report(json.loads(path.read_text()), path.with_suffix(""))`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator

COLORS = {"raw": "#7f7f7f", "pipeline": "#1f77b4"}


def plot_report(data: dict[str, Any], stem: Path) -> list[Path]:
    """Write `<stem>-scores.png` and `<stem>-latency.png`; returns their paths."""
    title = _title(data["meta"])
    scores = stem.with_name(stem.name + "-scores.png")
    latency = stem.with_name(stem.name + "-latency.png")
    plot_scores(data["summary"], scores, title)
    plot_latency(data, latency, title)
    return [scores, latency]


def _title(meta: dict[str, Any]) -> str:
    return (f"HumanEval {meta['holes']}-line infilling — {meta['model']} "
            f"({meta['tasks']} tasks, max {meta['max_tokens']} tokens)")


def plot_scores(summary: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """Grouped bars per configuration: exact match, pass@1 and (pale, for context) the share
    of spliced programs that compile; values written on the bars."""
    configs = list(summary)
    width = 0.27
    fig, ax = plt.subplots(figsize=(max(7.0, 1.05 * len(configs) + 2), 4.8), dpi=110)
    xs = range(len(configs))
    bars_spec = [(-width, "exact", "exact match", "#ff7f0e"), (0.0, "pass@1", "pass@1", "#2ca02c"),
                 (width, "syntax_ok", "compiles", "#c7c7c7")]
    for offset, key, label, color in bars_spec:
        values = [100 * summary[c].get(key, 0.0) for c in configs]
        bars = ax.bar([x + offset for x in xs], values, width, label=label, color=color)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=7, padding=2)
    ax.set_xticks(list(xs), [c.replace("pipeline-no-", "no ") for c in configs],
                  rotation=30, ha="right")
    ax.set_ylabel("% of tasks")
    ax.set_ylim(0, 112)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", ncols=3, fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(data: dict[str, Any], path: Path, title: str) -> None:
    """Empirical CDF of per-task latency for each configuration (log time axis: latencies
    span milliseconds to seconds). Ablations share the pipeline's generation, so they are
    drawn thin and dashed under it."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    configs = list(data["summary"])
    for config in configs:
        values = sorted(t["results"][config]["latency_ms"] for t in data["tasks"])
        if not values:
            continue
        ys = [(i + 1) / len(values) for i in range(len(values))]
        main = config in COLORS
        ax.step([max(v, 1e-3) for v in values], ys, where="post", label=config,
                color=COLORS.get(config), linewidth=2.2 if main else 0.9,
                linestyle="-" if main else "--", alpha=1.0 if main else 0.7,
                zorder=3 if main else 2)
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="both", labelsize=8)
    ax.set_xlabel("latency per task (ms, log scale)")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
