--- Telling the server what became of a suggestion, with Copilot's language server's
--- notifications (the server counts them per language, locally: `ghostfill stats`):
---
---   * textDocument/didShowCompletion {item}: the item was drawn, once per item however often
---     it is redrawn (typing through it, cycling back to it);
---   * textDocument/didPartiallyAcceptCompletion {item, acceptedLength}: a word or a line of it
---     was accepted; acceptedLength counts UTF-16 units of the item's insertText up to the end
---     of the accepted part (all taken so far, what typed through included), as VS Code does.
---
--- A full accept runs the item's command instead (accept.lua). `item` is the InlineCompletionItem
--- as the server sent it: the server knows it by the id in its command.
local client = require('ghostfill.client')
local position = require('ghostfill.position')

local M = {}

local function insert_text(item)
  local text = item.insertText
  if type(text) == 'table' then
    text = text.value
  end
  return type(text) == 'string' and text or nil
end

--- @param s ghostfill.Suggestion
function M.shown(s)
  if not s.item or s.shown_sent then
    return
  end
  local c = vim.lsp.get_client_by_id(s.client_id)
  if c then
    s.shown_sent = true
    client.notify(c, 'textDocument/didShowCompletion', { item = s.item })
  end
end

--- `part` of `s` was just accepted (s.text still the text before it was taken).
--- @param s ghostfill.Suggestion
--- @param part string
function M.partially_accepted(s, part)
  local text = s.item and insert_text(s.item)
  local c = vim.lsp.get_client_by_id(s.client_id)
  if not text or not c or #s.text > #text then
    return
  end
  -- What is left on screen is the end of the item's text; all before it is taken.
  local upto = #text - #s.text + #part
  local length = position.to_lsp(text, upto, 'utf-16')
  if length > 0 then
    client.notify(c, 'textDocument/didPartiallyAcceptCompletion',
      { item = s.item, acceptedLength = length })
  end
end

return M
