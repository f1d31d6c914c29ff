-- The <Tab> fallback in its forms: a Lua-callback expr mapping, a recursive mapping through a
-- <Plug> name, setup() called twice (it must not copy its own mapping), no previous mapping (a
-- literal tab), and keymaps.accept = false. Tab still accepts when a suggestion is shown.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')

local notes = {}
vim.notify = function(msg, level) notes[#notes + 1] = { msg = msg, level = level } end

local opts = {
  cmd = H.fake_server,
  filetypes = { 'python' },
  debounce_ms = 30,
  settings = { fake = { rules = { { match = 'ret', insertText = 'urn 1' } } } },
}

local function tab_gives(expected, what)
  H.set_line('')
  H.feed('<Tab>')
  H.eq(expected, vim.api.nvim_get_current_line(), what)
end

H.run(function()
  H.case('Lua callback expr mapping as the fallback')
  vim.keymap.set('i', '<Tab>', function() return '[cb]' end, { expr = true })
  require('augury').setup(opts)
  H.open('k.py', { '' }, 'python')
  H.wait_attached()
  H.feed('i')
  tab_gives('[cb]', 'the callback mapping ran')
  H.type('ret')
  H.wait(3000, H.ghost, 'ghost text')
  H.feed('<Tab>')
  H.eq('[cb]return 1', vim.api.nvim_get_current_line(), 'Tab accepts when shown')

  H.case('setup() again keeps the original fallback')
  require('augury').setup(opts)
  tab_gives('[cb]', 'still the callback mapping after a second setup()')
  H.normal()

  H.case('recursive mapping through <Plug>')
  vim.api.nvim_set_keymap('i', '<Plug>(my-tab)', '[plug]', { noremap = true })
  vim.api.nvim_set_keymap('i', '<Tab>', '<Plug>(my-tab)', {})
  require('augury').setup(opts)
  H.feed('A')
  tab_gives('[plug]', 'the <Plug> mapping resolved')

  H.case('no previous mapping: a literal tab')
  vim.api.nvim_del_keymap('i', '<Tab>')
  require('augury').setup(opts)
  vim.bo.expandtab = false
  tab_gives('\t', 'a literal tab')
  vim.bo.expandtab = true
  vim.bo.shiftwidth, vim.bo.softtabstop = 4, 4
  tab_gives('    ', 'a literal tab honours expandtab')

  H.case('keymaps.accept = false leaves <Tab> alone')
  vim.api.nvim_del_keymap('i', '<Tab>')
  require('augury').setup(vim.tbl_extend('force', opts, { keymaps = { accept = false } }))
  H.eq('', vim.fn.maparg('<Tab>', 'i'), 'no <Tab> mapping')
  H.type('ret')
  H.wait(3000, H.ghost, 'ghost text')
  H.feed('<Plug>(augury-accept)')
  H.eq('    return 1', vim.api.nvim_get_current_line(), '<Plug>(augury-accept) accepts')
  H.normal()
  H.case('setup() with new settings and the same command: didChangeConfiguration')
  local id = require('augury.client').get().id
  require('augury').setup(vim.tbl_deep_extend('force', opts, { settings = { maxTokens = 7 } }))
  H.wait(2000, function()
    local conf = H.fake_log().configuration
    return conf and conf.maxTokens == 7
  end, 'the new settings at the server')
  H.eq(id, require('augury.client').get().id, 'the same server')

  H.case('empty settings go out as a JSON object')
  require('augury').setup({ cmd = vim.list_extend(vim.deepcopy(H.fake_server), { '--empty' }), filetypes = { 'python' } })
  H.wait_attached()
  H.eq('dict', H.fake_log().initializationOptionsType, 'initializationOptions type')
  H.eq({}, notes, 'no messages')
end, 20000)
