-- The cases tests/test_nvim_choices.py checks: cycling among several suggestions with the
-- plugin's <M-]>/<M-[>, against the scripted engine (tests/scripted_server.py), whose script
-- the test wrote: one answer for a keystroke, more for an invoked request.
local H = require('harness')
local api = vim.api
local g = require('ghostfill')

local cases = {}
local function case(name, fn)
  table.insert(cases, { name, fn })
end

--- The ghost text on screen: its inline text and virtual lines, hint included.
local function screen(bufnr)
  local parts = {}
  for _, m in ipairs(H.ghost_marks(bufnr)) do
    table.insert(parts, m.virt_text)
    for _, l in ipairs(m.virt_lines) do
      table.insert(parts, '\n' .. l)
    end
  end
  return table.concat(parts)
end

local function wait_text(bufnr, want, what)
  return H.wait_until(function()
    local s = g.suggestion()
    return s and s.text == want and screen(bufnr):find(want, 1, true) and screen(bufnr)
  end, 30000, what)
end

case('cycle_asks_for_more_and_moves_between_them', function(_, data)
  local buf = H.open('mean.py', 'def mean(values):\n    \n')
  H.wait_ready(buf)
  api.nvim_win_set_cursor(0, { 2, 4 })
  H.input('A')
  local first = vim.env.GHOSTFILL_GREEDY
  data.typed = wait_text(buf, first, 'the one suggestion of a keystroke')
  data.count_before = #require('ghostfill.suggest').state(buf).items
  H.expect(data.count_before == 1, 'a keystroke got several suggestions')
  local alternatives = vim.json.decode(vim.env.GHOSTFILL_ALTERNATIVES)
  H.input('<M-]>')
  data.next = wait_text(buf, alternatives[1], 'the second suggestion after <M-]>')
  H.expect(data.next:find('(2/3)', 1, true), 'no "2/3" hint: ' .. data.next)
  H.input('<M-[>')
  data.back = wait_text(buf, first, 'the first suggestion again after <M-[>')
  H.expect(data.back:find('(1/3)', 1, true), 'no "1/3" hint: ' .. data.back)
  H.input('<M-[>')
  data.wrapped = wait_text(buf, alternatives[2], 'the last suggestion after another <M-[>')
  H.expect(api.nvim_buf_get_lines(buf, 1, 2, false)[1] == '    ', 'ghost text leaked')
  -- Accepting the one shown inserts that one.
  H.input('<Tab>', 200)
  data.line = api.nvim_buf_get_lines(buf, 1, 2, false)[1]
  H.expect(data.line == '    ' .. alternatives[2], 'accepted: ' .. data.line)
end)

H.run(cases)
