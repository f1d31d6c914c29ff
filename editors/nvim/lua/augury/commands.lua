-- augury.commands: the :Augury user command (enable | disable | toggle | status | explain).
-- Defined by setup() and by plugin/augury.lua; defining it twice is harmless.
local M = {}

local SUBCOMMANDS = { 'enable', 'disable', 'toggle', 'status', 'explain' }

local function run(opts)
  local augury = require('augury')
  local sub = vim.trim(opts.args or '')
  if sub == 'enable' then
    augury.enable()
  elseif sub == 'disable' then
    augury.disable()
  elseif sub == 'toggle' then
    augury.toggle()
  elseif sub == 'status' or sub == '' then
    augury.print_status()
  elseif sub == 'explain' then
    local line1, line2 = opts.line1, opts.line2
    if opts.range == 0 then line1, line2 = vim.fn.line('.'), vim.fn.line('.') end
    local cols = nil
    -- A charwise visual selection on exactly these lines narrows the range to its columns.
    local vs, ve = vim.fn.getpos("'<"), vim.fn.getpos("'>")
    if opts.range > 0 and vim.fn.visualmode() == 'v' and vs[2] == line1 and ve[2] == line2 then
      local last = vim.fn.getline(line2)
      -- '> points at the first byte of the last selected character; include the whole character.
      local end_col = math.min(ve[3] + vim.str_utf_end(last, ve[3]), #last)
      cols = { vs[3] - 1, end_col }
    end
    augury.explain(line1, line2, cols)
  else
    vim.notify(string.format("augury: unknown subcommand '%s' (expected one of: %s)", sub,
      table.concat(SUBCOMMANDS, ', ')), vim.log.levels.WARN)
  end
end

function M.define()
  vim.api.nvim_create_user_command('Augury', run, {
    nargs = '?',
    range = true,
    force = true,
    desc = 'augury: enable | disable | toggle | status | explain',
    complete = function(lead)
      return vim.tbl_filter(function(s) return s:sub(1, #lead) == lead end, SUBCOMMANDS)
    end,
  })
end

return M
