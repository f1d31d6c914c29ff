// Augury for VS Code: starts `augury lsp` through vscode-languageclient, which consumes the
// server's LSP 3.18 inline completions natively (ghost text; Tab, accept word, accept line are
// VS Code's own inline-suggest commands). Adds the status bar item, explain selection (streamed),
// toggle, restart, choose model, and refuses a missing or too old server before starting it.
// Nothing here talks to the network: no telemetry, no downloads.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  MessageType,
  type ServerOptions,
  ShowMessageRequest,
  type ShowMessageRequestParams,
  State,
  WorkDoneProgress,
} from 'vscode-languageclient/node';

import { ExplainDocuments, EXPLAIN_SCHEME } from './explain';
import { SECTION, serverPath, serverSettings } from './settings';
import { type ItemStats, type ServerStatus, StatusBar } from './status';
import { probeServer, ServerProbeError, type ServerVersion } from './version';

const CHOOSE_MODEL = 'Choose Model…';
const OPEN_SETTINGS = 'Open Settings';
const SHOW_LOG = 'Show Log';

/** The extension's state; activate() returns it (tests and other extensions may read it). */
export class Augury implements vscode.Disposable {
  client: LanguageClient | undefined;
  version: ServerVersion | undefined;
  /** The last error shown to the user (the missing binary, an old server, a missing model). */
  lastError: string | undefined;
  readonly output: vscode.LogOutputChannel;
  readonly status: StatusBar;
  readonly explains = new ExplainDocuments();
  private readonly disposables: vscode.Disposable[] = [];
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private explainCounter = 0;
  private starting: Promise<boolean> | undefined;

  constructor() {
    this.output = vscode.window.createOutputChannel('Augury', { log: true });
    this.status = new StatusBar();
    this.disposables.push(
      this.output,
      this.status,
      this.explains,
      vscode.workspace.registerTextDocumentContentProvider(EXPLAIN_SCHEME, this.explains),
      vscode.commands.registerCommand('augury.explainSelection', () => this.explainSelection()),
      vscode.commands.registerCommand('augury.toggle', () => this.toggle()),
      vscode.commands.registerCommand('augury.restartServer', () => this.restart()),
      vscode.commands.registerCommand('augury.chooseModel', () => this.chooseModel()),
      vscode.commands.registerCommand('augury.showStatus', () => this.showStatus()),
      vscode.commands.registerCommand('augury.showLog', () => this.output.show(true)),
      vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
    );
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  private log(message: string): void {
    this.output.info(message);
  }

  /** Shows an error with the actions that fix it; `Show Log` and `Open Settings` are handled. */
  private async fail(message: string, ...actions: string[]): Promise<string | undefined> {
    this.lastError = message;
    this.log(message);
    const picked = await vscode.window.showErrorMessage(message, ...actions, SHOW_LOG);
    if (picked === SHOW_LOG) this.output.show(true);
    if (picked === OPEN_SETTINGS) void vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
    if (picked === CHOOSE_MODEL) void this.chooseModel();
    return picked;
  }

  /** Starts the server (once; concurrent calls share the start). Resolves false when refused. */
  start(): Promise<boolean> {
    this.starting ??= this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<boolean> {
    if (this.client) return true;
    const cfg = this.config();
    const command = serverPath(cfg);
    this.status.setState('starting');
    try {
      this.version = await probeServer(command);
    } catch (e) {
      const message = e instanceof ServerProbeError ? e.message : `augury: ${String(e)}`;
      this.status.setState('stopped', message);
      void this.fail(message, OPEN_SETTINGS);
      return false;
    }
    this.log(`server ${command}: augury ${this.version.version}, backends ${this.version.backends.join(', ')}`);
    const serverOptions: ServerOptions = { command, args: ['lsp'] };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
      // Read at every (re)start, so a restart picks up changed settings.
      initializationOptions: () => serverSettings(this.config()),
      middleware: {
        // The server's plain textDocument/completion is for editors without inline completion;
        // here it would only duplicate the ghost text in the suggest widget.
        provideCompletionItem: () => undefined,
      },
    };
    const client = new LanguageClient('augury', 'Augury', serverOptions, clientOptions);
    this.watchInlineResults(client);
    client.onDidChangeState((e) => {
      if (e.newState === State.Stopped && this.client === client) this.status.setState('stopped', 'the server stopped');
    });
    // A missing or broken model is a question from the server (window/showMessageRequest with
    // Retry), sent right after initialize: registered before start, it replaces the default.
    client.onRequest(ShowMessageRequest.type, (params) => this.serverQuestion(params));
    try {
      await client.start();
    } catch (e) {
      const message = `augury: the server '${command}' did not start: ${e instanceof Error ? e.message : String(e)}`;
      this.status.setState('stopped', message);
      void this.fail(message, OPEN_SETTINGS);
      return false;
    }
    this.client = client;
    this.schedulePoll(0);
    return true;
  }

  async stop(): Promise<void> {
    this.cancelPoll();
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (e) {
        this.log(`stopping the server: ${String(e)}`);
      }
    }
    this.status.setState('stopped', 'the server is not running');
  }

