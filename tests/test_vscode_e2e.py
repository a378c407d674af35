"""The VS Code extension end to end, as a new user has it: a real VS Code (code-server 4.100, VS
Code 1.100, in Debian's headless Chromium driven by playwright-core), a fresh profile holding
only the packaged extension, the editor's and the extension's default settings (only
`ghostfill.serverPath` points at this environment's server, and the telemetry/update/trust/
startup-editor noise is off), the real server and the default model.

One editor session runs every case of editors/vscode/e2e/run.mjs in order (the model loads
once) and writes a JSON report; each test below checks one case. Screenshots (the ghost text
among them), the extension's log and the report stay in $GHOSTFILL_ARTIFACTS/vscode (default
tests/artifacts/vscode).

What it needs comes from scripts/vscode_e2e_deps.sh (apt: chromium, ripgrep, the -dev packages;
npm: code-server and playwright-core in the user cache), which scripts/test.sh runs before
pytest and passes on as GHOSTFILL_VSCODE_E2E_DEPS; with that variable set, anything missing is
a failure. Run alone without it, the tests use the cached install if there is one and skip
otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

EXT = ROOT / "editors" / "vscode"
DEPS_SCRIPT = ROOT / "scripts" / "vscode_e2e_deps.sh"
#: The whole editor session; each case has its own, shorter limits inside run.mjs.
RUN_TIMEOUT_S = 480


def _required() -> bool:
    return bool(os.environ.get("GHOSTFILL_VSCODE_E2E_DEPS"))


def _missing(why: str) -> None:
    if _required():
        pytest.fail(why)
    pytest.skip(why)


def _deps() -> Path:
    """The code-server + playwright-core install (scripts/vscode_e2e_deps.sh prints it)."""
    given = os.environ.get("GHOSTFILL_VSCODE_E2E_DEPS")
    if given:
        path = Path(given)
    else:
        version = re.search(r"^CODE_SERVER_VERSION=(\S+)", DEPS_SCRIPT.read_text(), re.M)
        assert version, "no CODE_SERVER_VERSION in scripts/vscode_e2e_deps.sh"
        cache = os.environ.get("GHOSTFILL_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ghostfill")
        path = Path(cache) / "code-server" / version.group(1)
    if not (path / ".complete").is_file():
        _missing(f"no code-server install in {path}: run bash scripts/vscode_e2e_deps.sh")
    return path


def _vsix() -> Path:
    found = sorted(EXT.glob("ghostfill-*.vsix"), key=lambda p: p.stat().st_mtime)
    sources = [EXT / "package.json", *(EXT / "src").rglob("*.ts")]
    newest_source = max(p.stat().st_mtime for p in sources)
    if (not found or found[-1].stat().st_mtime < newest_source) and (
            shutil.which("npm") and (EXT / "node_modules").is_dir()):
        # Older than the extension's sources (or none): package what is being tested.
        subprocess.run(["npm", "run", "-s", "package"], cwd=EXT, check=True,
                       capture_output=True, timeout=300)
        found = sorted(EXT.glob("ghostfill-*.vsix"), key=lambda p: p.stat().st_mtime)
    if not found:
        _missing(f"no ghostfill-*.vsix in {EXT}: npm ci && npm run package there")
    return found[-1]


def _server() -> str:
    given = os.environ.get("GHOSTFILL_SERVER")
    if given:
        return given
    beside = Path(sys.executable).parent / "ghostfill"
    if beside.is_file():
        return str(beside)
    found = shutil.which("ghostfill")
    if not found:
        _missing("no ghostfill executable beside this Python or on PATH")
    return str(found)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not shutil.which("node"):
        _missing("node not found")
    deps, vsix, server = _deps(), _vsix(), _server()
    artifacts = Path(os.environ.get("GHOSTFILL_ARTIFACTS") or ROOT / "tests" / "artifacts")
    artifacts = artifacts / "vscode"
    env = {**os.environ, "E2E_DEPS": str(deps), "VSIX": str(vsix), "GHOSTFILL_SERVER": server,
           "ARTIFACTS": str(artifacts)}
    for name in ("E2E_CASES", "E2E_SETTINGS", "E2E_TRACE", "E2E_WORK"):
        env.pop(name, None)   # the cases as they are, with the default settings
    # Its own session, so that a timeout takes code-server, the browser and the server with it.
    proc = subprocess.Popen(["node", "e2e/run.mjs"], cwd=EXT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the VS Code session took over {RUN_TIMEOUT_S} s:\n{out[-4000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):   # whatever it left behind
            os.killpg(proc.pid, signal.SIGKILL)
    path = artifacts / "report.json"
    if not path.is_file():
        pytest.fail(f"e2e/run.mjs wrote no report (exit {proc.returncode}):\n{out[-4000:]}")
    result = json.loads(path.read_text())
    if result.get("error"):
        pytest.fail(f"the VS Code session failed before or between cases:\n{result['error']}\n"
                    f"{out[-4000:]}")
    result["output"] = out
    return result


def _check(report: dict[str, Any], case: str) -> dict[str, Any]:
    result = report["cases"].get(case)
    assert result is not None, f"case {case} did not run:\n{report['output'][-3000:]}"
    details = {k: v for k, v in result.items() if k not in ("ok", "why")}
    assert result["ok"], (f"{case}: {result['why']}\n"
                          f"{json.dumps(details, indent=1, ensure_ascii=False)[:3000]}")
    return result


def test_status_bar_shows_the_model(report):
    result = _check(report, "status")
    assert "gemma3-270m" in result["text"]


def test_ghost_text_appears_while_typing(report):
    """`m` in the body of stdev: a whole line (` = mean(values)`), the word list notwithstanding."""
    result = _check(report, "ghost")
    assert Path(ROOT / result["screenshot"]).is_file(), "the ghost text screenshot is kept"


def test_tab_accepts_and_the_file_holds_it(report):
    _check(report, "tab")


def test_accept_word(report):
    _check(report, "word")


def test_fim_fills_a_selection_and_warns_about_the_prefix_only_model(report):
    _check(report, "fim")


def test_typing_through_keeps_the_ghost_text(report):
    _check(report, "through")


def test_alt_bracket_cycles_through_several_suggestions(report):
    """An explicit request gets up to `completion.choices` distinct items (#19); VS Code's own
    Alt+] / Alt+[ move among them on screen."""
    result = _check(report, "cycle")
    assert len(set(result["seen"])) >= 2, result["seen"]


def test_an_explicit_request_shows_the_suffix_checked_line(report):
    """The suffix check (#18) in VS Code: Trigger Inline Suggestion above a body that needs
    `k`, with `is_prime` called below and defined nowhere, shows `def is_prime(k):`."""
    result = _check(report, "check")
    assert Path(ROOT / result["screenshot"]).is_file(), "the screenshot is kept"


def test_the_cursor_is_reported_to_the_server(report):
    """textDocument/didFocus (#17): opening a file and jumping in it reach the server, seen
    in "ghostfill: Show Statistics"."""
    result = _check(report, "focus")
    assert result["after"] >= result["before"] + 2, result


def test_budget_cut_line_completes_without_typing(report):
    """`ghostfill.completion.latencyBudgetMs: 1` (the only setting changed, in the workspace):
    every first answer is empty, the line comes through ghostfill/suggestionReady."""
    _check(report, "budget")


def test_server_death_is_reported(report):
    result = _check(report, "death")
    assert "SIGKILL" in result["message"]
    assert result["restarted"], "vscode-languageclient starts the server again"
