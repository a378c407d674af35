--- `:Ghostfill fim`: fill the hole at the cursor, or replace a selection, with the model's
--- middle (`ghostfill/fim`). The edit is applied here, not by the server's workspace/applyEdit,
--- so it is dropped if the buffer changed while the model was thinking.
local api = vim.api
local client = require('ghostfill.client')
local position = require('ghostfill.position')

local M = {}

local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

local function lsp_pos(bufnr, row, col, enc)
  return { line = row, character = position.to_lsp(line_at(bufnr, row), col, enc) }
end

--- The hole of a `:[range]Ghostfill fim`: the last visual selection when the range is the
--- one `:'<,'>` gives (charwise, linewise or blockwise taken as charwise), else whole lines.
--- @return {[1]: integer, [2]: integer, [3]: integer, [4]: integer} start row, col, end row, col (0-based, end exclusive)
function M.selection(bufnr, line1, line2)
  local vs, ve = vim.fn.getpos("'<"), vim.fn.getpos("'>")
  if vs[2] == line1 and ve[2] == line2 and vim.fn.visualmode() ~= 'V' and vs[2] > 0 then
    local srow, scol = vs[2] - 1, vs[3] - 1
    local erow = ve[2] - 1
    local eline = line_at(bufnr, erow)
    local ecol
    if vim.o.selection == 'exclusive' then
      ecol = math.min(ve[3] - 1, #eline)
    else
      -- '> points at the first byte of the last selected character: include all of it.
      local at = math.min(ve[3], #eline)
      local ch = at > 0 and vim.fn.strcharpart(eline:sub(at), 0, 1) or ''
      ecol = math.max(0, math.min(at - 1 + #ch, #eline))
    end
    return { srow, math.min(scol, #line_at(bufnr, srow)), erow, ecol }
  end
  return { line1 - 1, 0, line2 - 1, #line_at(bufnr, line2 - 1) }
end

--- Ask the server to fill and apply the answer.
--- @param opts {bufnr?: integer, range?: integer[], on_done?: fun(result: table|nil, err: string|nil)}
function M.run(opts)
  opts = opts or {}
  local bufnr = opts.bufnr or api.nvim_get_current_buf()
  local c = client.get(bufnr)
  local function done(result, err)
    if err then
      vim.notify('ghostfill: ' .. err, vim.log.levels.WARN)
    end
    if opts.on_done then
      opts.on_done(result, err)
    end
    api.nvim_exec_autocmds('User', {
      pattern = 'GhostfillFimDone', modeline = false, data = { result = result, error = err },
    })
  end
  if not c then
    return done(nil, 'no ghostfill server is attached to this buffer')
  end
  local enc = c.offset_encoding or 'utf-16'
  local params = { textDocument = { uri = vim.uri_from_bufnr(bufnr) } }
  if opts.range then
    local r = opts.range
    params.range = { start = lsp_pos(bufnr, r[1], r[2], enc), ['end'] = lsp_pos(bufnr, r[3], r[4], enc) }
  else
    local pos = api.nvim_win_get_cursor(0)
    params.position = lsp_pos(bufnr, pos[1] - 1, pos[2], enc)
  end
  local tick = api.nvim_buf_get_changedtick(bufnr)
  vim.api.nvim_echo({ { 'ghostfill: filling…', 'Comment' } }, false, {})
  client.request(c, 'ghostfill/fim', params, function(err, result)
    if err then
      return done(nil, err.message or vim.inspect(err))
    end
    if not api.nvim_buf_is_valid(bufnr) or api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return done(nil, 'the buffer changed while filling; nothing applied')
    end
    if type(result) ~= 'table' or type(result.text) ~= 'string' or type(result.range) ~= 'table' then
      return done(nil, 'the server gave no fill')
    end
    if result.text == '' then
      return done(result, 'the model had nothing to fill here')
    end
    vim.lsp.util.apply_text_edits({ { range = result.range, newText = result.text } }, bufnr, enc)
    vim.api.nvim_echo({ { ('ghostfill: filled %d characters'):format(vim.fn.strchars(result.text)) } },
      false, {})
    done(result, nil)
  end, bufnr)
end

return M
