// Preload for a server process: samples every allocation, including objects a GC has since collected (what GC
// time is made of; `--heap-prof` keeps only what is still alive), and writes the profile when the process is
// asked to stop (SIGTERM, as the bench stops its nodes). Summarise the files with alloc-top.
//   SB_BENCH_NODE_ARGS="--import $PWD/dist/loadtest/harness/tools/alloc-sampling.js" npm run bench -- …
//   Files go to <tmpdir>/sb-alloc, one sample per ~4 KiB allocated. ALLOC_PROFILE_DIR and ALLOC_SAMPLING_BYTES
//   change that where you start the process yourself (the bench starts its nodes with an environment of its own).
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = process.env.ALLOC_PROFILE_DIR ?? join(tmpdir(), 'sb-alloc');
mkdirSync(dir, { recursive: true });
const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
session.post('HeapProfiler.startSampling', {
  samplingInterval: Number(process.env.ALLOC_SAMPLING_BYTES ?? 4096),
  includeObjectsCollectedByMajorGC: true,
  includeObjectsCollectedByMinorGC: true,
});
let written = false;
process.on('SIGTERM', () => {
  if (written) return;
  written = true;
  session.post('HeapProfiler.stopSampling', (err, res) => {
    if (err) return void console.error(`alloc-sampling: ${err.message}`);
    const file = join(dir, `${process.env.NODE_ID ?? 'node'}-${process.pid}.heapprofile`);
    writeFileSync(file, JSON.stringify(res.profile));
  });
});
