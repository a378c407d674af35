"""The Neovim setup lines the READMEs print, run exactly as written in a real Neovim.

The snippets are read from README.md and editors/nvim/README.md at test time, so a documented
line that stops working fails here (as `setup({})` once did: the empty table replaced every
default). The lazy.nvim specs are run the way lazy.nvim runs them: `dir` on the runtimepath,
then `config()`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_nvim_plugin import find_nvim

PLUGIN = ROOT / "editors" / "nvim"

#: Runs one snippet in Neovim and writes what setup made of it. A snippet that is a table
#: (a lazy.nvim spec) is loaded like lazy.nvim loads it.
RUNNER = r"""
local out = assert(vim.env.GHOSTFILL_OUT)
local snippet = assert(vim.env.GHOSTFILL_SNIPPET)
local result = {}
local chunk, err = loadstring('return ' .. snippet)
if not chunk then
  chunk, err = loadstring(snippet)
end
if not chunk then
  result.error = 'does not parse: ' .. err
else
  local ok, value = pcall(chunk)
  if ok and type(value) == 'table' and value.dir then
    result.lazy_spec = true
    vim.opt.runtimepath:prepend(value.dir)
    ok, value = pcall(value.config)
  end
  if not ok then
    result.error = tostring(value)
  end
end
if not result.error then
  local config = require('ghostfill.config')
  result.is_setup = require('ghostfill').is_setup()
  result.options_are_defaults = vim.deep_equal(config.options, config.defaults)
  result.cmd = config.options.cmd
  if vim.env.GHOSTFILL_ATTACH == '1' then
    -- What a user does next: open a Python file. The server named by the default `cmd`
    -- must start and initialize.
    vim.cmd('edit ' .. vim.fn.fnameescape(vim.env.GHOSTFILL_FILE))
    result.attached = vim.wait(60000, function()
      local c = vim.lsp.get_clients({ name = 'ghostfill', bufnr = 0 })[1]
      return c ~= nil and c.initialized == true
    end, 50)
    for _, c in ipairs(vim.lsp.get_clients({ name = 'ghostfill' })) do
      c:stop(true)
    end
  end
end
local f = io.open(out, 'w')
f:write(vim.json.encode(result))
f:close()
vim.cmd('qa!')
"""


def _lua_blocks(markdown: str) -> list[str]:
    return re.findall(r"```lua\n(.*?)```", markdown, flags=re.S)


def documented_snippets() -> dict[str, str]:
    """Every setup line the READMEs give a user, keyed by where it is written."""
    top = (ROOT / "README.md").read_text()
    nvim = (PLUGIN / "README.md").read_text()
    found: dict[str, str] = {}
    lazy = re.search(r"`(\{ dir = '[^`]*?\})`", top, flags=re.S)
    assert lazy, "README.md no longer has the lazy.nvim line this test runs"
    found["README.md lazy.nvim"] = lazy.group(1)
    for block in _lua_blocks(nvim):
        if "dir =" in block:
            found["editors/nvim/README.md lazy.nvim"] = block
        elif block.lstrip().startswith("require('ghostfill').setup("):
            found["editors/nvim/README.md options (defaults)"] = block
    plain = re.search(r"`(require\('ghostfill'\)\.setup\{\})`", nvim)
    assert plain, "editors/nvim/README.md no longer has its setup{} line"
    found["editors/nvim/README.md setup{}"] = plain.group(1)
    found["setup()"] = "require('ghostfill').setup()"
    found["setup({})"] = "require('ghostfill').setup({})"
    assert len(found) == 6, sorted(found)
    return {name: s.replace("/path/to/ghostfill", str(ROOT)) for name, s in found.items()}


def run_snippet(tmp_path: Path, snippet: str, attach: bool = False) -> dict:
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    runner = tmp_path / "runner.lua"
    runner.write_text(RUNNER)
    out = tmp_path / "result.json"
    source = tmp_path / "example.py"
    source.write_text("def add(a, b):\n    return a + b\n")
    env = dict(os.environ)
    env.update({
        "GHOSTFILL_OUT": str(out), "GHOSTFILL_SNIPPET": snippet,
        "GHOSTFILL_ATTACH": "1" if attach else "0", "GHOSTFILL_FILE": str(source),
        # The default cmd is `ghostfill serve` from PATH, as for a user who installed it.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    })
    # Started as a user's Neovim is (filetype detection on, which `-u NONE`, `--clean` and
    # `-l` change), with an empty temporary config folder.
    if "dir =" not in snippet:
        env["GHOSTFILL_SNIPPET"] = f"vim.opt.runtimepath:prepend('{PLUGIN}') {snippet}"
    proc = subprocess.run([nvim, "--headless", "-c", f"luafile {runner}"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.exists(), proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", sorted(documented_snippets()))
def test_documented_setup_line_keeps_the_defaults(tmp_path: Path, name: str):
    result = run_snippet(tmp_path, documented_snippets()[name])
    assert result.get("error") is None, f"{name}: {result['error']}"
    assert result["is_setup"], result
    assert result["options_are_defaults"], result
    assert result["cmd"] == ["ghostfill", "serve"]
    if "lazy" in name:
        assert result.get("lazy_spec"), "the spec was not run as lazy.nvim runs it"


@pytest.mark.slow
def test_readme_line_starts_the_server_for_a_python_file(tmp_path: Path):
    result = run_snippet(tmp_path, documented_snippets()["README.md lazy.nvim"], attach=True)
    assert result.get("error") is None, result["error"]
    assert result["attached"], "no ghostfill client initialized for a Python buffer"