  async restart(): Promise<boolean> {
    await this.starting;
    await this.stop();
    this.lastError = undefined;
    return this.start();
  }

  /** The per-item stats (`data.stats`, lsp/completion.c) are dropped by the protocol converter,
   * so the result is looked at on its way into it. */
  private watchInlineResults(client: LanguageClient): void {
    type Convert = (values: unknown, token?: vscode.CancellationToken) => Promise<unknown>;
    const p2c = client.protocol2CodeConverter as unknown as { asInlineCompletionResult: Convert };
    const convert = p2c.asInlineCompletionResult.bind(p2c);
    p2c.asInlineCompletionResult = (values, token) => {
      this.inlineResult(values);
      return convert(values, token);
    };
  }

  private inlineResult(values: unknown): void {
    const items = Array.isArray(values) ? values : (values as { items?: unknown[] } | null)?.items;
    const first = items?.[0] as { data?: { stats?: ItemStats } } | undefined;
    if (first?.data?.stats) this.status.onItemStats(first.data.stats);
  }

  private async serverQuestion(params: ShowMessageRequestParams) {
    const actions = params.actions ?? [];
    const titles = actions.map((a) => a.title);
    let picked: string | undefined;
    if (params.type === MessageType.Error) {
      this.status.setState('failed', params.message);
      picked = await this.fail(params.message, ...titles, ...(/model/i.test(params.message) ? [CHOOSE_MODEL, OPEN_SETTINGS] : []));
    } else {
      this.log(params.message);
      picked = await (params.type === MessageType.Warning
        ? vscode.window.showWarningMessage(params.message, ...titles)
        : vscode.window.showInformationMessage(params.message, ...titles));
    }
    const action = actions.find((a) => a.title === picked) ?? null;
    if (action) this.schedulePoll(200);
    return action;
  }

  /** Asks augury.status; returns undefined when the server is not running. */
  async serverStatus(): Promise<ServerStatus | undefined> {
    const client = this.client;
    if (!client?.isRunning()) return undefined;
    try {
      const st = (await client.sendRequest(ExecuteCommandRequest.type, { command: 'augury.status', arguments: [] })) as ServerStatus;
      if (!this.config().get<boolean>('enable', true)) this.status.setState('off');
      this.status.setServerStatus(st);
      return st;
    } catch (e) {
      this.log(`augury.status: ${String(e)}`);
      return undefined;
    }
  }

  /** Polls augury.status while the model is loading (the load runs in the background). */
  private schedulePoll(delayMs: number): void {
    this.cancelPoll();
    this.pollTimer = setTimeout(async () => {
      this.pollTimer = undefined;
      const st = await this.serverStatus();
      if (st && (st.state === 'loading' || st.state === 'none') && !this.pollTimer) this.schedulePoll(500);
    }, delayMs);
  }

  private cancelPoll(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
  }

