--- The one ghostfill language server: starting it, attaching buffers, and talking to it.
---
--- One server process serves every buffer (`reuse_client` ignores root_dir): each process
--- loads its own copy of the model, so one per project would multiply memory and load time.
--- Request helpers hide the 0.10 → 0.11 change from `client.request(...)` to
--- `client:request(...)`.
local config = require('ghostfill.config')
local status = require('ghostfill.status')

local M = {}

M.name = 'ghostfill'

local has_011 = vim.fn.has('nvim-0.11') == 1

local get_clients = vim.lsp.get_clients or vim.lsp.get_active_clients

--- Params of requests that take none (ghostfill/stats). Sent as JSON null: the server answers
--- "Internal Error" when the params member is left out.
M.NO_PARAMS = vim.NIL

--- @param bufnr integer|nil nil: any buffer
--- @return vim.lsp.Client|nil
function M.get(bufnr)
  return get_clients({ name = M.name, bufnr = bufnr })[1]
end

--- @return vim.lsp.Client[]
function M.all()
  return get_clients({ name = M.name })
end

--- @return boolean ok, integer|nil request_id
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

--- @return table|nil result, table|nil err
function M.request_sync(client, method, params, timeout_ms, bufnr)
  local resp, err
  if has_011 then
    resp, err = client:request_sync(method, params, timeout_ms, bufnr)
  else
    resp, err = client.request_sync(method, params, timeout_ms, bufnr)
  end
  if not resp then
    return nil, { message = tostring(err) }
  end
  return resp.result, resp.err
end

function M.cancel(client, id)
  if client:is_stopped() then
    return
  end
  if has_011 then
    client:cancel_request(id)
  else
    client.cancel_request(id)
  end
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.stop(client)
  if has_011 then
    client:stop()
  else
    client.stop()
  end
end

--- Tell the server that a suggestion was accepted (fully or partly): it counts it and
--- prefetches the suggestion that follows. Sent as workspace/executeCommand directly, not via
--- client:exec_cmd, which on some versions warns when the command is not advertised.
--- @param command lsp.Command|nil
function M.execute(client, command, bufnr)
  if not command or type(command.command) ~= 'string' then
    return
  end
  M.request(client, 'workspace/executeCommand', {
    command = command.command,
    arguments = command.arguments,
  }, function() end, bufnr)
end

--- Record the model's load progress for the status line, then let Neovim's own handler
--- (vim.lsp.status(), LspProgress) see it too. The token is "ghostfill/load", possibly with a
--- suffix that makes each load's token unique.
local function on_progress(err, result, ctx, cfg)
  if result and type(result.token) == 'string' and result.token:find('^ghostfill/load') then
    status.on_load_progress(ctx.client_id, result.value or {})
  end
  return vim.lsp.handlers['$/progress'](err, result, ctx, cfg)
end

local function on_show_message(err, result, ctx, cfg)
  if result and result.type == vim.lsp.protocol.MessageType.Error then
    status.on_error(ctx.client_id, result.message)
  end
  return vim.lsp.handlers['window/showMessage'](err, result, ctx, cfg)
end

--- The client configuration handed to vim.lsp.start.
--- @param on_attach fun(client: vim.lsp.Client, bufnr: integer)
--- @param bufnr integer|nil
function M.make_config(on_attach, bufnr)
  local o = config.options
  return {
    name = M.name,
    cmd = o.cmd,
    root_dir = bufnr and vim.fs.root(bufnr, { '.git' }) or vim.fn.getcwd(),
    init_options = o.server_options,
    -- Answered to workspace/configuration and sent with didChangeConfiguration.
    settings = { ghostfill = o.server_options },
    -- The server announces answers the latency budget could not wait for (a line cut at
    -- the deadline, a window still being read); we ask again and get them at once.
    capabilities = vim.tbl_deep_extend('force', vim.lsp.protocol.make_client_capabilities(),
      { experimental = { ghostfillSuggestionReady = true } }),
    handlers = {
      ['$/progress'] = on_progress,
      ['window/showMessage'] = on_show_message,
      ['ghostfill/suggestionReady'] = function(_, result, ctx)
        require('ghostfill.suggest').on_ready(ctx.client_id, result)
      end,
    },
    on_init = function(client)
      -- The server's textDocument/completion is a fallback for editors without ghost text.
      -- Hidden here, so nvim-cmp / blink.cmp do not ask the model for popup items as well.
      if client.server_capabilities then
        client.server_capabilities.completionProvider = nil
      end
      status.on_init(client)
    end,
    on_attach = on_attach,
    on_exit = function(_, _, client_id)
      status.on_exit(client_id)
    end,
  }
end

local function reuse_client(client, cfg)
  return client.name == cfg.name and not client:is_stopped()
end

--- Attach `bufnr` to the ghostfill server, starting it if none runs.
--- @return integer|nil client_id
function M.attach(bufnr, on_attach)
  return vim.lsp.start(M.make_config(on_attach, bufnr), {
    bufnr = bufnr,
    reuse_client = reuse_client,
  })
end

--- Start a server that is attached to no buffer (for :checkhealth when none runs yet).
--- @return integer|nil client_id
function M.start_detached()
  local cfg = M.make_config(function() end, nil)
  if has_011 then
    return vim.lsp.start(cfg, { attach = false, reuse_client = reuse_client })
  end
  return vim.lsp.start_client(cfg)
end

--- Push new server options to the running server.
function M.push_settings(server_options)
  for _, client in ipairs(M.all()) do
    client.settings = { ghostfill = server_options }
    M.notify(client, 'workspace/didChangeConfiguration', {
      settings = { ghostfill = server_options },
    })
  end
end

return M
