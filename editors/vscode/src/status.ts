// The status bar item: the server's state, the last suggestion's latency and the tokens it reused
// and evaluated (from the stats the server returns with each item, lsp/completion.c), or the
// reason nothing works (binary missing, server too old, no model).
import * as vscode from 'vscode';

export type ServerState = 'starting' | 'loading' | 'ready' | 'failed' | 'off' | 'stopped';

/** The `data.stats` of an inline completion item (fields the status bar shows). */
export interface ItemStats {
  ms?: number;
  reused?: number;
  evaluated?: number;
  generated?: number;
  cached?: boolean;
  speculative?: boolean;
}

/** augury.status's reply (lsp/server.c), the fields used here. */
export interface ServerStatus {
  state: 'none' | 'loading' | 'ready' | 'failed';
  model?: string;
  description?: string;
  error?: string;
  loadMs?: number;
  completions?: number;
  lastMs?: number;
  tokens?: { reused: number; evaluated: number; generated: number };
}

export class StatusBar implements vscode.Disposable {
  readonly item: vscode.StatusBarItem;
  state: ServerState = 'starting';
  detail = '';
  last: ItemStats | undefined;
  status: ServerStatus | undefined;

  constructor() {
    this.item = vscode.window.createStatusBarItem('augury.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Augury';
    this.item.command = 'augury.showStatus';
    this.render();
    this.item.show();
  }

  setState(state: ServerState, detail = ''): void {
    this.state = state;
    this.detail = detail;
    this.render();
  }

  setServerStatus(st: ServerStatus): void {
    this.status = st;
    if (this.state === 'off' || this.state === 'stopped') return this.render();
    const map = { none: 'starting', loading: 'loading', ready: 'ready', failed: 'failed' } as const;
    this.setState(map[st.state] ?? 'starting', st.state === 'failed' ? (st.error ?? '') : '');
  }

  onItemStats(stats: ItemStats): void {
    this.last = stats;
    this.render();
  }

  /** The text shown, e.g. "$(sparkle) augury 84 ms · 412 reused · 7 eval". */
  text(): string {
    switch (this.state) {
      case 'starting':
        return '$(loading~spin) augury';
      case 'loading':
        return '$(loading~spin) augury: loading model';
      case 'failed':
        return '$(error) augury: no model';
      case 'off':
        return '$(circle-slash) augury: off';
      case 'stopped':
        return '$(error) augury: stopped';
      case 'ready': {
        const s = this.last;
        if (!s) return '$(sparkle) augury';
        const ms = s.ms !== undefined ? `${Math.round(s.ms)} ms` : '';
        const how = s.cached ? ' (cached)' : s.speculative ? ' (speculative)' : '';
        return `$(sparkle) augury ${ms}${how} · ${s.reused ?? 0} reused · ${s.evaluated ?? 0} eval`;
      }
    }
  }

  tooltip(): string {
    const lines = [`Augury: ${this.state}`];
    if (this.detail) lines.push(this.detail);
    const st = this.status;
    if (st?.model) lines.push(`model: ${st.model}${st.description ? ` (${st.description})` : ''}`);
    if (st?.loadMs) lines.push(`loaded in ${Math.round(st.loadMs)} ms`);
    const s = this.last;
    if (s)
      lines.push(
        `last suggestion: ${Math.round(s.ms ?? 0)} ms, ${s.reused ?? 0} prompt tokens reused, ${s.evaluated ?? 0} evaluated, ${s.generated ?? 0} generated`,
      );
    lines.push('Click for actions');
    return lines.join('\n');
  }

  private render(): void {
    this.item.text = this.text();
    this.item.tooltip = this.tooltip();
    this.item.backgroundColor =
      this.state === 'failed' || this.state === 'stopped'
        ? new vscode.ThemeColor('statusBarItem.errorBackground')
        : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
