// Reads a V8 .heapsnapshot without holding it as one string (snapshots of busy servers pass V8's string limit):
// the node table is scanned as numbers, the string table parsed alone. Aggregates self size and count per
// constructor (objects), function name (closures) or node type (strings, arrays, code, native …).
import { openSync, readSync, closeSync, statSync } from 'node:fs';

export interface Group {
  /** `Socket`, `(closure) onclose`, `(string)`, `(native) …` */
  key: string;
  count: number;
  bytes: number;
}

/** Finds `needle` at or after byte `from`; returns the offset just past it. */
function seek(fd: number, needle: string, from: number, size: number): number {
  const chunk = Buffer.alloc(1 << 20);
  const n = Buffer.from(needle);
  let pos = from;
  while (pos < size) {
    const got = readSync(fd, chunk, 0, chunk.length, pos);
    const i = chunk.subarray(0, got).indexOf(n);
    if (i >= 0) return pos + i + n.length;
    if (got < chunk.length) break;
    pos += got - n.length;
  }
  throw new Error(`heap snapshot: "${needle}" not found`);
}

function readRange(fd: number, from: number, to: number): string {
  const buf = Buffer.alloc(to - from);
  readSync(fd, buf, 0, buf.length, from);
  return buf.toString('utf8');
}

/** The integers of the JSON array starting at byte `from` (just after `[`), up to its `]`. */
function readInts(fd: number, from: number): { values: Float64Array; end: number } {
  let values = new Float64Array(1 << 20);
  let n = 0;
  const chunk = Buffer.alloc(1 << 20);
  let pos = from;
  let cur = 0;
  let inNum = false;
  for (;;) {
    const got = readSync(fd, chunk, 0, chunk.length, pos);
    if (got === 0) throw new Error('heap snapshot: unterminated array');
    for (let i = 0; i < got; i++) {
      const c = chunk[i]!;
      if (c >= 48 && c <= 57) {
        cur = cur * 10 + (c - 48);
        inNum = true;
        continue;
      }
      if (inNum) {
        if (n === values.length) {
          const bigger = new Float64Array(values.length * 2);
          bigger.set(values);
          values = bigger;
        }
        values[n++] = cur;
        cur = 0;
        inNum = false;
      }
      if (c === 93) return { values: values.subarray(0, n), end: pos + i + 1 };
    }
    pos += got;
  }
}

export interface Snapshot {
  groups: Map<string, Group>;
  /** Per group: what holds its objects, as `Owner.edge` (the first strong retainer found), with counts and bytes. */
  retainers: Map<string, Map<string, Group>>;
  totalBytes: number;
  nodes: number;
}

