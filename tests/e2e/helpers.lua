-- Helpers for the headless Neovim end-to-end tests (run with -u NONE, plugin on 'rtp').
-- A test is a coroutine: it types keys into the real input queue, then yields until a condition
-- holds, so Neovim's main loop processes the keys, autocommands and LSP traffic as for a user.
-- Any failure or the global timeout exits with :cq (non-zero); success exits with :qa!.
local H = {}

H.root = vim.env.AUGURY_SOURCE_DIR or vim.fn.getcwd()
H.python = vim.env.AUGURY_PYTHON or 'python3'
H.fake_server = { H.python, H.root .. '/tests/e2e/fake_server.py' }

--- Every LSP client (get_clients is 0.10+).
function H.clients()
  return (vim.lsp.get_clients or vim.lsp.get_active_clients)()
end

local co = nil
local finished = false
local current_case = '(setup)'
local passed = 0

function H.log(fmt, ...)
  io.stderr:write(string.format(fmt, ...) .. '\n')
end

local function quit(code)
  finished = true
  -- Stop servers first so that no child process outlives the test.
  local util = require('augury.util')
  for _, c in ipairs(H.clients()) do util.call(c, 'stop', true) end
  if code == 0 then vim.cmd('qa!') else vim.cmd('cq') end
end

function H.fail(msg)
  if finished then return end
  H.log('FAIL [%s]: %s', current_case, msg)
  quit(1)
end

-- Resumes the test coroutine; errors (assertions) become failures with a traceback.
local function resume(...)
  if finished or not co or coroutine.status(co) ~= 'suspended' then return end
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    H.fail(debug.traceback(co, tostring(err)))
  elseif coroutine.status(co) == 'dead' then
    H.log('ok: %d checks passed', passed)
    quit(0)
  end
end

--- Runs `fn` as the test body; the whole test fails after `timeout_ms`.
function H.run(fn, timeout_ms)
  vim.defer_fn(function()
    H.fail(string.format('global timeout after %d ms', timeout_ms))
  end, timeout_ms)
  co = coroutine.create(fn)
  vim.schedule(resume)
end

--- Names the part of the test that runs next (shown with failures).
function H.case(name)
  current_case = name
  H.log('-- %s', name)
end

function H.sleep(ms)
  vim.defer_fn(resume, ms)
  coroutine.yield()
end

--- Waits until pred() is true (polling every 10 ms); fails with `what` after timeout_ms.
function H.wait(timeout_ms, pred, what)
  local deadline = vim.loop.now() + timeout_ms
  while true do
    local ok, v = pcall(pred)
    if ok and v then return v end
    if vim.loop.now() > deadline then
      error(string.format('timed out after %d ms waiting for %s', timeout_ms, what or 'a condition'), 2)
    end
    H.sleep(10)
  end
end

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

--- Feeds keys (<> notation) as if typed, with mappings, and lets the main loop process them.
function H.feed(keys)
  vim.api.nvim_feedkeys(termcodes(keys), 'mt', false)
  H.sleep(30)
end

--- Types `text` one character at a time, `delay_ms` apart (a typist, not a paste).
function H.type(text, delay_ms)
  for ch in text:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
    vim.api.nvim_feedkeys(ch == '<' and termcodes('<lt>') or ch, 'mt', false)
    H.sleep(delay_ms or 15)
  end
  H.sleep(20)
end

function H.eq(expected, actual, what)
  passed = passed + 1
  if not vim.deep_equal(expected, actual) then
    error(string.format('%s: expected %s, got %s', what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.ok(cond, what)
  passed = passed + 1
  if not cond then error('check failed: ' .. (what or '?'), 2) end
end

--- The ghost text on screen for the current buffer: { text = first line, lines = {rest}, pos, details }.
function H.ghost()
  local ns = require('augury.suggestion').namespace()
  local marks = vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  if #marks == 0 then return nil end
  local m = marks[1]
  local d = m[4]
  local first = ''
  for _, chunk in ipairs(d.virt_text or {}) do
    if chunk[2] == 'AuguryGhost' then first = first .. chunk[1] end
  end
  local lines = {}
  for _, vl in ipairs(d.virt_lines or {}) do
    local s = ''
    for _, chunk in ipairs(vl) do
      if chunk[2] == 'AuguryGhost' then s = s .. chunk[1] end
    end
    lines[#lines + 1] = s
  end
  return { row = m[2], col = m[3], text = first, lines = lines, details = d, count = #marks }
end

--- The screen's text on row `r` (1-based), as drawn (headless Neovim keeps a grid).
function H.screen_row(r)
  vim.cmd('redraw')
  local s = {}
  for c = 1, vim.o.columns do s[#s + 1] = vim.fn.screenstring(r, c) end
  return (table.concat(s):gsub('%s+$', ''))
end

--- Replaces the current line with `text` and puts the cursor at its end (works in insert mode).
function H.set_line(text)
  local row = vim.api.nvim_win_get_cursor(0)[1]
  vim.api.nvim_buf_set_lines(0, row - 1, row, false, { text })
  vim.api.nvim_win_set_cursor(0, { row, #text })
  H.sleep(20)
end

function H.lines()
  return vim.api.nvim_buf_get_lines(0, 0, -1, false)
end

--- Opens a new file `name` in a temp dir with `lines`, filetype `ft`; returns the buffer.
function H.open(name, lines, ft)
  local dir = H.tmpdir or vim.fn.tempname()
  H.tmpdir = dir
  vim.fn.mkdir(dir, 'p')
  local path = dir .. '/' .. name
  vim.fn.writefile(lines, path)
  vim.cmd('edit ' .. vim.fn.fnameescape(path))
  vim.bo.filetype = ft
  return vim.api.nvim_get_current_buf(), path
end

--- Waits for the augury client to be initialized and attached to the current buffer.
function H.wait_attached(timeout_ms)
  local buf = vim.api.nvim_get_current_buf()
  return H.wait(timeout_ms or 10000, function()
    return require('augury.client').for_buffer(buf)
  end, 'the augury server to attach')
end

--- Runs the fake server's fake.log command: what it received so far.
function H.fake_log()
  local c = require('augury.client').get()
  local res = require('augury.util').call(c, 'request_sync', 'workspace/executeCommand',
    { command = 'fake.log', arguments = {} }, 2000)
  assert(res and not res.err, 'fake.log failed')
  return res.result
end

--- Leaves insert mode and waits for it.
function H.normal()
  H.feed('<Esc>')
  H.wait(1000, function() return vim.api.nvim_get_mode().mode == 'n' end, 'normal mode')
end

return H
