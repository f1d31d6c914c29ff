// A stand-in for the `vscode` module, enough for the extension and vscode-languageclient to run
// in plain Node against the real augury server (test/*.test.ts). It keeps what the extension did
// observable: status bar items, messages shown, commands, registered inline completion providers,
// configuration, open documents. Members it does not model are no-ops that return disposables
// (and are listed in mock.unknown) so that the client's unrelated features register harmlessly.
'use strict';
const path = require('node:path');

class Disposable {
  constructor(fn) { this._fn = fn; }
  static from(...ds) { return new Disposable(() => ds.forEach((d) => d && d.dispose && d.dispose())); }
  dispose() { if (this._fn) { const f = this._fn; this._fn = undefined; f(); } }
}

class EventEmitter {
  constructor() {
    this._listeners = new Set();
    this.event = (listener, thisArg, disposables) => {
      const l = thisArg ? listener.bind(thisArg) : listener;
      this._listeners.add(l);
      const d = new Disposable(() => this._listeners.delete(l));
      if (Array.isArray(disposables)) disposables.push(d);
      return d;
    };
  }
  fire(e) { for (const l of [...this._listeners]) { try { l(e); } catch (err) { mock.listenerErrors.push(err); } } }
  dispose() { this._listeners.clear(); }
}

class CancellationError extends Error { constructor() { super('Canceled'); this.name = 'Canceled'; } }

class CancellationTokenSource {
  constructor() {
    const emitter = new EventEmitter();
    this._emitter = emitter;
    this.token = { isCancellationRequested: false, onCancellationRequested: emitter.event };
  }
  cancel() { if (!this.token.isCancellationRequested) { this.token.isCancellationRequested = true; this._emitter.fire(undefined); } }
  dispose() { this._emitter.dispose(); }
}

class Position {
  constructor(line, character) { this.line = line; this.character = character; }
  isEqual(o) { return this.line === o.line && this.character === o.character; }
  isBefore(o) { return this.line < o.line || (this.line === o.line && this.character < o.character); }
  isAfter(o) { return !this.isEqual(o) && !this.isBefore(o); }
  isBeforeOrEqual(o) { return !this.isAfter(o); }
  isAfterOrEqual(o) { return !this.isBefore(o); }
  compareTo(o) { return this.isBefore(o) ? -1 : this.isEqual(o) ? 0 : 1; }
  translate(dl = 0, dc = 0) { return new Position(this.line + dl, this.character + dc); }
  with(line = this.line, character = this.character) { return new Position(line, character); }
}

class Range {
  constructor(a, b, c, d) {
    if (typeof a === 'number') { this.start = new Position(a, b); this.end = new Position(c, d); }
    else { this.start = a; this.end = b; }
    if (this.end.isBefore(this.start)) [this.start, this.end] = [this.end, this.start];
  }
  get isEmpty() { return this.start.isEqual(this.end); }
  get isSingleLine() { return this.start.line === this.end.line; }
  contains(p) { return p instanceof Range ? this.contains(p.start) && this.contains(p.end) : p.isAfterOrEqual(this.start) && p.isBeforeOrEqual(this.end); }
  isEqual(o) { return this.start.isEqual(o.start) && this.end.isEqual(o.end); }
  with(start = this.start, end = this.end) { return new Range(start, end); }
}

class Selection extends Range {
  constructor(anchor, active) { super(anchor, active); this.anchor = anchor; this.active = active; }
  get isReversed() { return this.active.isBefore(this.anchor); }
}

