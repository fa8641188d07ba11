// Build and Publish: `portside publish` as a process (the core's publish), its
// `[step] message` lines shown in VS Code's progress UI; Cancel interrupts it, and the
// core moves tags only once every destination has everything.

import { spawn } from "node:child_process";
import * as vscode from "vscode";
import { cliCommand } from "./discovery";
import type { Portside } from "./extension";
import { which } from "./probe";
import { LineSplitter, parseProgressLine, publishSummary } from "./progress";

async function pickFolder(): Promise<vscode.WorkspaceFolder | undefined> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const active = vscode.window.activeTextEditor?.document.uri;
  const own = active ? vscode.workspace.getWorkspaceFolder(active) : undefined;
  if (own !== undefined || folders.length <= 1) {
    return own ?? folders[0];
  }
  return vscode.window.showWorkspaceFolderPick({ placeHolder: "Project to build and publish" });
}

export async function publish(portside: Portside): Promise<void> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showWarningMessage("Portside: Build and Publish runs the project's builder; trust the workspace first.");
    return;
  }
  const folder = await pickFolder();
  if (folder === undefined) {
    void vscode.window.showInformationMessage("Portside: open a project folder first.");
    return;
  }
  const mode = await vscode.window.showQuickPick(
    [
      { label: "Publish", description: "build, tag and push what [tool.portside.image] configures", dryRun: false },
      { label: "Dry run", description: "show the tags and pushes, change nothing", dryRun: true },
    ],
    { title: "Portside: Build and Publish" },
  );
  if (mode === undefined) {
    return;
  }
  const [file, ...base] = cliCommand(portside.serverArgv, (n) => which(n));
  if (file === undefined) {
    return;
  }
  // --json: the report on stdout, summed up in the final message.
  const args = [...base, "publish", "--project", folder.uri.fsPath, "--json", ...(mode.dryRun ? ["--dry-run"] : [])];
  portside.log.appendLine(`Running ${[file, ...args].join(" ")}`);
  const outcome = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Portside: ${mode.label.toLowerCase()}`, cancellable: true },
    (progress, token) =>
      new Promise<{ code: number | null; cancelled: boolean; last: string; stdout: string }>((resolve) => {
        const child = spawn(file, args, { cwd: folder.uri.fsPath, env: { ...process.env, NO_COLOR: "1" } });
        let cancelled = false;
        let last = "";
        let stdout = "";
        const errLines = new LineSplitter();
        const onErr = (line: string): void => {
          portside.log.appendLine(line);
          const step = parseProgressLine(line);
          if (step !== undefined) {
            progress.report({ message: `${step.step}: ${step.message}` });
          } else if (line.trim()) {
            last = line.trim();
          }
        };
        child.stderr.setEncoding("utf8").on("data", (chunk: string) => { errLines.push(chunk).forEach(onErr); });
        child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
          stdout += chunk;
          portside.log.append(chunk);
        });
        token.onCancellationRequested(() => {
          cancelled = true;
          portside.log.appendLine("Cancelled: interrupting portside publish");
          child.kill("SIGINT");
          setTimeout(() => child.kill("SIGKILL"), 10000).unref();
        });
        child.on("error", (e) => { resolve({ code: -1, cancelled, last: e.message, stdout }); });
        child.on("close", (code) => {
          errLines.flush().forEach(onErr);
          resolve({ code, cancelled, last, stdout });
        });
      }),
  );
  if (outcome.cancelled) {
    void vscode.window.showWarningMessage("Portside: publish cancelled; tags are moved only when every push is complete.");
  } else if (outcome.code === 0) {
    const summary = publishSummary(outcome.stdout);
    void vscode.window.showInformationMessage(`Portside: ${mode.dryRun ? "dry run done" : "published"}: ${summary}`.slice(0, 500));
  } else {
    void vscode.window.showErrorMessage(`Portside: publish failed: ${outcome.last || `exit ${String(outcome.code)}`}`, "Open log").then((p) => {
      if (p === "Open log") {
        portside.log.show();
      }
    });
  }
}
