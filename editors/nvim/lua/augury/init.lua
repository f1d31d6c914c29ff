-- augury: ghost-text code completion from a local model through `augury lsp`.
-- require('augury').setup(opts) wires everything: the server for configured filetypes, insert-mode
-- autocommands that ask for suggestions on pauses, the keymaps, and :Augury. Works on Neovim 0.7.2
-- and later; newer APIs are used only behind has('nvim-0.x') checks.
local config = require('augury.config')
local client = require('augury.client')
local suggestion = require('augury.suggestion')
local util = require('augury.util')

local M = {}

local group = nil

local function termcodes(keys)
  return vim.api.nvim_replace_termcodes(keys, true, false, true)
end

local PLUG_ACCEPT = '<Plug>(augury-accept)'
local PLUG_FALLBACK = '<Plug>(augury-tab-fallback)'
local ACCEPT_DESC = 'augury: accept suggestion'

-- Copies the global insert-mode mapping of `lhs` (if it is not ours) to <Plug>(augury-tab-fallback)
-- with the same rhs and flags, so that "no suggestion" gives exactly the old behaviour.
local function save_fallback(lhs)
  local want = termcodes(lhs)
  for _, map in ipairs(vim.api.nvim_get_keymap('i')) do
    -- setup() again: the key is already ours and the fallback saved the first time stays.
    if termcodes(map.lhs) == want and map.desc == ACCEPT_DESC then
      -- (maparg's dict, not its rhs string: a Lua-callback mapping has an empty rhs)
      return next(vim.fn.maparg(PLUG_FALLBACK, 'i', false, true)) ~= nil
    end
    if termcodes(map.lhs) == want then
      local opts = {
        noremap = map.noremap == 1, expr = map.expr == 1, silent = map.silent == 1,
        nowait = map.nowait == 1, callback = map.callback,
      }
      -- 0.8+: an expr mapping may return <> notation (0.11's default <Tab> snippet mapping does).
      if map.replace_keycodes == 1 then opts.replace_keycodes = true end
      local rhs = map.rhs or ''
      -- <SID> in the rhs means the defining script's id, which the copy would not have.
      if map.sid and map.sid > 0 then rhs = rhs:gsub('<[Ss][Ii][Dd]>', '<SNR>' .. map.sid .. '_') end
      if opts.callback then rhs = '' end
      vim.api.nvim_set_keymap('i', PLUG_FALLBACK, rhs, opts)
      return true
    end
  end
  pcall(vim.api.nvim_del_keymap, 'i', PLUG_FALLBACK)
  return false
end

local function set_keymaps(keys)
  vim.api.nvim_set_keymap('i', PLUG_ACCEPT, '<Cmd>lua require("augury").accept()<CR>',
    { noremap = true, silent = true })
  if keys.accept then
    local has_fallback = save_fallback(keys.accept)
    local literal = termcodes(keys.accept)
    -- An expr mapping only decides which keys run: the buffer cannot change under textlock.
    -- Recursive, so that the <Plug> names resolve; the literal key is not remapped because it
    -- starts the rhs of its own mapping (:h recursive_mapping).
    vim.api.nvim_set_keymap('i', keys.accept, '', {
      expr = true, noremap = false, silent = true, desc = ACCEPT_DESC,
      callback = function()
        if suggestion.is_visible() then return termcodes(PLUG_ACCEPT) end
        if has_fallback then return termcodes(PLUG_FALLBACK) end
        return literal
      end,
    })
  end
  -- The other keys keep their normal meaning when nothing is shown.
  local function bind(lhs, fn_name, always)
    if not lhs then return end
    local literal = termcodes(lhs)
    local run = termcodes('<Cmd>lua require("augury").' .. fn_name .. '()<CR>')
    vim.api.nvim_set_keymap('i', lhs, '', {
      expr = true, noremap = true, silent = true, desc = 'augury: ' .. fn_name,
      callback = function()
        if always or suggestion.is_visible() then return run end
        return literal
      end,
    })
  end
  bind(keys.accept_word, 'accept_word')
  bind(keys.accept_line, 'accept_line')
  bind(keys.dismiss, 'dismiss')
  bind(keys.trigger, 'trigger', true)
  bind(keys.next, 'next', true)
end

local function set_autocmds()
  group = vim.api.nvim_create_augroup('augury', { clear = true })
  local function in_buffer(fn)
    return function(args)
      if client.for_buffer(args.buf) then fn(args) end
    end
  end
  vim.api.nvim_create_autocmd('FileType', {
    group = group,
    callback = function(args) client.attach(args.buf) end,
  })
  -- InsertEnter too: a pause right after `o` or `A` deserves a suggestion. TextChangedP: typing
  -- while the completion menu is open fires that instead of TextChangedI.
  vim.api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI', 'TextChangedP', 'CursorMovedI' }, {
    group = group, callback = in_buffer(function() suggestion.on_change() end),
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group, callback = function() suggestion.on_leave() end,
  })
  vim.cmd('highlight default link AuguryGhost Comment')
  vim.cmd('highlight default link AuguryStats NonText')
