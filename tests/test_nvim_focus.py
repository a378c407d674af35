"""The Neovim plugin reports the cursor with textDocument/didFocus (editors/nvim/lua/ghostfill/
focus.lua): when the server attaches, on BufEnter, when the cursor rests on another line, and
a background buffer's last position (a restored session). The server warms the window there:
seen in what the scripted engine was asked to read. Real headless Neovim, real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.nvim_cases import run_scripted_cases

OPTIONS = {"server": {"debounceMs": 0, "warmOnOpen": True, "prefetch": False,
                      "engine": "inprocess"},
           "completion": {"latencyBudgetMs": 10_000, "invokedBudgetMs": 10_000}}


def warm_tails(tmp_path: Path, name: str) -> list[str]:
    log = tmp_path / "script.json.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e["tail"] for e in entries if "warm" in e and e.get("document", "").endswith(name)]


def ends_before(tail: str, line: int) -> bool:
    """The warmed prompt's document part ends at the start of `line` (0-based): the line
    before it is the last one read before a FIM control token."""
    return re.search(rf"x_{line - 1} = {line - 1}\n?<fim_(suffix|middle)>", tail) is not None \
        or tail.rstrip().endswith(f"x_{line - 1} = {line - 1}")


def test_the_plugin_reports_the_cursor_and_the_window_there_is_warmed(tmp_path: Path):
    report = run_scripted_cases(tmp_path, "focus_cases.lua", OPTIONS, {"answer": "0"})
    jump = report.get("jump_then_rest")
    assert jump is not None and jump["ok"], report
    data = jump["data"]
    # Attach: one report; the cursor resting on another line: one more; same line: none.
    assert (data["after_open"], data["after_hold"], data["after_second_hold"]) == (1, 2, 2)
    # The window read after the jump ends where the cursor rests (line 25, 0-based 24).
    assert any(ends_before(t, 24) for t in warm_tails(tmp_path, "focus_a.py")), \
        warm_tails(tmp_path, "focus_a.py")

    background = report.get("restored_buffer_in_the_background")
    assert background is not None and background["ok"], report
    data = background["data"]
    assert (data["background_reports"], data["current_is_still"]) == (1, True)
    # Not in front, at the line the session put it on (`badd +10`), in the server's units.
    assert [(m["method"], m["params"]["active"], m["params"]["position"])
            for m in data["sent"]] == [("textDocument/didFocus", False,
                                        {"line": 9, "character": 0})]
    # Its window is read at its last position (the mark on line 10, 0-based 9).
    assert any(ends_before(t, 9) for t in warm_tails(tmp_path, "focus_b.py")), \
        warm_tails(tmp_path, "focus_b.py")
