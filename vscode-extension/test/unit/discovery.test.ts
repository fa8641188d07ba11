import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { type Env, type ProbeResult, cliCommand, discover, notFoundMessage, portsideBesideInterpreter, unsupportedMessage } from "../../src/discovery";
import { probe, which } from "../../src/probe";

function env(over: Partial<Env> & { answers?: Record<string, ProbeResult>; onPath?: Record<string, string>; files?: string[] }): Env & { lines: string[]; probed: string[] } {
  const lines: string[] = [];
  const probed: string[] = [];
  return {
    configured: [],
    pythonInterpreter: () => Promise.resolve(undefined),
    which: (name) => over.onPath?.[name],
    isFile: (f) => (over.files ?? []).includes(f),
    probe: (argv) => {
      probed.push(argv.join(" "));
      return Promise.resolve(over.answers?.[argv.join(" ")] ?? { ok: false, output: "ENOENT" });
    },
    platform: "linux",
    log: (l) => lines.push(l),
    ...over,
    lines,
    probed,
  };
}

describe("discover", () => {
  it("uses the configured command first, without running anything to find it", async () => {
    const e = env({
      configured: ["/opt/p/bin/portside", "lsp"],
      files: ["/opt/p/bin/portside"],
      onPath: { portside: "/usr/bin/portside" },
    });
    const d = await discover(e);
    assert.ok(d.found);
    assert.deepEqual(d.candidate.argv, ["/opt/p/bin/portside", "lsp"]);
    assert.deepEqual(e.probed, []);
  });

  it("looks a configured bare name up on PATH, and skips a configured command that is missing", async () => {
    const bare = await discover(env({ configured: ["portside", "lsp"], onPath: { portside: "/usr/bin/portside" } }));
    assert.ok(bare.found);
    assert.deepEqual(bare.candidate.argv, ["/usr/bin/portside", "lsp"]);
    const e = env({ configured: ["/gone/portside", "lsp"], onPath: { portside: "/usr/bin/portside" } });
    const d = await discover(e);
    assert.ok(d.found);
    assert.equal(d.candidate.source, "PATH");
    assert.match(e.lines.join("\n"), /portside.server.command: \/gone\/portside not found/);
  });

  it("goes on in order: python environment, PATH, python3 -m lsp_server (probed), logging each step", async () => {
    const e = env({
      pythonInterpreter: () => Promise.resolve("/work/proj/.venv/bin/python"),
      onPath: { python3: "/usr/bin/python3" },
      answers: { "/usr/bin/python3 -m lsp_server": { ok: true, output: "portside-lsp 0.1.3" } },
    });
    const d = await discover(e);
    assert.ok(d.found);
    assert.equal(d.candidate.source, "python3 -m lsp_server");
    assert.equal(d.version, "portside-lsp 0.1.3");
    assert.deepEqual(e.probed, ["/usr/bin/python3 -m lsp_server"]);
    const log = e.lines.join("\n");
    assert.match(log, /portside.server.command: not set/);
    assert.match(log, /Python environment of \/work\/proj\/.venv\/bin\/python: no \/work\/proj\/.venv\/bin\/portside/);
    assert.match(log, /PATH: no portside/);
    assert.match(log, /python3 -m lsp_server: portside-lsp 0.1.3: using it/);
  });

  it("prefers the interpreter's environment over PATH", async () => {
    const e = env({
      pythonInterpreter: () => Promise.resolve("/p/.venv/bin/python"),
      files: ["/p/.venv/bin/portside"],
      onPath: { portside: "/usr/bin/portside" },
    });
    const d = await discover(e);
    assert.ok(d.found);
    assert.deepEqual(d.candidate.argv, ["/p/.venv/bin/portside", "lsp"]);
  });

  it("skips a python3 -m lsp_server that is too old or missing and says so", async () => {
    const old = env({ onPath: { python3: "/usr/bin/python3" }, answers: { "/usr/bin/python3 -m lsp_server": { ok: true, output: "portside-lsp 0.0.9" } } });
    const d = await discover(old);
    assert.equal(d.found, false);
    assert.equal(d.tooOld.length, 1);
    const message = notFoundMessage(d);
    assert.match(message, /\/usr\/bin\/python3 is portside-lsp 0\.0\.9/);
    assert.match(message, />= 0\.1\.0/);
    const missing = env({ onPath: { python3: "/usr/bin/python3" }, answers: { "/usr/bin/python3 -m lsp_server": { ok: false, output: "No module named lsp_server" } } });
    await discover(missing);
    assert.match(missing.lines.join("\n"), /does not start: No module named lsp_server/);
  });

  it("says how to install when nothing is found", async () => {
    const d = await discover(env({}));
    assert.equal(d.found, false);
    assert.match(notFoundMessage(d), /pipx install 'portside\[lsp\]'/);
  });

  it("explains a server outside the supported range", () => {
    assert.equal(
      unsupportedMessage("/usr/bin/portside", "portside-lsp 0.0.1"),
      "Portside: the language server at /usr/bin/portside is portside-lsp 0.0.1; this extension needs >= 0.1.0 and < 1.0.0. " +
        "Upgrade it (pipx upgrade portside) or set portside.server.command.",
    );
  });

  it("finds portside beside a Windows interpreter", () => {
    assert.equal(portsideBesideInterpreter("C:\\p\\.venv\\Scripts\\python.exe", "win32"), "C:\\p\\.venv\\Scripts\\portside.exe");
  });

  it("derives the CLI from the server command", () => {
    const none = (): undefined => undefined;
    assert.deepEqual(cliCommand(["/x/bin/portside", "lsp"], none), ["/x/bin/portside"]);
    assert.deepEqual(cliCommand(["/usr/bin/python3", "-m", "lsp_server"], none), ["/usr/bin/python3", "-m", "portside"]);
    assert.deepEqual(cliCommand(["/x/portside-lsp"], () => "/y/portside"), ["/y/portside"]);
  });
});

describe("probe (real processes)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "portside-probe-"));
  const script = (name: string, body: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };

  it("reads the version a server prints", async () => {
    const file = script("portside", 'if [ "$1 $2" = "lsp --version" ]; then echo "portside-lsp 0.1.0"; else exit 2; fi');
    assert.deepEqual(await probe([file, "lsp"]), { ok: true, output: "portside-lsp 0.1.0" });
  });

  it("reports a failing command with its last error line", async () => {
    const file = script("broken", 'echo "Traceback..." >&2; echo "ModuleNotFoundError: No module named lsp_server" >&2; exit 1');
    const r = await probe([file]);
    assert.equal(r.ok, false);
    assert.equal(r.output, "ModuleNotFoundError: No module named lsp_server");
  });

  it("reports a missing command", async () => {
    const r = await probe([path.join(dir, "nope")]);
    assert.equal(r.ok, false);
    assert.match(r.output, /ENOENT/);
  });

  it("gives up on a command that hangs", async () => {
    const file = script("hang", "sleep 30");
    const r = await probe([file], 300);
    assert.equal(r.ok, false);
    assert.match(r.output, /no answer within/);
  });

  it("looks executables up on a PATH", () => {
    script("portside-x", "true");
    fs.writeFileSync(path.join(dir, "not-exec"), "", { mode: 0o644 });
    assert.equal(which("portside-x", `/nonexistent:${dir}`), path.join(dir, "portside-x"));
    assert.equal(which("not-exec", dir), undefined);
  });
});
