-- :Augury explain on a visual selection against the fake server: the float opens at once, shows the
-- text streamed as $/progress reports while it arrives, then the final result; the request carries
-- the selection as an LSP range. Also :checkhealth augury and :Augury status with a live server.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

local chunks = { 'The function ', 'adds its two ', 'arguments\n', 'and returns the sum.' }
require('augury').setup({
  cmd = H.fake_server,
  filetypes = { 'python' },
  settings = { fake = { explain_chunks = chunks } },
})

local function float_text()
  local view = require('augury.explain').current()
  if not view or not vim.api.nvim_buf_is_valid(view.buf) then return nil end
  return table.concat(vim.api.nvim_buf_get_lines(view.buf, 0, -1, false), '\n'), view
end

H.run(function()
  H.case('explain a linewise selection: streamed, then final')
  H.open('calc.py', { 'def add(a, b):', '    return a + b', '', 'print(add(1, 2))' }, 'python')
  H.wait_attached()
  local code_win = vim.api.nvim_get_current_win()
  H.feed('ggVj:Augury explain<CR>')
  H.wait(2000, float_text, 'the explain float')
  local view = require('augury.explain').current()
  local text
  H.ok(vim.api.nvim_win_get_config(view.win).relative ~= '', 'it is a floating window')
  H.eq(view.win, vim.api.nvim_get_current_win(), 'the float has the focus')
  -- Partial text must show before the request completes.
  local partial = H.wait(2000, function()
    local t = float_text()
    return t and t:find('^The function') and not view.done and t
  end, 'streamed partial text')
  H.ok(#partial < #table.concat(chunks), 'partial text is shorter than the final text: ' .. partial)
  H.wait(3000, function() return view.done end, 'the explain result')
  text = float_text()
  H.eq(table.concat(chunks), text, 'final text in the float')
  H.eq(2, vim.api.nvim_win_get_height(view.win), 'float height follows the text')
  local log = H.fake_log()
  local args = log.requests[#log.requests].explain
  H.ok(args ~= nil, 'the server got augury.explain')
  H.eq({ start = { line = 0, character = 0 }, ['end'] = { line = 1, character = 16 } }, args.range, 'explain range')
  H.ok(args.uri:find('calc.py$') ~= nil, 'explain uri')
  H.feed('q')
  H.ok(not vim.api.nvim_win_is_valid(view.win), 'q closes the float')
  H.eq(code_win, vim.api.nvim_get_current_win(), 'back in the code window')

  H.case('explain a charwise selection')
  vim.api.nvim_win_set_cursor(0, { 2, 11 })
  H.feed('v4l:Augury explain<CR>')
  H.wait(2000, float_text, 'the explain float')
  view = require('augury.explain').current()
  H.wait(3000, function() return view.done end, 'the explain result')
  log = H.fake_log()
  args = log.requests[#log.requests].explain
  H.eq({ start = { line = 1, character = 11 }, ['end'] = { line = 1, character = 16 } }, args.range, 'charwise range')
  H.feed('q')

  H.case(':Augury status')
  local st = require('augury').status()
  H.eq(true, st.running, 'status: running')
  H.eq(true, st.attached, 'status: attached')
  H.eq({ model = 'fake', loaded = true }, st.server, 'status: the server answers augury.status')
  vim.cmd('Augury status')

  H.case(':checkhealth augury')
  vim.cmd('checkhealth augury')
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.ok(report:find('server running: fake-augury 0', 1, true), 'health reports the running server:\n' .. report)
  H.ok(report:find('attached to 1 buffer%(s%): .*calc%.py %(python%)'), 'health lists the attached buffer:\n' .. report)
  H.ok(report:find('server status', 1, true), 'health shows augury.status')
  H.ok(not report:find('ERROR', 1, true), 'no errors in the report')
  H.log('%s', report)
  H.eq({}, notes, 'no messages')

  H.case('the server exits while explaining')
  vim.cmd('close')
  require('augury').setup({
    cmd = vim.list_extend(vim.deepcopy(H.fake_server), { '--crashy' }),
    filetypes = { 'python' },
    settings = { fake = { explain_crash = true } },
  })
  H.wait_attached()
  H.feed('ggVj:Augury explain<CR>')
  view = H.wait(2000, function() return require('augury.explain').current() end, 'the float')
  H.wait(3000, function() return view.done end, 'the float to give up')
  H.ok(float_text():find('server exited', 1, true), 'the float says the server exited: ' .. float_text())
  H.feed('q')
end, 30000)
