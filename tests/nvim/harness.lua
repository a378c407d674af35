-- Runs test cases inside a real Neovim as one coroutine, so keys sent with nvim_input are
-- processed by the real main loop (insert mode, autocmds, timers, LSP replies) between steps.
-- Writes {case = {ok, error, data, seconds}} as JSON to $GHOSTFILL_TEST_OUT and quits.
local H = {}

local co
local results = {}
local current_case

--- A line in $GHOSTFILL_TEST_OUT.log: where a run that hangs got to.
function H.log(fmt, ...)
  local f = io.open(vim.env.GHOSTFILL_TEST_OUT .. '.log', 'a')
  if f then
    f:write(('%.2f %s\n'):format(vim.uv.hrtime() / 1e9, fmt:format(...)))
    f:close()
  end
end

local function write_report()
  local f = assert(io.open(vim.env.GHOSTFILL_TEST_OUT, 'w'))
  f:write(vim.json.encode(results))
  f:close()
end

local function resume()
  local ok, err = coroutine.resume(co)
  if not ok then
    H.fatal(err)
  end
end

function H.fatal(err)
  local f = assert(io.open(vim.env.GHOSTFILL_TEST_OUT, 'w'))
  f:write(vim.json.encode({ _harness = { ok = false, error = tostring(err) } }))
  f:close()
  vim.cmd('qall!')
end

--- Let Neovim run for `ms` (input, timers, LSP messages).
function H.sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

--- Poll `cond` until it returns a truthy value (returned) or `timeout_ms` passes (error).
function H.wait_until(cond, timeout_ms, what)
  H.log('waiting for %s', what)
  local deadline = vim.uv.hrtime() + timeout_ms * 1e6
  while true do
    local v = cond()
    if v then
      return v
    end
    if vim.uv.hrtime() > deadline then
      error(('timed out after %d ms waiting for %s'):format(timeout_ms, what), 2)
    end
    H.sleep(50)
  end
end

--- Type keys as a user would (<Esc>, <Tab>, <M-Right> notation), then let them be processed.
function H.input(keys, settle_ms)
  vim.api.nvim_input(keys)
  H.sleep(settle_ms or 100)
end

function H.expect(cond, message)
  if not cond then
    error(message, 2)
  end
end

--- Extmarks the plugin drew in `bufnr`, with their text flattened.
function H.ghost_marks(bufnr)
  local ns = require('ghostfill.ghost').ns
  local out = {}
  for _, m in ipairs(vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    local d = m[4]
    local text = {}
    for _, chunk in ipairs(d.virt_text or {}) do
      table.insert(text, chunk[1])
    end
    local lines = {}
    for _, vl in ipairs(d.virt_lines or {}) do
      local parts = {}
      for _, chunk in ipairs(vl) do
        table.insert(parts, chunk[1])
      end
      table.insert(lines, table.concat(parts))
    end
    table.insert(out, { row = m[2], col = m[3], virt_text = table.concat(text),
                        virt_lines = lines, pos = d.virt_text_pos })
  end
  return out
end

--- Open `text` as a real file (so the server gets a file:// URI) and wait for the server.
function H.open(name, text)
  local path = vim.env.GHOSTFILL_TEST_DIR .. '/' .. name
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
  vim.cmd('stopinsert')
  H.sleep(20)
  vim.cmd('tabnew ' .. vim.fn.fnameescape(path))
  local bufnr = vim.api.nvim_get_current_buf()
  H.wait_until(function()
    return require('ghostfill.client').get(bufnr)
  end, 30000, 'the ghostfill client to attach')
  return bufnr
end

--- Wait until the model is loaded (the first time this costs the load).
function H.wait_ready(bufnr)
  local c = require('ghostfill.client').get(bufnr)
  H.wait_until(function()
    local s = require('ghostfill.status').clients[c.id]
    if s and s.state == 'error' then
      error('model failed to load: ' .. tostring(s.error))
    end
    return s and s.state == 'ready'
  end, 120000, 'the model to load')
end

--- Run `cases` ({name, fn(H, data)} in order); each gets a fresh `data` table to report.
--- A case starts in the state the previous one left (mode, buffer, suggestion).
function H.run(cases)
  -- Whatever hangs, the report is written (with the case that hung) before the caller's
  -- timeout kills Neovim.
  local budget_s = tonumber(vim.env.GHOSTFILL_TEST_BUDGET_S) or 200
  vim.defer_fn(function()
    results._harness = { ok = false, error = ('ran past %d s in case %s'):format(budget_s,
      tostring(current_case)) }
    write_report()
    vim.cmd('qall!')
  end, budget_s * 1000)
  co = coroutine.create(function()
    for _, case in ipairs(cases) do
      local data = {}
      current_case = case[1]
      H.log('case %s', case[1])
      local started = vim.uv.hrtime()
      local ok, err = xpcall(case[2], debug.traceback, H, data)
      results[case[1]] = {
        ok = ok, error = not ok and tostring(err) or nil, data = data,
        seconds = (vim.uv.hrtime() - started) / 1e9,
      }
      H.log('case %s: %s', case[1], ok and 'ok' or tostring(err))
      H.sleep(50)
    end
    write_report()
    vim.cmd('qall!')
  end)
  vim.schedule(resume)
end

return H
