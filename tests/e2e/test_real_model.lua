-- Acceptance: Neovim + the plugin + the real `augury lsp` + a real model. Types function-body
-- prefixes into a Python and a C file, waits for ghost text, accepts with Tab and checks the result
-- structurally (a `return` that uses a name in scope); then accept-word and dismiss.
-- Needs AUGURY_BIN (the augury executable) and AUGURY_TEST_MODEL_SMALL (or AUGURY_E2E_MODEL to try
-- another model by hand); exits 77 (skip) without them unless AUGURY_REQUIRE_MODELS=1.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local bin = vim.env.AUGURY_BIN
local model = vim.env.AUGURY_E2E_MODEL or vim.env.AUGURY_TEST_MODEL_SMALL
local function missing(what)
  if vim.env.AUGURY_REQUIRE_MODELS == '1' then
    H.log('FAIL: %s (AUGURY_REQUIRE_MODELS=1)', what)
    vim.cmd('cq 1')
  end
  H.log('SKIP: %s', what)
  vim.cmd('cq 77')
end
if not bin or vim.fn.executable(bin) ~= 1 then missing('AUGURY_BIN is not an executable: ' .. tostring(bin)) end
if not model or vim.fn.filereadable(model) ~= 1 then missing('no model: set AUGURY_TEST_MODEL_SMALL') end

-- AUGURY_E2E_LSP_LOG=1 keeps the protocol traffic in vim.lsp.get_log_path() for a look afterwards.
if vim.env.AUGURY_E2E_LSP_LOG then vim.lsp.set_log_level('debug') end

