--- Whether ghost text appears while typing: a global switch, per-filetype switches and a
--- per-buffer `vim.b.ghostfill_enabled`. FIM is a command the user runs explicitly, so it
--- ignores these.
local config = require('ghostfill.config')

local M = {}

--- nil: follow config.options.enabled
--- @type boolean|nil
M.global = nil

--- filetype -> boolean, set by `:Ghostfill enable|disable|toggle {filetype}`
--- @type table<string, boolean>
M.filetypes = {}

local function filetype_default(ft)
  return not vim.tbl_contains(config.options.disabled_filetypes, ft)
end

--- @param bufnr integer
--- @return boolean
function M.is_enabled(bufnr)
  local global = M.global
  if global == nil then
    global = config.options.enabled
  end
  if not global then
    return false
  end
  local b = vim.b[bufnr].ghostfill_enabled
  if b ~= nil then
    return b and true or false
  end
  local ft = vim.bo[bufnr].filetype
  local f = M.filetypes[ft]
  if f == nil then
    return filetype_default(ft)
  end
  return f
end

--- @param value boolean|nil nil: flip
--- @param ft string|nil nil: the global switch
--- @return boolean the new value
function M.set(value, ft)
  if ft and ft ~= '' then
    local current = M.filetypes[ft]
    if current == nil then
      current = filetype_default(ft)
    end
    if value == nil then
      value = not current
    end
    M.filetypes[ft] = value
    return value
  end
  local current = M.global
  if current == nil then
    current = config.options.enabled
  end
  if value == nil then
    value = not current
  end
  M.global = value
  return value
end

return M
