// The status bar's state: base images in the workspace that are stale, moved or
// unpinned, from the server's diagnostics (source "portside", code = finding kind).

export const SOURCE = "portside";

export type Category = "stale" | "moved" | "unpinned";

const CATEGORY: Readonly<Record<string, Category>> = {
  stale: "stale",
  "variant-update": "stale",
  "tag-moved": "moved",
  unpinned: "unpinned",
  latest: "unpinned",
};

export interface DiagnosticLike {
  readonly source?: string;
  readonly code?: string | number | { value: string | number };
  readonly message: string;
  readonly range: { readonly start: { readonly line: number; readonly character: number } };
}

export interface ImageEntry {
  readonly uri: string;
  readonly line: number;
  readonly character: number;
  readonly categories: readonly Category[];
  readonly messages: readonly string[];
}

function codeOf(d: DiagnosticLike): string | undefined {
  const code = typeof d.code === "object" ? d.code.value : d.code;
  return code === undefined ? undefined : String(code);
}

/** One entry per image (file and position), with every category it falls in. */
export function collect(all: Iterable<readonly [string, readonly DiagnosticLike[]]>): ImageEntry[] {
  const byImage = new Map<string, { uri: string; line: number; character: number; categories: Set<Category>; messages: string[] }>();
  for (const [uri, diagnostics] of all) {
    for (const d of diagnostics) {
      if (d.source !== SOURCE) {
        continue;
      }
      const code = codeOf(d);
      const category = code === undefined ? undefined : CATEGORY[code];
      if (category === undefined) {
        continue;
      }
      const { line, character } = d.range.start;
      const key = `${uri}\u0000${line}\u0000${character}`;
      let entry = byImage.get(key);
      if (entry === undefined) {
        entry = { uri, line, character, categories: new Set(), messages: [] };
        byImage.set(key, entry);
      }
      entry.categories.add(category);
      entry.messages.push(d.message);
    }
  }
  return [...byImage.values()]
    .map((e) => ({ ...e, categories: [...e.categories].sort() }))
    .sort((a, b) => (a.uri === b.uri ? a.line - b.line : a.uri < b.uri ? -1 : 1));
}

export interface StatusState {
  readonly text: string;
  readonly tooltip: string;
  readonly count: number;
}

export type ServerState = "starting" | "running" | "stopped";

export function statusState(entries: readonly ImageEntry[], server: ServerState = "running"): StatusState {
  if (server !== "running") {
    const tooltip =
      server === "starting" ? "Portside: starting the language server" : "Portside: the language server is not running (see the log)";
    return { text: server === "starting" ? "$(sync~spin) Portside" : "$(warning) Portside", tooltip, count: 0 };
  }
  const per: Record<Category, number> = { stale: 0, moved: 0, unpinned: 0 };
  for (const e of entries) {
    for (const c of e.categories) {
      per[c] += 1;
    }
  }
  const count = entries.length;
  if (count === 0) {
    return { text: "$(check) Portside", tooltip: "Portside: every base image is current and pinned", count };
  }
  const parts = (["stale", "moved", "unpinned"] as const).filter((c) => per[c] > 0).map((c) => `${per[c]} ${c}`);
  const noun = count === 1 ? "base image" : "base images";
  return { text: `$(package) Portside: ${count}`, tooltip: `Portside: ${count} ${noun} to look at (${parts.join(", ")})`, count };
}
