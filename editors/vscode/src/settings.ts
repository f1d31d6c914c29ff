// The augury.* settings: the extension's own (serverPath) and those the server reads, under the
// names of lsp/config.c, sent as initializationOptions and with workspace/didChangeConfiguration.
import type * as vscode from 'vscode';

export const SECTION = 'augury';

/** Settings the server understands (lsp/config.c's table), as sent to it. */
export interface ServerSettings {
  model: string;
  threads: number;
  gpuLayers: number | string;
  kvCacheType: string;
  mlock: boolean;
  enable: boolean;
  languages: Record<string, boolean>;
  debounceMs: number;
}

export function serverPath(cfg: vscode.WorkspaceConfiguration): string {
  const p = cfg.get<string>('serverPath', 'augury').trim();
  return p === '' ? 'augury' : p.replace(/^~(?=\/)/, process.env.HOME ?? '~');
}

export function serverSettings(cfg: vscode.WorkspaceConfiguration): ServerSettings {
  const model = cfg.get<string>('model', '').trim().replace(/^~(?=\/)/, process.env.HOME ?? '~');
  const gpu = cfg.get<number | string | null>('gpuLayers', 0);
  const languages: Record<string, boolean> = {};
  for (const [id, on] of Object.entries(cfg.get<Record<string, unknown>>('languages', {}) ?? {}))
    if (typeof on === 'boolean') languages[id] = on;
  return {
    model,
    threads: cfg.get<number>('threads', 0),
    gpuLayers: gpu === null || gpu === '' ? 0 : gpu,
    kvCacheType: cfg.get<string>('kvCacheType', 'f16'),
    mlock: cfg.get<boolean>('mlock', false),
    enable: cfg.get<boolean>('enable', true),
    languages,
    debounceMs: cfg.get<number>('debounceMs', 40),
  };
}
