--- Columns between Neovim (byte offsets) and LSP (UTF-8, UTF-16 or UTF-32 units, whichever
--- the server negotiated).
---
--- Written out instead of vim.str_utfindex/str_byteindex because their signatures changed
--- between 0.10 and 0.11, and this plugin supports both.
local M = {}

--- Byte length of the UTF-8 sequence that starts with byte `b` (1 for a stray byte).
local function seq_len(b)
  if b < 0xC0 then
    return 1
  elseif b < 0xE0 then
    return 2
  elseif b < 0xF0 then
    return 3
  end
  return 4
end

--- Units one character of `len` UTF-8 bytes counts for in `encoding`.
local function units(len, encoding)
  if encoding == 'utf-8' then
    return len
  elseif encoding == 'utf-16' and len == 4 then
    return 2
  end
  return 1
end

--- LSP `character` of byte column `col` (0-based) in `line`.
--- @param line string
--- @param col integer
--- @param encoding string 'utf-8'|'utf-16'|'utf-32'
--- @return integer
function M.to_lsp(line, col, encoding)
  if encoding == 'utf-8' then
    return math.min(col, #line)
  end
  local i, n = 1, 0
  while i <= col and i <= #line do
    local len = seq_len(line:byte(i))
    n = n + units(len, encoding)
    i = i + len
  end
  return n
end

--- Byte column (0-based) of LSP `character` in `line`; past the end clamps to the end.
--- @param line string
--- @param character integer
--- @param encoding string
--- @return integer
function M.to_byte(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local i, n = 1, 0
  while n < character and i <= #line do
    local len = seq_len(line:byte(i))
    n = n + units(len, encoding)
    i = i + len
  end
  return math.min(i - 1, #line)
end

return M
