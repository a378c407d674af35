"""The Neovim plugin reports what became of a suggestion (editors/nvim/lua/ghostfill/feedback.lua):
textDocument/didShowCompletion when it is drawn, didPartiallyAcceptCompletion for an accepted
word, the item's command for the rest; seen through the server's `ghostfill/stats`. A real
headless Neovim with the plugin (tests/nvim/harness.lua), the real server with a scripted
engine (tests/scripted_server.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.nvim_cases import run_scripted_cases

ANSWER = "return sum(values) / len(values)"
OPTIONS = {"server": {"debounceMs": 0, "warmOnOpen": False, "prefetch": False,
                      "engine": "inprocess"},
           "completion": {"latencyBudgetMs": 10_000, "invokedBudgetMs": 10_000}}


def test_accepting_a_word_sends_did_partially_accept_completion(tmp_path: Path):
    report = run_scripted_cases(tmp_path, "feedback_cases.lua", OPTIONS, {"answer": ANSWER})
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
