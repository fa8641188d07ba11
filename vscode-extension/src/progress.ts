// `portside publish`'s progress on stderr when piped: one `[step] message` line per step.

export interface Step {
  readonly step: string;
  readonly message: string;
}

export function parseProgressLine(line: string): Step | undefined {
  const m = /^\[([^\]]+)\]\s?(.*)$/.exec(line.trimEnd());
  if (!m?.[1]) {
    return undefined;
  }
  return { step: m[1], message: m[2] ?? "" };
}

/** Splits a stream's chunks into whole lines. */
export class LineSplitter {
  private rest = "";

  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split(/\r?\n/);
    this.rest = lines.pop() ?? "";
    return lines;
  }

  flush(): string[] {
    const rest = this.rest;
    this.rest = "";
    return rest ? [rest] : [];
  }
}