  private async configurationChanged(e: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!e.affectsConfiguration(SECTION)) return;
    if (e.affectsConfiguration(`${SECTION}.serverPath`)) {
      await this.restart();
      return;
    }
    const client = this.client;
    const settings = serverSettings(this.config());
    if (!settings.enable) this.status.setState('off');
    else if (this.status.state === 'off') this.status.setState('ready');
    if (!client?.isRunning()) return;
    await client.sendNotification(DidChangeConfigurationNotification.type, { settings });
    this.schedulePoll(100); // a new model or engine setting reloads the model
  }

  async toggle(): Promise<boolean> {
    const cfg = this.config();
    const enable = !cfg.get<boolean>('enable', true);
    await cfg.update('enable', enable, vscode.ConfigurationTarget.Global);
    void vscode.window.setStatusBarMessage(`augury: completions ${enable ? 'on' : 'off'}`, 2000);
    return enable;
  }

  /** Explains the selection; the text streams into a markdown document beside the editor.
   * Resolves with the final text (undefined when there was nothing to explain). */
  async explainSelection(): Promise<string | undefined> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.selection.isEmpty) {
      void vscode.window.showInformationMessage('augury: select the code to explain first');
      return undefined;
    }
    const client = this.client;
    if (!client?.isRunning()) {
      void this.fail('augury: the server is not running (Augury: Restart Server starts it)');
      return undefined;
    }
    const doc = editor.document;
    const sel = editor.selection;
    const title = `Explain ${path.basename(doc.fileName || doc.uri.path)} ${sel.start.line + 1}-${sel.end.line + 1}`;
    const uri = this.explains.create(title);
    this.explains.set(uri, `*explaining lines ${sel.start.line + 1}-${sel.end.line + 1}…*\n`);
    void vscode.workspace
      .openTextDocument(uri)
      .then((d) => vscode.window.showTextDocument(d, { viewColumn: vscode.ViewColumn.Beside, preview: true, preserveFocus: true }))
      .then(undefined, (e: unknown) => this.log(`cannot show the explanation: ${String(e)}`));
    const token = `augury-explain-${process.pid}-${++this.explainCounter}`;
    const progress = client.onProgress(WorkDoneProgress.type, token, (value) => {
      if (value.kind !== 'end' && value.message) this.explains.set(uri, value.message);
    });
    try {
      const result = (await client.sendRequest(ExecuteCommandRequest.type, {
        command: 'augury.explain',
        arguments: [{ uri: client.code2ProtocolConverter.asUri(doc.uri), range: client.code2ProtocolConverter.asRange(sel) }],
        workDoneToken: token,
      })) as { text?: string; state?: string } | null;
      const text = result?.text
        ? result.text
        : `*augury: no explanation: the model is ${result?.state ?? 'silent'}*`;
      this.explains.set(uri, text);
      return text;
    } catch (e) {
      const text = `augury: explain failed: ${e instanceof Error ? e.message : String(e)}`;
      this.explains.set(uri, text);
      this.log(text);
      return text;
    } finally {
      progress.dispose();
    }
  }

  /** GGUF files where scripts/get-model and llama.cpp put them. */
  static knownModels(): string[] {
    const dirs = [path.join(os.homedir(), '.cache', 'augury', 'models')];
    if (process.env.LLAMA_CACHE) dirs.push(process.env.LLAMA_CACHE);
    const found: string[] = [];
    for (const dir of dirs) {
      try {
        for (const name of fs.readdirSync(dir).sort())
          if (name.toLowerCase().endsWith('.gguf')) found.push(path.join(dir, name));
      } catch {
        // a folder that does not exist holds no model
      }
    }
    return found;
  }

  async chooseModel(): Promise<string | undefined> {
    const browse = '$(folder-opened) Browse…';
    const current = serverSettings(this.config()).model;
    const items: vscode.QuickPickItem[] = Augury.knownModels().map((p) => ({
      label: path.basename(p),
      description: path.dirname(p),
      detail: p === current ? 'current' : undefined,
    }));
    items.push({ label: browse });
    const picked = await vscode.window.showQuickPick(items, { placeHolder: 'The GGUF model augury completes with' });
    if (!picked) return undefined;
    let file: string | undefined;
    if (picked.label === browse) {
      const uris = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'GGUF models': ['gguf'] }, openLabel: 'Use this model' });
      file = uris?.[0]?.fsPath;
    } else {
      file = path.join(picked.description ?? '', picked.label);
    }
    if (!file) return undefined;
    await this.config().update('model', file, vscode.ConfigurationTarget.Global);
    return file;
  }

  async showStatus(): Promise<void> {
    const st = await this.serverStatus();
    const lines = this.status.tooltip().split('\n').slice(0, -1);
    if (this.version) lines.push(`server: augury ${this.version.version} (LSP ${this.version.lsp}, backends ${this.version.backends.join(', ')})`);
    if (st?.completions !== undefined) lines.push(`${st.completions} completions this session`);
    const actions: Array<vscode.QuickPickItem & { command: string }> = [
      { label: '$(circle-slash) Toggle completions', command: 'augury.toggle' },
      { label: '$(debug-restart) Restart server', command: 'augury.restartServer' },
      { label: '$(file-binary) Choose model…', command: 'augury.chooseModel' },
      { label: '$(output) Show log', command: 'augury.showLog' },
    ];
    const items = [...lines.map((l) => ({ label: l, command: '' })), ...actions];
    const picked = await vscode.window.showQuickPick(items, { placeHolder: 'Augury' });
    if (picked?.command) await vscode.commands.executeCommand(picked.command);
  }

  dispose(): void {
    this.cancelPoll();
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

let instance: Augury | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Augury> {
  instance = new Augury();
  context.subscriptions.push(instance);
  await instance.start();
  return instance;
}

export async function deactivate(): Promise<void> {
  const a = instance;
  instance = undefined;
  if (a) {
    await a.stop();
    a.dispose();
  }
}
