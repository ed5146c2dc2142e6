// Explicit-key mode (web/src/relay/client.ts) cannot be made to reuse a (key, nonce): every
// send key mixes the 32 random bytes the sender drew for its session. Before this change the
// key of a KID came from the app's secret and the KID alone, and the KID from the relay-chosen
// sender index, which restarts in every life of a room: two sessions with one index sealed
// under one key with counters from 0.
// Runs in Node (its WebCrypto is the browser's API) against the built web/dist, as
//   node tests/browser/explicit-keys.test.mjs
import { hkdfSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { needFiles, root, suite } from './harness.mjs';

const t = suite('explicit-mode keys');
const { check } = t;
await t.run(async () => {
  const client = join(root, 'web', 'dist', 'relay', 'client.js');
  await needFiles([client], 'run `cargo xtask web` first');
  const { explicitKey, explicitKid } = await import(pathToFileURL(client).href);
  const secret = new TextEncoder().encode('the secret alice and bob share');
  const kid = explicitKid(1, 0);
  const [first, second] = [randomBytes(32), randomBytes(32)];
  const hex = (b) => Buffer.from(b).toString('hex');

  // One room secret, one relay-given sender index, two sessions (a second life of the room).
  const a = await explicitKey(secret, kid, first);
  const b = await explicitKey(secret, kid, second);
  check('two sessions under one KID get two keys', hex(a) !== hex(b), { a: hex(a), b: hex(b) });
  check('keys are 16 bytes', a.length === 16 && b.length === 16, [a.length, b.length]);
  // Receivers that were told the sender's nonce compute its key.
  check('the same nonce gives the same key', hex(await explicitKey(secret, kid, first)) === hex(a));
  // The documented derivation, computed independently.
  const want = hkdfSync('sha256', secret, first, Buffer.from(`hush explicit v2 ${kid}`), 16);
  check('HKDF-SHA256(secret, salt = nonce, info = "hush explicit v2 " || kid)', hex(want) === hex(a), { want: hex(want) });
  check('another KID, another key', hex(await explicitKey(secret, explicitKid(2, 0), first)) !== hex(a));
});
