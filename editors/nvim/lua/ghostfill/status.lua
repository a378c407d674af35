--- What the status line and `:Ghostfill status` show: the model's load state (from $/progress
--- and error messages), the last suggestion's round trip, and the server's own statistics
--- (`ghostfill/stats`).
local M = {}

--- @class ghostfill.ClientStatus
--- @field state 'starting'|'loading'|'ready'|'error'
--- @field percentage integer|nil
--- @field message string|nil
--- @field error string|nil
--- @field model string|nil
--- @field latency_ms number|nil  round trip of the last answered suggestion request
--- @field pending boolean        a suggestion request is in flight

--- @type table<integer, ghostfill.ClientStatus>
M.clients = {}

local function changed()
  -- Statusline plugins that cache their text can listen to this.
  vim.schedule(function()
    pcall(vim.api.nvim_exec_autocmds, 'User', { pattern = 'GhostfillStatus', modeline = false })
    pcall(vim.cmd.redrawstatus)
  end)
end

local function get(client_id)
  local s = M.clients[client_id]
  if not s then
    s = { state = 'starting', pending = false }
    M.clients[client_id] = s
  end
  return s
end

--- The server may finish loading before the first $/progress reaches us (or a client may not
--- show progress at all), so ask it directly once it is up.
function M.on_init(client)
  get(client.id)
  M.refresh(client)
end

--- Ask the server for its stats and take the model state from them.
function M.refresh(client)
  local c = require('ghostfill.client')
  c.request(client, 'ghostfill/stats', c.NO_PARAMS, function(err, result)
    if err or type(result) ~= 'table' then
      return
    end
    local s = get(client.id)
    s.model = result.model or s.model
    if result.state == 'error' then
      s.state, s.error = 'error', result.error or s.error
    elseif result.state == 'ready' or result.state == 'loading' then
      s.state = result.state
    end
    changed()
  end)
end

--- @param value table WorkDoneProgressBegin|Report|End
function M.on_load_progress(client_id, value)
  local s = get(client_id)
  if value.kind == 'begin' or value.kind == 'report' then
    if s.state ~= 'error' then
      s.state = 'loading'
    end
    s.percentage = value.percentage or s.percentage
    s.message = value.message or s.message
  elseif value.kind == 'end' then
    s.percentage = nil
    s.message = value.message
    if s.state ~= 'error' then
      s.state = 'ready'
    end
    local client = vim.lsp.get_client_by_id(client_id)
    if client then
      M.refresh(client)
    end
  end
  changed()
end

function M.on_error(client_id, message)
  local s = get(client_id)
  s.error = message
  if s.state ~= 'ready' then
    s.state = 'error'
  end
  changed()
end

function M.on_exit(client_id)
  M.clients[client_id] = nil
  changed()
end

function M.on_request(client_id)
  get(client_id).pending = true
  changed()
end

--- @param latency_ms number|nil nil when the request was cancelled
function M.on_response(client_id, latency_ms)
  local s = get(client_id)
  s.pending = false
  if latency_ms then
    s.latency_ms = latency_ms
  end
  changed()
end

--- Text for a status line: empty when no ghostfill server serves the current buffer.
--- @param s ghostfill.ClientStatus|nil
--- @param enabled boolean ghost text on for the buffer
--- @return string
function M.format_statusline(s, enabled)
  if not s then
    return ''
  end
  if s.state == 'error' then
    return 'ghostfill: error'
  elseif s.state == 'loading' or s.state == 'starting' then
    return s.percentage and ('ghostfill: loading %d%%'):format(s.percentage) or 'ghostfill: loading'
  elseif not enabled then
    return 'ghostfill: off'
  end
  local text = 'ghostfill'
  if s.pending then
    text = text .. ' …'
  elseif s.latency_ms then
    text = text .. (' %dms'):format(math.floor(s.latency_ms + 0.5))
  end
  return text
end

local function num(v)
  return type(v) == 'number' and v or 0
end

--- Lines for `:Ghostfill status` from a `ghostfill/stats` result.
--- @param stats table
--- @return string[]
function M.format_stats(stats)
  local lat = type(stats.latency_ms) == 'table' and stats.latency_ms or {}
  local cache = type(stats.cache) == 'table' and stats.cache or {}
  local tokens = type(stats.tokens) == 'table' and stats.tokens or {}
  local sugg = type(stats.suggestions) == 'table' and stats.suggestions or {}
  local shown, accepted = num(sugg.shown), num(sugg.accepted)
  local lines = {
    ('model:       %s (template %s, backend %s)'):format(
      tostring(stats.model), tostring(stats.template), tostring(stats.backend)),
    ('state:       %s'):format(tostring(stats.state)),
  }
  if type(stats.error) == 'string' and stats.error ~= '' then
    table.insert(lines, ('error:       %s'):format(stats.error))
  end
  vim.list_extend(lines, {
    ('latency:     p50 %d ms, p95 %d ms over %d requests'):format(
      num(lat.p50), num(lat.p95), num(lat.count)),
    ('cache:       %d hits, %d type-through, %d misses'):format(
      num(cache.hits), num(cache.type_through), num(cache.misses)),
    ('tokens:      %d evaluated, %d reused'):format(num(tokens.evaluated), num(tokens.reused)),
    ('suggestions: %d shown, %d accepted%s'):format(shown, accepted,
      shown > 0 and (' (%d%%)'):format(math.floor(100 * accepted / shown + 0.5)) or ''),
  })
  -- What became of the suggestions, per language (feedback.lua; `ghostfill stats` for all time).
  local feedback = type(stats.feedback) == 'table' and stats.feedback.languages
  if type(feedback) == 'table' then
    local names = vim.tbl_keys(feedback)
    table.sort(names)
    for _, name in ipairs(names) do
      local f = feedback[name]
      local chars, kept = num(f.chars_shown), num(f.chars_kept)
      table.insert(lines, ('%-12s %d shown, %d accepted, %d in part, %d typed over; '
        .. '%d/%d characters kept%s'):format(name .. ':', num(f.shown), num(f.accepted),
        num(f.partial), num(f.rejected), kept, chars,
        chars > 0 and (' (%d%%)'):format(math.floor(100 * kept / chars + 0.5)) or ''))
    end
  end
  return lines
end

return M
