--- Accepting a suggestion: all of it, its next word or its next line.
---
--- A partial accept inserts the chosen prefix at the cursor and keeps the rest on screen (the
--- replaced range after the cursor, e.g. a closing bracket, is only replaced by the final
--- accept). A full accept runs the item's command (`ghostfill.accepted`), a partial one sends
--- textDocument/didPartiallyAcceptCompletion (feedback.lua), so the server counts them.
local api = vim.api
local client = require('ghostfill.client')
local feedback = require('ghostfill.feedback')
local suggest = require('ghostfill.suggest')

local M = {}

--- The next word of `text`: leading blanks (a line break and the next line's indentation
--- included), then a run of word characters, or a run of other non-blank characters.
--- Word characters are letters, digits, `_` and any non-ASCII byte.
--- @param text string
--- @return string
function M.next_word(text)
  local lead = text:match('^%s*')
  local rest = text:sub(#lead + 1)
  local word = rest:match('^[%w_\128-\255]+') or rest:match('^[^%w_\128-\255%s]+') or ''
  return lead .. word
end

--- The rest of the current line of `text`; when `text` starts with a line break, that break
--- and the whole next line.
--- @param text string
--- @return string
function M.next_line(text)
  local lead = text:match('^\r?\n') or ''
  local rest = text:sub(#lead + 1)
  return lead .. (rest:match('^[^\n]*') or '')
end

--- @param kind 'all'|'word'|'line'
--- @return boolean accepted
function M.accept(bufnr, kind)
  local s = suggest.current(bufnr)
  if not s then
    return false
  end
  local part = s.text
  if kind == 'word' then
    part = M.next_word(s.text)
  elseif kind == 'line' then
    part = M.next_line(s.text)
  end
  if part == '' then
    return false
  end
  local full = part == s.text
  if not full then
    feedback.partially_accepted(s, part)
  end
  local lines = vim.split(part, '\n', { plain = true })
  local new_row = s.row + #lines - 1
  local new_col = (#lines == 1 and s.col or 0) + #lines[#lines]

  if full then
    suggest.clear(bufnr)
    api.nvim_buf_set_text(bufnr, s.row, s.col, s.end_row, s.end_col, lines)
  else
    api.nvim_buf_set_text(bufnr, s.row, s.col, s.row, s.col, lines)
  end
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })

  if not full then
    -- The rest of the suggestion now starts at the cursor; its replaced range moved with it.
    if s.end_row == s.row then
      s.end_col = new_col + (s.end_col - s.col)
    end
    s.end_row = s.end_row + #lines - 1
    s.row, s.col, s.text = new_row, new_col, s.text:sub(#part + 1)
    local st = suggest.state(bufnr)
    if st then
      st.items, st.index = { s }, 1
    end
    suggest.redraw(bufnr)
  end

  local c = vim.lsp.get_client_by_id(s.client_id)
  if c and full then
    client.execute(c, s.command, bufnr)
  end
  return true
end

return M
