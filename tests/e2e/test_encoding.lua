-- Position encodings against the fake server: with utf-16 (what 0.7.2's client assumes) and with
-- utf-8 (which the plugin offers and the server may pick), the request position, the item range and
-- the document the server rebuilt from incremental didChange all agree with the buffer on a line
-- holding a 2-byte and a 4-byte (astral, surrogate pair in utf-16) character.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

local rules = { { match = '+ ret', insertText = 'return_value', range = 'word' } }

local function setup(encoding, extra_arg)
  local cmd = vim.deepcopy(H.fake_server)
  cmd[#cmd + 1] = extra_arg -- a different command makes setup() restart the server
  require('augury').setup({
    cmd = cmd,
    filetypes = { 'python' },
    debounce_ms = 30,
    settings = { fake = { rules = rules, encoding = encoding } },
  })
end

local prefix = 's = "é😀" + '
local function check(encoding, expected_character)
  H.case('encoding ' .. encoding)
  H.wait_attached()
  H.eq(encoding, require('augury.client').get().offset_encoding, 'client encoding')
  H.feed('Go')
  H.set_line(prefix)
  H.type('ret')
  local g = H.wait(3000, H.ghost, 'ghost text')
  H.eq('urn_value', g.text, 'ghost text with the range converted from ' .. encoding)
  H.eq(#prefix + 3, g.col, 'ghost byte column')
  local log = H.fake_log()
  local req = log.requests[#log.requests]
  H.eq(expected_character, req.position.character, 'request character in ' .. encoding)
  H.eq(prefix .. 'ret', req.before, 'the server sees the same text before the cursor')
  H.feed('<Tab>')
  H.eq(prefix .. 'return_value', vim.api.nvim_get_current_line(), 'accepted')
  -- An edit after the astral character, then the whole document must match on the server side.
  H.feed('<Home><C-o>9l<Del>X')
  H.normal()
  log = H.fake_log()
  local _, text = next(log.documents)
  H.eq(table.concat(H.lines(), '\n') .. '\n', text, 'server document after incremental changes')
end

H.run(function()
  setup('utf-16', nil)
  H.open('enc.py', { '# encodings' }, 'python')
  -- 11 characters before "ret": 12 utf-16 units (the emoji is a surrogate pair), 15 bytes.
  check('utf-16', 12 + 3)
  setup(nil, '--restart')
  H.wait(5000, function()
    local c = require('augury.client').get()
    return c and c.initialized and c.offset_encoding == 'utf-8'
  end, 'the restarted server')
  check('utf-8', 15 + 3)
  H.eq(1, #H.clients(), 'the old server was stopped')
  H.eq({}, notes, 'no messages')
end, 30000)
