"""The file-switch replay (bench/file_switch.py), end to end on tiny files.

The real `ghostfill serve` runs over stdio with a scripted engine in place of the model
(tests/scripted_server.py), so the run takes seconds; the figures in the JSON must be the
ones the keystrokes measured.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pygls.lsp.client import LanguageClient

from ghostfill.bench import file_switch
from ghostfill.bench.latency import pct
from tests.conftest import vocab

HERE = Path(__file__).resolve().parent
SCRIPTED = HERE / "scripted_server.py"
#: `tests/scripted_server.py`, whatever arguments the engine's `create_backend` passes on
#: (the script's stand-in takes the config and the progress callback).
LAUNCHER = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("scripted_server", {str(SCRIPTED)!r})
scripted_server = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scripted_server)
scripted_server._install()
from ghostfill.backends import factory
scripted = factory.create_backend
factory.create_backend = lambda config, on_progress=None, *rest: scripted(config, on_progress)
from ghostfill.cli import main
sys.exit(main(["serve"]))
"""
LINE = "total = width * height + 0"
SOURCE = f'def area(width, height):\n    """Area."""\n    {LINE}\n    return total\n'


def test_file_switch_replay_reports_what_it_measured(tmp_path, monkeypatch):
    vocab("starcoder")  # the scripted engine's tokenizer; skips without it
    script = tmp_path / "script.json"
    # The rest of the line once "tot" is typed: shown from the model, then typed through.
    script.write_text(json.dumps({"answer": LINE[3:], "token_ms": 1}))
    start_io = LanguageClient.start_io

    async def scripted(self, cmd, *args, **kwargs):  # both replays start `ghostfill serve`
        assert args[-2:] == ("ghostfill", "serve")
        return await start_io(self, sys.executable, "-c", LAUNCHER,
                              env={**os.environ, "GHOSTFILL_SCRIPT": str(script)})

    monkeypatch.setattr(LanguageClient, "start_io", scripted)
    files = []
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(SOURCE)
        files.append(str(tmp_path / name))
    out = tmp_path / "results"
    assert file_switch.main(["--files", ",".join(files), "--chars", "3", "--rounds", "2",
                             "--modes", "inprocess", "--settle-s", "1", "--typing-lines", "1",
                             "--budget-ms", "5000",
                             "--out", str(out)]) == 0

    [path] = out.glob("file-switch-*.json")
    assert path.with_suffix(".png").stat().st_size > 0
    data = json.loads(path.read_text())
    assert data["command"].startswith("python -m ghostfill.bench.file_switch --files")
    assert [f["line"] for f in data["files"]] == [3, 3]
    assert [f["text"] for f in data["files"]] == [LINE, LINE]
    [run] = data["runs"]
    assert run["settings"]["server"]["engine"] == "inprocess"
    # The scripted "model" loads in a moment, but a loaded machine may still be loading it.
    assert run["settle"]["settle_s"] == 1.0 and run["settle"]["error"] is None
    assert run["settle"]["state"] in ("loading", "ready")
    ks = run["keystrokes"]
    # Round-robin: 3 characters in a.py, 3 in b.py, then the next 3 in each.
    assert [(k["file"], k["round"], k["index"]) for k in ks] == [
        (f, r, i) for r in range(2) for f in ("a.py", "b.py") for i in range(3)]
    assert [k["rest"] for k in ks[:3]] == [LINE[1:], LINE[2:], LINE[3:]]
    assert [k["rest"] for k in ks[6:9]] == [LINE[4:], LINE[5:], LINE[6:]]
    assert all(k["latency_ms"] > 0 for k in ks)
    assert [k["at_s"] for k in ks] == sorted(k["at_s"] for k in ks)
    assert sum(k["shown"] for k in ks) >= 6  # the scripted engine answers every time
    for k in ks:
        assert k["shown"] == bool(k["text"])
        assert k["matched"] == (k["shown"] and k["rest"].startswith(k["text"]))
    assert any(k["matched"] for k in ks) and not all(k["matched"] for k in ks)

    [summary, typing] = data["summaries"]
    assert (summary["kind"], summary["mode"], typing["kind"]) == ("file-switch", "inprocess",
                                                                  "typing")
    latencies = [k["latency_ms"] for k in ks]
    assert summary["keystrokes"] == 12
    assert summary["p50_ms"] == round(pct(latencies, 50), 1)
    assert summary["p95_ms"] == round(pct(latencies, 95), 1)
    assert summary["shown"] == sum(k["shown"] for k in ks)
    assert summary["matched"] == sum(k["matched"] for k in ks)
    # Switches: every visit but the first; their first keystrokes.
    firsts = [k["latency_ms"] for k in ks[3::3]]
    assert summary["switches"] == 3
    assert summary["switch_first_p95_ms"] == round(pct(firsts, 95), 1)
    assert summary["return_first_p50_ms"] == round(pct(firsts[1:], 50), 1)
    assert summary["sources"] and sum(summary["sources"].values()) == 12
    assert set(summary["goals"]) >= {"switch_first_p95_le_250ms", "shown_share_ge_75pct",
                                     "typing", "p95_no_worse"}
    # The single-file typing replay on the first file's cursor line, the same settings.
    assert typing["keystrokes"] == len(LINE)
    [replay] = data["typing"]
    assert replay["config"]["server"]["engine"] == "inprocess"
    assert [k["file"] for k in replay["keystrokes"]] == ["a.py"] * len(LINE)
