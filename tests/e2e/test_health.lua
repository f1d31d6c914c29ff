-- :checkhealth augury and the server's version (`augury version --json`): the real server passes
-- and is described (version, LSP, backends); one older than the plugin's minimum, and one that
-- predates `augury version`, are errors that name both versions. The real-server case needs
-- AUGURY_BIN and is skipped without it.
local H = dofile(vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':h') .. '/helpers.lua')
local health = require('augury.health')

local tmp = vim.fn.tempname()
vim.fn.mkdir(tmp, 'p')
local function fake(name, body)
  local path = tmp .. '/' .. name
  vim.fn.writefile({ '#!/bin/sh', body }, path)
  vim.fn.system({ 'chmod', '+x', path })
  return path
end

local function report_for(cmd)
  require('augury').setup({ cmd = cmd, filetypes = { 'python' } })
  vim.cmd('checkhealth augury')
  local text = table.concat(vim.api.nvim_buf_get_lines(0, 0, -1, false), '\n')
  vim.cmd('bwipeout')
  return text
end

H.run(function()
  H.case('compare_versions')
  H.eq(0, health.compare_versions('0.1.0', '0.1.0'), 'equal')
  H.eq(-1, health.compare_versions('0.0.9', '0.1.0'), 'older')
  H.eq(1, health.compare_versions('0.10.0', '0.9.9'), 'numeric, not text')
  H.eq(-1, health.compare_versions('1.0.0-rc.1', '1.0.0'), 'pre-release first')

  H.case('a server older than the minimum')
  local old = fake('augury-old', [[echo '{"version":"0.0.9","plugin_abi":null,"backends":["cpu"],"lsp":"3.17"}']])
  local r = report_for({ old, 'lsp' })
  H.ok(r:find('it is version 0.0.9; this plugin needs augury ' .. health.MIN_SERVER_VERSION .. ' or newer', 1, true),
    'names both versions:\n' .. r)
  H.ok(r:find('ERROR', 1, true), 'as an error:\n' .. r)

  H.case('a server without `augury version`')
  local ancient = fake('augury-ancient', [[echo "augury: unknown command '$1'" >&2; exit 2]])
  r = report_for({ ancient, 'lsp' })
  H.ok(r:find('too old to report its version', 1, true) and r:find('or newer', 1, true), 'too old:\n' .. r)

  local bin = vim.env.AUGURY_BIN
  if bin and vim.fn.executable(bin) == 1 then
    H.case('the real server')
    local v = assert(health.server_version(bin))
    H.ok(health.compare_versions(v.version, health.MIN_SERVER_VERSION) >= 0, 'new enough: ' .. v.version)
    r = report_for({ bin, 'lsp' })
    H.ok(r:find('(augury ' .. v.version .. ', LSP 3.18, plugin ABI ', 1, true) and r:find('backends: cpu', 1, true),
      'describes the server:\n' .. r)
  else
    H.log('skip: the real-server case (AUGURY_BIN is not an executable)')
  end
  vim.fn.delete(tmp, 'rf')
end, 30000)
