"""Run a Lua file of Neovim cases (tests/nvim/harness.lua) in a real headless Neovim with the
plugin, against the real server with the scripted engine (tests/scripted_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, vocab
from tests.test_nvim_plugin import find_nvim


def run_scripted_cases(tmp_path: Path, cases: str, options: dict[str, Any],
                       script: dict[str, Any], timeout_s: float = 150,
                       env: dict[str, str] | None = None) -> dict[str, Any]:
    """The report of tests/nvim/`cases` ({case: {ok, error, data}}); `script` is the scripted
    engine's, its log at `tmp_path`/script.json.log; `env`: more for the cases to read."""
    vocab("starcoder")
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    script_path = tmp_path / "script.json"
    script_path.write_text(json.dumps(script))
    files = tmp_path / "files"
    files.mkdir()
    out = tmp_path / "report.json"
    env = {**os.environ, **(env or {}),
           "GHOSTFILL_ROOT": str(ROOT),
           "GHOSTFILL_TEST_CMD": json.dumps([sys.executable,
                                             str(ROOT / "tests" / "scripted_server.py")]),
           "GHOSTFILL_TEST_OPTIONS": json.dumps(options),
           "GHOSTFILL_SCRIPT": str(script_path),
           "GHOSTFILL_STATE_DIR": str(tmp_path / "state-ghostfill"),
           "GHOSTFILL_TEST_OUT": str(out),
           "GHOSTFILL_TEST_DIR": str(files),
           "GHOSTFILL_TEST_BUDGET_S": str(int(timeout_s - 50)),
           "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    cmd = [nvim, "--headless", "--clean", "-u", str(ROOT / "tests" / "nvim" / "init.lua"),
           "-c", f"luafile {ROOT / 'tests' / 'nvim' / cases}"]
    proc = subprocess.run(cmd, cwd=files, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    assert out.exists(), (proc.stdout + proc.stderr)[-3000:]
    return json.loads(out.read_text())
