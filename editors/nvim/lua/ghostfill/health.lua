--- `:checkhealth ghostfill`: the things that have to be true for ghost text to appear —
--- a new enough Neovim, the server executable, a server that starts and advertises inline
--- completion, and a model that loaded.
local client = require('ghostfill.client')
local config = require('ghostfill.config')

local M = {}

local health = vim.health

--- How long to wait for a model that is still loading (the first start assembles and maps it).
local LOAD_WAIT_MS = 60000

local function check_neovim()
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim >= 0.10 is needed (inline virtual text)', 'Upgrade Neovim')
  end
end

--- @return boolean
local function check_executable()
  local exe = config.options.cmd[1]
  local path = vim.fn.exepath(exe)
  if path == '' then
    health.error(('`%s` is not executable or not on PATH'):format(exe), {
      'pip install ghostfill (into the Python that is on PATH), or',
      'set `cmd = { "/path/to/ghostfill", "serve" }` in require("ghostfill").setup{}',
    })
    return false
  end
  health.ok(('server command: %s (%s)'):format(table.concat(config.options.cmd, ' '), path))
  return true
end

--- The running server, or a fresh detached one (stopped again after the check).
--- @return vim.lsp.Client|nil, boolean started_here
local function get_client()
  local c = client.get()
  if c then
    return c, false
  end
  local id = client.start_detached()
  c = id and vim.lsp.get_client_by_id(id)
  if not c then
    return nil, false
  end
  vim.wait(20000, function()
    return c.initialized or c:is_stopped()
  end, 50)
  return c, true
end

local function stats_of(c)
  local result, err = client.request_sync(c, 'ghostfill/stats', client.NO_PARAMS, 5000)
  if err then
    return nil, err.message or vim.inspect(err)
  end
  return result, nil
end

local function check_server()
  local c, started_here = get_client()
  if not c or not c.initialized then
    health.error('the server did not start', {
      ('run `%s` in a terminal to see why'):format(table.concat(config.options.cmd, ' ')),
      'see :LspLog',
    })
    if c then
      client.stop(c)
    end
    return
  end
  local info = c.server_info or {}
  health.ok(('server started: %s %s (client id %d, %s positions)'):format(
    info.name or 'ghostfill', info.version or '', c.id, c.offset_encoding))
  if c.server_capabilities and c.server_capabilities.inlineCompletionProvider then
    health.ok('server advertises inline completion')
  else
    health.warn('server does not advertise inlineCompletionProvider; ghost text may not work')
  end

  local stats, err = stats_of(c)
  local deadline = vim.uv.now() + LOAD_WAIT_MS
  while stats and stats.state == 'loading' and vim.uv.now() < deadline do
    vim.wait(250)
    stats, err = stats_of(c)
  end
  if not stats then
    health.warn('ghostfill/stats failed: ' .. tostring(err))
  elseif stats.state == 'ready' then
    health.ok(('model ready: %s (template %s, backend %s)'):format(
      tostring(stats.model), tostring(stats.template), tostring(stats.backend)))
  elseif stats.state == 'error' then
    health.error('model failed to load: ' .. tostring(stats.error), {
      'check server_options.model in setup{}',
      'ghostfill models  # lists presets and whether they are cached',
    })
  else
    health.warn(('model still %s after %d s'):format(tostring(stats.state), LOAD_WAIT_MS / 1000))
  end
  if started_here then
    client.stop(c)
  end
end

function M.check()
  health.start('ghostfill')
  check_neovim()
  if not require('ghostfill').is_setup() then
    health.warn('require("ghostfill").setup{} has not been called; checking with the defaults')
  end
  if check_executable() then
    check_server()
  end
end

return M
