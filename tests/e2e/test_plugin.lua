-- End-to-end plugin behaviour against tests/e2e/fake_server.py: rendering, accept all / word /
-- line, typed-through, dismiss (Esc, <C-]>, a mismatching key), Tab fallbacks, trigger kinds,
-- cancellation of stale requests, stats, and a model that is still loading.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

-- Every vim.notify is recorded: the plugin must stay quiet unless a test expects a message.
local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

-- A user's Tab mapping that exists before setup(): "no suggestion" must still do this.
vim.api.nvim_set_keymap('i', '<Tab>', '<C-r>="[old tab]"<CR>', { noremap = true })

local rules = {
  { match = '    ret', insertText = 'return a + b', range = 'word',
    data = { stats = { generated = 5, evaluated = 20, reused = 100, ms = 12.4, prompt_ms = 3 } } },
  { match = '    res', insertText = 'result = a * b\n    return result', range = 'word' },
  { match = '    slow', insertText = 'slow_answer()', delay_ms = 600 },
  { match = '    alt', insertText = 'er_one()', alternatives = { 'er_two()', 'itude = 3' } },
  { match = 'total = ', insertText = 'a + b  # done', bare_array = true },
  { match = 'x = (', insertText = 'a, b)', range = 'eol' },
  { match = '', line_above = '# pause here', insertText = 'pass' },
}

require('augury').setup({
  cmd = H.fake_server,
  filetypes = { 'python' },
  debounce_ms = 40,
  show_stats = true,
  settings = { fake = { rules = rules, loading_ms = 1500 }, answer = 42 },
})

local function ghost_text(timeout)
  return H.wait(timeout or 3000, function()
    local g = H.ghost()
    return g and g
  end, 'ghost text')
end

local function no_ghost(timeout)
  H.wait(timeout or 1000, function() return H.ghost() == nil end, 'the ghost text to go away')
end

