// Preload for a server process: samples every allocation, including objects a GC has since collected (what GC
// time is made of; `--heap-prof` keeps only what is still alive), and writes the profile when the process is
// asked to stop (SIGTERM, as the bench stops its nodes). Summarise the files with alloc-top.
//   SB_BENCH_NODE_ARGS="--import $PWD/dist/loadtest/harness/tools/alloc-sampling.js" npm run bench -- …
//   Files go to <tmpdir>/sb-alloc, one sample per ~4 KiB allocated. ALLOC_PROFILE_DIR and ALLOC_SAMPLING_BYTES
//   change that where you start the process yourself (the bench starts its nodes with an environment of its own).
import { startSampling } from './alloc-profile.js';

startSampling({ folder: 'sb-alloc', includeMinorGC: true, name: 'alloc-sampling' });
