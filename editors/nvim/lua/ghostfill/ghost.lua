--- Drawing a suggestion as ghost text: extmarks in the `ghostfill` namespace, the first line as
--- inline virtual text at the cursor (`virt_text_pos = "inline"`, Neovim >= 0.10), the other
--- lines as `virt_lines` below it.
local config = require('ghostfill.config')

local M = {}

M.ns = vim.api.nvim_create_namespace('ghostfill')

--- @class ghostfill.Suggestion
--- @field row integer      0-based line of the insertion point
--- @field col integer      0-based byte column of the insertion point (the cursor)
--- @field end_row integer  end of the replaced range (after the cursor: closing punctuation)
--- @field end_col integer
--- @field text string      what replaces row:col .. end_row:end_col
--- @field command table|nil  lsp.Command to run on acceptance
--- @field item table|nil     the InlineCompletionItem as received (feedback.lua)
--- @field client_id integer

--- Split the suggestion's first line around the characters it replaces, so the line reads as
--- it will after acceptance: with `foo(|)` and the suggestion `a, b)` replacing `)`, the real
--- `)` stays where it is and `a, b` is drawn before it. Returns {byte offset into `replaced`,
--- ghost piece} pairs, or nil when `replaced` is not a subsequence of `text`.
--- @param text string
--- @param replaced string
--- @return {[1]: integer, [2]: string}[]|nil
function M.split_around(text, replaced)
  local pieces = {}
  local from = 1 -- next byte of `text` to search
  local offset = 0 -- bytes of `replaced` already matched
  for _, ch in ipairs(vim.fn.split(replaced, [[\zs]])) do
    local at = text:find(ch, from, true)
    if not at then
      return nil
    end
    if at > from then
      table.insert(pieces, { offset, text:sub(from, at - 1) })
    end
    from = at + #ch
    offset = offset + #ch
  end
  if from <= #text then
    table.insert(pieces, { offset, text:sub(from) })
  end
  return pieces
end

--- Virtual lines do not expand tabs the way the buffer does.
local function expand_tabs(bufnr, s)
  local ts = vim.bo[bufnr].tabstop
  return (s:gsub('\t', string.rep(' ', ts > 0 and ts or 8)))
end

function M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.ns, 0, -1)
  end
end

--- Draw `s`; `hint` (e.g. " (2/3)") goes after the last line.
--- @param bufnr integer
--- @param s ghostfill.Suggestion
--- @param hint string|nil
--- @return boolean drawn false when nothing would be visible (the caller drops the suggestion)
function M.render(bufnr, s, hint)
  M.clear(bufnr)
  local hl = config.options.hl_group
  local lines = vim.split(s.text, '\n', { plain = true })
  local line = vim.api.nvim_buf_get_lines(bufnr, s.row, s.row + 1, false)[1]
  if not line or s.col > #line then
    return false
  end

  --- @type {col: integer, chunks: table}[]
  local inline = {}
  if #lines == 1 then
    local replaced = ''
    if s.end_row == s.row and s.end_col > s.col then
      replaced = line:sub(s.col + 1, s.end_col)
    end
    local pieces = replaced ~= '' and M.split_around(lines[1], replaced) or nil
    if not pieces then
      pieces = lines[1] ~= '' and { { 0, lines[1] } } or {}
    end
    for _, p in ipairs(pieces) do
      table.insert(inline, { col = s.col + p[1], chunks = { { p[2], hl } } })
    end
  elseif lines[1] ~= '' then
    table.insert(inline, { col = s.col, chunks = { { lines[1], hl } } })
  end

  local virt_lines = {}
  for i = 2, #lines do
    table.insert(virt_lines, { { expand_tabs(bufnr, lines[i]), hl } })
  end

  if #inline == 0 and #virt_lines == 0 then
    return false
  end
  if hint then
    local last = #virt_lines > 0 and virt_lines[#virt_lines] or inline[#inline].chunks
    table.insert(last, { hint, 'GhostfillHint' })
  end

  local ok = true
  for _, m in ipairs(inline) do
    ok = ok and pcall(vim.api.nvim_buf_set_extmark, bufnr, M.ns, s.row, m.col, {
      virt_text = m.chunks,
      virt_text_pos = 'inline',
      hl_mode = 'combine',
      priority = 200,
    })
  end
  if #virt_lines > 0 then
    ok = ok and pcall(vim.api.nvim_buf_set_extmark, bufnr, M.ns, s.row, s.col, {
      virt_lines = virt_lines,
      priority = 200,
    })
  end
  if not ok then
    M.clear(bufnr)
  end
  return ok
end

--- Set the default highlights (`default`, so colorschemes and users can override them).
--- Grey and italic with a terminal colour as well as a GUI one: `Comment` has no terminal
--- colour in Neovim 0.11+'s default scheme, so without 'termguicolors' ghost text linked to
--- it looked exactly like code.
function M.define_highlights()
  vim.api.nvim_set_hl(0, 'GhostfillSuggestion',
    { fg = '#808080', ctermfg = 8, italic = true, cterm = { italic = true }, default = true })
  vim.api.nvim_set_hl(0, 'GhostfillHint', { link = 'NonText', default = true })
end

return M
