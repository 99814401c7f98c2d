// Preload for a server process, as alloc-sampling but sampling only what lived through a scavenge: the objects that
// make young-generation collections slow and fill the old generation (promoted, or still young when the profile is
// written), collected later by a full GC or not. Summarise with alloc-top.
//   SB_BENCH_NODE_ARGS="--import $PWD/dist/loadtest/harness/tools/alloc-survivors.js" npm run bench -- …
//   Files go to <tmpdir>/sb-survivors (ALLOC_PROFILE_DIR, ALLOC_SAMPLING_BYTES as for alloc-sampling).
import { startSampling } from './alloc-profile.js';

startSampling({ folder: 'sb-survivors', includeMinorGC: false, name: 'alloc-survivors' });
