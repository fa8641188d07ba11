// Portside for VS Code: starts the Portside language server and adds what a language
// server cannot do itself (discovery, trust, commands, status bar, progress UI).

import * as vscode from "vscode";
import {
  type ApplyWorkspaceEditParams,
  ApplyWorkspaceEditRequest,
  type ApplyWorkspaceEditResult,
  CloseAction,
  type CloseHandlerResult,
  ErrorAction,
  type ErrorHandlerResult,
  ExecuteCommandRequest,
  HoverRequest,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
  State,
  DidChangeConfigurationNotification,
} from "vscode-languageclient/node";
import { type Discovery, discover, notFoundMessage, unsupportedMessage } from "./discovery";
import { checkVersion } from "./version";
import { isFile, probe, which } from "./probe";
import { RestartPolicy } from "./restart";
import { serverSettings } from "./settings";
import { StatusBar } from "./statusBar";
import { registerCommands } from "./commands";
import { applyServerEdit } from "./watchUpdate";

export const DOCUMENT_SELECTOR = [
  { scheme: "file", language: "dockerfile" },
  { scheme: "untitled", language: "dockerfile" },
  { scheme: "file", pattern: "**/{Containerfile,Containerfile.*,*.Dockerfile,Dockerfile.*,*.dockerfile}" },
];

export class Portside implements vscode.Disposable {
  readonly log = vscode.window.createOutputChannel("Portside");
  client: LanguageClient | undefined;
  serverArgv: readonly string[] = [];
  private readonly restarts = new RestartPolicy();
  private readonly disposables: vscode.Disposable[] = [];
  private starting: Promise<void> | undefined;

  constructor(
    readonly context: vscode.ExtensionContext,
    private readonly status: StatusBar,
  ) {}

  settings(): Record<string, unknown> {
    return serverSettings(vscode.workspace.getConfiguration("portside"), vscode.workspace.isTrusted);
  }

  async pythonInterpreter(): Promise<string | undefined> {
    if (!vscode.workspace.isTrusted) {
      // A workspace's own venv is the workspace's code: not run before it is trusted.
      return undefined;
    }
    const ext = vscode.extensions.getExtension<PythonApi>("ms-python.python");
    if (ext === undefined) {
      return undefined;
    }
    try {
      const api = ext.isActive ? ext.exports : await ext.activate();
      const resource = vscode.window.activeTextEditor?.document.uri ?? vscode.workspace.workspaceFolders?.[0]?.uri;
      const env = api.environments?.getActiveEnvironmentPath(resource);
      if (env?.path) {
        return env.path;
      }
      return api.settings?.getExecutionDetails(resource)?.execCommand?.[0];
    } catch (e) {
      this.log.appendLine(`discovery: the Python extension did not answer: ${String(e)}`);
      return undefined;
    }
  }

  async discover(): Promise<Discovery> {
    const configured = vscode.workspace.getConfiguration("portside").get<string[]>("server.command") ?? [];
    return discover({
      configured: configured.filter((s) => typeof s === "string" && s.length > 0),
      pythonInterpreter: () => this.pythonInterpreter(),
      which,
      isFile,
      probe: (argv) => probe(argv),
      platform: process.platform,
      log: (line) => { this.log.appendLine(line); },
    });
  }

