--- Options of `require("ghostfill").setup()`: defaults, merging and validation.
---
--- Every knob is listed here with its default, so a user reading this file sees all of them.
local M = {}

--- @class ghostfill.Keymaps
--- @field accept string|false       accept the whole suggestion
--- @field accept_word string|false  accept up to the end of the next word
--- @field accept_line string|false  accept up to the end of the current suggestion line
--- @field dismiss string|false
--- @field next string|false         cycle to the next suggestion, when the server gave several
--- @field prev string|false
--- @field trigger string|false      ask for a suggestion now (the only map that is always there)

--- @class ghostfill.Config
--- @field cmd string[]
--- @field filetypes string[]         filetypes the server attaches to (ghost text and FIM)
--- @field disabled_filetypes string[] attached, but no ghost text while typing (FIM still works)
--- @field enabled boolean            ghost text on at start (`:Ghostfill toggle` flips it)
--- @field debounce_ms integer        quiet time after a keystroke before asking the server
--- @field keymaps ghostfill.Keymaps
--- @field server_options table       the server's configuration (README "Configuration")
--- @field show_with_popup boolean    keep ghost text while a completion menu is open
--- @field hl_group string            highlight of the ghost text
M.defaults = {
  cmd = { 'ghostfill', 'serve' },
  filetypes = {
    'python', 'lua', 'rust', 'go', 'javascript', 'javascriptreact', 'typescript',
    'typescriptreact', 'c', 'cpp', 'java', 'cs', 'sh',
  },
  disabled_filetypes = {},
  enabled = true,
  -- The server debounces too (server.debounceMs); ours saves the round trip and the
  -- didChange flush for keystrokes that come faster than this.
  debounce_ms = 75,
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    dismiss = '<C-]>',
    next = '<M-]>',
    prev = '<M-[>',
    trigger = '<M-\\>',
  },
  server_options = {},
  show_with_popup = false,
  hl_group = 'GhostfillSuggestion',
}

--- @type ghostfill.Config
M.options = vim.deepcopy(M.defaults)

--- Lists replace the default list (a user's `filetypes = {"python"}` means only Python);
--- dictionaries merge key by key. vim.tbl_deep_extend would merge lists index by index.
--- An empty table is both a list and a dictionary to Lua (`vim.islist({})` is true): given for
--- a dictionary (`setup({})`, `keymaps = {}`) it changes nothing; for a list it empties it.
local function is_list(t)
  return vim.islist(t) and next(t) ~= nil
end

local function merge(base, override)
  if type(base) ~= 'table' or type(override) ~= 'table' or is_list(base) or is_list(override)
  then
    return vim.deepcopy(override)
  end
  local out = vim.deepcopy(base)
  for k, v in pairs(override) do
    out[k] = merge(base[k], v)
  end
  return out
end

--- vim.validate changed its signature in 0.11; this works the same on 0.10 and later.
local function check(name, ok, expected)
  if not ok then
    error(('ghostfill.setup: %s: expected %s'):format(name, expected), 3)
  end
end

local function is_string_list(v)
  if type(v) ~= 'table' then
    return false
  end
  for _, s in ipairs(v) do
    if type(s) ~= 'string' then
      return false
    end
  end
  return true
end

--- Merge `opts` over the defaults, validate, and make the result current.
--- @param opts table|nil
--- @return ghostfill.Config
function M.set(opts)
  check('opts', opts == nil or type(opts) == 'table', 'table')
  local o = merge(M.defaults, opts or {})
  check('cmd', is_string_list(o.cmd) and #o.cmd > 0, 'non-empty list of strings')
  check('filetypes', is_string_list(o.filetypes), 'list of strings')
  check('disabled_filetypes', is_string_list(o.disabled_filetypes), 'list of strings')
  check('enabled', type(o.enabled) == 'boolean', 'boolean')
  check('debounce_ms', type(o.debounce_ms) == 'number' and o.debounce_ms >= 0, 'number >= 0')
  check('keymaps', type(o.keymaps) == 'table', 'table')
  for name, lhs in pairs(o.keymaps) do
    check('keymaps.' .. tostring(name), M.defaults.keymaps[name] ~= nil, 'a known keymap name')
    check('keymaps.' .. name, lhs == false or type(lhs) == 'string', 'key string or false')
  end
  check('server_options', type(o.server_options) == 'table', 'table')
  check('show_with_popup', type(o.show_with_popup) == 'boolean', 'boolean')
  check('hl_group', type(o.hl_group) == 'string', 'string')
  M.options = o
  return o
end

return M
