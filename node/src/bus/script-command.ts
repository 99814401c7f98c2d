// The publish script's command, sent once per publication (and per canary), without the per-command work ioredis
// does for a script defined with defineCommand and for a client with a command timeout.
//
// Why: measured with `node dist/loadtest/harness/tools/instructions.js --op publish --by-function`, ioredis arms a
// Node timer for every command on a client with `commandTimeout` and clears it on the reply (about 3.6k of a
// publication's 156k instructions), and a defineCommand script adds a chained promise, a closure and a WeakSet look-up
// per call. Here:
// - the command is a plain EVALSHA (ioredis's own Command, so routing, Cluster redirections, the offline queue and
//   the reply's encoding are ioredis's as before); a Redis that does not know the script answers NOSCRIPT and the
//   same command goes again as EVAL (Script.run does), which loads it;
// - its timeout is a deadline on a list checked by one timer while anything is pending (CommandDeadlines), instead of
//   one timer per command: a command past its deadline is rejected with ioredis's own "Command timed out", at most
//   one check interval later than ioredis would have.
import { createHash } from 'node:crypto';
import { Command, type Cluster, type Redis } from 'ioredis';

/**
 * Deadlines of commands in flight, oldest first: one timer, armed only while any is pending (an idle node does not
 * wake up for it). Every command here has the same timeout, so the list is in deadline order.
 */
export class CommandDeadlines {
  private cmds: Command[] = [];
  private dues: number[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly checkEveryMs: number) {}

  watch(cmd: Command, ms: number) {
    this.cmds.push(cmd);
    this.dues.push(Date.now() + ms);
    if (this.timer === undefined && !this.closed) this.arm();
  }

  /** Commands watched, not answered and not yet checked past their deadline (one refused by Redis counts until then). */
  get pending(): number {
    let n = 0;
    for (let i = this.head; i < this.cmds.length; i++) if (!this.cmds[i]!.isResolved) n++;
    return n;
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm() {
    this.timer = setTimeout(this.check, this.checkEveryMs);
    this.timer.unref();
  }

  private readonly check = () => {
    this.timer = undefined;
    const now = Date.now();
    const { cmds, dues } = this;
    let i = this.head;
    for (; i < cmds.length; i++) {
      const cmd = cmds[i]!;
      if (cmd.isResolved) continue;
      if (dues[i]! > now) break;
      // As ioredis's own timer does: a rejection after a reply (or after a connection error) changes nothing.
      cmd.reject(new Error('Command timed out'));
    }
    if (i === cmds.length) {
      this.cmds = [];
      this.dues = [];
      this.head = 0;
      return;
    }
    this.head = i;
    if (this.head > 1024 && this.head * 2 > cmds.length) {
      this.cmds = cmds.slice(this.head);
      this.dues = dues.slice(this.head);
      this.head = 0;
    }
    if (!this.closed) this.arm();
  };
}

/** A command whose timeout goes on `deadlines` (ioredis calls setTimeout on every command of a client with commandTimeout). */
class DeadlineCommand extends Command {
  private watched = false;

  constructor(
    name: string,
    args: (string | number)[],
    private readonly deadlines: CommandDeadlines,
  ) {
    super(name, args, { replyEncoding: 'utf8' });
  }

  override setTimeout(ms: number) {
    // Once, as ioredis arms its timer once: a Cluster sends a redirected command again.
    if (this.watched) return;
    this.watched = true;
    this.deadlines.watch(this, ms);
  }
}

/** A Lua script sent as EVALSHA, and as EVAL when Redis does not know it yet (NOSCRIPT: a restart, a new master). */
export class Script {
  readonly sha: string;

  constructor(
    readonly lua: string,
    private readonly deadlines: CommandDeadlines,
  ) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }

  /** The script's reply, as strings (ioredis's utf8 reply encoding). `args` are numkeys, the keys, then ARGV. */
  async run(client: Redis | Cluster, args: (string | number)[]): Promise<unknown> {
    try {
      return await client.sendCommand(new DeadlineCommand('evalsha', [this.sha, ...args], this.deadlines));
    } catch (err) {
      if (!String((err as Error | undefined)?.message).includes('NOSCRIPT')) throw err;
      return client.sendCommand(new DeadlineCommand('eval', [this.lua, ...args], this.deadlines));
    }
  }
}
