// The extension's commands. The server does the work (pin, check); the extension picks
// documents, shows progress and results. Ids differ from the server's own commands
// (portside.pinAll, portside.checkNow, ...), which the language client registers itself.

import * as vscode from "vscode";
import type { Portside } from "./extension";
import { fromImageColumn } from "./fromLine";
import { publish } from "./publish";
import type { StatusBar } from "./statusBar";
import { plural } from "./text";

const DOCKERFILES = "**/{Dockerfile,Containerfile,Containerfile.*,*.Dockerfile,Dockerfile.*,*.dockerfile}";

interface PinResult {
  changed: number;
  problems: string[];
}

function activeDockerfile(): vscode.TextEditor | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor?.document.languageId !== "dockerfile") {
    void vscode.window.showInformationMessage("Portside: open a Dockerfile first.");
    return undefined;
  }
  return editor;
}

async function pinFile(portside: Portside): Promise<void> {
  const editor = activeDockerfile();
  if (editor === undefined) {
    return;
  }
  const result = await portside.execute<PinResult>("portside.pinAll", [editor.document.uri.toString()]);
  if (result === undefined) {
    return;
  }
  void vscode.window.showInformationMessage(`Portside: pinned ${plural(result.changed, "image")} in ${vscode.workspace.asRelativePath(editor.document.uri)}.`);
}

async function pinWorkspace(portside: Portside): Promise<void> {
  const uris = await vscode.workspace.findFiles(DOCKERFILES, "**/node_modules/**", 500);
  let images = 0;
  let files = 0;
  const problems: string[] = [];
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: "Portside: pinning base images", cancellable: true },
    async (progress, token) => {
      for (const uri of uris) {
        if (token.isCancellationRequested) {
          break;
        }
        progress.report({ message: vscode.workspace.asRelativePath(uri), increment: 100 / Math.max(uris.length, 1) });
        const doc = await vscode.workspace.openTextDocument(uri);
        if (doc.languageId !== "dockerfile") {
          await vscode.languages.setTextDocumentLanguage(doc, "dockerfile");
        }
        const wasDirty = doc.isDirty;
        const result = await portside.execute<PinResult>("portside.pinAll", [uri.toString()]);
        if (result === undefined) {
          return;
        }
        problems.push(...result.problems);
        if (result.changed > 0) {
          images += result.changed;
          files += 1;
          // A file the user had not touched is saved; one with their edits stays open for them.
          if (!wasDirty) {
            await doc.save();
          }
        }
      }
    },
  );
  const tail = problems.length > 0 ? ` ${problems.length} could not be pinned (see the log).` : "";
  for (const p of problems) {
    portside.log.appendLine(`pin: ${p}`);
  }
  void vscode.window.showInformationMessage(`Portside: pinned ${plural(images, "image")} in ${String(files)} of ${plural(uris.length, "Dockerfile")}.${tail}`);
}

async function checkForUpdates(portside: Portside): Promise<void> {
  const uris = vscode.workspace.textDocuments.filter((d) => d.languageId === "dockerfile").map((d) => d.uri.toString());
  const result = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: "Portside: checking base images" },
    () => portside.execute<{ checked: number; findings: Record<string, number> }>("portside.checkNow", uris),
  );
  if (result === undefined) {
    return;
  }
  const findings = Object.values(result.findings).reduce((a, b) => a + b, 0);
  void vscode.window.showInformationMessage(`Portside: checked ${plural(result.checked, "Dockerfile")} against their registries: ${plural(findings, "finding")}.`);
}

async function showImageDetails(portside: Portside, context: vscode.ExtensionContext): Promise<void> {
  const editor = activeDockerfile();
  if (editor === undefined) {
    return;
  }
  let position = editor.selection.active;
  let markdown = await portside.hover(editor.document, position);
  if (markdown === undefined) {
    const column = fromImageColumn(editor.document.lineAt(position.line).text);
    if (column !== undefined) {
      position = new vscode.Position(position.line, column);
      markdown = await portside.hover(editor.document, position);
    }
  }
  if (markdown === undefined) {
    void vscode.window.showInformationMessage("Portside: put the cursor on a FROM line's image.");
    return;
  }
  const image = editor.document.getText(editor.document.getWordRangeAtPosition(position, /[^\s]+/));
  let html: string;
  try {
    html = await vscode.commands.executeCommand<string>("markdown.api.render", markdown);
  } catch {
    html = `<pre>${escapeHtml(markdown)}</pre>`;
  }
  const panel = vscode.window.createWebviewPanel("portside.image", `Image: ${image}`, vscode.ViewColumn.Beside, {
    enableScripts: false,
    localResourceRoots: [context.extensionUri],
  });
  panel.webview.html = `<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src https: data:;">
<style>body{font-family:var(--vscode-font-family);color:var(--vscode-foreground);padding:0 1em}code{font-family:var(--vscode-editor-font-family)}</style>
</head><body><h2>${escapeHtml(image)}</h2>${html}</body></html>`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function registerCommands(context: vscode.ExtensionContext, portside: Portside, status: StatusBar): void {
  const register = (id: string, fn: () => Promise<void> | void): void => {
    context.subscriptions.push(
      vscode.commands.registerCommand(id, async () => {
        try {
          await fn();
        } catch (e) {
          portside.log.appendLine(`${id}: ${String(e)}`);
          void vscode.window.showErrorMessage(`Portside: ${String(e instanceof Error ? e.message : e)}`);
        }
      }),
    );
  };
  register("portside.pinFile", () => pinFile(portside));
  register("portside.pinWorkspace", () => pinWorkspace(portside));
  register("portside.checkForUpdates", () => checkForUpdates(portside));
  register("portside.showImageDetails", () => showImageDetails(portside, context));
  register("portside.buildAndPublish", () => publish(portside));
  register("portside.restartServer", async () => {
    portside.log.appendLine("Restart asked for");
    await portside.restart();
  });
  register("portside.listImages", () => status.pick());
  register("portside.showLog", () => { portside.log.show(); });
}
