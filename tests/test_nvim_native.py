"""Neovim's own LSP client (no ghostfill plugin) gets an inline completion from the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, vocab
from tests.test_nvim_plugin import _version, find_nvim
from tests.test_nvim_screen import native_recipe

SCRIPT = r"""
local out = vim.fn.getenv('GHOSTFILL_OUT')
local buf = vim.api.nvim_create_buf(true, false)
vim.api.nvim_buf_set_name(buf, vim.fn.getenv('GHOSTFILL_FILE'))
vim.api.nvim_set_current_buf(buf)
vim.api.nvim_buf_set_lines(buf, 0, -1, false, {
  'def add(a, b):',
  '    # Return the sum of a and b.',
  '    return ',
})
vim.bo[buf].filetype = 'python'
local id = vim.lsp.start({ name = 'ghostfill', cmd = { vim.fn.getenv('GHOSTFILL_PY'), '-m',
  'ghostfill', 'serve' }, root_dir = vim.fn.getcwd() })
local client = vim.lsp.get_client_by_id(id)
vim.wait(60000, function() return client.initialized end, 50)
local caps = client.server_capabilities
local result = { has_provider = caps.inlineCompletionProvider ~= nil,
                 native_api = vim.lsp.inline_completion ~= nil }
if vim.lsp.inline_completion then vim.lsp.inline_completion.enable(true, { bufnr = buf }) end
-- Where the answer does not hang on rounding: on an empty indented line a small model may
-- end the line at once (no suggestion), and which it does can differ between CPU kernels.
vim.api.nvim_win_set_cursor(0, { 3, 10 })
local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
-- After 'return ' (normal mode cannot put the cursor past the line's last character).
params.position = { line = 2, character = 11 }
params.context = { triggerKind = 1 }
local response = client:request_sync('textDocument/inlineCompletion', params, 120000, buf)
result.error = response and response.err and response.err.message or nil
local items = response and response.result and (response.result.items or response.result) or {}
result.count = #items
result.text = items[1] and (items[1].insertText.value or items[1].insertText) or ''
result.encoding = client.offset_encoding
local f = io.open(out, 'w'); f:write(vim.json.encode(result)); f:close()
client:stop(true)
vim.cmd('qa!')
"""


def test_native_client_receives_a_suggestion(tmp_path: Path):
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    script = tmp_path / "native.lua"
    script.write_text(SCRIPT)
    out = tmp_path / "result.json"
    env = {"GHOSTFILL_OUT": str(out), "GHOSTFILL_FILE": str(tmp_path / "add.py"),
           "GHOSTFILL_PY": sys.executable, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([nvim, "--headless", "--clean", "-l", str(script)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.exists(), proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["has_provider"], result
    assert result.get("error") is None, result
    assert result["count"] >= 1 and result["text"].strip(), result


def test_the_recipes_keys_fetch_several_suggestions_and_cycle(tmp_path: Path):
    """Issue #19 in the built-in client: with editors/nvim/README.md's recipe, the first <M-]>
    asks with the invoked trigger and has the client ask again (the server gives it what it
    holds for the place), then <M-]>/<M-[> move among the items (select({count = ±1})).
    Against the scripted engine (tests/scripted_server.py), so which suggestions come is
    known."""
    nvim, why = find_nvim()
    if nvim is None:
        pytest.skip(why)
    if (_version(nvim) or (0,))[:2] < (0, 12):
        pytest.skip("this Neovim has no vim.lsp.inline_completion (0.12 or later)")
    vocab("starcoder")  # the scripted engine's vocabulary; skips without it
    greedy = "return sum(values) / len(values)"
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"answer": greedy, "alternatives": [
        "return 0", "raise ValueError(values)", "total = sum(values)"]}))
    options = {"server": {"engine": "inprocess", "warmOnOpen": False, "prefetch": False,
                          "debounceMs": 0},
               "completion": {"choices": 3, "latencyBudgetMs": 10_000}}
    cmd = [sys.executable, str(ROOT / "tests" / "scripted_server.py")]
    recipe = native_recipe().replace(
        "{ cmd = { 'ghostfill', 'serve' } }",
        f"{{ cmd = vim.json.decode({json.dumps(json.dumps(cmd))}), "
        f"init_options = vim.json.decode({json.dumps(json.dumps(options))}) }}")
    assert "scripted_server" in recipe, "the recipe no longer sets cmd as expected"
    init = tmp_path / "init.lua"
    init.write_text(f"package.path = {json.dumps(str(ROOT / 'tests' / 'nvim'))} .. "
                    "'/?.lua;' .. package.path\nvim.o.swapfile = false\n" + recipe)
    files = tmp_path / "files"
    files.mkdir()
    out = tmp_path / "report.json"
    env = dict(os.environ)
    env.update({"GHOSTFILL_SCRIPT": str(script), "GHOSTFILL_TEST_OUT": str(out),
                "GHOSTFILL_TEST_DIR": str(files), "GHOSTFILL_TEST_BUDGET_S": "100",
                "GHOSTFILL_GREEDY": greedy,
                "GHOSTFILL_ALTERNATIVES": json.dumps(["raise ValueError(values)",
                                                      "total = sum(values)"]),
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_DATA_HOME": str(tmp_path / "data"),
                "XDG_STATE_HOME": str(tmp_path / "state")})
    proc = subprocess.run(
        [nvim, "--headless", "--clean", "-u", str(init),
         "-c", f"luafile {ROOT / 'tests' / 'nvim' / 'native_choices.lua'}"],
        cwd=files, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert out.exists(), (proc.stdout + proc.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert "_harness" not in report or report["_harness"]["ok"], report
    result = report["native_cycle"]
    assert result["ok"], f"{result['error']}\n{json.dumps(result['data'])}"
