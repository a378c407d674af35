-- :Ghostfill {subcommand}. Nothing starts until require("ghostfill").setup{} is called, so
-- installing the plugin costs nothing at startup.
if vim.g.loaded_ghostfill then
  return
end
vim.g.loaded_ghostfill = true

if vim.fn.has('nvim-0.10') == 0 then
  vim.api.nvim_create_user_command('Ghostfill', function()
    vim.notify('ghostfill needs Neovim >= 0.10', vim.log.levels.ERROR)
  end, { nargs = '*' })
  return
end

local subcommands = {
  fim = function(opts)
    local g = require('ghostfill')
    if opts.range > 0 then
      local bufnr = vim.api.nvim_get_current_buf()
      g.fim({ range = require('ghostfill.fim').selection(bufnr, opts.line1, opts.line2) })
    else
      g.fim()
    end
  end,
  status = function()
    require('ghostfill').status()
  end,
  toggle = function(opts)
    require('ghostfill').toggle(opts.fargs[2])
  end,
  enable = function(opts)
    require('ghostfill').enable(opts.fargs[2])
  end,
  disable = function(opts)
    require('ghostfill').disable(opts.fargs[2])
  end,
  trigger = function()
    require('ghostfill').trigger()
  end,
  restart = function()
    require('ghostfill').restart()
  end,
}

vim.api.nvim_create_user_command('Ghostfill', function(opts)
  local name = opts.fargs[1] or 'status'
  local fn = subcommands[name]
  if not fn then
    vim.notify('ghostfill: unknown subcommand ' .. name, vim.log.levels.ERROR)
    return
  end
  if name ~= 'status' and not require('ghostfill').is_setup() then
    vim.notify('ghostfill: call require("ghostfill").setup{} first', vim.log.levels.WARN)
    return
  end
  fn(opts)
end, {
  nargs = '*',
  range = true,
  desc = 'ghostfill: fim | status | toggle [ft] | enable [ft] | disable [ft] | trigger | restart',
  complete = function(arglead, cmdline)
    local args = vim.split(cmdline, '%s+', { trimempty = true })
    local n = #args + (cmdline:match('%s$') and 1 or 0)
    if n <= 2 then
      return vim.tbl_filter(function(s)
        return s:find(arglead, 1, true) == 1
      end, vim.fn.sort(vim.tbl_keys(subcommands)))
    end
    if vim.tbl_contains({ 'toggle', 'enable', 'disable' }, args[2]) then
      return vim.fn.getcompletion(arglead, 'filetype')
    end
    return {}
  end,
})
