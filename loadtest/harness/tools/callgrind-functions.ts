// Self instructions per function from a callgrind dump, with V8's JIT code named: callgrind knows only the addresses
// of generated code ("???:0x…"), so the server runs with --perf-basic-prof and each address is looked up in the
// perf map V8 writes (/tmp/perf-<pid>.map: start, size, name of every code object it made; the latest one that
// covers an address is the code that ran there). Native functions keep callgrind's names.
import { readFileSync } from 'node:fs';

interface CodeRange {
  start: number;
  end: number;
  name: string;
  /** Position in the map: a later object at the same address replaced an earlier one. */
  order: number;
}

function readPerfMap(file: string): CodeRange[] {
  const out: CodeRange[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m) out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[1]!, 16) + parseInt(m[2]!, 16), name: m[3]!, order: out.length });
  }
  return out.sort((a, b) => a.start - b.start);
}

/** The latest code object covering `addr` (code objects are small: a few hundred entries back is far enough). */
function lookup(ranges: CodeRange[], addr: number): string | undefined {
  let lo = 0;
  let hi = ranges.length - 1;
  let pos = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[mid]!.start <= addr) {
      pos = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  let best: CodeRange | undefined;
  for (let i = pos; i >= 0 && i > pos - 500; i--) {
    const r = ranges[i]!;
    if (addr < r.end && (!best || r.order > best.order)) best = r;
  }
  return best?.name;
}

/** Self cost of each function in a callgrind dump (the cost lines under fn=, not the inclusive ones after calls=). */
function selfCosts(dump: string): Map<string, number> {
  const names = new Map<string, string>();
  const self = new Map<string, number>();
  let current: string | undefined;
  let callCost = false;
  for (const line of dump.split('\n')) {
    if (line.startsWith('fn=') || line.startsWith('cfn=')) {
      const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
      if (!m) continue;
      if (m[2] !== undefined) names.set(m[1]!, m[2]);
      if (line.startsWith('fn=')) current = names.get(m[1]!);
      continue;
    }
    if (line.startsWith('calls=')) {
      callCost = true;
      continue;
    }
    if (!/^[+\-*0-9]/.test(line)) continue;
    if (callCost) {
      callCost = false;
      continue;
    }
    const cost = Number(line.split(' ')[1] ?? 0);
    if (current && cost) self.set(current, (self.get(current) ?? 0) + cost);
  }
  return self;
}

/** The `top` functions by self instructions per operation, as table rows `| instructions | function |`. */
export function functionTable(dumpFile: string, perfMapFile: string, ops: number, top: number): string[] {
  const ranges = readPerfMap(perfMapFile);
  const byName = new Map<string, number>();
  for (const [fn, cost] of selfCosts(readFileSync(dumpFile, 'utf8'))) {
    // Generated code has no symbol: callgrind names it by its address ("0x000000000d165540", "…'2" for recursion).
    const jit = /^(?:\?\?\?:)?0x([0-9a-f]+)(?:'\d+)?$/.exec(fn);
    const name = jit ? (lookup(ranges, parseInt(jit[1]!, 16)) ?? fn) : fn.replace(/\(.*$/, '').replace(/^\?\?\?:/, '');
    byName.set(name, (byName.get(name) ?? 0) + cost);
  }
  return [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, cost]) => `| ${Math.round(cost / ops).toLocaleString('en-US')} | \`${name.slice(0, 140).replace(/\|/g, '\\|')}\` |`);
}
