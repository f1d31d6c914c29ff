-- By hand (not a ctest): Tab -> next ghost text with the real server and a real model, in real
-- code this project did not write (tests/bench/latency/sources/textwrap.py, CPython's). At each of
-- N lines inside function bodies the line is removed, its first characters are typed, the
-- suggestion is awaited, the server is left to finish its speculative next completion (the user
-- reads the suggestion), then Tab is pressed and the time to the next ghost text is measured.
-- Prints p50/p95 over the accepts that were followed by a suggestion, and how they were served.
--   AUGURY_BIN=build/augury AUGURY_E2E_MODEL=$(scripts/get-model default --print-path) \
--   nvim --headless -u NONE -i NONE --cmd 'set rtp+=editors/nvim' -c 'luafile tests/e2e/bench_accept.lua'
-- AUGURY_BENCH_ACCEPTS (default 12) sets N.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local bin = vim.env.AUGURY_BIN
local model = vim.env.AUGURY_E2E_MODEL
assert(bin and vim.fn.executable(bin) == 1, 'AUGURY_BIN: the augury executable')
assert(model and vim.fn.filereadable(model) == 1, 'AUGURY_E2E_MODEL: a model file')
local n_accepts = tonumber(vim.env.AUGURY_BENCH_ACCEPTS or '') or 12
local source = vim.env.AUGURY_SOURCE_DIR or vim.fn.getcwd()
local text = vim.fn.readfile(source .. '/tests/bench/latency/sources/textwrap.py')

require('augury').setup({ cmd = { bin, 'lsp' }, model = model, filetypes = { 'python' } })

local function server()
  return require('augury').status().server
end

-- Lines inside function bodies, evenly spaced: indented, code (not a comment or docstring).
local function pick_lines()
  local all = {}
  for i, l in ipairs(text) do
    local body = l:match('^%s+(%S.*)$')
    if body and #body > 12 and not body:match('^[#"\']') and i > 40 then all[#all + 1] = i end
  end
  local picked = {}
  for k = 1, n_accepts do
    picked[k] = all[math.floor((k - 0.5) * #all / n_accepts) + 1]
  end
  return picked
end

local function pct(v, p)
  table.sort(v)
  if #v == 0 then return 0 / 0 end
  return v[math.max(1, math.ceil(#v * p / 100))]
end

H.run(function()
  H.open('textwrap.py', text, 'python')
  H.wait_attached(20000)
  H.wait(120000, function()
    local st = server()
    return st and st.state == 'ready'
  end, 'the model')
  local times, empty, skipped = {}, 0, 0
  local st0 = server()
  for _, row in ipairs(pick_lines()) do
    local line = text[row]
    local indent = line:match('^%s*')
    vim.api.nvim_buf_set_lines(0, 0, -1, false, text)
    vim.api.nvim_buf_set_lines(0, row - 1, row, false, { '' })
    vim.api.nvim_win_set_cursor(0, { row, 0 })
    H.feed('A')
    H.type(indent .. line:sub(#indent + 1, #indent + 3), 60)
    local ok = pcall(H.wait, 60000, function() return H.ghost() end, 'a suggestion')
    if not ok then
      skipped = skipped + 1
    else
      H.wait(60000, function()
        local st = server()
        return st and st.pending == 0
      end, 'the speculation')
      local before = server()
      local t0 = vim.loop.hrtime()
      H.feed('<Tab>')
      local shown_ms = nil
      local polls = 0
      H.wait(60000, function()
        if H.ghost() then
          shown_ms = (vim.loop.hrtime() - t0) / 1e6
          return true
        end
        polls = polls + 1
        if polls % 10 ~= 0 then return false end
        local st = server()
        return st and st.completions + st.cacheHits + st.empty >
          before.completions + before.cacheHits + before.empty and not require('augury.suggestion').pending()
      end, 'the answer after Tab')
      if shown_ms then times[#times + 1] = shown_ms else empty = empty + 1 end
      H.log('line %d: %s', row, shown_ms and string.format('%.1f ms', shown_ms) or 'nothing to suggest')
    end
    H.normal()
  end
  local st = server()
  H.log('Tab -> next ghost text, %s: %d accepts followed by a suggestion, p50 %.1f ms, p95 %.1f ms, ' ..
    'max %.1f ms; %d answered empty, %d places without a first suggestion; server: %d cache hits, ' ..
    '%d served by a speculation, %d computed',
    vim.fn.fnamemodify(model, ':t'), #times, pct(times, 50), pct(times, 95), pct(times, 100), empty,
    skipped, st.cacheHits - st0.cacheHits, st.servedBySpeculation - st0.servedBySpeculation,
    st.completions - st0.completions - (st.servedBySpeculation - st0.servedBySpeculation))
end, 1800000)
