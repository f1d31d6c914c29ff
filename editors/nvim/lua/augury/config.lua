-- augury.config: the plugin's options, their defaults and their validation.
-- setup(opts) merges the user's table over defaults() once; every other module reads config.get().
local M = {}

--- The defaults, as a fresh table each call (callers may modify what they get).
function M.defaults()
  return {
    -- The server command; the first word must be an executable (checked before starting it).
    cmd = { 'augury', 'lsp' },
    -- Filetypes whose buffers get completions; { '*' } means every buffer with a filetype.
    filetypes = {
      'c', 'cpp', 'cuda', 'python', 'lua', 'rust', 'go', 'javascript', 'javascriptreact',
      'typescript', 'typescriptreact', 'java', 'kotlin', 'sh', 'bash', 'zsh', 'ruby', 'php',
      'cs', 'swift', 'scala', 'haskell', 'ocaml', 'zig', 'cmake', 'make', 'vim', 'html', 'css',
      'sql', 'yaml', 'toml', 'json', 'markdown',
    },
    -- Model file (GGUF); nil lets the server search (AUGURY_MODEL, config.json, Hugging Face cache).
    model = nil,
    -- Pause after the last keystroke before asking for a suggestion. Short: it only coalesces
    -- bursts (pastes, key repeat); the server waits its own settings.debounceMs (40 ms) on top.
    debounce_ms = 30,
    -- Ask automatically on typing pauses; when false only keymaps.trigger asks.
    auto_trigger = true,
    -- Insert-mode keys; false disables one.
    keymaps = {
      accept = '<Tab>',
      accept_word = '<M-Right>',
      accept_line = '<M-Down>',
      dismiss = '<C-]>',
      trigger = '<M-\\>',
      next = '<M-]>',
    },
    -- Show "tokens, ms" after a suggestion.
    show_stats = false,
    -- Sent to the server as initializationOptions (and workspace/didChangeConfiguration).
    settings = {},
    -- Explain float size limits, as fractions of the editor.
    explain = { max_width = 0.8, max_height = 0.6 },
  }
end

local current = nil

local function check(opts)
  vim.validate({
    cmd = { opts.cmd, 't' },
    filetypes = { opts.filetypes, 't' },
    model = { opts.model, 's', true },
    debounce_ms = { opts.debounce_ms, 'n' },
    auto_trigger = { opts.auto_trigger, 'b' },
    keymaps = { opts.keymaps, 't' },
    show_stats = { opts.show_stats, 'b' },
    settings = { opts.settings, 't' },
  })
  if type(opts.cmd[1]) ~= 'string' or opts.cmd[1] == '' then
    error('augury: opts.cmd must be a list whose first element is the server executable')
  end
  if opts.debounce_ms < 0 then
    error(string.format('augury: opts.debounce_ms must be >= 0, got %d', opts.debounce_ms))
  end
end

--- Merges `opts` over the defaults, validates, stores and returns the result.
function M.set(opts)
  local merged = vim.tbl_deep_extend('force', M.defaults(), opts or {})
  -- Lists replace rather than merge (a user listing two filetypes means only those two).
  if opts and opts.filetypes then merged.filetypes = opts.filetypes end
  if opts and opts.cmd then merged.cmd = opts.cmd end
  check(merged)
  if merged.model then merged.settings = vim.tbl_extend('force', merged.settings, { model = merged.model }) end
  current = merged
  return merged
end

--- The active configuration, or nil before setup().
function M.get()
  return current
end

return M
