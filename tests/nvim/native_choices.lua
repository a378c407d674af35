-- The case tests/test_nvim_native.py's cycling test checks: Neovim 0.12's own inline
-- completion with editors/nvim/README.md's recipe (run before this file), against the scripted
-- engine: a keystroke shows one suggestion, <M-]> fetches several and moves among them.
local H = require('harness')
local api = vim.api

local ns = api.nvim_create_namespace('nvim.lsp.inline_completion')

--- The built-in client's ghost text: its overlay text and virtual lines, hint included.
local function screen(bufnr)
  local parts = {}
  for _, m in ipairs(api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true })) do
    for _, chunk in ipairs(m[4].virt_text or {}) do
      table.insert(parts, chunk[1])
    end
  end
  return table.concat(parts)
end

local function wait_screen(bufnr, want, what)
  return H.wait_until(function()
    local s = screen(bufnr)
    return s:find(want, 1, true) and s
  end, 30000, what)
end

H.run({ { 'native_cycle', function(_, data)
  local path = vim.env.GHOSTFILL_TEST_DIR .. '/mean.py'
  local f = assert(io.open(path, 'w'))
  f:write('def mean(values):\n    \n')
  f:close()
  vim.cmd('edit ' .. vim.fn.fnameescape(path))
  local buf = api.nvim_get_current_buf()
  H.wait_until(function()
    local c = vim.lsp.get_clients({ bufnr = buf, name = 'ghostfill' })[1]
    return c and c.initialized
  end, 30000, 'the client to attach')
  api.nvim_win_set_cursor(0, { 2, 4 })
  H.input('A')
  local greedy = vim.env.GHOSTFILL_GREEDY
  local others = vim.json.decode(vim.env.GHOSTFILL_ALTERNATIVES)
  data.typed = wait_screen(buf, greedy, 'the one suggestion of the automatic request')
  H.input('<M-]>') -- fetches them (the client asks again, shows the first)
  H.sleep(1000)
  data.fetched = screen(buf)
  H.input('<M-]>')
  data.next = wait_screen(buf, others[1], 'the second suggestion after <M-]>')
  H.expect(data.next:find('(2/3)', 1, true), 'no "(2/3)" hint: ' .. data.next)
  H.input('<M-[>')
  data.back = wait_screen(buf, greedy, 'the first suggestion again after <M-[>')
  H.input('<M-[>')
  data.wrapped = wait_screen(buf, others[2], 'the last suggestion after another <M-[>')
  H.expect(api.nvim_buf_get_lines(buf, 1, 2, false)[1] == '    ', 'ghost text leaked')
end } })
