-- tests/test_nvim_focus.py: the plugin tells the server where the cursor is (focus.lua), so that
-- the window there is warmed. What the server warmed is read from the scripted engine's log by
-- the Python side; here the editor does what a user (or a restored session) does.
local H = require('harness')
local api = vim.api

local function source()
  local lines = {}
  for i = 0, 39 do
    lines[#lines + 1] = ('x_%d = %d'):format(i, i)
  end
  return table.concat(lines, '\n') .. '\n'
end

local function reports(bufnr)
  local client = require('ghostfill.client')
  local c = client.get(bufnr)
  local result = client.request_sync(c, 'ghostfill/stats', client.NO_PARAMS, 10000, bufnr)
  return result.warm_ups.focus_reports
end

H.run({
  { 'jump_then_rest', function(_, data)
    local buf = H.open('focus_a.py', source())
    H.wait_ready(buf)
    data.after_open = reports(buf)
    api.nvim_win_set_cursor(0, { 25, 0 }) -- a jump: the cursor rests on line 25
    api.nvim_exec_autocmds('CursorHold', { buffer = buf })
    H.sleep(300)
    data.after_hold = reports(buf)
    api.nvim_exec_autocmds('CursorHold', { buffer = buf }) -- same line: nothing new
    H.sleep(300)
    data.after_second_hold = reports(buf)
  end },
  { 'restored_buffer_in_the_background', function(_, data)
    -- As a restored session's buffer: loaded, not shown, with its last position (`"` mark).
    local path = vim.env.GHOSTFILL_TEST_DIR .. '/focus_b.py'
    local f = assert(io.open(path, 'w'))
    f:write(source())
    f:close()
    local shown = api.nvim_get_current_buf()
    local before = reports(shown)
    local client = require('ghostfill.client')
    local notify = client.notify
    data.sent = {}
    client.notify = function(c, method, params)
      data.sent[#data.sent + 1] = { method = method, params = params }
      return notify(c, method, params)
    end
    vim.cmd('badd +10 ' .. vim.fn.fnameescape(path)) -- as a session file lists it
    local b = vim.fn.bufnr(path)
    vim.fn.bufload(b)
    H.wait_until(function()
      return require('ghostfill.client').get(b)
    end, 30000, 'the client to attach to the background buffer')
    H.sleep(300)
    client.notify = notify
    data.background_reports = reports(shown) - before
    data.current_is_still = api.nvim_get_current_buf() == shown
  end },
})
