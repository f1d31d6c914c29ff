-- A server binary that does not exist: exactly one warning, then silence. Typing, Tab (a literal
-- tab), the other keys, :Augury status / explain / enable, and :checkhealth augury all work without
-- an error reaching the user.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

H.run(function()
  H.case('setup with a missing binary')
  require('augury').setup({ cmd = { '/nonexistent/augury', 'lsp' }, filetypes = { 'python', 'c' } })
  H.open('a.py', { 'def f(x):', '' }, 'python')
  H.wait(1000, function() return #notes > 0 end, 'the warning')
  H.eq(1, #notes, 'one warning')
  H.eq(vim.log.levels.WARN, notes[1].level, 'at WARN level')
  H.ok(notes[1].msg:find('/nonexistent/augury', 1, true), 'the warning names the binary: ' .. notes[1].msg)

  H.case('typing and keys without a server')
  vim.v.errmsg = ''
  H.feed('G')
  H.feed('A')
  H.type('    return x')
  H.feed('<Tab>')
  H.feed('<M-\\>')
  H.feed('<M-Right><M-Down><C-]>')
  H.normal()
  H.eq({ 'def f(x):', '    return x\t' }, H.lines(), 'Tab inserted a literal tab; other keys did nothing')
  H.open('b.c', { 'int main(void) {', '}' }, 'c')
  H.feed('ji  return 0;<Esc>')
  H.eq('  return 0;}', vim.api.nvim_get_current_line(), 'a second buffer types normally')

  H.case('commands without a server')
  vim.cmd('Augury status')
  vim.cmd('Augury explain')
  vim.cmd('Augury toggle')
  vim.cmd('Augury toggle')
  H.eq(false, require('augury').status().running, 'status: not running')
  H.eq(true, require('augury').status().binary_missing, 'status: binary missing')
  vim.cmd('checkhealth augury')
  local report = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  H.ok(report:find("'/nonexistent/augury' not found", 1, true), 'health names the missing binary:\n' .. report)
  H.eq('', vim.v.errmsg, 'no error message')
  -- :Augury toggle re-enables, which retries the server once: one more warning at most.
  H.ok(#notes <= 2, 'at most one warning per enable: ' .. vim.inspect(notes))
  for _, n in ipairs(notes) do H.eq(vim.log.levels.WARN, n.level, 'only warnings') end
end, 20000)
