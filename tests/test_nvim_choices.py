"""Several suggestions in the Neovim plugin (issue #19): with one suggestion shown (a
keystroke asks for one), <M-]> asks the server with the invoked trigger and shows the second of
the several it answers, with a "(2/3)" hint; <M-[> goes back, and past the first to the last.

A real headless Neovim runs tests/nvim/choices.lua against the real server with the scripted
engine (tests/scripted_server.py), so which suggestions come is known.
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

pytestmark = pytest.mark.slow

GREEDY = "return sum(values) / len(values)"
#: What the scripted model says once the first words before are banned ("return 0" starts
#: like the greedy answer and is skipped with it).
ALTERNATIVES = ["return 0", "raise ValueError(values)", "total = sum(values)"]
SHOWN = ["raise ValueError(values)", "total = sum(values)"]


def test_cycling_shows_the_other_suggestions(tmp_path: Path):
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    vocab("starcoder")  # the scripted engine's vocabulary; skips without it
    files = tmp_path / "files"
    files.mkdir()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"answer": GREEDY, "alternatives": ALTERNATIVES}))
    out = tmp_path / "report.json"
    options = {"server": {"engine": "inprocess", "warmOnOpen": False, "prefetch": False,
                          "debounceMs": 0},
               "completion": {"choices": 3, "latencyBudgetMs": 10_000}}
    env = dict(os.environ)
    env.update({
        "GHOSTFILL_ROOT": str(ROOT),
        "GHOSTFILL_TEST_CMD": json.dumps([sys.executable,
                                          str(ROOT / "tests" / "scripted_server.py")]),
        "GHOSTFILL_SCRIPT": str(script),
        "GHOSTFILL_TEST_OPTIONS": json.dumps(options),
        "GHOSTFILL_TEST_OUT": str(out),
        "GHOSTFILL_TEST_DIR": str(files),
        "GHOSTFILL_TEST_BUDGET_S": "100",
        "GHOSTFILL_GREEDY": GREEDY,
        "GHOSTFILL_ALTERNATIVES": json.dumps(SHOWN),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    })
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(ROOT / "tests" / "nvim" / "init.lua"),
         "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'choices.lua'}"],
        cwd=files, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert out.exists(), (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert "_harness" not in report or report["_harness"]["ok"], report
    result = report["cycle_asks_for_more_and_moves_between_them"]
    assert result["ok"], f"{result['error']}\n{json.dumps(result['data'])}"
