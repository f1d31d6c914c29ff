-- augury.util: column conversions between Neovim byte columns and LSP position encodings,
-- and warnings that are shown once per session (the plugin never repeats a warning at the user).
local M = {}

--- Byte column `col` of `line` as a column in `encoding` ('utf-8', 'utf-16' or 'utf-32').
function M.col_to_lsp(line, col, encoding)
  col = math.min(col, #line)
  if encoding == 'utf-8' then return col end
  -- str_utfindex counts up to a byte index; it rejects an index inside a character, so step back
  -- to the start of the character (a cursor never sits inside one, a range might).
  while col > 0 and col < #line and bit.band(line:byte(col + 1), 0xC0) == 0x80 do col = col - 1 end
  local utf32, utf16 = vim.str_utfindex(line, col)
  return encoding == 'utf-32' and utf32 or utf16
end

--- Column `character` in `encoding` of `line` as a byte column (clamped to the line length).
function M.lsp_to_col(line, character, encoding)
  if encoding == 'utf-8' then return math.min(character, #line) end
  local _, utf16_total = vim.str_utfindex(line)
  local utf32_total = vim.str_utfindex(line)
  if encoding == 'utf-32' then
    if character >= utf32_total then return #line end
    return vim.str_byteindex(line, character, false)
  end
  if character >= utf16_total then return #line end
  -- A column between the halves of a surrogate pair rounds to the character's start.
  local ok, byte = pcall(vim.str_byteindex, line, character, true)
  if ok then return byte end
  return vim.str_byteindex(line, character - 1, true)
end

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
