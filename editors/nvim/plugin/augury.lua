-- augury: defines :Augury at startup so that the command exists (and says what to do) even before
-- require('augury').setup() runs; setup() does the real work.
if vim.g.loaded_augury then return end
vim.g.loaded_augury = true
if vim.fn.has('nvim-0.7') ~= 1 then
  vim.api.nvim_echo({ { 'augury: needs Neovim 0.7 or later', 'WarningMsg' } }, true, {})
  return
end
require('augury.commands').define()
