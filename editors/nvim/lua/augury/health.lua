-- augury.health: `:checkhealth augury`: the server binary and its version (`augury version --json`;
-- a server older than M.MIN_SERVER_VERSION is reported as an error), the model file, and whether
-- the server is running and attached to the current buffer.
local M = {}

-- The oldest server this plugin works with: the first with `augury version --json`.
M.MIN_SERVER_VERSION = '0.1.0'

--- -1, 0 or 1 as semver a is lower, equal or higher than b (a pre-release sorts before its release).
function M.compare_versions(a, b)
  local function parse(v)
    local core, pre = v:gsub('^v', ''):match('^([^-]*)%-?(.*)$')
    local n = {}
    for part in (core .. '.'):gmatch('([^.]*)%.') do n[#n + 1] = tonumber(part) or 0 end
    return n, pre
  end
  local na, pa = parse(a)
  local nb, pb = parse(b)
  for i = 1, 3 do
    local x, y = na[i] or 0, nb[i] or 0
    if x ~= y then return x < y and -1 or 1 end
  end
  if pa == pb then return 0 end
  if pa == '' then return 1 end
  if pb == '' then return -1 end
  return pa < pb and -1 or 1
end

--- The command that answers `version --json` for a server command: what comes before its `lsp`
--- argument ({ 'augury', 'lsp' } -> { 'augury' }), or the whole command when it has none (a wrapper).
function M.version_command(cmd)
  local prefix = {}
  for _, arg in ipairs(cmd) do
    if arg == 'lsp' then return prefix end
    prefix[#prefix + 1] = arg
  end
  return prefix
end

--- Runs `{prefix..., 'version', '--json'}` (prefix: a command list or an executable's path): the
--- decoded object, or nil and what went wrong.
function M.server_version(prefix)
  local argv = type(prefix) == 'table' and vim.list_extend({}, prefix) or { prefix }
  vim.list_extend(argv, { 'version', '--json' })
  local out = vim.fn.system(argv)
  local code = vim.v.shell_error
  if code ~= 0 then
    -- Servers before 0.1.0 answer "unknown command 'version'" with status 2.
    if out:find('unknown command', 1, true) then
      return nil, 'it is too old to report its version (no `augury version`)'
    end
    return nil, string.format('`version --json` failed (exit %d): %s', code, vim.trim(out):sub(1, 200))
  end
  local ok, v = pcall(vim.fn.json_decode, out)
  if not ok or type(v) ~= 'table' or type(v.version) ~= 'string' then
    return nil, '`version --json` printed no version: ' .. vim.trim(out):sub(1, 200)
  end
  return v
end

-- vim.health (0.8+: report_*; 0.10+: start/ok/...) or 0.7's require('health').
local function reporter()
  local h = vim.health
  if h and h.start then return h.start, h.ok, h.warn, h.error, h.info end
  h = (h and h.report_start) and h or require('health')
  return h.report_start, h.report_ok, h.report_warn, h.report_error, h.report_info
end

local function model_from_config_file()
  local dir = os.getenv('XDG_CONFIG_HOME') or ((os.getenv('HOME') or '') .. '/.config')
  local path = dir .. '/augury/config.json'
  if vim.fn.filereadable(path) ~= 1 then return nil end
  local ok, data = pcall(vim.fn.json_decode, table.concat(vim.fn.readfile(path), '\n'))
  if ok and type(data) == 'table' and type(data.model) == 'string' then return data.model, path end
  return nil, path
end

function M.check()
  local start, ok, warn, err, info = reporter()
  local config = require('augury.config')
  local client = require('augury.client')
  local cfg = config.get()

  start('augury: Neovim')
  if vim.fn.has('nvim-0.10') == 1 then
    ok('Neovim >= 0.10: the first line is inline virtual text')
  else
    ok('Neovim < 0.10: the first line is overlay text at the cursor (end of line when text follows it)')
  end
  if not cfg then
    warn("setup() has not been called", { "add require('augury').setup({}) to your init.lua" })
    cfg = config.defaults()
  end

  start('augury: server')
  local exe = cfg.cmd[1]
  if vim.fn.executable(exe) == 1 then
    local path = vim.fn.exepath(exe)
    local argv = M.version_command(cfg.cmd)
    argv[1] = path
    local v, why = M.server_version(argv)
    local rebuild = { 'rebuild augury (cmake --build build) or point cmd at a newer one' }
    if not v then
      err(string.format('%s found: %s, but %s; this plugin needs augury %s or newer', exe, path, why,
        M.MIN_SERVER_VERSION), rebuild)
    elseif M.compare_versions(v.version, M.MIN_SERVER_VERSION) < 0 then
      err(string.format('%s found: %s, but it is version %s; this plugin needs augury %s or newer', exe, path,
        v.version, M.MIN_SERVER_VERSION), rebuild)
    else
      local backends = type(v.backends) == 'table' and table.concat(v.backends, ', ') or '?'
      ok(string.format('%s found: %s (augury %s, LSP %s, plugin ABI %s, backends: %s)', exe, path, v.version,
        tostring(v.lsp), v.plugin_abi == vim.NIL and 'none' or tostring(v.plugin_abi), backends))
    end
  else
    err(string.format("'%s' not found or not executable", exe),
      { 'build augury and put it on $PATH, or set cmd = { "/path/to/augury", "lsp" } in setup()' })
  end

  start('augury: model')
  local model = cfg.model or (cfg.settings and cfg.settings.model)
  local source = 'setup({ model = ... })'
  if not model and os.getenv('AUGURY_MODEL') then model, source = os.getenv('AUGURY_MODEL'), '$AUGURY_MODEL' end
  if not model then
    local from_file, path = model_from_config_file()
    if from_file then model, source = from_file, path end
  end
  if model then
    model = vim.fn.expand(model)
    if vim.fn.filereadable(model) == 1 then
      ok(string.format('model %s (from %s, %.0f MB)', model, source, vim.fn.getfsize(model) / 1e6))
    else
      err(string.format('model %s (from %s) is not a readable file', model, source))
    end
  else
    -- Where scripts/get-model puts the default model; the server looks there last.
    local default = (os.getenv('HOME') or '') .. '/.cache/augury/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf'
    if vim.fn.filereadable(default) == 1 then
      ok('no model configured: the server will use the default ' .. default .. ' (unless the Hugging Face cache holds a coder model)')
    else
      info('no model configured: the server searches the Hugging Face cache (LLAMA_CACHE, HF_HUB_CACHE, ~/.cache/huggingface/hub) and ~/.cache/augury/models; scripts/get-model fetches the default')
    end
  end

  start('augury: this session')
  local c = client.get()
  if not c then
    if client.is_missing() then
      err('the server could not be started (binary missing)')
    else
      info('the server is not running (it starts when a buffer of a configured filetype opens)')
    end
    return
  end
  local info = client.server_info()
  ok(string.format('server running: %s (client id %d, position encoding %s)',
    info and ((info.name or '?') .. ' ' .. (info.version or '')) or 'no serverInfo', c.id, c.offset_encoding or '?'))
  -- :checkhealth runs in its own buffer, so report every buffer the server follows.
  local names = {}
  local bufs = c.attached_buffers and vim.tbl_keys(c.attached_buffers) or vim.lsp.get_buffers_by_client_id(c.id)
  table.sort(bufs)
  for _, b in ipairs(bufs) do
    names[#names + 1] = string.format('%s (%s)', vim.fn.fnamemodify(vim.api.nvim_buf_get_name(b), ':~:.'),
      vim.bo[b].filetype)
  end
  if #names > 0 then
    ok(string.format('attached to %d buffer(s): %s', #names, table.concat(names, ', ')))
  else
    info('not attached to any buffer (filetypes: ' .. table.concat(cfg.filetypes, ', ') .. ')')
  end
  if c.initialized then
    local res = require('augury.util').call(c, 'request_sync', 'workspace/executeCommand',
      { command = 'augury.status', arguments = {} }, 1000)
    if res and not res.err then
      ok('server status: ' .. (type(res.result) == 'string' and res.result or vim.inspect(res.result, { newline = ' ', indent = '' })))
    else
      warn('augury.status did not answer: ' .. tostring(res and res.err and res.err.message or 'timeout'))
    end
  end
end

return M
