-- Test init: this checkout's plugin on the runtimepath, set up with the server command the
-- test passes in (the real `python -m ghostfill serve`).
local root = assert(vim.env.GHOSTFILL_ROOT, 'GHOSTFILL_ROOT is not set')
vim.opt.runtimepath:prepend(root .. '/editors/nvim')
package.path = root .. '/tests/nvim/?.lua;' .. package.path
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. 'I'

require('ghostfill').setup({
  cmd = vim.json.decode((assert(vim.env.GHOSTFILL_TEST_CMD, 'GHOSTFILL_TEST_CMD is not set'))),
  filetypes = { 'python' },
  debounce_ms = 50,
  -- $GHOSTFILL_TEST_OPTIONS (JSON) replaces them: a scripted engine runs in process.
  server_options = vim.env.GHOSTFILL_TEST_OPTIONS and vim.json.decode(vim.env.GHOSTFILL_TEST_OPTIONS)
    or {
      -- This machine is shared and slow; the plugin is under test here, not the latency.
      completion = { latencyBudgetMs = 30000 },
    },
})

if vim.env.GHOSTFILL_TEST_DEBUG then
  vim.lsp.log.set_level('debug')
end
