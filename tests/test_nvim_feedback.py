"""The Neovim plugin reports what became of a suggestion (editors/nvim/lua/ghostfill/feedback.lua):
textDocument/didShowCompletion when it is drawn, didPartiallyAcceptCompletion for an accepted
word, the item's command for the rest; seen through the server's `ghostfill/stats`. A real
headless Neovim with the plugin (tests/nvim/harness.lua), the real server with a scripted
engine (tests/scripted_server.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, vocab
from tests.test_nvim_plugin import find_nvim

ANSWER = "return sum(values) / len(values)"
OPTIONS = {"server": {"debounceMs": 0, "warmOnOpen": False, "prefetch": False,
                      "engine": "inprocess"},
           "completion": {"latencyBudgetMs": 10_000, "invokedBudgetMs": 10_000}}


def test_accepting_a_word_sends_did_partially_accept_completion(tmp_path: Path):
    vocab("starcoder")
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"answer": ANSWER}))
    files = tmp_path / "files"
    files.mkdir()
    out = tmp_path / "report.json"
    env = {**os.environ,
           "GHOSTFILL_ROOT": str(ROOT),
           "GHOSTFILL_TEST_CMD": json.dumps([sys.executable,
                                             str(ROOT / "tests" / "scripted_server.py")]),
           "GHOSTFILL_TEST_OPTIONS": json.dumps(OPTIONS),
           "GHOSTFILL_SCRIPT": str(script),
           "GHOSTFILL_STATE_DIR": str(tmp_path / "state-ghostfill"),
           "GHOSTFILL_TEST_OUT": str(out),
           "GHOSTFILL_TEST_DIR": str(files),
           "GHOSTFILL_TEST_BUDGET_S": "100",
           "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    cmd = [nvim, "--headless", "--clean", "-u", str(ROOT / "tests" / "nvim" / "init.lua"),
           "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'feedback_cases.lua'}"]
    proc = subprocess.run(cmd, cwd=files, env=env, capture_output=True, text=True, timeout=150,
                          check=False)
    assert out.exists(), (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert report["format_stats"]["data"]["last"] == (
        "python:      4 shown, 1 accepted, 2 in part, 1 typed over; 30/80 characters kept (38%)")
    result = report.get("accept_word_then_all")
    assert result is not None, report
    assert result["ok"], result
    data = result["data"]
    assert data["suggestion"] == ANSWER
    assert data["shown"] == {"shown": 1, "accepted": 0, "partial": 0, "rejected": 0,
                             "chars_shown": len(ANSWER), "chars_kept": 0}
    after_word = data["after_word"]
    assert after_word["partial"] == 1 and after_word["accepted"] == 0
    assert after_word["chars_kept"] == len("return")
    assert after_word["shown"] == 1  # the rest on screen is the same suggestion
    after_all = data["after_all"]
    assert after_all["accepted"] == 1 and after_all["chars_kept"] == len(ANSWER)
    assert data["line"] == "    " + ANSWER

    rejected = report["typed_over_then_back"]
    assert rejected["ok"], rejected
    assert rejected["data"]["ghost_after_backspace"] == 0
    assert rejected["data"]["counts"]["rejected"] == 1
