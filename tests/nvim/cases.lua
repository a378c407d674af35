-- The cases tests/test_nvim_plugin.py checks, run in order in one Neovim with one server
-- (the model loads once). Later cases reuse buffers the earlier ones left in a known state.
local H = require('harness')
local api = vim.api
local g = require('ghostfill')

local function read(path)
  local f = assert(io.open(path))
  local s = f:read('*a')
  f:close()
  return s
end

local STATS = read(vim.env.GHOSTFILL_ROOT .. '/examples/stats.py')

local function buffer_text(bufnr)
  return table.concat(api.nvim_buf_get_lines(bufnr, 0, -1, false), '\n')
end

--- Byte offset in buffer_text() of (row, col).
local function offset(bufnr, row, col)
  local n = 0
  for _, l in ipairs(api.nvim_buf_get_lines(bufnr, 0, row, false)) do
    n = n + #l + 1
  end
  return n + col
end

local function tab_is_mapped(bufnr)
  local m = api.nvim_buf_call(bufnr, function()
    return vim.fn.maparg('<Tab>', 'i', false, true)
  end)
  return type(m) == 'table' and m.buffer == 1
end

local function wait_ghost(bufnr, what)
  return H.wait_until(function()
    local marks = H.ghost_marks(bufnr)
    return #marks > 0 and g.suggestion() and marks
  end, 60000, what)
end

local cases = {}
local function case(name, fn)
  table.insert(cases, { name, fn })
end