export function readSnapshot(file: string): Snapshot {
  const fd = openSync(file, 'r');
  try {
    const size = statSync(file).size;
    // The meta block is small and comes first.
    const metaEnd = seek(fd, '"nodes":[', 0, size);
    const metaText = readRange(fd, 0, metaEnd - '"nodes":['.length).replace(/,\s*$/, '') + '}';
    const meta = (
      JSON.parse(metaText) as {
        snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
      }
    ).snapshot.meta;
    const { values: nodes, end } = readInts(fd, metaEnd);
    const edgesAt = seek(fd, '"edges":[', end, size);
    const { values: edges, end: edgesEnd } = readInts(fd, edgesAt);
    const stringsAt = seek(fd, '"strings":[', edgesEnd, size);
    const tail = readRange(fd, stringsAt - 1, size).trim();
    // `[ … ]}` possibly followed by other sections in newer formats: cut at the array's end.
    const strings = JSON.parse(tail.slice(0, tail.lastIndexOf(']') + 1)) as string[];
    const F = meta.node_fields.length;
    const typeAt = meta.node_fields.indexOf('type');
    const nameAt = meta.node_fields.indexOf('name');
    const sizeAt = meta.node_fields.indexOf('self_size');
    const types = meta.node_types[0];
    const keyOf = (i: number): string => {
      const type = types[nodes[i + typeAt]!] ?? '?';
      const name = strings[nodes[i + nameAt]!] ?? '?';
      if (type === 'object') return name;
      if (type === 'closure') return `(closure) ${name || '(anonymous)'}`;
      if (type === 'native') return `(native) ${name.split(' ')[0]}`;
      if (type === 'hidden' || type === 'object shape') return `(${type}) ${name.slice(0, 40)}`;
      return `(${type})`;
    };
    // First strong retainer of every node: walk the edges in node order (each node owns edge_count edges).
    const EF = meta.edge_fields.length;
    const eType = meta.edge_fields.indexOf('type');
    const eName = meta.edge_fields.indexOf('name_or_index');
    const eTo = meta.edge_fields.indexOf('to_node');
    const edgeCountAt = meta.node_fields.indexOf('edge_count');
    const edgeTypes = meta.edge_types[0];
    const owner = new Int32Array(nodes.length / F).fill(-1);
    const via = new Int32Array(nodes.length / F).fill(-1);
    for (let i = 0, e = 0; i < nodes.length; i += F) {
      const count = nodes[i + edgeCountAt]!;
      for (let k = 0; k < count; k++, e += EF) {
        const et = edgeTypes[edges[e + eType]!];
        if (et === 'weak' || et === 'shortcut') continue;
        const to = edges[e + eTo]! / F;
        if (owner[to] === -1) {
          owner[to] = i / F;
          via[to] = et === 'element' || et === 'hidden' ? -2 : edges[e + eName]!;
        }
      }
    }
    const groups = new Map<string, Group>();
    const retainers = new Map<string, Map<string, Group>>();
    let totalBytes = 0;
    for (let i = 0; i < nodes.length; i += F) {
      const bytes = nodes[i + sizeAt]!;
      totalBytes += bytes;
      const key = keyOf(i);
      const g = groups.get(key) ?? { key, count: 0, bytes: 0 };
      g.count++;
      g.bytes += bytes;
      groups.set(key, g);
      const o = owner[i / F]!;
      const rk = o < 0 ? '(root)' : `${keyOf(o * F)}.${via[i / F]! >= 0 ? (strings[via[i / F]!] ?? '?') : '[]'}`;
      const rs = retainers.get(key) ?? new Map<string, Group>();
      retainers.set(key, rs);
      const r = rs.get(rk) ?? { key: rk, count: 0, bytes: 0 };
      r.count++;
      r.bytes += bytes;
      rs.set(rk, r);
    }
    return { groups, retainers, totalBytes, nodes: nodes.length / F };
  } finally {
    closeSync(fd);
  }
}

/** Growth of what retains one group's objects, from `a` to `b`, per connection, largest first. */
export function retainerDiff(a: Snapshot, b: Snapshot, key: string, per: number): Array<Group & { countPer: number; bytesPer: number }> {
  const ra = a.retainers.get(key) ?? new Map<string, Group>();
  const out: Array<Group & { countPer: number; bytesPer: number }> = [];
  for (const [k, gb] of b.retainers.get(key) ?? []) {
    const ga = ra.get(k) ?? { count: 0, bytes: 0 };
    out.push({
      key: k,
      count: gb.count - ga.count,
      bytes: gb.bytes - ga.bytes,
      countPer: (gb.count - ga.count) / per,
      bytesPer: (gb.bytes - ga.bytes) / per,
    });
  }
  return out.sort((x, y) => y.bytes - x.bytes);
}

/** Per-group growth from `a` to `b`, divided by `per` (connections added), largest first. */
export function diff(a: Snapshot, b: Snapshot, per: number): Array<Group & { countPer: number; bytesPer: number }> {
  const out: Array<Group & { countPer: number; bytesPer: number }> = [];
  for (const [key, gb] of b.groups) {
    const ga = a.groups.get(key) ?? { count: 0, bytes: 0 };
    const count = gb.count - ga.count;
    const bytes = gb.bytes - ga.bytes;
    out.push({ key, count, bytes, countPer: count / per, bytesPer: bytes / per });
  }
  return out.sort((x, y) => y.bytes - x.bytes);
}
