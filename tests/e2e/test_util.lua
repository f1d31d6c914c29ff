-- Column conversions of augury.util between Neovim byte columns and LSP positions (utf-16 with
-- surrogate pairs, utf-32, utf-8), checked against Neovim's own str_utfindex on every character
-- boundary of lines with 2-, 3- and 4-byte characters, plus the rounding and clamping rules.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')
local util = require('augury.util')

H.run(function()
  H.case('against str_utfindex')
  for _, line in ipairs({ '', 'plain ascii', 's = "é😀" + ret', '€uro ∑ 𝄞 clef 😀😀', '😀' }) do
    for col = 0, #line do
      local b = line:byte(col + 1)
      if not b or b < 0x80 or b >= 0xC0 then -- a character boundary
        local u32, u16 = vim.str_utfindex(line, col)
        H.eq(u16, util.col_to_lsp(line, col, 'utf-16'), string.format('utf-16 of %q at %d', line, col))
        H.eq(u32, util.col_to_lsp(line, col, 'utf-32'), string.format('utf-32 of %q at %d', line, col))
        H.eq(col, util.col_to_lsp(line, col, 'utf-8'), 'utf-8 is bytes')
        H.eq(col, util.lsp_to_col(line, u16, 'utf-16'), string.format('back from utf-16 %q %d', line, u16))
        H.eq(col, util.lsp_to_col(line, u32, 'utf-32'), string.format('back from utf-32 %q %d', line, u32))
      end
    end
  end
  H.case('rounding and clamping')
  local line = 'a😀b'
  H.eq(1, util.lsp_to_col(line, 2, 'utf-16'), 'between the halves of a surrogate pair: the character start')
  H.eq(5, util.lsp_to_col(line, 3, 'utf-16'), 'after the pair')
  H.eq(#line, util.lsp_to_col(line, 99, 'utf-16'), 'past the end clamps')
  H.eq(#line, util.lsp_to_col(line, 99, 'utf-8'), 'past the end clamps (utf-8)')
  H.eq(4, util.col_to_lsp(line, 99, 'utf-16'), 'byte column past the end clamps')
  H.case('tabs expand for display')
  H.eq('a   b', util.expand_tabs('a\tb', 0, 4), 'tab to the next stop')
  H.eq('a b', util.expand_tabs('a\tb', 2, 4), 'from a later virtual column')
  H.eq('é   x', util.expand_tabs('é\tx', 0, 4), 'multi-byte characters are one column')
end, 10000)
