// What the allocation preloads share (alloc-sampling.ts, alloc-survivors.ts): V8's sampling heap profiler started in
// the server process as it loads, and the profile written when the process is asked to stop (SIGTERM, as the bench
// stops its nodes). Summarise the files with alloc-top.
import { Session } from 'node:inspector';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SamplingOptions {
  /** Folder under tmpdir() the profiles go to, unless ALLOC_PROFILE_DIR names another. */
  folder: string;
  /** Also sample objects a scavenge collects (all garbage); false keeps only what lived through one. */
  includeMinorGC: boolean;
  /** Prefix of error messages. */
  name: string;
}

export function startSampling(o: SamplingOptions): void {
  const dir = process.env.ALLOC_PROFILE_DIR ?? join(tmpdir(), o.folder);
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  session.post('HeapProfiler.enable');
  session.post('HeapProfiler.startSampling', {
    samplingInterval: Number(process.env.ALLOC_SAMPLING_BYTES ?? 4096),
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: o.includeMinorGC,
  });
  let written = false;
  process.on('SIGTERM', () => {
    if (written) return;
    written = true;
    session.post('HeapProfiler.stopSampling', (err, res) => {
      if (err) return void console.error(`${o.name}: ${err.message}`);
      const file = join(dir, `${process.env.NODE_ID ?? 'node'}-${process.pid}.heapprofile`);
      writeFileSync(file, JSON.stringify(res.profile));
    });
  });
}
