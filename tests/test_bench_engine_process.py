"""The engine-process benchmarks (bench/engine_process.py) on tiny settings: real engines, real
`ghostfill serve` and `ghostfill complete` processes, the default model with a 512-token
window and one thread. The figures in each JSON must be the ones the run measured (recomputed
here from its records), and every engine a run started must be gone after it."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from ghostfill.bench import engine_process
from ghostfill.bench.latency import pct

TINY = ["--context-length", "512", "--threads", "1"]


def run(tmp_path: Path, name: str, *args: str) -> dict[str, Any]:
    runtime = os.environ.get("GHOSTFILL_RUNTIME_DIR")
    out = tmp_path / "results"
    assert engine_process.main([name, *TINY, *args, "--out", str(out)]) == 0
    assert os.environ.get("GHOSTFILL_RUNTIME_DIR") == runtime  # the private folder was put back
    [path] = out.glob(f"engine-{name}-*.json")
    assert path.with_suffix(".png").stat().st_size > 0
    data = json.loads(path.read_text())
    assert data["command"].startswith(f"python -m ghostfill.bench.engine_process {name}")
    return data


def gone(pid: int) -> bool:
    """Exited (a zombie not yet reaped by its starter counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_ipc_reports_the_paired_keystrokes_it_measured(tmp_path: Path):
    data = run(tmp_path, "ipc", "--files", "1", "--lines", "1", "--chars", "3",
               "--max-tokens", "6", "--roundtrips", "3", "--pings", "20")
    ks = data["keystrokes"]
    assert [k["typed"] for k in ks] == [1, 2, 3]
    assert [k["first"] for k in ks] == ["engine", "inprocess", "engine"]  # A/B interleaved
    for k in ks:
        for mode in ("engine", "inprocess"):
            r = k[mode]
            assert r["calls"] >= 1 and r["model_ms"] > 0
            assert r["wall_ms"] >= r["backend_wall_ms"] > 0
    s = data["summary"]
    for mode in ("engine", "inprocess"):
        walls = [k[mode]["wall_ms"] for k in ks]
        assert s[mode]["wall"]["p50_ms"] == round(pct(walls, 50), 2)
        assert s[mode]["wall"]["p95_ms"] == round(pct(walls, 95), 2)
    diff = [k["engine"]["wall_ms"] - k["inprocess"]["wall_ms"] for k in ks]
    assert s["paired_diff"]["p50_ms"] == round(pct(diff, 50), 2)
    assert s["paired_diff"]["mean_ms"] == round(statistics.fmean(diff), 2)
    pings = data["roundtrips"]["empty"]
    assert len(pings) == 20 and len(data["roundtrips"]["generate1"]) == 3
    ping_diff = [r["engine"]["wall_ms"] - r["inprocess"]["wall_ms"] for r in pings]
    assert s["roundtrip"]["empty"]["diff"]["p50_ms"] == round(pct(ping_diff, 50), 3)
    # The crossing is real: an engine round trip costs more than a call in this process.
    assert s["roundtrip"]["empty"]["engine"]["p50_ms"] > s["roundtrip"]["empty"]["inprocess"][
        "p50_ms"]
    assert all(r["engine"]["generated_tokens"] == 1 for r in data["roundtrips"]["generate1"])
    assert data["goals"]["p50_overhead_le_2ms"] == (s["paired_diff"]["p50_ms"] <= 2.0)
    options = data["options"]
    assert options["engine"]["engine"] == "shared" and "engine" not in options["inprocess"]
    assert gone(options["engine"]["engine_pid"])


def test_memory_counts_one_engine_for_the_servers_and_the_command(tmp_path: Path):
    data = run(tmp_path, "memory", "--servers", "2", "--max-tokens", "4", "--settle-s", "0.2")
    shared, inproc = data["shared"], data["inprocess"]
    assert shared["engines"] == 1 and shared["engine_clients"] == 2
    complete = shared["complete"]
    assert complete["returncode"] == 0
    # `ghostfill complete` was served by the servers' engine (no engine of its own).
    assert complete["engine_served_after"] > complete["engine_served_before"]
    roles = [p["role"] for p in shared["processes"]]
    assert roles == ["server 1", "server 2", "engine"]
    assert len({p["pid"] for p in shared["processes"]}) == 3
    assert inproc["engines"] == 0 and len(inproc["processes"]) == 1
    for key in ("rss_mib", "pss_mib"):
        a = round(sum(p[key] for p in shared["processes"]), 1)
        b = round(sum(p[key] for p in inproc["processes"]), 1)
        assert data["totals"][key]["shared"] == a and data["totals"][key]["inprocess"] == b
        assert data["totals"][key]["ratio"] == round(a / b, 3)
    assert data["goals"]["rss_ratio_le_1_3"] == (data["totals"]["rss_mib"]["ratio"] <= 1.3)
    assert all(gone(p["pid"]) for p in shared["processes"] + inproc["processes"])


def test_recovery_kills_the_engine_mid_generation_and_times_the_way_back(tmp_path: Path):
    data = run(tmp_path, "recovery", "--incidents", "2", "--kill-after-s", "0.5",
               "--wait-s", "120")
    incidents = data["incidents"]
    assert [i["signal"] for i in incidents] == ["SIGKILL", "SIGSEGV"]
    assert len(data["load_s"]) == 2 and all(x > 0 for x in data["load_s"])
    for i in incidents:
        assert i["answered"] and i["answer_text"] == ""  # answered empty, no hang
        assert i["served_again_s"] is not None and i["served_again_s"] > 0
        assert i["polls"][-1][1] == i["served_again_s"] and i["polls"][-1][2] == 1.0
        assert i["new_engine_pid"] not in (None, i["engine_pid"])
        assert gone(i["engine_pid"])
        [message] = i["messages"]  # one warning per incident
        assert f"pid {i['engine_pid']}" in message
        assert i["server_alive"] and i["server_rss_mib"] > 0
    s = data["summary"]
    assert s["hangs"] == 0 and s["messages_per_incident"] == [1, 1]
    served = [i["served_again_s"] for i in incidents]
    assert s["served_again_s"]["max"] == max(served)
    assert s["load_s_mean"] == round(statistics.fmean(data["load_s"]), 2)
    rss = [i["server_rss_mib"] for i in incidents]
    assert s["server_rss_mib"]["slope_per_incident"] == round(rss[1] - rss[0], 3)
    limit = statistics.fmean(data["load_s"]) + 2.0
    assert data["goals"]["serves_again_within_load_plus_2s"] == all(x <= limit for x in served)
    assert data["server_alive_throughout"]
    assert gone(incidents[-1]["new_engine_pid"])
