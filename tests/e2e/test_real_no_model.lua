-- The real `augury lsp` with a model path that does not exist: the user gets at most one warning
-- (never an error), typing and Tab work as without the plugin, nothing is suggested, and
-- :Augury status and :checkhealth augury say what is wrong. Needs only AUGURY_BIN (exit 77 without).
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local bin = vim.env.AUGURY_BIN
if not bin or vim.fn.executable(bin) ~= 1 then
  H.log('SKIP: AUGURY_BIN is not an executable: %s', tostring(bin))
  vim.cmd('cq 77')
end

local notes = {}
vim.notify = function(msg, level)
  notes[#notes + 1] = { msg = msg, level = level }
  H.log('notify(%s): %s', tostring(level), msg)
end

local missing_model = vim.fn.tempname() .. '/no-such-model.gguf'
require('augury').setup({
  cmd = { bin, 'lsp' },
  model = missing_model,
  filetypes = { 'python' },
  debounce_ms = 20,
})

H.run(function()
  H.case('the server starts and the load fails')
  H.open('x.py', { 'def f(a):', '' }, 'python')
  H.wait_attached(10000)
  -- The server reports the failure (showMessageRequest with a Retry action); Neovim's own handler
  -- would block on a prompt here.
  H.wait(10000, function() return #notes > 0 end, 'the load failure message')
  H.eq(vim.log.levels.WARN, notes[1].level, 'shown as a warning')
  H.ok(notes[1].msg:find(missing_model, 1, true), 'it names the model path')
  H.ok(not notes[1].msg:find('augury: augury', 1, true), 'one prefix')
  H.sleep(200)

  H.case('typing, asking and Tab behave as without the plugin')
  vim.v.errmsg = ''
  H.feed('G')
  H.feed('A')
  H.type('    return a')
  H.feed('<M-\\>')
  H.sleep(300)
  H.eq(nil, H.ghost(), 'nothing suggested without a model')
  vim.bo.expandtab = false
  H.feed('<Tab>')
  H.eq('    return a\t', vim.api.nvim_get_current_line(), 'Tab inserts a tab')
  H.normal()
  H.eq('', vim.v.errmsg, 'no error message')
  H.ok(require('augury.client').get() ~= nil, 'the server keeps running')

  H.case('status and health say what is wrong')
  local st = require('augury').status()
  H.log('status: %s', vim.inspect(st))
  H.ok(st.running and st.attached, 'running and attached')
  vim.cmd('checkhealth augury')
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.ok(report:find(missing_model, 1, true) and report:find('not a readable file', 1, true),
    'health names the missing model:\n' .. report)

  H.case(':Augury enable restarts a server that reported an error')
  local old = require('augury.client').get().id
  vim.cmd('bwipeout')
  vim.cmd('Augury enable')
  H.wait(10000, function()
    local c = require('augury.client').for_buffer(vim.api.nvim_get_current_buf())
    return c and c.id ~= old
  end, 'a new server')

  H.ok(#notes <= 2, 'at most one message per server start: ' .. vim.inspect(notes))
  for _, n in ipairs(notes) do
    H.ok(n.level ~= vim.log.levels.ERROR, 'never an error: ' .. n.msg)
  end
end, 30000)
