// Builds the relay binary that tests/browser/relay-leave.test.mjs starts (outside the network
// namespace, in case a crate still has to be fetched).
import { execFileSync } from 'node:child_process';
import { root } from './harness.mjs';

console.log('+ cargo build -p hush-relay --bin hush-relay');
execFileSync('cargo', ['build', '-p', 'hush-relay', '--bin', 'hush-relay'], { cwd: root, stdio: 'inherit' });
