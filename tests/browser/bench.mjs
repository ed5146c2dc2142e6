// The frame-crypto bench (web/bench/) in headless Chromium: seal + open per frame in a Worker
// for (a) wasm, (b) WebCrypto awaited per frame with an IV trailer, (c) the Hush hybrid path,
// (h) the hybrid path with every frame on WebCrypto. Prints frames/s and the ratios, and
// checks the targets: (c) >= 1.0x (b) at every size, >= 1.3x at 100 B.
// Build first (`cargo xtask web`, which also compiles web/bench/bench.ts), then:
//   unshare --net sh -c 'ip link set lo up && node tests/browser/bench.mjs'
// Options: SIZES=100,1000 ROUNDS=3 in the environment.
import { openFromRoot, suite } from './harness.mjs';

const sizes = process.env.SIZES ?? '100,256,512,1000,16000,100000';
const rounds = process.env.ROUNDS ?? '3';
const inflight = process.env.INFLIGHT ? `&inflight=${process.env.INFLIGHT}` : '';
const t = suite('bench');
const { check } = t;
await t.run(async () => {
  const page = await openFromRoot(t, `/web/bench/index.html?sizes=${sizes}&rounds=${rounds}${inflight}`, 'bench');
  await page.waitForFunction(() => window.benchResult !== undefined, null, { timeout: 300_000 });
  const r = await page.evaluate(() => window.benchResult);
  if (r.kind !== 'done') throw new Error(r.detail);
  const browser = page.context().browser()?.version() ?? (await page.evaluate(() => navigator.userAgent));
  console.log(`${browser}, hybrid threshold ${r.threshold} B, best of ${rounds} rounds, frames/s (seal + open)`);
  console.log('size      (a) wasm  (b) WebCrypto  (c) hybrid  (h) all-WebCrypto   c/b    c/a');
  for (const size of sizes.split(',').map(Number)) {
    const f = (m) => r.results.find((x) => x.size === size && x.mode === m).fps;
    const pad = (v, n) => String(Math.round(v)).padStart(n);
    console.log(`${String(size).padStart(6)} ${pad(f('a'), 12)} ${pad(f('b'), 14)} ${pad(f('c'), 11)} ${pad(f('h'), 18)}  ${(f('c') / f('b')).toFixed(2).padStart(5)}  ${(f('c') / f('a')).toFixed(2).padStart(5)}`);
    check(`bench ${size} B: hybrid >= ${size <= 100 ? '1.3' : '1.0'}x WebCrypto awaited`, f('c') >= (size <= 100 ? 1.3 : 1.0) * f('b'));
  }
});
