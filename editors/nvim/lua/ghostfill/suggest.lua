--- The life of a suggestion in one buffer: debounce keystrokes, ask the server, drop stale
--- answers, draw, keep it while the user types through it, and forget it.
---
--- Rules that keep ghost text honest:
---   * one request in flight per buffer: a newer keystroke cancels the older request
---     ($/cancelRequest reaches the model, which stops within a token);
---   * an answer is drawn only if b:changedtick and the cursor are where they were when it was
---     asked for;
---   * nothing is drawn while a completion menu is open (Tab belongs to the menu then).
local api = vim.api
local client = require('ghostfill.client')
local config = require('ghostfill.config')
local enabled = require('ghostfill.enabled')
local feedback = require('ghostfill.feedback')
local focus = require('ghostfill.focus')
local ghost = require('ghostfill.ghost')
local keymaps = require('ghostfill.keymaps')
local position = require('ghostfill.position')
local status = require('ghostfill.status')

local M = {}

M.INVOKED = 1
M.AUTOMATIC = 2
local REQUEST_CANCELLED = -32800
local CONTENT_MODIFIED = -32801

--- @class ghostfill.BufferState
--- @field timer uv.uv_timer_t
--- @field request {client: vim.lsp.Client, id: integer}|nil
--- @field items ghostfill.Suggestion[]|nil
--- @field index integer|nil
--- @field tick integer|nil  b:changedtick when the current suggestion was drawn
--- @field line string|nil   its line as it was then (to recognise typing through it)
--- @field invoked boolean|nil  the items answer an invoked request (all the server gives)

--- @type table<integer, ghostfill.BufferState>
local buffers = {}

--- @return ghostfill.BufferState|nil
function M.state(bufnr)
  return buffers[bufnr]
end

