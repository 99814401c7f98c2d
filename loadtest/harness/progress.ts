// Shows what the harness is doing while it runs: one rewritten status line on a terminal, a line every few seconds otherwise.
import { sleep } from './clock.js';

export class Progress {
  private label = '';
  private lastPlain = 0;
  private readonly tty: boolean;
  private readonly t0 = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  private stamp(): string {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  }

  /** A permanent line. */
  log(line: string): void {
    if (this.quiet) return;
    this.out.write(`${this.tty ? '\r\x1b[K' : ''}${this.stamp()} ${line}\n`);
  }

  /** Names the current step; shown in front of every status update. */
  phase(label: string): void {
    this.label = label;
    this.status('');
  }

  status(text: string): void {
    if (this.quiet) return;
    const line = `${this.stamp()} ${this.label}${text ? ` · ${text}` : ''}`;
    if (this.tty) this.out.write(`\r\x1b[K${line.slice(0, (this.out.columns || 120) - 1)}`);
    else if (Date.now() - this.lastPlain >= 5000) {
      this.lastPlain = Date.now();
      this.out.write(`${line}\n`);
    }
  }

  /** Sleeps `seconds`, updating the status line about once a second with `sample()`. */
  async wait(seconds: number, signal: AbortSignal, sample?: () => Promise<string>): Promise<void> {
    const end = Date.now() + seconds * 1000;
    const t0 = Date.now();
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) break;
      await sleep(Math.min(1000, left), signal);
      const extra = sample ? await sample().catch(() => '') : '';
      this.status(`${((Date.now() - t0) / 1000).toFixed(0)}/${seconds}s${extra ? ` · ${extra}` : ''}`);
    }
  }

  end(): void {
    if (this.tty && !this.quiet) this.out.write('\r\x1b[K');
  }
}
