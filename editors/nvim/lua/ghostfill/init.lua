--- ghostfill for Neovim: ghost text and fill-in-the-middle from the ghostfill language server.
---
--- require("ghostfill").setup{ cmd = {...}, filetypes = {...}, keymaps = {...}, ... }
--- (see config.lua for every option and its default, and :help ghostfill).
local api = vim.api
local client = require('ghostfill.client')
local config = require('ghostfill.config')
local enabled = require('ghostfill.enabled')
local ghost = require('ghostfill.ghost')
local status = require('ghostfill.status')
local suggest = require('ghostfill.suggest')

local M = {}

local did_setup = false

local function on_attach(c, bufnr)
  -- Neovim 0.12 has its own inline completion UI; with it enabled globally both would draw.
  -- This plugin's adds partial accepts, stale-answer checks and keys that exist only while a
  -- suggestion is shown, so the built-in one is switched off for this server.
  if vim.lsp.inline_completion and vim.lsp.inline_completion.enable then
    pcall(vim.lsp.inline_completion.enable, false, { client_id = c.id })
  end
  suggest.attach(bufnr)
end

local function wants(bufnr)
  return api.nvim_buf_is_valid(bufnr) and vim.bo[bufnr].buftype == ''
    and vim.tbl_contains(config.options.filetypes, vim.bo[bufnr].filetype)
end

local function maybe_attach(bufnr)
  if wants(bufnr) then
    client.attach(bufnr, on_attach)
  end
end

--- @param opts ghostfill.Config|nil
function M.setup(opts)
  local old_options = did_setup and config.options.server_options or nil
  config.set(opts)
  did_setup = true
  ghost.define_highlights()
  local group = api.nvim_create_augroup('ghostfill', { clear = true })
  api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(args)
      maybe_attach(args.buf)
    end,
  })
  api.nvim_create_autocmd('ColorScheme', { group = group, callback = ghost.define_highlights })
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) then
      maybe_attach(bufnr)
    end
  end
  if old_options and not vim.deep_equal(old_options, config.options.server_options) then
    client.push_settings(config.options.server_options)
  end
end

function M.is_setup()
  return did_setup
end

local function buf()
  return api.nvim_get_current_buf()
end

--- Accept the whole suggestion. @return boolean accepted
function M.accept()
  return require('ghostfill.accept').accept(buf(), 'all')
end

--- Accept the suggestion's next word. @return boolean accepted
function M.accept_word()
  return require('ghostfill.accept').accept(buf(), 'word')
end

--- Accept the rest of the suggestion's current line. @return boolean accepted
function M.accept_line()
  return require('ghostfill.accept').accept(buf(), 'line')
end

function M.dismiss()
  suggest.dismiss(buf())
end

--- Ask for a suggestion now (an "Invoked" request: the server gives it a longer budget).
function M.trigger()
  local b = buf()
  if not suggest.state(b) then
    vim.notify('ghostfill: no server attached to this buffer', vim.log.levels.WARN)
    return
  end
  suggest.clear(b)
  suggest.request(b, suggest.INVOKED)
end

function M.next()
  suggest.cycle(buf(), 1)
end

function M.prev()
  suggest.cycle(buf(), -1)
end

--- @return boolean a suggestion is shown in the current buffer
function M.is_visible()
  return suggest.current(buf()) ~= nil
end

--- The suggestion shown in the current buffer, or nil.
--- @return ghostfill.Suggestion|nil
function M.suggestion()
  return suggest.current(buf())
end

--- Fill in the middle at the cursor, or replace `opts.range` ({row, col, end_row, end_col},
--- 0-based, bytes, end exclusive).
function M.fim(opts)
  require('ghostfill.fim').run(opts)
end

--- Turn ghost text on/off globally, or for one filetype.
--- @param value boolean|nil nil: flip
--- @param ft string|nil
function M.set_enabled(value, ft)
  local now = enabled.set(value, ft)
  for _, b in ipairs(suggest.followed()) do
    if not enabled.is_enabled(b) then
      suggest.dismiss(b)
    end
  end
  vim.notify(('ghostfill: ghost text %s%s'):format(now and 'on' or 'off',
    ft and ft ~= '' and (' for ' .. ft) or ''))
  pcall(vim.cmd.redrawstatus)
  return now
end

function M.toggle(ft)
  return M.set_enabled(nil, ft)
end

function M.enable(ft)
  return M.set_enabled(true, ft)
end

function M.disable(ft)
  return M.set_enabled(false, ft)
end

--- @param bufnr integer|nil
function M.is_enabled(bufnr)
  return enabled.is_enabled(bufnr or buf())
end

--- A status line component: "" when no ghostfill server serves the buffer, else e.g.
--- "ghostfill: loading 40%", "ghostfill 230ms", "ghostfill: off", "ghostfill: error".
function M.statusline()
  local c = client.get(buf())
  if not c then
    return ''
  end
  return status.format_statusline(status.clients[c.id], M.is_enabled())
end

--- Show the server's statistics (ghostfill/stats). `on_done(lines|nil, err|nil)` for callers
--- that want the text instead of a message.
function M.status(on_done)
  local c = client.get(buf()) or client.get()
  local function report(lines, err)
    if on_done then
      return on_done(lines, err)
    end
    if err then
      vim.notify('ghostfill: ' .. err, vim.log.levels.WARN)
    else
      vim.notify(table.concat(lines, '\n'), vim.log.levels.INFO, { title = 'ghostfill' })
    end
  end
  if not c then
    return report(nil, 'no ghostfill server is running')
  end
  client.request(c, 'ghostfill/stats', client.NO_PARAMS, function(err, result)
    if err or type(result) ~= 'table' then
      return report(nil, 'ghostfill/stats failed: ' .. (err and err.message or 'no result'))
    end
    report(status.format_stats(result), nil)
  end)
end

--- Stop the server(s) and attach the open buffers again (after changing `cmd`, say).
function M.restart()
  for _, c in ipairs(client.all()) do
    client.stop(c)
  end
  vim.defer_fn(function()
    for _, bufnr in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(bufnr) then
        maybe_attach(bufnr)
      end
    end
  end, 500)
end

return M
