-- By hand (not a ctest): the plugin's own share of pause-to-suggestion latency. Against the fake
-- server, which answers at once, the time from the last keystroke to the ghost text on screen is
-- the plugin's debounce plus its request/response/render path. Prints p50/p95 over 20 pauses.
--   nvim --headless -u NONE -i NONE --cmd 'set rtp+=editors/nvim' -c 'luafile tests/e2e/bench_latency.lua'
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local debounce = tonumber(vim.env.AUGURY_DEBOUNCE_MS or '') or require('augury.config').defaults().debounce_ms
require('augury').setup({
  cmd = H.fake_server,
  filetypes = { 'python' },
  debounce_ms = debounce,
  settings = { fake = { rules = { { match = '    ret', insertText = 'return a + b', range = 'word' } } } },
})

H.run(function()
  H.open('bench.py', { 'def add(a, b):', '' }, 'python')
  H.wait_attached()
  local times = {}
  for _ = 1, 20 do
    vim.api.nvim_buf_set_lines(0, 1, 2, false, { '' })
    vim.api.nvim_win_set_cursor(0, { 2, 0 })
    H.feed('A')
    H.type('    re', 20)
    local t0 = vim.loop.hrtime()
    vim.api.nvim_feedkeys('t', 'mt', false)
    while not H.ghost() do H.sleep(1) end
    times[#times + 1] = (vim.loop.hrtime() - t0) / 1e6
    H.normal()
  end
  table.sort(times)
  H.log('pause-to-ghost, fake server, debounce %d ms: p50 %.1f ms, p95 %.1f ms (plugin overhead p50 %.1f ms)',
    debounce, times[10], times[19], times[10] - debounce)
end, 60000)
