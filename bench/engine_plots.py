"""Charts for the engine-process benchmarks (bench/engine_process.py), drawn from a result's
JSON alone, so an old run can be re-plotted:
`plot_ipc(json.loads(path.read_text()), path.with_suffix(".png"))` (likewise `plot_memory`,
`plot_recovery`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server

import matplotlib.pyplot as plt

COLORS = {"engine": "#1f77b4", "inprocess": "#ff7f0e", "SIGKILL": "#d62728",
          "SIGSEGV": "#9467bd"}


def _cdf(ax: Any, values: list[float], label: str, color: str | None = None) -> None:
    values = sorted(values)
    if not values:
        return
    ys = [(i + 1) / len(values) for i in range(len(values))]
    ax.step(values, ys, where="post", label=label, color=color)


def plot_ipc(data: dict[str, Any], path: Path) -> None:
    """Left: per-keystroke wall time, engine process vs in-process (CDF). Right: the paired
    per-keystroke difference and the round trips' differences (CDF), with the 2 ms goal."""
    s = data["summary"]
    ks = data["keystrokes"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    for mode, label in (("engine", "shared engine process"), ("inprocess", "in-process")):
        _cdf(left, [k[mode]["wall_ms"] for k in ks],
             f"{label} (p50 {s[mode]['wall'].get('p50_ms')} ms)", COLORS[mode])
    left.set_xscale("log")
    left.set_xlabel("keystroke → suggestion, engine level (ms, log scale)")
    left.set_ylabel("share of keystrokes")
    left.set_title(f"typing replay, {s['keystrokes']} keystrokes, A/B interleaved", fontsize=10)
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8, loc="lower right")
    _cdf(right, [k["engine"]["wall_ms"] - k["inprocess"]["wall_ms"] for k in ks],
         f"keystroke, wall (p50 {s['paired_diff'].get('p50_ms')} ms)", "#1f77b4")
    _cdf(right, [(k["engine"]["wall_ms"] - k["engine"]["model_ms"])
                 - (k["inprocess"]["wall_ms"] - k["inprocess"]["model_ms"]) for k in ks],
         f"keystroke, outside the model (p50 "
         f"{s['paired_diff_outside_model'].get('p50_ms')} ms)", "#2ca02c")
    trips = data["roundtrips"]
    rt = s["roundtrip"]
    if trips.get("empty"):
        _cdf(right, [r["engine"]["wall_ms"] - r["inprocess"]["wall_ms"] for r in trips["empty"]],
             f"round trip, no model (p50 {rt['empty']['diff'].get('p50_ms')} ms)", "#7f7f7f")
    if trips.get("generate1"):
        _cdf(right, [(r["engine"]["wall_ms"] - r["engine"]["model_ms"])
                     - (r["inprocess"]["wall_ms"] - r["inprocess"]["model_ms"])
                     for r in trips["generate1"]],
             f"1-token generation, outside the model (p50 "
             f"{rt['generate1']['outside_model_diff'].get('p50_ms')} ms)", "#8c564b")
    right.axvline(data["goal"]["p50_overhead_ms_max"], color="grey", linestyle="--",
                  linewidth=1)
    right.axvline(0, color="black", linewidth=0.6)
    # Symmetric log: the crossing (about a millisecond) and the model's drift between two
    # runs of the same request (up to seconds on a busy machine) on one axis.
    right.set_xscale("symlog", linthresh=1.0)
    right.set_xlabel("engine − in-process, same request (ms, symlog; goal: p50 ≤ 2 ms, "
                     "dashed)")
    right.set_ylabel("share of requests")
    right.set_title("paired difference", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"engine process vs in-process — {data['settings']['model']}, "
                 f"{data['machine']['cpus']} CPUs (load {data['machine']['load_avg'][0]})",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_memory(data: dict[str, Any], path: Path) -> None:
    """Stacked bars: the servers and the engine (shared) next to the one in-process server,
    in RSS and PSS, with the 1.3x goal over the in-process bar."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), dpi=110)
    palette = ["#aec7e8", "#98df8a", "#ffbb78", "#c5b0d5", "#c49c94", "#f7b6d2"]
    for ax, key, label in zip(axes, ("rss_mib", "pss_mib"), ("RSS", "PSS"), strict=True):
        bottom = 0.0
        shared = data["shared"].get("processes") or []
        for i, p in enumerate(shared):
            value = float(p.get(key) or 0.0)
            color = "#1f77b4" if p["role"] == "engine" else palette[i % len(palette)]
            ax.bar(0, value, bottom=bottom, color=color, edgecolor="white")
            if value:
                ax.text(0, bottom + value / 2, f"{p['role']}\n{value:.0f}", ha="center",
                        va="center", fontsize=7)
            bottom += value
        inproc = data["inprocess"].get("processes") or []
        base = float(inproc[0].get(key) or 0.0) if inproc else 0.0
        ax.bar(1, base, color="#ff7f0e")
        ax.text(1, base / 2, f"in-process\nserver\n{base:.0f}", ha="center", va="center",
                fontsize=7)
        goal = data["goal"]["ratio_max"] * base
        ax.hlines(goal, 0.55, 1.45, color="grey", linestyle="--", linewidth=1)
        ax.text(1.45, goal, f" {data['goal']['ratio_max']}×", va="center", fontsize=8)
        totals = data["totals"][key]
        ax.set_xticks([0, 1], [f"{data['settings']['servers']} servers + engine\n"
                               f"{totals['shared']} MiB",
                               f"1 server, inprocess\n{totals['inprocess']} MiB"])
        ax.set_ylabel(f"{label} (MiB)")
        ax.set_title(f"{label}: ratio {totals['ratio']} (goal ≤ {data['goal']['ratio_max']})",
                     fontsize=10)
        ax.set_xlim(-0.6, 1.8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"memory: {data['settings']['servers']} servers sharing one engine vs one "
                 f"in-process server — {data['settings']['model']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_recovery(data: dict[str, Any], path: Path) -> None:
    """Left: per incident, kill → suggestion again (bars by signal) against the load time +
    2 s. Right: the server's RSS after each incident, with its fitted slope."""
    incidents = data["incidents"]
    s = data["summary"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    xs = [i["n"] for i in incidents]
    for sig in ("SIGKILL", "SIGSEGV"):
        rows = [i for i in incidents if i["signal"] == sig]
        # Lower part: kill -> "engine is back"; upper part (pale): -> a suggestion shown.
        restored = [min(i["restored_logged_s"] or 0.0, i["served_again_s"] or 0.0)
                    for i in rows]
        left.bar([i["n"] for i in rows], restored, color=COLORS[sig],
                 label=f"{sig}: engine back")
        left.bar([i["n"] for i in rows],
                 [(i["served_again_s"] or 0.0) - r for i, r in zip(rows, restored, strict=True)],
                 bottom=restored, color=COLORS[sig], alpha=0.35,
                 label=f"{sig}: then a suggestion")
    for i in incidents:
        count = len(i["messages"])
        left.text(i["n"], (i["served_again_s"] or 0.0), f"{count}", ha="center",
                  va="bottom", fontsize=7, color="black" if count == 1 else "red")
    if s.get("limit_s") is not None:
        left.axhline(s["limit_s"], color="grey", linestyle="--", linewidth=1,
                     label=f"load time + 2 s = {s['limit_s']} s")
    if s.get("load_s_mean") is not None:
        left.axhline(s["load_s_mean"], color="grey", linestyle=":", linewidth=1,
                     label=f"load time {s['load_s_mean']} s")
    left.set_xlabel("incident (number over the bar: window/showMessage messages)")
    left.set_ylabel("kill → non-empty suggestion again (s)")
    left.set_title(f"{s['served_again_within_limit']}/{s['incidents']} within the limit, "
                   f"{s['hangs']} hangs", fontsize=10)
    left.legend(fontsize=8, loc="lower right")
    left.grid(axis="y", alpha=0.3)
    rss = [i["server_rss_mib"] for i in incidents]
    right.plot(xs, rss, marker="o", color="#2ca02c", label="server RSS")
    points = [(x, y) for x, y in zip(xs, rss, strict=True) if y is not None]
    if len(points) >= 2:
        k = s["server_rss_mib"]["slope_per_incident"]
        mean_x = sum(x for x, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        right.plot([points[0][0], points[-1][0]],
                   [mean_y + k * (points[0][0] - mean_x), mean_y + k * (points[-1][0] - mean_x)],
                   linestyle="--", color="grey", label=f"slope {k} MiB/incident")
    right.set_xlabel("incident")
    right.set_ylabel("language server RSS after the incident (MiB)")
    right.set_title("server memory across incidents", fontsize=10)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle(f"engine killed mid-generation — {data['settings']['model']}, "
                 f"{data['machine']['cpus']} CPUs", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
