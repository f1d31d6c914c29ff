-- augury.explain: `:Augury explain` on a range. Sends workspace/executeCommand augury.explain with
-- a workDoneToken, shows the text streamed as $/progress reports in a float as it arrives, and the
-- final result when the request completes. q or <Esc> in the float closes it.
local client_mod = require('augury.client')
local config = require('augury.config')
local util = require('augury.util')

local M = {}

local counter = 0
local current = nil -- { buf, win, token, text } the open float

local function wrap_width()
  local cfg = config.get() or config.defaults()
  return math.max(20, math.floor(vim.o.columns * cfg.explain.max_width))
end

local function max_height()
  local cfg = config.get() or config.defaults()
  return math.max(3, math.floor((vim.o.lines - 2) * cfg.explain.max_height))
end

local function set_text(view, text)
  if not vim.api.nvim_buf_is_valid(view.buf) then return end
  view.text = text
  local lines = vim.split(text, '\n', { plain = true })
  vim.bo[view.buf].modifiable = true
  vim.api.nvim_buf_set_lines(view.buf, 0, -1, false, lines)
  vim.bo[view.buf].modifiable = false
  if not vim.api.nvim_win_is_valid(view.win) then return end
  local width = wrap_width()
  local height = 0
  for _, l in ipairs(lines) do
    height = height + math.max(1, math.ceil(vim.fn.strdisplaywidth(l) / width))
  end
  vim.api.nvim_win_set_height(view.win, math.min(math.max(height, 1), max_height()))
end

local function open_float(title)
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].bufhidden = 'wipe'
  vim.bo[buf].filetype = 'markdown'
  local width = wrap_width()
  local win = vim.api.nvim_open_win(buf, true, {
    relative = 'editor',
    width = width,
    height = 1,
    row = math.max(0, math.floor((vim.o.lines - max_height()) / 2) - 1),
    col = math.floor((vim.o.columns - width) / 2),
    style = 'minimal',
    border = 'rounded',
  })
  vim.wo[win].wrap = true
  vim.wo[win].linebreak = true
  for _, key in ipairs({ 'q', '<Esc>' }) do
    vim.api.nvim_buf_set_keymap(buf, 'n', key, '<Cmd>close<CR>', { noremap = true, silent = true, nowait = true })
  end
  local view = { buf = buf, win = win, title = title }
  set_text(view, title)
  return view
end

--- Explains lines line1..line2 (1-based, inclusive) of the current buffer; with `cols`
--- ({ start_col, end_col }, byte columns, end exclusive) the range is charwise.
function M.explain(line1, line2, cols)
  local buf = vim.api.nvim_get_current_buf()
  local client = client_mod.for_buffer(buf)
  if not client then
    if not client_mod.is_missing() then
      util.notify_once('explain-no-server', 'augury: no server attached to this buffer', vim.log.levels.INFO)
    end
    return nil
  end
  local enc = client.offset_encoding or 'utf-16'
  local last = vim.api.nvim_buf_get_lines(buf, line2 - 1, line2, false)[1] or ''
  local first = vim.api.nvim_buf_get_lines(buf, line1 - 1, line1, false)[1] or ''
  local start_char, end_char = 0, util.col_to_lsp(last, #last, enc)
  if cols then
    start_char = util.col_to_lsp(first, cols[1], enc)
    end_char = util.col_to_lsp(last, cols[2], enc)
  end
  local range = {
    start = { line = line1 - 1, character = start_char },
    ['end'] = { line = line2 - 1, character = end_char },
  }
  counter = counter + 1
  local token = string.format('augury-explain-%d-%d', vim.fn.getpid(), counter)
  if current and vim.api.nvim_win_is_valid(current.win) then vim.api.nvim_win_close(current.win, true) end
  local view = open_float('(explaining lines ' .. line1 .. '-' .. line2 .. '…)')
  view.token = token
  current = view
  -- Reports carry the text so far in `message` (LSP: a report's message replaces the previous one);
  -- a report whose message does not extend the text so far is treated as the next piece.
  client_mod.on_progress(token, function(value)
    if value.kind ~= 'report' or type(value.message) ~= 'string' then return end
    local so_far = view.streamed or ''
    if value.message:sub(1, #so_far) == so_far then
      view.streamed = value.message
    else
      view.streamed = so_far .. value.message
    end
    set_text(view, view.streamed)
  end)
  local params = {
    command = 'augury.explain',
    arguments = { { uri = vim.uri_from_bufnr(buf), range = range } },
    workDoneToken = token,
  }
  util.call(client, 'request', 'workspace/executeCommand', params, function(err, result)
    client_mod.on_progress(token, nil)
    view.done = true
    if err then
      set_text(view, 'augury: explain failed: ' .. tostring(err.message))
      return
    end
    local text = result
    if type(result) == 'table' then text = result.text or result.value end
    if type(text) ~= 'string' or text == '' then
      set_text(view, view.streamed or 'augury: no explanation (is the model still loading? see :Augury status)')
      return
    end
    set_text(view, text)
  end, buf)
  return view
end

-- A server that exits never answers: say so instead of "explaining…" forever.
client_mod.set_exit_hook('explain', function()
  local view = current
  if view and not view.done then
    view.done = true
    client_mod.on_progress(view.token, nil)
    set_text(view, (view.streamed and (view.streamed .. '\n\n') or '') ..
      'augury: the server exited before the explanation was complete (see :Augury status)')
  end
end)

--- The open explain float ({ buf, win, text, done }), or nil.
function M.current()
  return current
end

return M
