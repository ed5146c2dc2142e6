/// <reference lib="webworker" />
/**
 * The frame-crypto bench, run in a Worker like the real transforms: per-frame seal + open
 * through a TransformStream pipeline (source -> seal -> open -> sink), for
 *   (a) pure wasm (hush-wasm `Sender.encrypt` / `Receiver.decrypt`, synchronous),
 *   (b) WebCrypto AES-GCM awaited per frame, with a random 12-byte IV sent as a trailer (how
 *       LiveKit's and Jitsi's JS workers do it),
 *   (c) the hybrid path of the Hush Worker (hybrid.ts: wasm below the threshold, WebCrypto
 *       planned and committed in wasm above it, frames in order),
 *   (h) the hybrid path with every frame on WebCrypto (threshold 0), to find the crossover.
 * Frames are VP8 delta frames (3 clear bytes) of the given size. Every output is checked
 * against its input, so a bench run is also a correctness run.
 */
import init, { Receiver, Sender } from '../wasm/hush_wasm.js';
import { HOST_AEAD_MIN_BYTES, MAX_IN_FLIGHT, HostKeys, HybridOpener, HybridSealer, orderedTransform, type FrameResult } from '../dist/hybrid.js';

declare const self: DedicatedWorkerGlobalScope;

const SUITE = 4;
const KID = 3n;
const LAYOUT = 2;
const BASE = new Uint8Array(16).fill(9);

type Mode = 'a' | 'b' | 'c' | 'h';
type B = Uint8Array<ArrayBuffer>;
type Step = (f: B) => Uint8Array | null | Promise<Uint8Array | null>;

function frame(size: number): B {
  const f = new Uint8Array(size);
  for (let i = 0; i < size; i++) f[i] = (i * 31 + 7) & 0xff;
  f[0] = 0x01; // VP8 delta frame: 3-byte clear prefix
  return f;
}

const ok = (r: FrameResult): B | null => (r instanceof Uint8Array ? r as B : null);

async function webCryptoSteps(): Promise<[Step, Step]> {
  const raw = new Uint8Array(16).fill(5);
  const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  const CLEAR = 3;
  const seal: Step = async (f) => {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: f.subarray(0, CLEAR) }, key, f.subarray(CLEAR));
    const out = new Uint8Array(CLEAR + ct.byteLength + 12);
    out.set(f.subarray(0, CLEAR));
    out.set(new Uint8Array(ct), CLEAR);
    out.set(iv, CLEAR + ct.byteLength);
    return out;
  };
  const open: Step = async (f) => {
    const iv = f.subarray(f.length - 12);
    if (f.length < 3 + 12 + 16) return null;
    try {
      const pt = await crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: f.subarray(0, CLEAR) }, key, f.subarray(CLEAR, f.length - 12));
      const out = new Uint8Array(CLEAR + pt.byteLength);
      out.set(f.subarray(0, CLEAR));
      out.set(new Uint8Array(pt), CLEAR);
      return out;
    } catch { return null; }
  };
  return [seal, open];
}

/** The two transforms of one mode. (b) awaits in `transform`, as LiveKit and Jitsi do. */
async function pipeline(mode: Mode, inflight: number): Promise<[TransformStream<B, B>, TransformStream<B, B>, () => number]> {
  if (mode === 'b') {
    const [seal, open] = await webCryptoSteps();
    const t = (step: Step) => new TransformStream<B, B>({
      async transform(f, c) { const r = await step(f); if (r) c.enqueue(r as B); },
    });
    return [t(seal), t(open), () => 0];
  }
  const tx = new Sender(SUITE, KID, BASE);
  const rx = new Receiver(SUITE);
  rx.addKey(KID, BASE);
  if (mode === 'a') {
    const t = (step: Step) => new TransformStream<B, B>({
      transform(f, c) { const r = step(f); if (r) c.enqueue(r as B); },
    });
    return [t((f) => tx.encrypt(LAYOUT, f)), t((f) => rx.decrypt(LAYOUT, f) ?? null), () => 0];
  }
  const keys = new HostKeys(SUITE);
  const threshold = mode === 'h' ? 0 : HOST_AEAD_MIN_BYTES;
  const sealer = new HybridSealer(tx, keys, threshold);
  const opener = new HybridOpener(rx, keys, () => BASE, threshold);
  const lift = (r: FrameResult | Promise<FrameResult>) => (r instanceof Promise ? r.then(ok) : ok(r));
  return [
    orderedTransform<B>((f) => lift(sealer.seal(LAYOUT, f, BASE)), inflight),
    orderedTransform<B>((f) => lift(opener.open(LAYOUT, f)), inflight),
    () => sealer.host,
  ];
}

/** Pushes `n` frames of `size` bytes through seal and open; frames/s, checked. */
async function run(mode: Mode, size: number, n: number, inflight = MAX_IN_FLIGHT): Promise<{ fps: number; host: number }> {
  const input = frame(size);
  const [seal, open, host] = await pipeline(mode, inflight);
  let sent = 0;
  let got = 0;
  let bad = 0;
  const source = new ReadableStream<B>({
    pull(c) { if (sent++ < n) c.enqueue(input); else c.close(); },
  }, { highWaterMark: 4 });
  const sink = new WritableStream<B>({
    write(f: B) {
      got++;
      if (f.length !== size || f[size - 1] !== input[size - 1] || f[size >> 1] !== input[size >> 1]) bad++;
    },
  });
  const t0 = performance.now();
  await source.pipeThrough(seal).pipeThrough(open).pipeTo(sink);
  const dt = (performance.now() - t0) / 1000;
  if (got !== n || bad) throw new Error(`mode ${mode} size ${size}: ${got}/${n} frames back, ${bad} wrong`);
  return { fps: n / dt, host: host() };
}

/** Frames per run by size: each run takes a few hundred ms on the slowest mode. */
function framesFor(size: number): number {
  if (size <= 300) return 20000;
  if (size <= 1000) return 10000;
  if (size <= 16000) return 2000;
  return 400;
}

self.onmessage = async (e: MessageEvent<{ wasmUrl: string; sizes: number[]; rounds: number; inflight?: number }>) => {
  try {
    await init({ module_or_path: e.data.wasmUrl });
    const results: { size: number; mode: Mode; fps: number; host: number }[] = [];
    for (const size of e.data.sizes) {
      const n = framesFor(size);
      const best: Record<string, { fps: number; host: number }> = {};
      await run('a', size, Math.min(n, 1000)); // warm-up
      for (let round = 0; round < e.data.rounds; round++) {
        // Every other round in reverse order, so that drift in the machine's load does not
        // favour the modes that run first.
        const order: Mode[] = round % 2 === 0 ? ['a', 'b', 'c', 'h'] : ['h', 'c', 'b', 'a'];
        for (const mode of order) {
          // Let the previous run's garbage go first, so no mode pays for another's.
          await new Promise((r) => setTimeout(r, 50));
          const r = await run(mode, size, n, e.data.inflight ?? MAX_IN_FLIGHT);
          if (!best[mode] || r.fps > best[mode].fps) best[mode] = r;
        }
      }
      for (const mode of ['a', 'b', 'c', 'h'] as Mode[]) results.push({ size, mode, ...best[mode] });
    }
    self.postMessage({ kind: 'done', threshold: HOST_AEAD_MIN_BYTES, results });
  } catch (err) {
    self.postMessage({ kind: 'error', detail: String(err) });
  }
};
