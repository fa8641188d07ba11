// When to restart a crashed server: at most `max` crashes within `windowMs`, then stop
// and say so once.

export class RestartPolicy {
  private crashes: number[] = [];

  constructor(
    readonly max = 4,
    readonly windowMs = 3 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** A crash happened: true to restart, false when the limit is reached. */
  crashed(): boolean {
    const t = this.now();
    this.crashes = this.crashes.filter((c) => t - c < this.windowMs);
    this.crashes.push(t);
    return this.crashes.length <= this.max;
  }

  get recent(): number {
    return this.crashes.length;
  }

  /** A restart asked for by the user starts the count again. */
  reset(): void {
    this.crashes = [];
  }
}