--- nvim-cmp and blink.cmp draw their menus in floating windows, not the popup menu; ask them
--- too, but only when they are already loaded.
local function popup_visible()
  if config.options.show_with_popup then
    return false
  end
  if vim.fn.pumvisible() == 1 then
    return true
  end
  local cmp = package.loaded['cmp']
  if cmp and type(cmp.visible) == 'function' then
    local ok, visible = pcall(cmp.visible)
    if ok and visible then
      return true
    end
  end
  local blink = package.loaded['blink.cmp']
  if blink and type(blink.is_menu_visible) == 'function' then
    local ok, visible = pcall(blink.is_menu_visible)
    if ok and visible then
      return true
    end
  end
  return false
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function cursor()
  local pos = api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function line_at(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- @return ghostfill.Suggestion|nil
function M.current(bufnr)
  local st = buffers[bufnr]
  return st and st.items and st.items[st.index] or nil
end

--- Remove the ghost text and its keys; requests in flight go on.
function M.clear(bufnr)
  local st = buffers[bufnr]
  if st then
    st.items, st.index, st.tick, st.line, st.invoked = nil, nil, nil, nil, nil
  end
  ghost.clear(bufnr)
  keymaps.deactivate(bufnr)
end

--- Stop the debounce timer and cancel the request in flight.
function M.cancel(bufnr)
  local st = buffers[bufnr]
  if not st then
    return
  end
  st.timer:stop()
  local req = st.request
  if req then
    st.request = nil
    client.cancel(req.client, req.id)
    status.on_response(req.client.id, nil)
  end
end

function M.dismiss(bufnr)
  M.cancel(bufnr)
  M.clear(bufnr)
end

--- Draw the current suggestion and remember the buffer as it is now.
function M.redraw(bufnr)
  local st = buffers[bufnr]
  local s = M.current(bufnr)
  if not st or not s then
    return M.clear(bufnr)
  end
  local hint = #st.items > 1 and (' (%d/%d)'):format(st.index, #st.items) or nil
  if not ghost.render(bufnr, s, hint) then
    return M.clear(bufnr)
  end
  st.tick = api.nvim_buf_get_changedtick(bufnr)
  st.line = line_at(bufnr, s.row)
  keymaps.activate(bufnr)
  feedback.shown(s)
end

--- @param items ghostfill.Suggestion[]
function M.show(bufnr, items, index)
  local st = buffers[bufnr]
  if not st then
    return
  end
  st.items, st.index = items, index or 1
  M.redraw(bufnr)
end

--- Show the next (delta 1) or previous (-1) of several suggestions. Typing asks for one
--- (each costs a generation); with only that one shown, the first cycle asks the server
--- with the invoked trigger, which answers with up to `completion.choices`, the one shown
--- first, and moves to the next (or last) of them when they arrive.
function M.cycle(bufnr, delta)
  local st = buffers[bufnr]
  if not st or not st.items then
    return
  end
  if #st.items < 2 then
    if not st.invoked and not st.request then
      M.request(bufnr, M.INVOKED, delta)
    end
    return
  end
  st.index = (st.index - 1 + delta) % #st.items + 1
  M.redraw(bufnr)
end

--- An LSP InlineCompletionItem as a suggestion that starts at the cursor, or nil if it does
--- not fit there. A range that starts before the cursor must repeat what is typed there.
local function to_suggestion(bufnr, c, item, row, col, line)
  local text = item.insertText
  if type(text) == 'table' then
    text = text.value -- a StringValue snippet: shown and inserted as plain text
  end
  if type(text) ~= 'string' then
    return nil
  end
  --- @type ghostfill.Suggestion
  local s = { row = row, col = col, end_row = row, end_col = col, text = text,
              command = item.command, item = item, client_id = c.id }
  local r = item.range
  if type(r) == 'table' and r.start and r['end'] then
    local enc = c.offset_encoding or 'utf-16'
    local srow, erow = r.start.line, r['end'].line
    local scol = position.to_byte(line_at(bufnr, srow), r.start.character, enc)
    local ecol = position.to_byte(line_at(bufnr, erow), r['end'].character, enc)
    if srow ~= row or scol > col or erow < row or (erow == row and ecol < col) then
      return nil
    end
    if scol < col then
      local typed = line:sub(scol + 1, col)
      if text:sub(1, #typed) ~= typed then
        return nil
      end
      s.text = text:sub(#typed + 1)
    end
    s.end_row, s.end_col = erow, ecol
  end
  if s.text == '' then
    return nil
  end
  return s
end

local function on_result(bufnr, req, err, result)
  local st = buffers[bufnr]
  if not st or st.request ~= req then
    return -- superseded or cancelled
  end
  st.request = nil
  local c = req.client
  if err then
    status.on_response(c.id, nil)
    if err.code ~= REQUEST_CANCELLED and err.code ~= CONTENT_MODIFIED then
      vim.lsp.log.warn('ghostfill: inlineCompletion failed', err)
    end
    return
  end
  status.on_response(c.id, (vim.uv.hrtime() - req.started) / 1e6)
  if not api.nvim_buf_is_valid(bufnr) or api.nvim_get_current_buf() ~= bufnr
    or api.nvim_buf_get_changedtick(bufnr) ~= req.tick or not in_insert_mode() then
    return
  end
  local row, col = cursor()
  if row ~= req.row or col ~= req.col or popup_visible() then
    return
  end
  if req.kind == M.AUTOMATIC and not enabled.is_enabled(bufnr) then
    return
  end
  local items = type(result) == 'table' and (result.items or result) or {}
  local list = {}
  local line = line_at(bufnr, row)
  for _, item in ipairs(items) do
    local s = type(item) == 'table' and to_suggestion(bufnr, c, item, row, col, line)
    if s then
      table.insert(list, s)
    end
  end
  if #list == 0 then
    return M.clear(bufnr)
  end
  local index = 1
  if req.cycle and #list > 1 then -- asked by cycling: show the next one (or the last)
    index = req.cycle > 0 and 2 or #list
  end
  M.show(bufnr, list, index)
  st.invoked = req.kind == M.INVOKED
end

--- Ask the server for a suggestion at the cursor now.
--- @param kind integer M.INVOKED or M.AUTOMATIC
--- @param cycle integer|nil  asked by cycling (1 next, -1 previous): which item to show
function M.request(bufnr, kind, cycle)
  local st = buffers[bufnr]
  if not st or api.nvim_get_current_buf() ~= bufnr then
    return
  end
  M.cancel(bufnr)
  local c = client.get(bufnr)
  if not c or popup_visible() then
    return
  end
  local row, col = cursor()
  local line = line_at(bufnr, row)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    position = { line = row, character = position.to_lsp(line, col, c.offset_encoding or 'utf-16') },
    context = { triggerKind = kind },
  }
  local req = {
    client = c, kind = kind, row = row, col = col, cycle = cycle,
    tick = api.nvim_buf_get_changedtick(bufnr), started = vim.uv.hrtime(),
  }
  -- Passing bufnr makes Neovim flush its debounced didChange first, so the server sees the
  -- text the cursor position refers to.
  local ok, id = client.request(c, 'textDocument/inlineCompletion', params, function(err, result)
    on_result(bufnr, req, err, result)
  end, bufnr)
  if ok and id then
    req.id = id
    st.request = req
    status.on_request(c.id)
  end
end

--- `ghostfill/suggestionReady`: the server finished what the budget cut (or a window it was
--- still reading). Ask again if the buffer is still at that version and the cursor there;
--- the answer then comes from the server's cache.
function M.on_ready(client_id, result)
  local uri = result and result.textDocument and result.textDocument.uri
  if not uri then
    return
  end
  local bufnr = vim.uri_to_bufnr(uri)
  local st = buffers[bufnr]
  local c = vim.lsp.get_client_by_id(client_id)
  if not st or not c or st.request or api.nvim_get_current_buf() ~= bufnr
    or not in_insert_mode() or not enabled.is_enabled(bufnr) then
    return
  end
  local versions = vim.lsp.util.buf_versions
  if versions and versions[bufnr] ~= result.textDocument.version then
    return
  end
  local row, col = cursor()
  local character = position.to_lsp(line_at(bufnr, row), col, c.offset_encoding or 'utf-16')
  if row ~= result.position.line or character ~= result.position.character then
    return
  end
  M.request(bufnr, M.AUTOMATIC)
end

--- Debounced automatic request.
function M.schedule(bufnr)
  local st = buffers[bufnr]
  if not st then
    return
  end
  st.timer:stop()
  st.timer:start(config.options.debounce_ms, 0, vim.schedule_wrap(function()
    if buffers[bufnr] and api.nvim_get_current_buf() == bufnr and in_insert_mode()
      and enabled.is_enabled(bufnr) then
      M.request(bufnr, M.AUTOMATIC)
    end
  end))
end

--- The text changed or the cursor moved. Keep the suggestion if the change was our own (a
--- partial accept redraws it) or the user typed exactly what it suggests (it shrinks);
--- otherwise drop it and ask again after the debounce.
--- @return boolean kept
function M.reconcile(bufnr)
  local st = buffers[bufnr]
  local s = M.current(bufnr)
  if not st or not s then
    return false
  end
  local tick = api.nvim_buf_get_changedtick(bufnr)
  local row, col = cursor()
  if tick == st.tick then
    return row == s.row and col == s.col
  end
  if row ~= s.row or col <= s.col then
    return false
  end
  local line = line_at(bufnr, row)
  local typed = line:sub(s.col + 1, col)
  if line ~= st.line:sub(1, s.col) .. typed .. st.line:sub(s.col + 1) then
    return false
  end
  local kept, index = {}, 1
  for _, it in ipairs(st.items) do
    if #it.text > #typed and it.text:sub(1, #typed) == typed then
      it.text = it.text:sub(#typed + 1)
      if it.end_row == it.row then
        it.end_col = it.end_col + #typed
      end
      it.col = col
      table.insert(kept, it)
      if it == s then
        index = #kept
      end
    end
  end
  if #kept == 0 then
    return false
  end
  M.show(bufnr, kept, index)
  return M.current(bufnr) ~= nil
end

local function on_edit(bufnr)
  if not enabled.is_enabled(bufnr) then
    return M.dismiss(bufnr)
  end
  if M.reconcile(bufnr) then
    return
  end
  M.dismiss(bufnr)
  if not popup_visible() then
    M.schedule(bufnr)
  end
end

--- Start following `bufnr` (called when the server attaches to it).
function M.attach(bufnr)
  if buffers[bufnr] then
    return
  end
  buffers[bufnr] = { timer = assert(vim.uv.new_timer()) }
  local group = api.nvim_create_augroup('ghostfill.buffer.' .. bufnr, { clear = true })
  local function on(events, fn)
    api.nvim_create_autocmd(events, { group = group, buffer = bufnr, callback = function()
      fn(bufnr)
    end })
  end
  on({ 'InsertEnter', 'TextChangedI', 'CursorMovedI' }, on_edit)
  on({ 'InsertLeave', 'BufLeave', 'CompleteChanged', 'TextChangedP' }, M.dismiss)
  on('CompleteDone', function()
    vim.schedule(function()
      if in_insert_mode() and api.nvim_get_current_buf() == bufnr then
        on_edit(bufnr)
      end
    end)
  end)
  on({ 'BufWipeout', 'BufUnload' }, M.detach)
  on('BufEnter', focus.entered)
  on('CursorHold', focus.moved)
  keymaps.set_trigger(bufnr)
  focus.attached(bufnr)
  -- Insert mode entered before the server attached: ask now instead of at the next key.
  if api.nvim_get_current_buf() == bufnr and in_insert_mode() then
    on_edit(bufnr)
  end
end

function M.detach(bufnr)
  local st = buffers[bufnr]
  if not st then
    return
  end
  M.dismiss(bufnr)
  st.timer:close()
  buffers[bufnr] = nil
  focus.forget(bufnr)
  pcall(api.nvim_del_augroup_by_name, 'ghostfill.buffer.' .. bufnr)
end

--- Buffers being followed (for toggling all of them at once).
function M.followed()
  return vim.tbl_keys(buffers)
end

return M
