--- Insert-mode keys that exist only while a suggestion is shown.
---
--- They are buffer-local maps set when ghost text appears and removed when it goes, so Tab
--- belongs to nvim-cmp, blink.cmp or plain indentation the rest of the time. A buffer-local
--- map that was already there (blink.cmp sets some) is saved and put back afterwards.
local config = require('ghostfill.config')

local M = {}

--- Keys that act on a shown suggestion, and what they call in require('ghostfill').
M.actions = {
  accept = 'accept',
  accept_word = 'accept_word',
  accept_line = 'accept_line',
  dismiss = 'dismiss',
  next = 'next',
  prev = 'prev',
}

--- bufnr -> { lhs -> saved maparg() dict or false }
--- @type table<integer, table<string, table|false>>
local active = {}

local function saved_buffer_map(bufnr, lhs)
  local found = false
  vim.api.nvim_buf_call(bufnr, function()
    local m = vim.fn.maparg(lhs, 'i', false, true)
    if type(m) == 'table' and m.buffer == 1 then
      found = m
    end
  end)
  return found
end

function M.is_active(bufnr)
  return active[bufnr] ~= nil
end

--- Set the suggestion keys in `bufnr` (no-op when they already are).
function M.activate(bufnr)
  if active[bufnr] then
    return
  end
  local saved = {}
  for name, fn_name in pairs(M.actions) do
    local lhs = config.options.keymaps[name]
    if lhs then
      saved[lhs] = saved_buffer_map(bufnr, lhs)
      vim.keymap.set('i', lhs, function()
        require('ghostfill')[fn_name]()
      end, { buffer = bufnr, nowait = true, silent = true, desc = 'ghostfill: ' .. name })
    end
  end
  active[bufnr] = saved
end

--- Remove the suggestion keys from `bufnr` and restore what they covered.
function M.deactivate(bufnr)
  local saved = active[bufnr]
  if not saved then
    return
  end
  active[bufnr] = nil
  if not vim.api.nvim_buf_is_valid(bufnr) then
    return
  end
  for lhs, prev in pairs(saved) do
    pcall(vim.keymap.del, 'i', lhs, { buffer = bufnr })
    if prev then
      vim.api.nvim_buf_call(bufnr, function()
        pcall(vim.fn.mapset, 'i', false, prev)
      end)
    end
  end
end

--- The manual trigger has to work while nothing is shown, so it stays for the buffer's life.
function M.set_trigger(bufnr)
  local lhs = config.options.keymaps.trigger
  if lhs and not saved_buffer_map(bufnr, lhs) then
    vim.keymap.set('i', lhs, function()
      require('ghostfill').trigger()
    end, { buffer = bufnr, silent = true, desc = 'ghostfill: trigger' })
  end
end

return M