class Uri {
  constructor(scheme, authority, p, query, fragment) { this.scheme = scheme; this.authority = authority || ''; this.path = p || '/'; this.query = query || ''; this.fragment = fragment || ''; }
  static file(p) { return new Uri('file', '', path.resolve(p)); }
  static parse(s) {
    const m = /^([a-zA-Z][\w+.-]*):(?:\/\/([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/.exec(s);
    if (!m) throw new Error(`mock Uri.parse: ${s}`);
    return new Uri(m[1], m[2], decodeURIComponent(m[3]), m[4], m[5]);
  }
  static joinPath(base, ...parts) { return base.with({ path: path.posix.join(base.path, ...parts) }); }
  get fsPath() { return this.path; }
  with(c) { return new Uri(c.scheme ?? this.scheme, c.authority ?? this.authority, c.path ?? this.path, c.query ?? this.query, c.fragment ?? this.fragment); }
  toString() {
    const p = this.path.split('/').map(encodeURIComponent).join('/');
    return `${this.scheme}:${this.scheme === 'file' || this.authority ? `//${this.authority}` : ''}${p}${this.query ? `?${this.query}` : ''}${this.fragment ? `#${this.fragment}` : ''}`;
  }
  toJSON() { return { scheme: this.scheme, path: this.path, external: this.toString() }; }
}

class ThemeColor { constructor(id) { this.id = id; } }
class ThemeIcon { constructor(id) { this.id = id; } }
class MarkdownString { constructor(v = '') { this.value = v; } appendText(t) { this.value += t; return this; } appendMarkdown(t) { this.value += t; return this; } }
class SnippetString { constructor(v = '') { this.value = v; } }
class InlineCompletionItem { constructor(insertText, range, command) { this.insertText = insertText; this.range = range; this.command = command; } }
class InlineCompletionList { constructor(items) { this.items = items; } }
class Location { constructor(uri, range) { this.uri = uri; this.range = range; } }
class TabInputText { constructor(uri) { this.uri = uri; } }
class TabInputTextDiff { constructor(o, m) { this.original = o; this.modified = m; } }
class TabInputNotebook { constructor(uri) { this.uri = uri; } }
class TabInputCustom { constructor(uri) { this.uri = uri; } }

const enums = {
  StatusBarAlignment: { Left: 1, Right: 2 },
  ConfigurationTarget: { Global: 1, Workspace: 2, WorkspaceFolder: 3 },
  ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
  LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
  InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
  ViewColumn: { Active: -1, Beside: -2, One: 1, Two: 2 },
  EndOfLine: { LF: 1, CRLF: 2 },
  DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
  TextDocumentChangeReason: { Undo: 1, Redo: 2 },
  UIKind: { Desktop: 1, Web: 2 },
};

// ---- documents ---------------------------------------------------------------------------------

class TextDocument {
  constructor(uri, languageId, text) {
    this.uri = uri; this.languageId = languageId; this.version = 1; this._text = text;
    this.isClosed = false; this.isDirty = false; this.isUntitled = uri.scheme === 'untitled';
    this.eol = enums.EndOfLine.LF; this.encoding = 'utf8';
  }
  get fileName() { return this.uri.fsPath; }
  get lineCount() { return this._text.split('\n').length; }
  getText(range) { return range ? this._text.slice(this.offsetAt(range.start), this.offsetAt(range.end)) : this._text; }
  offsetAt(p) {
    const lines = this._text.split('\n');
    let off = 0;
    for (let i = 0; i < Math.min(p.line, lines.length); i++) off += lines[i].length + 1;
    const line = lines[Math.min(p.line, lines.length - 1)] ?? '';
    return Math.min(off + Math.min(p.character, line.length), this._text.length);
  }
  positionAt(offset) {
    const before = this._text.slice(0, Math.max(0, Math.min(offset, this._text.length)));
    const lines = before.split('\n');
    return new Position(lines.length - 1, lines[lines.length - 1].length);
  }
  lineAt(l) {
    const n = typeof l === 'number' ? l : l.line;
    const text = this._text.split('\n')[n] ?? '';
    return { lineNumber: n, text, range: new Range(n, 0, n, text.length), isEmptyOrWhitespace: text.trim() === '' };
  }
  validatePosition(p) { return this.positionAt(this.offsetAt(p)); }
  validateRange(r) { return new Range(this.validatePosition(r.start), this.validatePosition(r.end)); }
  getWordRangeAtPosition() { return undefined; }
  save() { return Promise.resolve(true); }
}

// ---- the mock's state --------------------------------------------------------------------------

const mock = {
  /** section.key -> value (what getConfiguration reads; update writes here). */
  config: {},
  statusBarItems: [],
  messages: [], // { level, message, actions }
  /** The answer the next message gets: a function (level, message, actions) -> title or undefined. */
  answerMessage: () => undefined,
  commands: new Map(),
  executed: [],
  inlineProviders: [], // { selector, provider }
  contentProviders: new Map(),
  documents: [],
  shownDocuments: [],
  outputLines: [],
  quickPickAnswer: () => undefined,
  unknown: new Set(),
  listenerErrors: [],
  events: {},
  openDocument(uri, languageId, text) {
    const d = new TextDocument(uri, languageId, text);
    mock.documents.push(d);
    mock.events.openDoc.fire(d);
    return d;
  },
  /** Replaces range with text and fires onDidChangeTextDocument like the editor does. */
  editDocument(doc, range, text) {
    const start = doc.offsetAt(range.start), end = doc.offsetAt(range.end);
    doc._text = doc._text.slice(0, start) + text + doc._text.slice(end);
    doc.version++;
    mock.events.changeDoc.fire({ document: doc, reason: undefined, contentChanges: [{ range, rangeOffset: start, rangeLength: end - start, text }] });
  },
  setActiveEditor(doc, selection) {
    window.activeTextEditor = doc ? { document: doc, selection, selections: [selection], visibleRanges: [], options: {}, viewColumn: 1 } : undefined;
  },
  reset() {
    mock.messages.length = 0; mock.statusBarItems.length = 0; mock.inlineProviders.length = 0; mock.executed.length = 0;
    mock.commands.clear(); mock.contentProviders.clear(); mock.documents.length = 0; mock.shownDocuments.length = 0;
    mock.outputLines.length = 0; mock.config = {}; window.activeTextEditor = undefined;
  },
};

function event(name) { const e = new EventEmitter(); mock.events[name] = e; return e.event; }

function showMessage(level) {
  return (message, ...rest) => {
    const actions = rest.filter((r) => typeof r === 'string' || (r && typeof r.title === 'string'));
    mock.messages.push({ level, message, actions: actions.map((a) => (typeof a === 'string' ? a : a.title)) });
    const answer = mock.answerMessage(level, message, actions);
    return Promise.resolve(answer === undefined ? undefined : actions.find((a) => a === answer || a.title === answer));
  };
}

function outputChannel(name) {
  const line = (level) => (msg, ...args) => mock.outputLines.push(`[${level}] ${name}: ${msg}${args.length ? ' ' + args.map(String).join(' ') : ''}`);
  return {
    name, logLevel: enums.LogLevel.Info, onDidChangeLogLevel: new EventEmitter().event,
    append: (t) => mock.outputLines.push(t), appendLine: (t) => mock.outputLines.push(t), replace() {}, clear() {}, show() {}, hide() {}, dispose() {},
    trace: line('trace'), debug: line('debug'), info: line('info'), warn: line('warn'), error: (e, ...a) => line('error')(e instanceof Error ? e.message : e, ...a),
  };
}

function configuration(section) {
  const key = (k) => (section ? `${section}.${k}` : k);
  return {
    get(k, dflt) { const v = mock.config[key(k)]; return v === undefined ? dflt : v; },
    has(k) { return key(k) in mock.config; },
    inspect(k) { return { key: key(k), globalValue: mock.config[key(k)] }; },
    update(k, value) {
      mock.config[key(k)] = value;
      const changed = key(k);
      mock.events.changeConfig.fire({ affectsConfiguration: (s) => changed === s || changed.startsWith(`${s}.`) });
      return Promise.resolve();
    },
  };
}

const window = {
  activeTextEditor: undefined,
  visibleTextEditors: [],
  terminals: [],
  state: { focused: true },
  tabGroups: { all: [], activeTabGroup: { tabs: [] }, onDidChangeTabs: event('tabs'), onDidChangeTabGroups: event('tabGroups') },
  onDidChangeActiveTextEditor: event('activeEditor'),
  onDidChangeVisibleTextEditors: event('visibleEditors'),
  onDidChangeTextEditorSelection: event('selection'),
  onDidChangeWindowState: event('windowState'),
  createOutputChannel: (name) => outputChannel(name),
  createStatusBarItem(id, alignment, priority) {
    if (typeof id !== 'string') { priority = alignment; alignment = id; id = undefined; }
    const item = { id, alignment, priority, text: '', tooltip: undefined, command: undefined, name: undefined, backgroundColor: undefined, visible: false, show() { this.visible = true; }, hide() { this.visible = false; }, dispose() { this.visible = false; } };
    mock.statusBarItems.push(item);
    return item;
  },
  showErrorMessage: showMessage('error'),
  showWarningMessage: showMessage('warning'),
  showInformationMessage: showMessage('info'),
  setStatusBarMessage: (text) => { mock.outputLines.push(`status: ${text}`); return new Disposable(() => {}); },
  showQuickPick: (items, options) => Promise.resolve(items).then((list) => mock.quickPickAnswer(list, options)),
  showOpenDialog: () => Promise.resolve(undefined),
  showTextDocument: (doc) => { mock.shownDocuments.push(doc); return Promise.resolve({ document: doc }); },
  withProgress: (options, task) => task({ report() {} }, new CancellationTokenSource().token),
};

const workspace = {
  workspaceFolders: undefined,
  textDocuments: [],
  notebookDocuments: [],
  isTrusted: true,
  onDidOpenTextDocument: event('openDoc'),
  onDidCloseTextDocument: event('closeDoc'),
  onDidChangeTextDocument: event('changeDoc'),
  onDidSaveTextDocument: event('saveDoc'),
  onWillSaveTextDocument: event('willSaveDoc'),
  onDidChangeConfiguration: event('changeConfig'),
  onDidChangeWorkspaceFolders: event('folders'),
  onDidOpenNotebookDocument: event('openNotebook'),
  onDidCloseNotebookDocument: event('closeNotebook'),
  onDidChangeNotebookDocument: event('changeNotebook'),
  onDidSaveNotebookDocument: event('saveNotebook'),
  getConfiguration: (section) => configuration(section),
  getWorkspaceFolder: () => undefined,
  registerTextDocumentContentProvider(scheme, provider) {
    mock.contentProviders.set(scheme, provider);
    return new Disposable(() => mock.contentProviders.delete(scheme));
  },
  openTextDocument(uri) {
    const provider = mock.contentProviders.get(uri.scheme);
    const doc = new TextDocument(uri, 'markdown', provider ? provider.provideTextDocumentContent(uri) : '');
    return Promise.resolve(doc);
  },
  createFileSystemWatcher: () => ({ onDidCreate: new EventEmitter().event, onDidChange: new EventEmitter().event, onDidDelete: new EventEmitter().event, dispose() {} }),
  applyEdit: () => Promise.resolve(false),
};
Object.defineProperty(workspace, 'textDocuments', { get: () => mock.documents });

function matchOne(s, doc) {
  if (typeof s === 'string') return s === '*' || s === doc.languageId ? 10 : 0;
  if (s.language && s.language !== '*' && s.language !== doc.languageId) return 0;
  if (s.scheme && s.scheme !== '*' && s.scheme !== doc.uri.scheme) return 0;
  return 10;
}

const languages = {
  match(selector, doc) { return Math.max(0, ...(Array.isArray(selector) ? selector : [selector]).map((s) => matchOne(s, doc))); },
  registerInlineCompletionItemProvider(selector, provider) {
    const entry = { selector, provider };
    mock.inlineProviders.push(entry);
    return new Disposable(() => mock.inlineProviders.splice(mock.inlineProviders.indexOf(entry), 1));
  },
  createDiagnosticCollection: () => ({ set() {}, delete() {}, clear() {}, forEach() {}, get() { return undefined; }, has() { return false; }, dispose() {} }),
  getLanguages: () => Promise.resolve(['python', 'c', 'plaintext']),
  onDidChangeDiagnostics: event('diagnostics'),
};

const commands = {
  registerCommand(id, fn) {
    if (mock.commands.has(id)) throw new Error(`command '${id}' already exists`);
    mock.commands.set(id, fn);
    return new Disposable(() => mock.commands.delete(id));
  },
  executeCommand(id, ...args) {
    mock.executed.push({ id, args });
    const fn = mock.commands.get(id);
    return fn ? Promise.resolve(fn(...args)) : Promise.resolve(undefined);
  },
  getCommands: () => Promise.resolve([...mock.commands.keys()]),
};

const env = { appName: 'mock-vscode', appRoot: '/', language: 'en', machineId: 'mock', sessionId: 'mock', uiKind: 1, uriScheme: 'vscode', openExternal: () => Promise.resolve(false), clipboard: { readText: () => Promise.resolve(''), writeText: () => Promise.resolve() } };

/** Unknown members of a namespace: events and registrations that do nothing. */
function lenient(name, target) {
  return new Proxy(target, {
    get(t, p) {
      if (p in t || typeof p === 'symbol') return t[p];
      mock.unknown.add(`${name}.${String(p)}`);
      if (String(p).startsWith('on')) return () => new Disposable(() => {});
      return () => new Disposable(() => {});
    },
  });
}

const api = {
  version: '1.91.0',
  Disposable, EventEmitter, CancellationError, CancellationTokenSource, Position, Range, Selection, Uri,
  ThemeColor, ThemeIcon, MarkdownString, SnippetString, InlineCompletionItem, InlineCompletionList, Location,
  TabInputText, TabInputTextDiff, TabInputNotebook, TabInputCustom,
  ...enums,
  window: lenient('window', window),
  workspace: lenient('workspace', workspace),
  languages: lenient('languages', languages),
  commands,
  env,
  extensions: lenient('extensions', { all: [], getExtension: () => undefined, onDidChange: event('extensions') }),
  notebooks: lenient('notebooks', {}),
  __mock: mock,
  __window: window,
};

module.exports = new Proxy(api, {
  get(t, p) {
    if (p in t || typeof p === 'symbol') return t[p];
    mock.unknown.add(String(p));
    // An unmodelled class (only ever used with instanceof or constructed by features not in play).
    return class Unmodelled {};
  },
});
