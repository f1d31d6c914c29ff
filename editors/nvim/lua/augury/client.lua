-- augury.client: starts one `augury lsp` process for the session (vim.lsp.start_client, which
-- Neovim 0.7.2 has; vim.lsp.start is 0.8+) and attaches buffers of the configured filetypes to it.
-- A missing binary or a crashed server gives one warning, then the plugin stays silent and inert.
local config = require('augury.config')
local util = require('augury.util')

local M = {}

local state = {
  client_id = nil,
  stopping = false,
  missing = false,   -- the binary was not found: do not try again until setup() runs again
  progress = {},     -- token -> function(value) for work-done progress the plugin asked for
  load = nil,        -- last model-load progress from the server: { title, message, percentage, done }
  exit = nil,        -- { code, signal } of a server that exited without being asked to
  error = false,     -- the running server reported an error (showMessage type Error)
  on_ready = nil,    -- called when server progress ends (the model finished loading)
  exit_hooks = {},   -- name -> function(): the server exited; its pending requests never answer
  generation = 0,    -- counts server starts
  attached = {},     -- bufnr -> true: buffers attached to the current server
  orphaned = {},     -- bufnr -> true: buffers whose LSP change tracking detached (see below)
}

-- Neovim (0.7 to 0.12 at least): when a buffer's only client exits and the buffer then changes,
-- the LSP on_lines callback detaches itself but leaves the buffer marked as attached
-- (all_buffer_active_clients[buf] = {} in 0.7-0.9, attached_buffers[buf] = true later), so a
-- client attached afterwards gets didOpen but never didChange. The plugin watches for such a change
-- after an exit and, before attaching the restarted server, clears that mark (an upvalue of
-- vim.lsp.buf_attach_client or of its buf_attach helper) so that attaching starts afresh. Where
-- neither name is found nothing is touched.
local function watch_orphans(bufs)
  local gen = state.generation
  for buf in pairs(bufs) do
    if vim.api.nvim_buf_is_loaded(buf) then
      vim.api.nvim_buf_attach(buf, false, {
        on_lines = function()
          if state.generation == gen then state.orphaned[buf] = true end
          return true -- one change is enough to know
        end,
      })
    end
  end
end

local MARKS = { all_buffer_active_clients = true, attached_buffers = true }

local function find_mark(fn, depth)
  for i = 1, 255 do
    local name, value = debug.getupvalue(fn, i)
    if not name then return nil end
    if MARKS[name] and type(value) == 'table' then return name, value end
    if depth > 0 and name == 'buf_attach' and type(value) == 'function' then
      local n, v = find_mark(value, depth - 1)
      if n then return n, v end
    end
  end
  return nil
end

local function forget_dead_attachment(bufnr)
  local name, marks = find_mark(vim.lsp.buf_attach_client, 1)
  if name == 'all_buffer_active_clients' then
    if type(marks[bufnr]) == 'table' and next(marks[bufnr]) == nil then marks[bufnr] = nil end
  elseif name == 'attached_buffers' then
    local clients = (vim.lsp.get_clients or vim.lsp.get_active_clients)({ bufnr = bufnr })
    if marks[bufnr] == true and #clients == 0 then marks[bufnr] = nil end
  end
end

local function capabilities()
  local caps = vim.lsp.protocol.make_client_capabilities()
  caps.textDocument = caps.textDocument or {}
  -- LSP 3.18 inline completion: the client supports it, without dynamic registration.
  caps.textDocument.inlineCompletion = { dynamicRegistration = false }
  caps.window = caps.window or {}
  caps.window.workDoneProgress = true
  -- LSP 3.17 position encodings. Neovim < 0.9 does not offer them itself; 0.7.2's change tracking
  -- handles utf-8 correctly, and utf-8 saves the server a conversion. on_init reads the answer.
  caps.general = caps.general or {}
  if not caps.general.positionEncodings then caps.general.positionEncodings = { 'utf-8', 'utf-16' } end
  return caps
end

