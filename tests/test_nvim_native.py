"""Neovim's own LSP client (no ghostfill plugin) gets an inline completion from the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_nvim_plugin import find_nvim

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
