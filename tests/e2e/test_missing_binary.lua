-- A server binary that does not exist: exactly one warning, then silence. Typing, Tab (a literal
-- tab), the other keys, :Augury status / explain / enable, and :checkhealth augury all work without
-- an error reaching the user. Then a server that dies mid-session: one warning, typing goes on,
-- and :Augury enable starts it again.
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

  H.case('a server that exits mid-session')
  H.sleep(50) -- let warnings scheduled by the commands above arrive
  notes = {}
  require('augury').setup({
    cmd = H.fake_server, filetypes = { 'python', 'c' }, debounce_ms = 30,
    settings = { fake = { rules = { { match = 'boom', crash = true }, { match = 'ok', insertText = '_fine' } } } },
  })
  vim.cmd('buffer a.py')
  H.wait_attached()
  H.feed('Go')
  H.type('ok')
  H.wait(3000, H.ghost, 'a suggestion from the live server')
  H.type(' boom')
  H.wait(3000, function() return #notes > 0 end, 'the exit warning')
  H.sleep(300)
  H.eq(1, #notes, 'one warning: ' .. vim.inspect(notes))
  -- Neovim says it ("Client 1 quit with exit code 3"); the plugin does not say it again.
  H.ok(notes[1].msg:find('exit code 3', 1, true), 'the warning gives the exit code: ' .. notes[1].msg)
  H.eq({ code = 3, signal = 0 }, require('augury').status().exit, ':Augury status knows')
  H.eq(vim.log.levels.WARN, notes[1].level, 'at WARN')
  H.type(' more typing')
  H.sleep(200)
  H.eq('ok boom more typing', vim.trim(vim.api.nvim_get_current_line()), 'typing goes on')
  H.eq(1, #notes, 'still one warning')
  H.eq('', vim.v.errmsg, 'no error message')
  H.normal()
  vim.cmd('Augury enable')
  H.wait_attached()
  H.feed('o')
  H.type('ok')
  H.wait(3000, H.ghost, 'a suggestion from the restarted server')
  -- The restarted server follows edits made while no server ran and after (0.7 needs a workaround).
  local text = H.fake_log().documents[vim.uri_from_bufnr(0)]
  H.eq(table.concat(H.lines(), '\n') .. '\n', text, 'the restarted server has the current text')
  H.normal()
end, 20000)