local function on_init(client, result)
  state.server_info = result and result.serverInfo
  local caps = result and result.capabilities or {}
  local enc = caps.positionEncoding or result.offsetEncoding
  if enc == 'utf-8' or enc == 'utf-16' or enc == 'utf-32' then client.offset_encoding = enc end
end

-- $/progress: the explain float's tokens go to their listeners; model loading is remembered for
-- :Augury status; everything else goes to Neovim's own handler.
local function progress_handler(err, result, ctx, cfg)
  local token = result and result.token
  local listener = token ~= nil and state.progress[token]
  if listener then
    listener(result.value or {})
    return
  end
  local value = result and result.value
  if type(value) == 'table' then
    state.load = state.load or {}
    if value.kind == 'begin' then
      state.load = { title = value.title, message = value.message, percentage = value.percentage }
    else
      state.load.message = value.message or state.load.message
      state.load.percentage = value.percentage or state.load.percentage
      state.load.done = value.kind == 'end'
    end
    -- Requests made while the model loaded got empty answers: ask again now that it is ready.
    if value.kind == 'end' and state.on_ready then vim.schedule(state.on_ready) end
  end
  local default = vim.lsp.handlers['$/progress']
  if default then return default(err, result, ctx, cfg) end
end

-- window/showMessage: a model that fails to load must not put an error in the user's face on every
-- keystroke; each distinct message is shown once, errors as warnings.
local function show_message_handler(_, result)
  if not result or not result.message then return end
  local level = vim.log.levels.INFO
  if result.type == 1 or result.type == 2 then level = vim.log.levels.WARN end
  if result.type == 1 then state.error = true end
  local msg = result.message:match('^augury') and result.message or ('augury: ' .. result.message)
  util.notify_once('showMessage:' .. result.message, msg, level)
end

-- window/showMessageRequest: Neovim's default handler blocks the editor with an inputlist prompt
-- (0.7) or a vim.ui.select. A failed model load must not stop the user typing: the message is shown
-- once like showMessage, and the reply is null (LSP: no action chosen).
local function show_message_request_handler(err, result)
  show_message_handler(err, result)
  return vim.NIL
end

--- Registers a listener for $/progress on `token` (nil removes it).
function M.on_progress(token, fn)
  state.progress[token] = fn
end

--- The running client, or nil.
function M.get()
  if not state.client_id then return nil end
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not client or util.call(client, 'is_stopped') then return nil end
  return client
end

--- The client if it is attached to `bufnr` and initialized, else nil.
function M.for_buffer(bufnr)
  local client = M.get()
  if not client or not client.initialized then return nil end
  if not vim.lsp.buf_is_attached(bufnr, client.id) then return nil end
  return client
end

--- Sets the function called when the server's work-done progress (the model load) ends.
function M.set_ready_hook(fn)
  state.on_ready = fn
end

--- Sets `fn` (nil removes it) to run after the server exits; `name` identifies the caller.
function M.set_exit_hook(name, fn)
  state.exit_hooks[name] = fn
end

--- The running server's initialize serverInfo ({ name, version }), or nil.
function M.server_info()
  return M.get() and state.server_info or nil
end

--- Model-load progress last reported by the server (nil if none).
function M.load_state()
  return state.load
end

--- How the last server exited on its own ({ code, signal }), or nil.
function M.last_exit()
  return state.exit
end

--- Whether the running server reported an error (e.g. its model did not load).
function M.reported_error()
  return state.error and M.get() ~= nil
end

--- Sends new settings to the running server (workspace/didChangeConfiguration).
function M.send_settings(settings)
  local client = M.get()
  if not client then return false end
  client.config.settings = settings
  return util.call(client, 'notify', 'workspace/didChangeConfiguration',
    { settings = next(settings) and settings or vim.empty_dict() })
end

--- Whether the configured binary was found missing.
function M.is_missing()
  return state.missing
end

