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

interface PublishReport {
  dry_run?: boolean;
  digest?: string;
  destinations?: { repository: string; tags: string[]; tags_set?: string[] }[];
}

/** One line from `portside publish`'s JSON report: what was (or would be) tagged. */
export function publishSummary(stdout: string): string {
  let report: PublishReport;
  try {
    report = JSON.parse(stdout) as PublishReport;
  } catch {
    return "";
  }
  const parts = (report.destinations ?? []).map((d) => {
    const tags = report.dry_run ? d.tags : (d.tags_set ?? []);
    return `${d.repository}: ${tags.length > 0 ? tags.join(", ") : "no tags moved"}`;
  });
  const digest = report.digest ? ` (${report.digest.slice(0, 19)}…)` : "";
  return `${report.dry_run ? "would tag" : "tagged"} ${parts.join("; ")}${digest}`;
}
