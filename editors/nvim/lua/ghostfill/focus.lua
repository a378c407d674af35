--- Telling the server where the cursor is, so that it reads the window there into the
--- document's cache before the first keystroke (a prefix-only window ends at the cursor: one
--- read at the end of a long file shares nothing with a keystroke in its middle).
---
--- textDocument/didFocus is Copilot's language server's notification that the user is in a
--- document; ghostfill reads two fields of its own: `position`, the cursor, and `active`,
--- false for a buffer that is not in front but whose position is known (a restored
--- session's buffers: where the cursor goes when shown), warmed after the one in front.
---
--- Sent when the server attaches to a buffer, on BufEnter, and on CursorHold when the cursor
--- went to another line (it moves without typing: a jump, a search).
local api = vim.api
local client = require('ghostfill.client')
local position = require('ghostfill.position')

local M = {}

--- Line last reported per buffer (CursorHold sends only when it changed).
local reported = {}

--- @param bufnr integer
--- @param active boolean the buffer is in front (its window's cursor), else its `"` mark
function M.report(bufnr, active)
  local c = client.get(bufnr)
  if not c or not api.nvim_buf_is_loaded(bufnr) then
    return
  end
  local row, col
  if active then
    row, col = unpack(api.nvim_win_get_cursor(0))
  else
    -- Where the cursor goes when the buffer is shown (a session's `badd +N`, or where it
    -- was left), with the column of its `"` mark when that is on the same line.
    local info = vim.fn.getbufinfo(bufnr)[1]
    if info and info.lnum and info.lnum > 0 then
      row, col = info.lnum, 0
      local ok, mark = pcall(api.nvim_buf_get_mark, bufnr, '"')
      if ok and mark[1] == row then
        col = mark[2]
      end
    end
  end
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) }, active = active }
  if row then
    local line = api.nvim_buf_get_lines(bufnr, row - 1, row, false)[1] or ''
    params.position = { line = row - 1,
                        character = position.to_lsp(line, col, c.offset_encoding or 'utf-16') }
  elseif not active then
    return -- nothing to say of a buffer in the background without a known position
  end
  reported[bufnr] = row
  client.notify(c, 'textDocument/didFocus', params)
end

--- Whether `bufnr` is the buffer the user is in (autocommands of a buffer shown nowhere run
--- in an autocommand window where it is current too).
local function in_front(bufnr)
  return api.nvim_get_current_buf() == bufnr and vim.fn.win_gettype() ~= 'autocmd'
end

--- The server attached to `bufnr`: say where its cursor is, once out of the autocommand
--- (in a buffer's autocommand window its position is not the one it will be shown at).
function M.attached(bufnr)
  vim.schedule(function()
    M.report(bufnr, in_front(bufnr))
  end)
end

--- BufEnter: the user is in `bufnr` now.
function M.entered(bufnr)
  if in_front(bufnr) then
    M.report(bufnr, true)
  end
end

--- CursorHold: the cursor rests on another line than last reported.
function M.moved(bufnr)
  if in_front(bufnr) and reported[bufnr] ~= api.nvim_win_get_cursor(0)[1] then
    M.report(bufnr, true)
  end
end

function M.forget(bufnr)
  reported[bufnr] = nil
end

return M