-- 0.7-0.10: vim.lsp.start_client. 0.11 deprecates it for vim.lsp.start with attach = false (the
-- plugin attaches buffers itself) and never reuses a client: a stopping one must not come back.
local function start(cfg)
  if vim.fn.has('nvim-0.11') == 1 then
    return vim.lsp.start(cfg, { attach = false, reuse_client = function() return false end })
  end
  return vim.lsp.start_client(cfg)
end

--- Starts the server if needed; returns the client id, or nil (with one warning) when it cannot.
function M.ensure_started()
  local cfg = config.get()
  if not cfg then return nil end
  if M.get() then return state.client_id end
  if state.missing then return nil end
  local exe = cfg.cmd[1]
  if vim.fn.executable(exe) ~= 1 then
    state.missing = true
    util.notify_once('missing-binary',
      string.format("augury: server '%s' not found or not executable; completions are off (see :checkhealth augury)", exe))
    return nil
  end
  state.stopping = false
  state.exit = nil
  state.error = false
  local ok, id = pcall(start, {
    name = 'augury',
    cmd = cfg.cmd,
    root_dir = util.uv.cwd(),
    -- An empty Lua table would be sent as a JSON array; the server expects an object.
    init_options = next(cfg.settings) and cfg.settings or vim.empty_dict(),
    settings = next(cfg.settings) and cfg.settings or vim.empty_dict(),
    capabilities = capabilities(),
    handlers = {
      ['$/progress'] = progress_handler,
      ['window/showMessage'] = show_message_handler,
      ['window/showMessageRequest'] = show_message_request_handler,
    },
    on_init = on_init,
    on_exit = function(code, signal, client_id)
      -- A client stopped by setup() may exit after its replacement started: leave that one alone.
      if client_id ~= state.client_id then return end
      state.client_id = nil
      state.load = nil
      local bufs = state.attached
      state.attached = {}
      -- on_exit may run in a libuv callback, where buffer functions are not allowed.
      vim.schedule(function() watch_orphans(bufs) end)
      vim.schedule(function()
        for _, hook in pairs(state.exit_hooks) do hook() end
      end)
      if state.stopping then return end
      -- Neovim itself warns "Client N quit with exit code C and signal S" (except for SIGTERM,
      -- which someone sent on purpose); one warning is enough. :Augury status shows the exit.
      state.exit = { code = code, signal = signal }
    end,
    flags = { debounce_text_changes = 20 },
  })
  if not ok or not id then
    state.missing = true
    util.notify_once('start-failed', 'augury: could not start the server: ' .. tostring(id))
    return nil
  end
  state.client_id = id
  state.generation = state.generation + 1
  return id
end

--- Whether `bufnr` is a buffer the configuration wants completions in.
function M.wants(bufnr)
  local cfg = config.get()
  if not cfg or not vim.api.nvim_buf_is_valid(bufnr) then return false end
  -- Only file buffers: the server needs a file URI (an unnamed buffer has none).
  if vim.bo[bufnr].buftype ~= '' or vim.api.nvim_buf_get_name(bufnr) == '' then return false end
  local ft = vim.bo[bufnr].filetype
  if ft == '' then return false end
  for _, want in ipairs(cfg.filetypes) do
    if want == '*' or want == ft then return true end
  end
  return false
end

--- Attaches `bufnr` to the server (starting it) when its filetype is configured.
function M.attach(bufnr)
  if not M.wants(bufnr) then return false end
  local id = M.ensure_started()
  if not id then return false end
  if vim.lsp.buf_is_attached(bufnr, id) then return true end
  if state.orphaned[bufnr] then
    state.orphaned[bufnr] = nil
    forget_dead_attachment(bufnr)
  end
  state.attached[bufnr] = true
  return vim.lsp.buf_attach_client(bufnr, id)
end

--- Stops the server (used by tests and when setup() runs again with a new command).
function M.stop()
  local client = M.get()
  state.stopping = true
  if client then util.call(client, 'stop') end
  state.client_id = nil
end

--- Allows another start attempt after a missing binary or a crash (:Augury enable).
function M.reset()
  state.missing = false
end

return M