end

--- Configures and starts the plugin. See :help augury-setup for the options.
function M.setup(opts)
  local previous = config.get()
  local cfg = config.set(opts)
  if previous and not vim.deep_equal(previous.cmd, cfg.cmd) then
    client.stop()
  elseif previous and not vim.deep_equal(previous.settings, cfg.settings) then
    -- Same server, new settings (a model path, say): LSP 3.18 workspace/didChangeConfiguration.
    client.send_settings(cfg.settings)
  end
  client.reset()
  util.reset_notices()
  set_autocmds()
  set_keymaps(cfg.keymaps)
  require('augury.commands').define()
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then client.attach(buf) end
  end
  return cfg
end

-- Public actions (each safe to call with nothing shown or before setup).
function M.accept() return suggestion.accept() end
function M.accept_word() return suggestion.accept_word() end
function M.accept_line() return suggestion.accept_line() end
function M.dismiss() suggestion.dismiss() end
function M.trigger() return suggestion.trigger() end
function M.next() return suggestion.next() end
function M.is_visible() return suggestion.is_visible() end

--- Turns suggestions on (and retries a server that was missing, crashed, or reported an error
--- such as a model that failed to load: that one is restarted).
function M.enable()
  suggestion.set_enabled(true)
  if client.reported_error() then client.stop() end
  client.reset()
  util.reset_notices()
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then client.attach(buf) end
  end
end

function M.disable()
  suggestion.set_enabled(false)
end

function M.toggle()
  if suggestion.is_enabled() then M.disable() else M.enable() end
end

--- A table describing the plugin's state (what :Augury status prints).
function M.status()
  local cfg = config.get()
  local st = {
    configured = cfg ~= nil,
    enabled = suggestion.is_enabled(),
    binary = cfg and cfg.cmd[1] or nil,
    binary_missing = client.is_missing(),
    running = client.get() ~= nil,
    exit = client.last_exit(),
    attached = client.for_buffer(vim.api.nvim_get_current_buf()) ~= nil,
    load = client.load_state(),
    last_stats = suggestion.last_stats(),
  }
  local c = client.get()
  if c then
    st.encoding = c.offset_encoding
    if c.initialized then
      local res = util.call(c, 'request_sync', 'workspace/executeCommand',
        { command = 'augury.status', arguments = {} }, 500)
      if res and not res.err then st.server = res.result end
    end
  end
  return st
end

local function status_lines(st)
  local lines = {}
  local function add(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
  add('augury: %s', st.enabled and 'enabled' or 'disabled')
  if not st.configured then
    add("  not set up: call require('augury').setup()")
    return lines
  end
  add('  server %s: %s', st.binary or '?',
    st.binary_missing and 'NOT FOUND' or (st.running and 'running' or 'not running'))
  if st.exit then
    add('  the server exited (code %s, signal %s): :Augury enable starts it again',
      tostring(st.exit.code), tostring(st.exit.signal))
  end
  add('  this buffer: %s', st.attached and 'attached' or 'not attached')
  if st.encoding then add('  position encoding: %s', st.encoding) end
  if st.load then
    add('  model load: %s%s%s', st.load.title or '', st.load.message and (' ' .. st.load.message) or '',
      st.load.done and ' (done)' or (st.load.percentage and string.format(' %d%%', st.load.percentage) or ''))
  end
  if type(st.server) == 'table' then
    -- augury.status answers an object; one line per field, nested objects inline.
    local keys = vim.tbl_keys(st.server)
    table.sort(keys)
    for _, k in ipairs(keys) do
      local v = st.server[k]
      if type(v) == 'table' then v = vim.inspect(v, { newline = ' ', indent = '' }) end
      if v ~= '' then add('  server %s: %s', k, tostring(v)) end
    end
  elseif st.server ~= nil then
    add('  server status: %s', tostring(st.server))
  end
  if st.last_stats then add('  last suggestion: %s', st.last_stats) end
  return lines
end

function M.print_status()
  local chunks = {}
  for _, l in ipairs(status_lines(M.status())) do chunks[#chunks + 1] = { l .. '\n' } end
  vim.api.nvim_echo(chunks, true, {})
end

function M.explain(line1, line2, cols)
  return require('augury.explain').explain(line1, line2, cols)
end

return M
