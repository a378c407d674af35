"""Several suggestions in the Neovim plugin (issue #19): with one suggestion shown (a
keystroke asks for one), <M-]> asks the server with the invoked trigger and shows the second of
the several it answers, with a "(2/3)" hint; <M-[> goes back, and past the first to the last.

A real headless Neovim runs tests/nvim/choices.lua against the real server with the scripted
engine (tests/scripted_server.py), so which suggestions come is known.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.nvim_cases import run_scripted_cases

pytestmark = pytest.mark.slow

GREEDY = "return sum(values) / len(values)"
#: What the scripted model says once the first words before are banned ("return 0" starts
#: like the greedy answer and is skipped with it).
ALTERNATIVES = ["return 0", "raise ValueError(values)", "total = sum(values)"]
SHOWN = ["raise ValueError(values)", "total = sum(values)"]


def test_cycling_shows_the_other_suggestions(tmp_path: Path):
    options = {"server": {"engine": "inprocess", "warmOnOpen": False, "prefetch": False,
                          "debounceMs": 0},
               "completion": {"choices": 3, "latencyBudgetMs": 10_000}}
    report = run_scripted_cases(
        tmp_path, "choices.lua", options, {"answer": GREEDY, "alternatives": ALTERNATIVES},
        env={"GHOSTFILL_GREEDY": GREEDY, "GHOSTFILL_ALTERNATIVES": json.dumps(SHOWN)})
    assert "_harness" not in report or report["_harness"]["ok"], report
    result = report["cycle_asks_for_more_and_moves_between_them"]
    assert result["ok"], f"{result['error']}\n{json.dumps(result['data'])}"
