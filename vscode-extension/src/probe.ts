// The real processes behind discovery: `--version` with a timeout, and PATH look-ups.

import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ProbeResult } from "./discovery";

export function probe(argv: readonly string[], timeoutMs = 15000): Promise<ProbeResult> {
  const [file, ...args] = argv;
  if (file === undefined) {
    return Promise.resolve({ ok: false, output: "empty command" });
  }
  return new Promise((resolve) => {
    execFile(file, [...args, "--version"], { timeout: timeoutMs, windowsHide: true }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `no answer within ${timeoutMs / 1000} s` : (stderr.trim().split("\n").pop() ?? "") || error.message;
        resolve({ ok: false, output: why });
      } else {
        resolve({ ok: true, output: stdout.trim() || stderr.trim() });
      }
    });
  });
}

export function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function which(name: string, envPath = process.env.PATH ?? ""): string | undefined {
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) {
        return candidate;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}
