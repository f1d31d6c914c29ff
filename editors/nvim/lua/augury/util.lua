-- augury.util: column conversions between Neovim byte columns and LSP position encodings,
-- and warnings that are shown once per session (the plugin never repeats a warning at the user).
local M = {}

-- Code units of the character whose UTF-8 lead byte is `b` (LSP 3.17 PositionEncodingKind):
-- utf-16 needs a surrogate pair for the 4-byte (astral) characters. Written out rather than
-- vim.str_utfindex, whose signature changed in 0.11.
local function units(b, encoding)
  if encoding == 'utf-16' and b >= 0xF0 then return 2 end
  return 1
end

local function is_continuation(b)
  return b >= 0x80 and b < 0xC0
end

--- Byte column `col` of `line` as a column in `encoding` ('utf-8', 'utf-16' or 'utf-32').
--- A byte column inside a character counts that character as reached.
function M.col_to_lsp(line, col, encoding)
  col = math.min(col, #line)
  if encoding == 'utf-8' then return col end
  local n = 0
  for i = 1, col do
    local b = line:byte(i)
    if not is_continuation(b) then n = n + units(b, encoding) end
  end
  return n
end

--- Column `character` in `encoding` of `line` as a byte column (clamped to the line length).
--- A column between the halves of a surrogate pair rounds to the character's start.
function M.lsp_to_col(line, character, encoding)
  if encoding == 'utf-8' then return math.min(character, #line) end
  local n = 0
  for i = 1, #line do
    local b = line:byte(i)
    if not is_continuation(b) then
      local u = units(b, encoding)
      if n + u > character then return i - 1 end
      n = n + u
    end
  end
  return #line
end

--- Client methods across versions: 0.11 made them methods (client:request); 0.7-0.10 take no self.
local method_style = vim.fn.has('nvim-0.11') == 1
function M.call(client, name, ...)
  if method_style then return client[name](client, ...) end
  return client[name](...)
end

M.uv = vim.uv or vim.loop

local shown = {}

--- vim.notify(msg, level) the first time `key` is seen in this session; silence afterwards.
function M.notify_once(key, msg, level)
  if shown[key] then return false end
  shown[key] = true
  vim.schedule(function() vim.notify(msg, level or vim.log.levels.WARN, { title = 'augury' }) end)
  return true
end

--- Forgets the warnings already shown (tests and :Augury enable after fixing the cause).
function M.reset_notices()
  shown = {}
end

--- Expands tabs for display: virtual text shows a tab as one cell otherwise.
function M.expand_tabs(text, start_vcol, tabstop)
  if not text:find('\t', 1, true) then return text end
  local out, vcol = {}, start_vcol or 0
  for ch in text:gmatch('[%z\1-\127\194-\244][\128-\191]*') do
    if ch == '\t' then
      local n = tabstop - (vcol % tabstop)
      out[#out + 1] = string.rep(' ', n)
      vcol = vcol + n
    else
      out[#out + 1] = ch
      vcol = vcol + 1
    end
  end
  return table.concat(out)
end

return M