  start(): Promise<void> {
    this.starting ??= this.doStart().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.status.setServer("starting");
    this.log.appendLine(`Looking for the Portside language server (workspace ${vscode.workspace.isTrusted ? "trusted" : "not trusted"})`);
    const found = await this.discover();
    if (!found.found) {
      const message = notFoundMessage(found);
      this.log.appendLine(message);
      this.status.setServer("stopped");
      void vscode.window.showErrorMessage(message, "Open log").then((pick) => {
        if (pick === "Open log") {
          this.log.show();
        }
      });
      return;
    }
    const [command, ...args] = found.candidate.argv;
    if (command === undefined) {
      return;
    }
    this.serverArgv = found.candidate.argv;
    const serverOptions: ServerOptions = { command, args: [...args], options: { env: { ...process.env } } };
    const clientOptions: LanguageClientOptions = {
      documentSelector: DOCUMENT_SELECTOR,
      outputChannel: this.log,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: { portside: this.settings() },
      middleware: {
        // Beside another Dockerfile extension's items, ours say whose they are.
        provideCompletionItem: async (document, position, context, token, next) => {
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : (result?.items ?? []);
          for (const item of items) {
            const label = typeof item.label === "string" ? { label: item.label } : item.label;
            item.label = { ...label, description: label.description ?? "Portside" };
          }
          return result;
        },
        workspace: {
          // The server asks for section "portside": give it the keys it knows, plus trust.
          configuration: (params, token, next) => {
            const trusted = params.items.map((item) => (item.section === "portside" ? this.settings() : undefined));
            if (trusted.every((t) => t !== undefined)) {
              return trusted;
            }
            return next(params, token);
          },
        },
      },
      // A server that fails its start-up is reported once (with the log), not retried.
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (): ErrorHandlerResult => ({ action: ErrorAction.Continue }),
        closed: (): CloseHandlerResult => this.onClosed(),
      },
    };
    const client = new LanguageClient("portside", "Portside", serverOptions, clientOptions);
    this.client = client;
    // Registered after the client's own handler, so it replaces it (and survives restarts).
    client.onRequest(ApplyWorkspaceEditRequest.type, (params) => this.applyEdit(client, params));
    client.onDidChangeState((e) => {
      this.status.setServer(e.newState === State.Running ? "running" : e.newState === State.Starting ? "starting" : "stopped");
    });
    this.log.appendLine(`Starting ${found.candidate.argv.join(" ")}`);
    try {
      await client.start();
      const info = client.initializeResult?.serverInfo;
      const version = `${info?.name ?? "?"} ${info?.version ?? "(no version)"}`;
      if (checkVersion(version) !== "ok") {
        const message = unsupportedMessage(command, version);
        this.log.appendLine(message);
        await this.stop();
        this.status.setServer("stopped");
        void vscode.window.showErrorMessage(message, "Open log").then((pick) => {
          if (pick === "Open log") {
            this.log.show();
          }
        });
        return;
      }
      this.log.appendLine(`Running ${version}`);
    } catch (e) {
      this.status.setServer("stopped");
      this.log.appendLine(`The server did not start: ${String(e)}`);
      void vscode.window.showErrorMessage("Portside: the language server did not start.", "Open log").then((pick) => {
        if (pick === "Open log") {
          this.log.show();
        }
      });
    }
  }

  private onClosed(): CloseHandlerResult {
    if (this.restarts.crashed()) {
      this.log.appendLine(`The server stopped; restarting (${this.restarts.recent} of at most ${this.restarts.max} in 3 minutes)`);
      return { action: CloseAction.Restart, handled: true };
    }
    const message = `Portside: the language server stopped ${this.restarts.recent} times in 3 minutes and is not restarted.`;
    this.log.appendLine(message);
    void vscode.window.showErrorMessage(message, "Open log", "Restart").then((pick) => {
      if (pick === "Open log") {
        this.log.show();
      } else if (pick === "Restart") {
        void this.restart();
      }
    });
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  /** The server's workspace/applyEdit: the client's own handling, and a watcher notice's
   * Update saved where the user had no unsaved changes (see watchUpdate.ts). */
  private applyEdit(client: LanguageClient, params: ApplyWorkspaceEditParams): Promise<ApplyWorkspaceEditResult> {
    return applyServerEdit(params, {
      canonical: (uri) => client.protocol2CodeConverter.asUri(uri).toString(),
      dirty: () => new Set(vscode.workspace.textDocuments.filter((d) => d.isDirty).map((d) => d.uri.toString())),
      apply: () => clientApplyEdit(client, params),
      save: async (uri) => {
        try {
          return await (await vscode.workspace.openTextDocument(vscode.Uri.parse(uri))).save();
        } catch (e) {
          this.log.appendLine(`saving ${uri}: ${String(e)}`);
          return false;
        }
      },
      log: (line) => { this.log.appendLine(line); },
    });
  }

  async restart(): Promise<void> {
    this.restarts.reset();
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined && client.state !== State.Stopped) {
      try {
        await client.stop(5000);
      } catch (e) {
        this.log.appendLine(`stopping the server: ${String(e)}`);
      }
    }
  }

  /** The server's answer to `workspace/executeCommand`, or undefined without a server. */
  async execute<T>(command: string, args: unknown[]): Promise<T | undefined> {
    const client = this.client;
    if (client?.state !== State.Running) {
      void vscode.window.showWarningMessage("Portside: the language server is not running.", "Open log").then((p) => {
        if (p === "Open log") {
          this.log.show();
        }
      });
      return undefined;
    }
    return (await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args })) as T;
  }

  async hover(document: vscode.TextDocument, position: vscode.Position): Promise<string | undefined> {
    const client = this.client;
    if (client?.state !== State.Running) {
      return undefined;
    }
    const result = await client.sendRequest(HoverRequest.type, client.code2ProtocolConverter.asTextDocumentPositionParams(document, position));
    if (!result) {
      return undefined;
    }
    const contents = result.contents;
    const parts = Array.isArray(contents) ? contents : [contents];
    return parts.map((p) => (typeof p === "string" ? p : p.value)).join("\n\n");
  }

  notifySettings(): void {
    const client = this.client;
    if (client?.state === State.Running) {
      void client.sendNotification(DidChangeConfigurationNotification.type, { settings: { portside: this.settings() } });
    }
  }

  watch(): void {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("portside.server")) {
          this.log.appendLine("portside.server changed: restarting the server");
          void this.restart();
        } else if (e.affectsConfiguration("portside")) {
          this.log.appendLine("portside settings changed: sent to the server");
          this.notifySettings();
        }
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => {
        this.log.appendLine("The workspace is now trusted: restarting the server");
        void this.restart();
      }),
    );
  }

  dispose(): void {
    for (const d of this.disposables) {
      d.dispose();
    }
    void this.stop();
    this.log.dispose();
  }
}

/** What the language client does with workspace/applyEdit by itself (convert under its
 * lock, refuse a stale document version, apply). Private in vscode-languageclient 9; a
 * plain conversion and apply stands in should a later version rename it. */
async function clientApplyEdit(client: LanguageClient, params: ApplyWorkspaceEditParams): Promise<ApplyWorkspaceEditResult> {
  const own = (client as unknown as { handleApplyWorkspaceEdit?: (p: ApplyWorkspaceEditParams) => Promise<ApplyWorkspaceEditResult> }).handleApplyWorkspaceEdit;
  if (typeof own === "function") {
    return own.call(client, params);
  }
  const edit = await client.protocol2CodeConverter.asWorkspaceEdit(params.edit);
  return { applied: await vscode.workspace.applyEdit(edit) };
}

interface PythonApi {
  environments?: { getActiveEnvironmentPath(resource?: vscode.Uri): { path: string } | undefined };
  settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } | undefined };
}

let portside: Portside | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const status = new StatusBar();
  context.subscriptions.push(status);
  portside = new Portside(context, status);
  context.subscriptions.push(portside);
  portside.watch();
  registerCommands(context, portside, status);
  await portside.start();
}

export async function deactivate(): Promise<void> {
  await portside?.stop();
}
