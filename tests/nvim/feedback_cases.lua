-- tests/test_nvim_feedback.py: the plugin reports what became of a suggestion (feedback.lua),
-- against the scripted engine, whose answer is ANSWER below.
local H = require('harness')
local g = require('ghostfill')
local client = require('ghostfill.client')

local function wait_ghost(bufnr, what)
  return H.wait_until(function()
    return #H.ghost_marks(bufnr) > 0 and g.suggestion()
  end, 30000, what)
end

--- The server's per-language feedback counts.
local function feedback(bufnr)
  local c = client.get(bufnr)
  local result, err = client.request_sync(c, 'ghostfill/stats', client.NO_PARAMS, 10000, bufnr)
  H.expect(result, 'ghostfill/stats: ' .. vim.inspect(err))
  return result.feedback.languages.python or {}
end

H.run({
  { 'format_stats', function(_, data)
    local lines = require('ghostfill.status').format_stats({ feedback = { languages = {
      python = { shown = 4, accepted = 1, partial = 2, rejected = 1, chars_shown = 80,
                 chars_kept = 30 } } } })
    data.last = lines[#lines]
  end },
  { 'accept_word_then_all', function(_, data)
    local buf = H.open('feedback.py', 'def mean(values):\n    \n')
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    H.input('A')
    wait_ghost(buf, 'ghost text')
    data.suggestion = g.suggestion().text
    H.sleep(200)
    data.shown = feedback(buf)
    H.input('<M-Right>', 300)
    data.after_word = feedback(buf)
    H.input('<Tab>', 300)
    data.after_all = feedback(buf)
    data.line = vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1]
  end },
  { 'typed_over_then_back', function(_, data)
    -- The same answer everywhere: typed over at one place, it stays away from there only.
    vim.cmd('stopinsert')
    local buf = H.open('rejected.py', 'def mean(values):\n    \n')
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    H.input('A')
    wait_ghost(buf, 'ghost text')
    H.sleep(200)
    H.input('x', 100)
    wait_ghost(buf, 'ghost text after x')
    H.input('<BS>', 1000)
    data.ghost_after_backspace = #H.ghost_marks(buf)
    data.counts = feedback(buf)
  end },
})