case('pure_functions', function(_, data)
  local accept = require('ghostfill.accept')
  local position = require('ghostfill.position')
  local ghost = require('ghostfill.ghost')
  local status = require('ghostfill.status')
  local config = require('ghostfill.config')
  local eq = function(a, b, what)
    H.expect(vim.deep_equal(a, b), ('%s: got %s, want %s'):format(what, vim.inspect(a), vim.inspect(b)))
  end
  eq(accept.next_word('m = mean(values)'), 'm', 'word')
  eq(accept.next_word(' = mean(values)'), ' =', 'punctuation run')
  eq(accept.next_word('\n    return x'), '\n    return', 'word on the next line')
  eq(accept.next_word('héllo wörld'), 'héllo', 'non-ASCII word')
  eq(accept.next_line('abc\ndef'), 'abc', 'line')
  eq(accept.next_line('\n    def'), '\n    def', 'next line')
  local line = 'aé😀b'
  eq(position.to_lsp(line, 3, 'utf-16'), 2, 'utf-16 after é')
  eq(position.to_lsp(line, 7, 'utf-16'), 4, 'utf-16 after emoji')
  eq(position.to_lsp(line, 7, 'utf-32'), 3, 'utf-32 after emoji')
  eq(position.to_lsp(line, 7, 'utf-8'), 7, 'utf-8')
  eq(position.to_byte(line, 4, 'utf-16'), 7, 'byte of utf-16 4')
  eq(position.to_byte(line, 3, 'utf-32'), 7, 'byte of utf-32 3')
  eq(position.to_byte(line, 99, 'utf-16'), #line, 'clamped')
  eq(ghost.split_around('a, b)', ')'), { { 0, 'a, b' } }, 'closing bracket stays real')
  eq(ghost.split_around('"a", b)', '")'), { { 1, 'a", b' } }, 'two replaced characters')
  eq(ghost.split_around('x', ')'), nil, 'not a subsequence')
  eq(status.format_statusline({ state = 'ready', latency_ms = 231.6, pending = false }, true),
    'ghostfill 232ms', 'statusline ready')
  eq(status.format_statusline({ state = 'loading', percentage = 40, pending = false }, true),
    'ghostfill: loading 40%', 'statusline loading')
  eq(status.format_statusline({ state = 'ready', pending = false }, false), 'ghostfill: off', 'off')
  local lines = status.format_stats({
    model = 'm', template = 't', backend = 'b', state = 'ready', error = vim.NIL,
    latency_ms = { p50 = 120, p95 = 300, count = 4 }, cache = { hits = 1, type_through = 2, misses = 3 },
    tokens = { evaluated = 10, reused = 20 }, suggestions = { shown = 4, accepted = 1 },
  })
  eq(lines[#lines], 'suggestions: 4 shown, 1 accepted (25%)', 'stats lines')
  -- Lists replace defaults, dictionaries merge.
  local saved = config.options
  config.set({ filetypes = { 'go' }, keymaps = { accept = '<C-y>' } })
  eq(config.options.filetypes, { 'go' }, 'filetypes replaced')
  eq(config.options.keymaps.accept_word, '<M-Right>', 'other keymaps kept')
  -- An empty table is a list and a dictionary at once: for a dictionary it changes nothing.
  eq(config.set({}), config.defaults, 'setup({}) keeps every default')
  eq(config.set({ keymaps = {}, server_options = {} }).keymaps, config.defaults.keymaps,
    'empty keymaps table keeps the default keys')
  eq(config.set({ disabled_filetypes = {}, filetypes = {} }).filetypes, {},
    'an empty list replaces a list')
  H.expect(not pcall(config.set, { debounce_ms = -1 }), 'negative debounce accepted')
  H.expect(not pcall(config.set, { keymaps = { acept = 'x' } }), 'unknown keymap accepted')
  config.options = saved
  data.ok = true
end)

case('checkhealth_without_a_running_server', function(_, data)
  H.expect(#require('ghostfill.client').all() == 0, 'a server is already running')
  vim.cmd('checkhealth ghostfill')
  local lines = api.nvim_buf_get_lines(0, 0, -1, false)
  data.lines = lines
  local text = table.concat(lines, '\n')
  H.expect(not text:find('ERROR'), 'health report has errors')
  H.expect(text:find('OK[^\n]*model ready'), 'no OK for the model')
  pcall(vim.cmd, 'tabclose') -- (the report may have taken the only tab)
  H.wait_until(function()
    return #require('ghostfill.client').all() == 0
  end, 10000, 'the health check server to stop')
  data.clients_after = #require('ghostfill.client').all()
end)

case('ghost_text_while_typing', function(_, data)
  local buf = H.open('stats.py', STATS)
  H.wait_ready(buf)
  data.tab_mapped_before = tab_is_mapped(buf)
  api.nvim_win_set_cursor(0, { 19, 0 })
  H.input('A')
  H.input('m')
  local marks = wait_ghost(buf, 'ghost text after typing')
  data.marks = marks
  data.suggestion = g.suggestion().text
  data.tab_mapped_while_shown = tab_is_mapped(buf)
  data.statusline = g.statusline()
  H.expect(marks[1].virt_text ~= '' or #marks[1].virt_lines > 0, 'empty ghost text')
  H.expect(api.nvim_buf_get_lines(buf, 18, 19, false)[1] == '    m', 'ghost text leaked into the buffer')
  -- Distinct from code in any terminal: a terminal colour as well as a GUI one.
  local hl = api.nvim_get_hl(0, { name = 'GhostfillSuggestion', link = false })
  data.highlight = { fg = hl.fg, ctermfg = hl.ctermfg, italic = hl.italic }
end)

case('accept_inserts_the_suggestion', function(_, data)
  local buf = api.nvim_get_current_buf()
  local s = g.suggestion()
  H.expect(s, 'no suggestion left from the previous case')
  local text = buffer_text(buf)
  local expected = text:sub(1, offset(buf, s.row, s.col)) .. s.text
    .. text:sub(offset(buf, s.end_row, s.end_col) + 1)
  data.suggestion = s.text
  H.input('<Tab>', 200)
  data.buffer = buffer_text(buf)
  H.expect(data.buffer == expected, 'buffer after <Tab> is not the text with the suggestion')
  local cur = api.nvim_win_get_cursor(0)
  local lines = vim.split(s.text, '\n', { plain = true })
  H.expect(cur[1] - 1 == s.row + #lines - 1, 'cursor not on the last inserted line')
  data.mode = api.nvim_get_mode().mode
end)

case('accept_word_inserts_one_word', function(_, data)
  local buf = H.open('add.py', 'def add(a, b):\n    return \n\n\nprint(add(1, 2))\n')
  api.nvim_win_set_cursor(0, { 2, 0 })
  H.input('A')
  g.trigger()
  wait_ghost(buf, 'ghost text after a manual trigger')
  local text = g.suggestion().text -- (accepting changes the suggestion in place)
  local s = g.suggestion()
  data.suggestion = text
  local want = require('ghostfill.accept').next_word(text)
  local before = buffer_text(buf)
  local at = offset(buf, s.row, s.col)
  H.input('<M-Right>', 200)
  local after = buffer_text(buf)
  local inserted = after:sub(at + 1, at + #after - #before)
  data.inserted = inserted
  H.expect(after == before:sub(1, at) .. inserted .. before:sub(at + 1), 'not a pure insertion')
  H.expect(inserted == want, ('inserted %q, want %q'):format(inserted, want))
  H.expect(inserted:match('^%s*[%w_]+$') or inserted:match('^%s*[^%w_%s]+$'),
    ('%q is not one word'):format(inserted))
  if #text > #want then
    local rest = g.suggestion()
    data.rest = rest and rest.text
    H.expect(rest and rest.text == text:sub(#want + 1), 'the rest of the suggestion is not shown')
    H.expect(#H.ghost_marks(buf) > 0, 'no ghost text for the rest')
  end
end)

case('dismiss_removes_ghost_and_keys', function(_, data)
  local buf = api.nvim_get_current_buf()
  if not g.suggestion() then
    g.trigger()
    wait_ghost(buf, 'ghost text to dismiss')
  end
  H.input('<C-]>')
  data.marks = #H.ghost_marks(buf)
  data.tab_mapped = tab_is_mapped(buf)
  H.expect(data.marks == 0, 'ghost text still shown')
  H.expect(not data.tab_mapped, '<Tab> still mapped after dismiss')
end)

case('no_ghost_while_popup_menu', function(_, data)
  local buf = api.nvim_get_current_buf()
  -- A completion menu as any completion plugin using the popup menu would open it.
  vim.keymap.set('i', '<F5>', [[<Cmd>call complete(col('.'), ['alpha', 'beta'])<CR>]],
    { buffer = buf })
  g.trigger()
  wait_ghost(buf, 'ghost text before opening the menu')
  H.input('<F5>', 300)
  data.pumvisible = vim.fn.pumvisible()
  H.expect(data.pumvisible == 1, 'the completion menu did not open')
  H.expect(#H.ghost_marks(buf) == 0, 'ghost text drawn over the menu')
  H.expect(not tab_is_mapped(buf), '<Tab> taken while the menu is open')
  g.trigger() -- even asked for explicitly, nothing is drawn over the menu
  H.sleep(1500)
  H.expect(#H.ghost_marks(buf) == 0, 'ghost text drawn over the menu after a trigger')
  H.input('<C-e>')
end)

case('toggle', function(_, data)
  local buf = api.nvim_get_current_buf()
  vim.cmd('stopinsert')
  vim.cmd('Ghostfill toggle')
  data.off = { enabled = g.is_enabled(buf), statusline = g.statusline() }
  vim.cmd('Ghostfill toggle')
  data.on = { enabled = g.is_enabled(buf), statusline = g.statusline() }
  H.expect(data.off.enabled == false and data.off.statusline == 'ghostfill: off', 'toggle off')
  H.expect(data.on.enabled == true, 'toggle on')
end)

local function fim_and_wait(cmd_or_keys, keys)
  local done
  local id = api.nvim_create_autocmd('User', {
    pattern = 'GhostfillFimDone',
    once = true,
    callback = function(ev)
      done = ev.data or {}
    end,
  })
  if keys then
    H.input(cmd_or_keys, 50)
  else
    vim.cmd(cmd_or_keys)
  end
  local ok, res = pcall(H.wait_until, function()
    return done
  end, 60000, 'ghostfill/fim')
  pcall(api.nvim_del_autocmd, id)
  if not ok then
    error(res, 0)
  end
  return done
end

case('budget_cut_answer_appears_without_typing', function(_, data)
  -- With a 1 ms budget the first answer is empty (or cut) on any machine; the suggestion must
  -- still appear, with no further keystroke, once the server has finished it.
  local gclient = require('ghostfill.client')
  gclient.push_settings({ completion = { latencyBudgetMs = 1 } })
  local buf = H.open('late.py',
    'import math\n\n\ndef circumference(radius):\n    """Circumference of a circle."""\n    return \n')
  H.wait_ready(buf)
  H.sleep(200)
  api.nvim_win_set_cursor(0, { 6, 0 })
  H.input('A')
  local ok, err = pcall(wait_ghost, buf, 'ghost text without another keystroke')
  local stats = gclient.request_sync(gclient.get(buf), 'ghostfill/stats', gclient.NO_PARAMS,
    5000, buf)
  data.suggestions = stats and stats.suggestions
  data.line = api.nvim_buf_get_lines(buf, 5, 6, false)[1]
  H.input('<Esc>')
  gclient.push_settings({ completion = { latencyBudgetMs = 30000 } })
  H.sleep(200)
  H.expect(ok, err)
  H.expect(data.line == '    return ', 'typing happened: ' .. tostring(data.line))
end)

case('fim_fills_the_hole_at_the_cursor', function(_, data)
  local text = STATS:gsub('\n    \n$', '\n\n')
  local buf = H.open('fim.py', text)
  vim.cmd('stopinsert')
  H.sleep(50)
  api.nvim_win_set_cursor(0, { 19, 0 })
  local before = buffer_text(buf)
  local done = fim_and_wait('Ghostfill fim')
  data.error = done.error
  H.expect(not done.error, 'fim failed: ' .. tostring(done.error))
  local filled = done.result.text
  data.text = filled
  local after = buffer_text(buf)
  local at = offset(buf, 18, 0)
  H.expect(filled ~= '' and after == before:sub(1, at) .. filled .. before:sub(at + 1),
    'the fill is not where the cursor was')
end)

case('fim_replaces_a_visual_selection', function(_, data)
  -- A body the small default model fills the same way whatever its KV cache holds (for
  -- `mean` it writes digits that the filters may or may not keep, depending on rounding).
  local buf = H.open('fim_sel.py',
    'def add(a: float, b: float) -> float:\n    """Sum of a and b."""\n    return ...\n')
  vim.cmd('stopinsert')
  H.sleep(50)
  api.nvim_win_set_cursor(0, { 3, 11 }) -- on the first '.'
  local before = api.nvim_buf_get_lines(buf, 2, 3, false)[1]
  local done = fim_and_wait('v2l:Ghostfill fim<CR>', true)
  data.error = done.error
  H.expect(not done.error, 'fim failed: ' .. tostring(done.error))
  data.text = done.result.text
  local r = done.result.range
  data.range = r
  H.expect(r.start.line == 2 and r.start.character == 11 and r['end'].line == 2
    and r['end'].character == 14, 'the hole sent is not the selection')
  local after = table.concat(api.nvim_buf_get_lines(buf, 2, -1, false), '\n')
  H.expect(after:sub(1, 11) == before:sub(1, 11) and after:sub(12, 11 + #data.text) == data.text,
    'the selection was not replaced by the fill')
end)

case('status', function(_, data)
  local lines, err
  g.status(function(l, e)
    lines, err = l, e or false
  end)
  H.wait_until(function()
    return lines or err
  end, 10000, 'ghostfill/stats')
  data.lines = lines
  data.error = err or nil
  data.statusline = g.statusline()
  H.expect(lines, 'no stats: ' .. tostring(err))
  H.expect(lines[1]:match('^model:'), 'unexpected stats text')
  for _, l in ipairs(lines) do
    local accepted = l:match('^suggestions: %d+ shown, (%d+) accepted')
    if accepted then
      data.accepted = tonumber(accepted)
    end
  end
  H.expect(data.statusline:match('^ghostfill'), 'statusline: ' .. data.statusline)
end)

case('checkhealth', function(_, data)
  vim.cmd('stopinsert')
  H.sleep(50)
  vim.cmd('checkhealth ghostfill')
  local lines = H.wait_until(function()
    local l = api.nvim_buf_get_lines(0, 0, -1, false)
    return vim.bo.filetype == 'checkhealth' and #l > 3 and l
  end, 90000, 'the health report')
  data.lines = lines
  local text = table.concat(lines, '\n')
  H.expect(not text:find('ERROR'), 'health report has errors')
  H.expect(text:find('OK[^\n]*server started'), 'no OK for the server')
  H.expect(text:find('OK[^\n]*model ready'), 'no OK for the model')
end)

H.run(cases)
