// Finding the language server: configured command, the Python extension's environment,
// `portside` on PATH, `python3 -m lsp_server`; the first that answers `--version` with a
// supported version wins. Pure: the file system and processes come in through `Env`.

import * as path from "node:path";
import { SUPPORTED, checkVersion } from "./version";

export const INSTALL_COMMAND = "pipx install 'portside[lsp]'";

export interface Candidate {
  /** Where the candidate came from, for the log. */
  readonly source: string;
  /** The server's command line (stdio is the default transport). */
  readonly argv: readonly string[];
  /** Run `--version` first: only where nothing cheaper says whether it can start. */
  readonly probe?: boolean;
}

export interface ProbeResult {
  readonly ok: boolean;
  /** stdout of `--version` when ok, else why it failed. */
  readonly output: string;
}

export interface Env {
  /** The configured `portside.server.command` (empty: not set). */
  readonly configured: readonly string[];
  /** The Python extension's selected interpreter, when that extension is present. */
  pythonInterpreter(): Promise<string | undefined>;
  /** The absolute path of `name` on PATH, or undefined. */
  which(name: string): string | undefined;
  isFile(file: string): boolean;
  /** Run `argv` with `--version` appended. */
  probe(argv: readonly string[]): Promise<ProbeResult>;
  readonly platform: NodeJS.Platform;
  log(line: string): void;
}

export type Discovery =
  | { readonly found: true; readonly candidate: Candidate; readonly version?: string }
  | { readonly found: false; readonly tooOld: readonly { candidate: Candidate; version: string }[] };

export function executableName(name: string, platform: NodeJS.Platform): string {
  return platform === "win32" ? `${name}.exe` : name;
}

/** `portside` beside a Python interpreter (a venv's or pipx's bin/ or Scripts/). */
export function portsideBesideInterpreter(interpreter: string, platform: NodeJS.Platform): string {
  const p = platform === "win32" ? path.win32 : path.posix;
  return p.join(p.dirname(interpreter), executableName("portside", platform));
}

async function* candidates(env: Env): AsyncGenerator<Candidate | string> {
  const [program] = env.configured;
  if (program !== undefined) {
    const resolved = program.includes("/") || program.includes("\\") ? (env.isFile(program) ? program : undefined) : env.which(program);
    if (resolved === undefined) {
      yield `setting portside.server.command: ${program} not found`;
    } else {
      yield { source: "setting portside.server.command", argv: [resolved, ...env.configured.slice(1)] };
    }
  } else {
    yield "setting portside.server.command: not set";
  }
  const interpreter = await env.pythonInterpreter();
  if (interpreter === undefined) {
    yield "Python extension's environment: no interpreter selected (or no Python extension)";
  } else {
    const exe = portsideBesideInterpreter(interpreter, env.platform);
    if (env.isFile(exe)) {
      yield { source: `Python environment of ${interpreter}`, argv: [exe, "lsp"] };
    } else {
      yield `Python environment of ${interpreter}: no ${exe}`;
    }
  }
  const onPath = env.which(executableName("portside", env.platform));
  if (onPath === undefined) {
    yield "PATH: no portside";
  } else {
    yield { source: "PATH", argv: [onPath, "lsp"] };
  }
  const python = env.which(executableName(env.platform === "win32" ? "python" : "python3", env.platform));
  if (python === undefined) {
    yield "python3 -m lsp_server: no python3 on PATH";
  } else {
    // python3 is there, lsp_server may not be: only running it tells.
    yield { source: "python3 -m lsp_server", argv: [python, "-m", "lsp_server"], probe: true };
  }
}

export async function discover(env: Env): Promise<Discovery> {
  const tooOld: { candidate: Candidate; version: string }[] = [];
  for await (const step of candidates(env)) {
    if (typeof step === "string") {
      env.log(`discovery: ${step}`);
      continue;
    }
    const shown = step.argv.join(" ");
    if (step.probe !== true) {
      // It exists: start it and read its version from its answer to `initialize`,
      // rather than pay for a second interpreter start-up first.
      env.log(`discovery: ${step.source}: ${shown}: using it`);
      return { found: true, candidate: step };
    }
    env.log(`discovery: ${step.source}: trying ${shown} --version`);
    const result = await env.probe(step.argv);
    if (!result.ok) {
      env.log(`discovery: ${step.source}: does not start: ${result.output.trim()}`);
      continue;
    }
    const version = result.output.trim();
    const verdict = checkVersion(version);
    if (verdict === "ok") {
      env.log(`discovery: ${step.source}: ${version}: using it`);
      return { found: true, candidate: step, version };
    }
    env.log(
      `discovery: ${step.source}: ${version || "(no version)"} is outside the supported range ` +
        `>= ${SUPPORTED.min}, < ${SUPPORTED.below}`,
    );
    tooOld.push({ candidate: step, version });
  }
  return { found: false, tooOld };
}

export function unsupportedMessage(argv0: string, version: string): string {
  return (
    `Portside: the language server at ${argv0} is ${version}; this extension needs ` +
    `>= ${SUPPORTED.min} and < ${SUPPORTED.below}. Upgrade it (pipx upgrade portside) or set portside.server.command.`
  );
}

/** The one message shown when no server could be used. */
export function notFoundMessage(d: Discovery & { found: false }): string {
  const old = d.tooOld[0];
  if (old !== undefined) {
    return unsupportedMessage(old.candidate.argv[0] ?? "", old.version);
  }
  return (
    `Portside: no language server found. Install it with: ${INSTALL_COMMAND} ` +
    "(or into your project's venv), or set portside.server.command."
  );
}

/** The `portside` command line for CLI verbs, derived from the server's command. */
export function cliCommand(serverArgv: readonly string[], which: (name: string) => string | undefined): string[] {
  const [first, ...rest] = serverArgv;
  if (first === undefined) {
    return ["portside"];
  }
  if (rest.length === 2 && rest[0] === "-m" && rest[1] === "lsp_server") {
    return [first, "-m", "portside"];
  }
  if (rest[rest.length - 1] === "lsp") {
    return [first, ...rest.slice(0, -1)];
  }
  return [which("portside") ?? "portside"];
}
