-- augury.suggestion: the one ghost-text suggestion of the session, from request to acceptance.
-- Asks the server for textDocument/inlineCompletion (LSP 3.18) on typing pauses and on demand,
-- cancels requests that the next keystroke made stale, renders the first line at the cursor and the
-- rest as virtual lines, keeps the suggestion while typed characters match it, and inserts all of it,
-- a word or a line on request. Invariant: a shown suggestion's `prefix .. suffix` is its line's text,
-- with the cursor between them at byte column `col` of row `row` (0-based).
local config = require('augury.config')
local client_mod = require('augury.client')
local util = require('augury.util')

local M = {}

local ns = vim.api.nvim_create_namespace('augury')
local has_inline = vim.fn.has('nvim-0.10') == 1

-- LSP error codes a superseded or cancelled request is answered with: expected, never reported.
local REQUEST_CANCELLED = -32800
local CONTENT_MODIFIED = -32801

local TRIGGER_INVOKED = 1
local TRIGGER_AUTOMATIC = 2

local state = {
  enabled = true,
  sugg = nil,    -- { buf, row, col, prefix, suffix, text, replace_len, stats, choices, index }
  req = nil,     -- { id, seq, client, buf, tick, row, col }
  seq = 0,
  timer = nil,
  seen = nil,    -- { buf, tick, row, col } the last editor state the change handler looked at
  last_stats = nil,
}

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

local function get_line(buf, row)
  return vim.api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
end

local function in_insert_mode()
  local mode = vim.api.nvim_get_mode().mode
  return mode:sub(1, 1) == 'i' or mode:sub(1, 1) == 'R'
end

local function remember_seen(buf)
  local row, col = cursor()
  state.seen = { buf = buf, tick = vim.api.nvim_buf_get_changedtick(buf), row = row, col = col }
end

-- Stats from an item's data (augury sends data.stats = { generated, evaluated, reused,
-- prompt_tokens, prompt_ms, generate_ms, ms }): shown as "6 tok · 28 eval · 0 reused · 1472 ms".
-- Other servers' numeric fields are listed by name when none of these is present.
local function format_stats(data)
  if type(data) ~= 'table' then return nil end
  local stats = type(data.stats) == 'table' and data.stats or data
  local parts = {}
  local function take(key, fmt)
    if type(stats[key]) == 'number' then parts[#parts + 1] = string.format(fmt, stats[key]) end
  end
  take('generated', '%d tok')
  take('evaluated', '%d eval')
  take('reused', '%d reused')
  take('ms', '%.0f ms')
  if #parts == 0 then
    local keys = {}
    for k, v in pairs(stats) do
      if type(v) == 'number' then keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = string.format('%s %.4g', k, stats[k]) end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, ' · ')
end

--- Removes the ghost text (the suggestion itself is kept).
local function undraw(buf)
  if buf and vim.api.nvim_buf_is_valid(buf) then vim.api.nvim_buf_clear_namespace(buf, ns, 0, -1) end
end