local notes = {}
vim.notify = function(msg, level)
  notes[#notes + 1] = { msg = msg, level = level }
  H.log('notify(%s): %s', tostring(level), msg)
end

require('augury').setup({
  cmd = { bin, 'lsp' },
  model = model,
  filetypes = { 'python', 'c' },
  debounce_ms = 50,
  show_stats = true,
  settings = { explainMaxTokens = 80 },
})

-- Waits for ghost text up to `timeout_ms`. The plugin asks again when the model has loaded; should
-- an answer still come back empty, the test asks again (<M-\>) after 3 s with nothing in flight.
local function await_ghost(timeout_ms)
  local t0 = vim.loop.now()
  local last_ask = t0
  local sugg = require('augury.suggestion')
  local g = H.wait(timeout_ms, function()
    local found = H.ghost()
    if found then return found end
    if sugg.pending() then last_ask = vim.loop.now() end
    if vim.loop.now() - last_ask > 3000 then
      H.log('(nothing shown, nothing in flight: asking again)')
      last_ask = vim.loop.now()
      vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes('<M-\\>', true, false, true), 'mt', false)
    end
    return nil
  end, 'a suggestion from the model')
  local shown = g.text .. (#g.lines > 0 and ('\n' .. table.concat(g.lines, '\n')) or '')
  H.log('suggestion after %d ms: %s [%s]', vim.loop.now() - t0, vim.inspect(shown),
    tostring(require('augury.suggestion').last_stats()))
  return g, shown
end

-- Requests the server has answered (from its cache, with a completion, or with nothing): a
-- speculation counts only once a request is served from it.
local function answered()
  local st = require('augury').status().server
  if not st then return nil, nil end
  return st.completions + st.cacheHits + st.empty, st
end

-- The first line at or after `from` (1-based) containing `return`.
local function return_line(from)
  for i, l in ipairs(H.lines()) do
    if i >= from and l:find('return', 1, true) then return l end
  end
  return nil
end

local function mentions(line, names)
  for _, n in ipairs(names) do
    if line:find('%f[%w_]' .. n .. '%f[^%w_]') then return true end
  end
  return false
end

H.run(function()
  H.case('python: type a body prefix, accept with Tab')
  H.open('geometry.py', {
    'def rectangle_area(width, height):',
    '    """Return the area of a rectangle with the given width and height."""',
    '',
  }, 'python')
  H.wait_attached(20000)
  vim.api.nvim_win_set_cursor(0, { 3, 0 })
  H.feed('A')
  H.type('    ret', 40)
  await_ghost(90000)
  -- The speculative next completion (the state after accepting) finishes while the user reads.
  local count_before = H.wait(60000, function()
    local n, st = answered()
    return st and st.pending == 0 and n
  end, 'the server idle (its speculation done)')
  local t_tab = vim.loop.hrtime()
  H.feed('<Tab>')
  local py = H.lines()
  H.log('python buffer after Tab:\n%s', table.concat(py, '\n'))
  local ret = return_line(3)
  H.ok(ret ~= nil and ret:match('^    return '), 'a return line in the body: ' .. tostring(ret))
  H.ok(mentions(ret, { 'width', 'height' }), 'the return uses a parameter: ' .. ret)
  H.eq(py[1], 'def rectangle_area(width, height):', 'the lines above are untouched')
  -- Tab asks for the next suggestion itself, without a keystroke, and the server answers it.
  -- The ghost text is looked for every 10 ms, the server's counters every 100 ms (a status
  -- request costs more than a look at the screen).
  local next_ghost, st, polls = nil, nil, 0
  H.wait(30000, function()
    next_ghost = next_ghost or (H.ghost() and (vim.loop.hrtime() - t_tab) / 1e6)
    polls = polls + 1
    if not next_ghost and polls % 10 ~= 0 then return false end
    local n, now = answered()
    st = now
    return n and n > count_before
  end, 'an answer for the state after Tab, with no key typed')
  H.log('after Tab: %s, %d of %d requests served by a speculation',
    next_ghost and string.format('ghost text %.1f ms after Tab', next_ghost) or 'nothing to suggest',
    st.servedBySpeculation, st.completions + st.cacheHits)
  H.normal()

  H.case('python: accept word, then dismiss with Esc')
  vim.api.nvim_buf_set_lines(0, -1, -1, false, {
    '',
    '',
    'def scale(values, factor):',
    '    result = []',
    '    for v in values:',
    '        result.append(',
  })
  local row = #H.lines()
  vim.api.nvim_win_set_cursor(0, { row, 0 })
  H.feed('A')
  H.type('v', 40)
  local g, shown = await_ghost(60000)
  local before = vim.api.nvim_get_current_line()
  H.feed('<M-Right>')
  local after = vim.api.nvim_get_current_line()
  local taken = after:sub(#before + 1)
  H.log('accept word took %s', vim.inspect(taken))
  H.ok(#taken > 0, 'accept word inserted something')
  H.eq(shown:sub(1, #taken), taken, 'accept word inserted the start of the suggestion')
  H.ok(not taken:find('\n'), 'one word, not a line')
  local rest = H.ghost()
  if rest then
    H.log('still shown after accept word: %s', vim.inspect(rest.text))
    H.feed('<Esc>')
    H.eq(nil, H.ghost(), 'Esc dismisses')
  else
    H.normal()
  end
  H.eq(after, vim.api.nvim_buf_get_lines(0, row - 1, row, false)[1], 'dismiss leaves the line as it was')
  H.eq(row, #H.lines(), 'dismiss adds no lines')

  H.case('c: type a body prefix, accept with Tab')
  H.open('sum.c', {
    '#include <stddef.h>',
    '',
    '/* Returns the sum of the first count elements of values. */',
    'long sum_array(const int *values, size_t count) {',
    '    long total = 0;',
    '    for (size_t i = 0; i < count; i++) {',
    '        total += values[i];',
    '    }',
    '',
  }, 'c')
  H.wait_attached(20000)
  vim.api.nvim_win_set_cursor(0, { 9, 0 })
  H.feed('A')
  H.type('    ret', 40)
  await_ghost(60000)
  H.feed('<Tab>')
  H.log('c buffer after Tab:\n%s', table.concat(H.lines(), '\n'))
  ret = return_line(9)
  H.ok(ret ~= nil and ret:match('^%s*return '), 'a return line: ' .. tostring(ret))
  H.ok(mentions(ret, { 'total', 'values', 'count' }), 'the return uses a name in scope: ' .. ret)
  H.normal()

  H.case('c: dismiss by typing something else')
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { '}', '', 'int max_of(int a, int b) {', '' })
  vim.api.nvim_win_set_cursor(0, { #H.lines(), 0 })
  H.feed('A')
  H.type('    ret', 40)
  g = await_ghost(60000)
  local mismatch = g.text:sub(1, 1) == 'Q' and 'Z' or 'Q'
  H.type(mismatch)
  H.eq(nil, H.ghost(), 'a key that does not match dismisses')
  H.eq('    ret' .. mismatch, vim.api.nvim_get_current_line(), 'the buffer holds what was typed')
  H.normal()

  H.case('c: explain the function in a float, streamed')
  H.feed('gg3jV5j')
  H.feed(':Augury explain<CR>')
  local view = H.wait(5000, function() return require('augury.explain').current() end, 'the explain float')
  local updates, last = 0, nil
  local t0 = vim.loop.now()
  H.wait(120000, function()
    if view.streamed and view.streamed ~= last then
      updates, last = updates + 1, view.streamed
    end
    return view.done
  end, 'the explanation')
  local text = table.concat(vim.api.nvim_buf_get_lines(view.buf, 0, -1, false), '\n')
  H.log('explanation after %d ms, %d streamed updates:\n%s', vim.loop.now() - t0, updates, text)
  H.ok(updates >= 2, 'the float was updated while the text streamed in')
  H.ok(#text > 20 and not text:find('^augury:'), 'an explanation, not an error')
  H.ok(text:lower():find('sum') or text:lower():find('total') or text:lower():find('array'),
    'it talks about the code')
  H.feed('q')

  for _, n in ipairs(notes) do
    H.ok(n.level ~= vim.log.levels.ERROR, 'no error messages: ' .. n.msg)
  end
end, 240000)
