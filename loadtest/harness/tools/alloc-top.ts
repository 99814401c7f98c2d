// Allocation sites by bytes sampled, from alloc-sampling's files: each function's own allocations (not its
// callees'), with the caller that made most of them.
//   node dist/loadtest/harness/tools/alloc-top.js FILE-or-DIR… [--top 30]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { profileFiles } from './profile-files.js';

interface Node {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: Node[];
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '30' } }, allowPositionals: true });
const files = profileFiles(positionals, '.heapprofile');
if (files.length === 0) {
  process.stderr.write('usage: alloc-top FILE-or-DIR… [--top N]\n');
  process.exit(2);
}

const place = (n: Node) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : '(native)';
  return `${f.functionName || '(anonymous)'} ${where}`;
};

for (const file of files) {
  const sites = new Map<string, { bytes: number; callers: Map<string, number> }>();
  let total = 0;
  const walk = (n: Node, caller: string) => {
    const here = place(n);
    if (n.selfSize > 0) {
      total += n.selfSize;
      const s = sites.get(here) ?? { bytes: 0, callers: new Map<string, number>() };
      s.bytes += n.selfSize;
      s.callers.set(caller, (s.callers.get(caller) ?? 0) + n.selfSize);
      sites.set(here, s);
    }
    for (const c of n.children) walk(c, here);
  };
  const head = (JSON.parse(readFileSync(file, 'utf8')) as { head: Node }).head;
  walk(head, '');
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} MB sampled\n`);
  console.log('| MB | site | main caller |');
  console.log('|---:|---|---|');
  for (const [site, s] of [...sites].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(values.top))) {
    const [caller] = [...s.callers].sort((a, b) => b[1] - a[1])[0] ?? [''];
    console.log(`| ${(s.bytes / 1e6).toFixed(2)} | ${site} | ${caller} |`);
  }
}
