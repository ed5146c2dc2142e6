// Builds what tests/browser/recording.test.mjs runs (outside the network namespace, in case a
// crate still has to be fetched): the relay, and `hush-record`, which opens the recording.
import { execFileSync } from 'node:child_process';
import { buildRelay, root } from './harness.mjs';

buildRelay();
console.log('+ cargo build -p hush-record --bin hush-record');
execFileSync('cargo', ['build', '-p', 'hush-record', '--bin', 'hush-record'], { cwd: root, stdio: 'inherit' });