H.run(function()
  H.case('attach and initializationOptions')
  H.open('calc.py', { 'def add(a, b):', '' }, 'python')
  H.wait_attached()
  local log = H.fake_log()
  H.eq(42, log.initializationOptions.answer, 'settings reach the server as initializationOptions')
  H.ok(vim.tbl_contains(log.clientEncodings, 'utf-8'), 'utf-8 offered: ' .. vim.inspect(log.clientEncodings))
  H.eq('utf-8', require('augury.client').get().offset_encoding, 'negotiated encoding')

  H.case('model still loading: empty answers, no ghost, no message')
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  H.feed('A')
  H.type('    ret')
  H.wait(2000, function() return #H.fake_log().requests >= 1 end, 'a request while loading')
  H.sleep(100)
  H.eq(nil, H.ghost(), 'no ghost while the model loads')
  H.eq(0, #notes, 'no message while the model loads')
  H.ok(require('augury.client').load_state().done ~= true, 'load progress is still running')
  -- No keystroke: the plugin asks again by itself when the load progress ends.
  H.wait(3000, H.ghost, 'a suggestion once the model is loaded')
  H.eq(true, require('augury.client').load_state().done, 'load progress ended')

  H.case('render: first line at the cursor, range before the cursor honoured')
  local g = ghost_text()
  H.eq('urn a + b', g.text, 'ghost text after "ret"')
  H.eq(1, g.row, 'ghost row')
  H.eq(7, g.col, 'ghost col')
  H.eq(1, g.count, 'one extmark')
  local pos = vim.fn.has('nvim-0.10') == 1 and 'inline' or 'overlay'
  H.eq(pos, g.details.virt_text_pos, 'virt_text_pos with nothing after the cursor')
  H.eq('    return a + b  5 tok · 20 eval · 100 reused · 12 ms', H.screen_row(2), 'screen shows the suggestion and stats')
  H.eq('AuguryStats', g.details.virt_text[2][2], 'stats highlight')
  local req = H.fake_log().requests
  H.eq(2, req[#req].triggerKind, 'typing pauses ask with triggerKind Automatic')
  H.eq({ line = 1, character = 7 }, req[#req].position, 'request position')

  H.case('Tab accepts all')
  H.feed('<Tab>')
  H.eq({ 'def add(a, b):', '    return a + b' }, H.lines(), 'buffer after Tab')
  H.eq({ 2, 16 }, vim.api.nvim_win_get_cursor(0), 'cursor after the accepted text')
  H.eq(nil, H.ghost(), 'ghost gone after accept')
  H.eq('i', vim.api.nvim_get_mode().mode, 'still in insert mode')

  H.case('Tab without a suggestion runs the previous Tab mapping')
  H.feed('<Tab>')
  H.eq('    return a + b[old tab]', vim.api.nvim_get_current_line(), 'old Tab mapping ran')
  H.normal()

  H.case('multi-line suggestion: virtual lines')
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'def mul(a, b):', '', '', 'print(1)' })
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  H.feed('A')
  H.type('    res')
  g = ghost_text()
  H.eq('ult = a * b', g.text, 'first line')
  H.eq({ '    return result' }, g.lines, 'virtual lines')
  H.eq('    result = a * b', H.screen_row(2), 'screen row 2')
  H.eq('    return result', H.screen_row(3), 'screen row 3 (virtual line)')

  H.case('typed-through: matching characters keep the suggestion without a new request')
  local before = #H.fake_log().requests
  H.type('ult', 60)
  g = H.ghost()
  H.ok(g ~= nil, 'ghost still shown')
  H.eq(' = a * b', g.text, 'ghost shortened by the typed characters')
  H.eq(7 + 3, g.col, 'ghost moved with the cursor')
  H.sleep(150)
  H.eq(before, #H.fake_log().requests, 'no request while typing through')

  H.case('accept word, then accept line twice')
  H.feed('<M-Right>')
  H.eq('    result =', vim.api.nvim_get_current_line(), 'accept word takes " ="')
  H.eq(' a * b', H.ghost().text, 'rest of the line still shown')
  H.feed('<M-Right>')
  H.eq('    result = a', vim.api.nvim_get_current_line(), 'accept word takes " a"')
  H.feed('<M-Down>')
  H.eq('    result = a * b', vim.api.nvim_get_current_line(), 'accept line finishes the line')
  g = H.ghost()
  H.eq('', g.text, 'nothing left on this line')
  H.eq({ '    return result' }, g.lines, 'the next line is still shown')
  H.feed('<M-Down>')
  H.eq({ 'def mul(a, b):', '    result = a * b', '    return result', '', 'print(1)' }, H.lines(), 'after accept line')
  H.eq(nil, H.ghost(), 'suggestion used up')
  H.sleep(150)
  H.eq(nil, H.ghost(), 'no new suggestion after accepting (nothing matches)')
  H.normal()

  H.case('typed-through across Enter with the editor indenting')
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'def mul(a, b):', '' })
  vim.bo.autoindent = true
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  H.feed('A')
  H.type('    res')
  g = ghost_text()
  H.type('ult = a * b')
  H.eq('', H.ghost().text, 'first line typed through')
  H.feed('<CR>')
  g = H.ghost()
  H.ok(g ~= nil, 'ghost survives Enter')
  H.eq('return result', g.text, 'next line shown after the autoindent')
  H.feed('<Tab>')
  H.eq({ 'def mul(a, b):', '    result = a * b', '    return result' }, H.lines(), 'after Enter and Tab')
  H.normal()

  H.case('dismiss with Esc')
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { 'def add(a, b):', '' })
  vim.api.nvim_win_set_cursor(0, { 2, 0 })
  H.feed('A')
  H.type('    ret')
  ghost_text()
  H.feed('<Esc>')
  H.eq(nil, H.ghost(), 'Esc removes the ghost')
  H.eq({ 'def add(a, b):', '    ret' }, H.lines(), 'Esc leaves the buffer as typed')

  H.case('dismiss with <C-]>, and with a key that does not match')
  H.feed('A')
  H.sleep(20)
  H.feed('<BS>t')
  ghost_text()
  H.feed('<C-]>')
  H.eq(nil, H.ghost(), '<C-]> removes the ghost')
  H.eq('    ret', vim.api.nvim_get_current_line(), 'line unchanged by <C-]>')
  H.feed('<BS>t')
  ghost_text()
  before = #H.fake_log().requests
  H.type('z')
  H.eq(nil, H.ghost(), 'a mismatching key removes the ghost at once')
  H.wait(1000, function() return #H.fake_log().requests > before end, 'a new request after the mismatch')
  H.sleep(100)
  H.eq(nil, H.ghost(), 'nothing suggested for "retz"')

  H.case('manual trigger asks with triggerKind Invoked')
  require('augury.config').get().auto_trigger = false
  H.feed('<BS>')
  H.sleep(150)
  H.eq(nil, H.ghost(), 'no automatic suggestion with auto_trigger off')
  H.feed('<M-\\>')
  ghost_text()
  req = H.fake_log().requests
  H.eq(1, req[#req].triggerKind, 'manual trigger kind')
  require('augury.config').get().auto_trigger = true
  H.feed('<C-]>')

  H.case('next suggestion: asks explicitly, then cycles through the alternatives')
  H.set_line('')
  H.type('    alt')
  H.eq('er_one()', ghost_text().text, 'the automatic answer')
  before = #H.fake_log().requests
  H.feed('<M-]>')
  H.wait(2000, function() local g = H.ghost()
    return g and g.text == 'er_two()' end, 'the alternative after the shown one')
  req = H.fake_log().requests
  H.eq(before + 1, #req, 'one explicit request')
  H.eq(1, req[#req].triggerKind, 'next asks with triggerKind Invoked')
  H.feed('<M-]>')
  H.eq('itude = 3', H.ghost().text, 'the third, without asking again')
  H.feed('<M-]>')
  H.eq('er_one()', H.ghost().text, 'back to the first')
  H.eq(before + 1, #H.fake_log().requests, 'cycling asked nothing more')
  H.feed('<Tab>')
  H.eq('    alter_one()', vim.api.nvim_get_current_line(), 'Tab accepts the one shown')
  H.feed('<C-]>')

  H.case('a stale request is cancelled and its answer never shown')
  H.set_line('')
  H.type('    slow')
  H.wait(1000, function()
    local r = H.fake_log().requests
    return r[#r].before == '    slow'
  end, 'the slow request')
  H.type('ly')
  H.sleep(900)
  H.eq(nil, H.ghost(), 'no ghost from the cancelled request')
  log = H.fake_log()
  H.ok(log.cancels >= 1, 'the client sent $/cancelRequest')
  H.ok(log.cancelled + log.superseded >= 1, 'the slow request was answered with an error')
  H.eq('    slowly', vim.api.nvim_get_current_line(), 'buffer as typed')

  H.case('a bare array of items, text after the cursor: eol fallback on 0.7-0.9')
  H.set_line('')
  H.type('total = ')
  g = ghost_text()
  H.eq('a + b  # done', g.text, 'bare array result')
  H.feed('<Tab>')
  H.eq('total = a + b  # done', vim.api.nvim_get_current_line(), 'accepted')
  H.set_line('')
  H.type('x = ()')
  H.feed('<Left>')
  H.feed('<M-\\>')
  g = ghost_text()
  H.eq('a, b', g.text, 'closing bracket after the cursor is not shown twice')
  H.eq(vim.fn.has('nvim-0.10') == 1 and 'inline' or 'eol', g.details.virt_text_pos, 'text after the cursor')
  H.feed('<Tab>')
  H.eq('x = (a, b)', vim.api.nvim_get_current_line(), 'accepted without a doubled bracket')
  H.normal()

  H.case('a pause right after entering insert mode (o) asks too')
  vim.api.nvim_buf_set_lines(0, 0, -1, false, { '# pause here' })
  vim.api.nvim_win_set_cursor(0, { 1, 0 })
  H.feed('o')
  g = ghost_text()
  H.eq('pass', g.text, 'suggestion on the new line without typing')
  H.normal()

  H.case('disable / enable')
  vim.cmd('Augury disable')
  H.feed('o')
  H.type('    ret')
  H.sleep(200)
  H.eq(nil, H.ghost(), 'no suggestion while disabled')
  H.normal()
  vim.cmd('Augury enable')
  H.feed('A')
  H.feed('<BS>t')
  ghost_text()
  H.normal()

  H.eq({}, notes, 'no messages shown to the user during the whole session')
end, 60000)