local function draw()
  local s = state.sugg
  if not s then return end
  undraw(s.buf)
  local cfg = config.get() or config.defaults()
  local ts = vim.bo[s.buf].tabstop
  local lines = vim.split(s.text, '\n', { plain = true })
  local stats = cfg.show_stats and s.stats or nil
  local first = util.expand_tabs(lines[1], vim.fn.strdisplaywidth(s.prefix), ts)
  local opts = { hl_mode = 'combine', priority = 200 }
  local virt_text = {}
  if first ~= '' then virt_text[1] = { first, 'AuguryGhost' } end
  if #lines == 1 and stats then virt_text[#virt_text + 1] = { '  ' .. stats, 'AuguryStats' } end
  if #virt_text > 0 then
    opts.virt_text = virt_text
    if has_inline then
      opts.virt_text_pos = 'inline'
    elseif s.suffix == '' then
      -- Nothing after the cursor: drawing over the empty rest of the line looks like inline text.
      opts.virt_text_pos = 'overlay'
    else
      -- Text after the cursor would be overwritten by 'overlay'; 0.7-0.9 can only append.
      opts.virt_text_pos = 'eol'
    end
  end
  if #lines > 1 then
    local virt_lines = {}
    for i = 2, #lines do
      local chunks = { { util.expand_tabs(lines[i], 0, ts), 'AuguryGhost' } }
      if i == #lines and stats then chunks[#chunks + 1] = { '  ' .. stats, 'AuguryStats' } end
      virt_lines[#virt_lines + 1] = chunks
    end
    opts.virt_lines = virt_lines
  end
  s.extmark = vim.api.nvim_buf_set_extmark(s.buf, ns, s.row, s.col, opts)
end

--- The extmark namespace (tests read the ghost text back from it).
function M.namespace()
  return ns
end

--- The visible suggestion's remaining text, or nil.
function M.current()
  local s = state.sugg
  if not s or s.buf ~= vim.api.nvim_get_current_buf() then return nil end
  return s.text
end

function M.is_visible()
  return M.current() ~= nil
end

--- Whether a request is in flight or waiting for the debounce.
function M.pending()
  return state.req ~= nil or (state.timer ~= nil and state.timer:get_due_in() > 0)
end

--- Stats of the last suggestion shown (formatted), for :Augury status.
function M.last_stats()
  return state.last_stats
end

--- Stops the debounce timer and cancels the request in flight, if any.
function M.cancel()
  if state.timer then state.timer:stop() end
  local req = state.req
  state.req = nil
  if req and req.id and not util.call(req.client, 'is_stopped') then
    pcall(util.call, req.client, 'cancel_request', req.id)
  end
end

--- Hides and forgets the suggestion.
function M.clear()
  local s = state.sugg
  state.sugg = nil
  if s then undraw(s.buf) end
end

function M.dismiss()
  M.cancel()
  M.clear()
end

-- Shows `text` at the cursor of `buf` (row/col 0-based bytes); `replace_len` is how many bytes after
-- the cursor accepting the last of it replaces (the item's range end; the suffix never changes
-- while the suggestion lives, so the count stays valid as the cursor moves through it).
-- `choices` (optional) are all the suggestions the server gave for this state, `index` the one
-- shown, for cycling (M.next).
local function show(buf, row, col, text, replace_len, stats, choices, index)
  M.clear()
  local line = get_line(buf, row)
  state.sugg = {
    buf = buf, row = row, col = col, text = text, replace_len = replace_len, stats = stats,
    prefix = line:sub(1, col), suffix = line:sub(col + 1), choices = choices, index = index,
  }
  state.last_stats = stats
  draw()
end

-- Turns an inlineCompletion result into what is shown after the cursor, or nil. Items may carry a
-- range on the cursor line (LSP 3.18 InlineCompletionItem.range) that starts before the cursor: the
-- text between range start and cursor must then be a prefix of insertText and is not shown again.
local function item_text(item, line, row, col, encoding)
  if type(item) ~= 'table' then return nil end
  local text = item.insertText
  if type(text) == 'table' then text = text.value end -- StringValue (snippet): shown as plain text
  if type(text) ~= 'string' or text == '' then return nil end
  text = text:gsub('\r\n', '\n')
  local start_col, end_col = col, col
  local range = item.range
  if type(range) == 'table' and range.start and range['end'] then
    if range.start.line ~= row or range['end'].line ~= row then return nil end
    start_col = util.lsp_to_col(line, range.start.character, encoding)
    end_col = util.lsp_to_col(line, range['end'].character, encoding)
    if start_col > col or end_col < col then return nil end
  end
  local typed = line:sub(start_col + 1, col)
  if text:sub(1, #typed) ~= typed then return nil end
  text = text:sub(#typed + 1)
  -- A range past the cursor replaces that text; when the suggestion ends with it (a closing
  -- bracket already typed), show it without the duplicate and leave the line alone.
  local replaced = line:sub(col + 1, end_col)
  if replaced ~= '' and text:sub(-#replaced) == replaced then
    text = text:sub(1, #text - #replaced)
    end_col = col
  end
  if text == '' or text:match('^%s*$') then return nil end
  return text, end_col - col
end

local function on_result(seq, err, result)
  local req = state.req
  if not req or req.seq ~= seq then return end
  state.req = nil
  if err then
    if err.code == REQUEST_CANCELLED or err.code == CONTENT_MODIFIED then return end
    util.notify_once('completion-error', 'augury: inline completion failed: ' .. tostring(err.message))
    return
  end
  -- The answer is for the editor state the request was made in; anything else is stale.
  local buf = vim.api.nvim_get_current_buf()
  if buf ~= req.buf or not in_insert_mode() or not state.enabled then return end
  local row, col = cursor()
  if row ~= req.row or col ~= req.col or vim.api.nvim_buf_get_changedtick(buf) ~= req.tick then return end
  if type(result) ~= 'table' then return end
  local items = result.items or result
  local line = get_line(buf, row)
  local choices = {}
  for _, item in ipairs(items) do
    local text, replace_len = item_text(item, line, row, col, req.encoding)
    if text then
      choices[#choices + 1] = { text = text, replace_len = replace_len, stats = format_stats(item.data) }
    end
  end
  if #choices == 0 then return end
  -- Asked for the next suggestion (M.next): the one after what was shown, when it is among them.
  local index = 1
  for i, c in ipairs(choices) do
    if req.after and c.text == req.after then index = i % #choices + 1 end
  end
  local c = choices[index]
  show(buf, row, col, c.text, c.replace_len, c.stats, choices, index)
end

--- Asks the server for a suggestion at the cursor. kind: 1 invoked (a key), 2 automatic (a pause).
function M.request(kind)
  local buf = vim.api.nvim_get_current_buf()
  if not state.enabled or not vim.bo[buf].modifiable then return false end
  local client = client_mod.for_buffer(buf)
  if not client then
    -- A manual trigger in a configured buffer that lost its server: try to bring it back once.
    if kind == TRIGGER_INVOKED then client_mod.attach(buf) end
    return false
  end
  M.cancel()
  local row, col = cursor()
  local line = get_line(buf, row)
  local encoding = client.offset_encoding or 'utf-16'
  state.seq = state.seq + 1
  local seq = state.seq
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = util.col_to_lsp(line, col, encoding) },
    context = { triggerKind = kind or TRIGGER_AUTOMATIC },
  }
  local req = { seq = seq, client = client, buf = buf, row = row, col = col, encoding = encoding }
  state.req = req
  local ok, id = util.call(client, 'request', 'textDocument/inlineCompletion', params, function(err, result)
    on_result(seq, err, result)
  end, buf)
  if not ok then
    state.req = nil
    return false
  end
  -- changedtick is read after the request: the client flushes didChange first, which does not edit.
  req.id = id
  req.tick = vim.api.nvim_buf_get_changedtick(buf)
  return true
end

--- Manual trigger (triggerKind Invoked), bound to keymaps.trigger.
function M.trigger()
  M.clear()
  return M.request(TRIGGER_INVOKED)
end

--- The next suggestion for the cursor's state, bound to keymaps.next: among those the server
--- gave, or, with only one known, ask again explicitly (the server answers an explicit request
--- with the alternatives it computed after the first answer). The shown one stays until then.
function M.next()
  local s = state.sugg
  local row, col = cursor()
  local untouched = s and s.buf == vim.api.nvim_get_current_buf() and s.row == row and s.col == col
    and s.choices and s.choices[s.index] and s.choices[s.index].text == s.text
  if untouched and #s.choices > 1 then
    local index = s.index % #s.choices + 1
    local c = s.choices[index]
    show(s.buf, s.row, s.col, c.text, c.replace_len, c.stats, s.choices, index)
    return true
  end
  local after = untouched and s.text or nil
  if not untouched then M.clear() end
  if not M.request(TRIGGER_INVOKED) then return false end
  state.req.after = after
  return true
end

local function schedule_request()
  local cfg = config.get()
  if not cfg or not cfg.auto_trigger or not state.enabled then return end
  if not state.timer then state.timer = util.uv.new_timer() end
  state.timer:stop()
  state.timer:start(cfg.debounce_ms, 0, vim.schedule_wrap(function()
    if in_insert_mode() and not state.req then M.request(TRIGGER_AUTOMATIC) end
  end))
end

-- Typed-through: does the edit that led to (row, col, line) follow the suggestion? If so, shorten
-- it in place and return true. Handles characters typed on the anchor line, and Enter when the
-- suggestion continues on the next line (the editor's indentation may differ from the model's).
local function follow(s, buf, row, col, line)
  if row == s.row then
    if col < s.col or line:sub(1, #s.prefix) ~= s.prefix or line:sub(col + 1) ~= s.suffix then return false end
    local typed = line:sub(#s.prefix + 1, col)
    if typed == '' then return true end -- nothing changed for the suggestion
    if typed:find('\n', 1, true) or s.text:sub(1, #typed) ~= typed or #typed >= #s.text then return false end
    s.text = s.text:sub(#typed + 1)
    s.col, s.prefix = col, line:sub(1, col)
    return true
  end
  if row ~= s.row + 1 or s.suffix ~= '' or s.text:sub(1, 1) ~= '\n' then return false end
  local prev = get_line(buf, s.row)
  if prev ~= s.prefix and prev ~= (s.prefix:gsub('%s+$', '')) then return false end
  local before, after = line:sub(1, col), line:sub(col + 1)
  if after ~= '' then return false end
  local rest = s.text:sub(2)
  local next_line = rest:match('^[^\n]*')
  if next_line:sub(1, #before) == before then
    rest = rest:sub(#before + 1)
  elseif before:match('^%s*$') then
    rest = rest:sub(#next_line:match('^%s*') + 1)
  else
    return false
  end
  if rest == '' or rest:match('^%s*$') then return false end
  s.row, s.col, s.prefix, s.suffix, s.text, s.replace_len = row, col, before, '', rest, 0
  return true
end

--- TextChangedI / CursorMovedI: keep a suggestion that the edit follows, else drop it, cancel
--- what is in flight and ask again after the debounce.
function M.on_change()
  local buf = vim.api.nvim_get_current_buf()
  local row, col = cursor()
  local tick = vim.api.nvim_buf_get_changedtick(buf)
  local seen = state.seen
  -- CursorMovedI and TextChangedI both fire for one keystroke; act once per editor state.
  if seen and seen.buf == buf and seen.tick == tick and seen.row == row and seen.col == col then return end
  state.seen = { buf = buf, tick = tick, row = row, col = col }
  local s = state.sugg
  if s and s.buf == buf and follow(s, buf, row, col, get_line(buf, row)) then
    draw()
    return
  end
  M.clear()
  M.cancel()
  schedule_request()
end

-- A server that exits never answers what is in flight.
client_mod.set_exit_hook('suggestion', function()
  state.req = nil
  M.clear()
end)

-- The model finished loading: a user waiting in insert mode gets the suggestion they paused for.
client_mod.set_ready_hook(function()
  local buf = vim.api.nvim_get_current_buf()
  if in_insert_mode() and not state.sugg and not state.req and client_mod.for_buffer(buf) then
    M.request(TRIGGER_AUTOMATIC)
  end
end)

--- InsertLeave, BufLeave: nothing survives leaving insert mode.
function M.on_leave()
  M.dismiss()
  state.seen = nil
end

-- The part of `text` one accept step takes.
local function take(kind, text)
  if kind == 'word' then
    return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text:match('^%s+') or text
  elseif kind == 'line' then
    local first = text:match('^[^\n]*')
    if first ~= '' then return first end
    return text:match('^\n[^\n]*')
  end
  return text
end

local function accept(kind)
  local s = state.sugg
  local buf = vim.api.nvim_get_current_buf()
  if not s or s.buf ~= buf then return false end
  local row, col = cursor()
  if row ~= s.row or col ~= s.col then
    M.clear()
    return false
  end
  M.cancel()
  local chunk = take(kind, s.text)
  local lines = vim.split(chunk, '\n', { plain = true })
  local end_col = s.col
  local rest = s.text:sub(#chunk + 1)
  if rest == '' then end_col = s.col + (s.replace_len or 0) end
  vim.api.nvim_buf_set_text(buf, s.row, s.col, s.row, end_col, lines)
  local new_row = s.row + #lines - 1
  local new_col = (#lines == 1 and s.col or 0) + #lines[#lines]
  vim.api.nvim_win_set_cursor(0, { new_row + 1, new_col })
  if rest == '' then
    M.clear()
  else
    local line = get_line(buf, new_row)
    s.row, s.col, s.text = new_row, new_col, rest
    s.prefix, s.suffix = line:sub(1, new_col), line:sub(new_col + 1)
    draw()
  end
  remember_seen(buf)
  -- All of it taken: ask for the next one now, without the debounce. Accepting is a pause, and
  -- the server computed the completion of this state while the suggestion was shown (its
  -- speculative next completion), so the answer is usually in its cache already.
  if rest == '' then M.request(TRIGGER_AUTOMATIC) end
  return true
end

--- Inserts the whole suggestion; false when none is shown.
function M.accept()
  return accept('all')
end

--- Inserts the next word of the suggestion and keeps the rest.
function M.accept_word()
  return accept('word')
end

--- Inserts the rest of the suggestion's current line (or the next line) and keeps the rest.
function M.accept_line()
  return accept('line')
end

function M.set_enabled(on)
  state.enabled = on
  if not on then M.dismiss() end
end

function M.is_enabled()
  return state.enabled
end

return M
