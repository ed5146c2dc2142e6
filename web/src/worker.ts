/// <reference lib="webworker" />
/**
 * The Hush encoded-transform Worker: encrypts every outgoing frame and decrypts every
 * incoming one with hush-wasm. Keys live here; the page only hands them over. Fail closed: a
 * frame that cannot be encrypted, or is not valid SFrame for a known key, is dropped.
 */
import init, { Receiver, Sender } from '../wasm/hush_wasm.js';
import type { DropReason, FromWorker, LayoutCode, ToWorker, TransformOptions, TransformStats } from './protocol.js';

declare const self: DedicatedWorkerGlobalScope;

let ready = false;
let suite = 4;
let sendKey: { kid: bigint; key: Uint8Array } | null = null;
const recvKeys = new Map<bigint, Uint8Array>();
const senders = new Set<Sender>();
const receivers = new Set<Receiver>();
const stats: TransformStats[] = [];

function post(m: FromWorker): void {
  self.postMessage(m);
}

/** The layout code for a frame, from its MIME type where the browser gives one. */
function layoutFor(frame: RTCEncodedVideoFrame | RTCEncodedAudioFrame, kind: 'audio' | 'video'): LayoutCode {
  if (kind === 'audio') return 1;
  const meta = (frame as RTCEncodedVideoFrame).getMetadata() as { mimeType?: string };
  switch ((meta.mimeType ?? 'video/vp8').toLowerCase()) {
    case 'video/vp8': return 2;
    case 'video/vp9': return 3;
    case 'video/h264': return 4;
    case 'video/h265': return 5;
    case 'video/av1': return 6;
    default: return 0;
  }
}

function count(s: TransformStats, r: DropReason): void {
  s.dropped[r] = (s.dropped[r] ?? 0) + 1;
}

function attach(readable: ReadableStream, writable: WritableStream, opts: TransformOptions): void {
  const s: TransformStats = { id: opts.id, side: opts.side, kind: opts.kind, frames: 0, ok: 0, dropped: {} };
  stats.push(s);
  let sender: Sender | null = null;
  let senderKid: bigint | null = null;
  let receiver: Receiver | null = null;
  const transform = new TransformStream({
    transform(frame: RTCEncodedVideoFrame | RTCEncodedAudioFrame, controller) {
      s.frames++;
      const data = new Uint8Array(frame.data);
      const layout = layoutFor(frame, opts.kind);
      if (opts.side === 'send') {
        if (!sendKey) { count(s, 'no_key'); return; }
        if (!sender) { sender = new Sender(suite, sendKey.kid, sendKey.key); senders.add(sender); senderKid = sendKey.kid; }
        else if (senderKid !== sendKey.kid) { sender.setKey(sendKey.kid, sendKey.key); senderKid = sendKey.kid; }
        let out: Uint8Array;
        try { out = sender.encrypt(layout, data); } catch { count(s, 'encrypt_failed'); return; }
        frame.data = out.buffer as ArrayBuffer;
      } else {
        if (!receiver) {
          receiver = new Receiver(suite);
          receivers.add(receiver);
          for (const [kid, key] of recvKeys) receiver.addKey(kid, key);
        }
        const out = receiver.decrypt(layout, data);
        if (!out) { count(s, (receiver.lastError() ?? 'auth_failed') as DropReason); return; }
        frame.data = out.buffer as ArrayBuffer;
      }
      s.ok++;
      controller.enqueue(frame);
    },
  });
  readable.pipeThrough(transform).pipeTo(writable).catch(() => {});
}

self.onrtctransform = (event: RTCTransformEvent) => {
  const t = event.transformer;
  attach(t.readable, t.writable, t.options as TransformOptions);
};

self.onmessage = async (event: MessageEvent<ToWorker & { readable?: ReadableStream; writable?: WritableStream; options?: TransformOptions }>) => {
  const m = event.data;
  // Legacy path (createEncodedStreams): the page transfers the streams.
  if (m.readable && m.writable && m.options) { attach(m.readable, m.writable, m.options); return; }
  if (m.kind !== 'init' && !ready) { post({ kind: 'error', reason: 'not_initialized', detail: m.kind }); return; }
  switch (m.kind) {
    case 'init':
      try { await init({ module_or_path: m.wasmUrl }); } catch (e) { post({ kind: 'error', reason: 'wasm_failed', detail: String(e) }); return; }
      suite = m.suite; ready = true; post({ kind: 'initAck' }); return;
    case 'setSendKey':
      sendKey = { kid: m.kid, key: m.key }; post({ kind: 'ack', of: m.kind }); return;
    case 'addRecvKey':
      recvKeys.set(m.kid, m.key); for (const r of receivers) r.addKey(m.kid, m.key); post({ kind: 'ack', of: m.kind }); return;
    case 'removeRecvKey':
      recvKeys.delete(m.kid); for (const r of receivers) r.removeKey(m.kid); post({ kind: 'ack', of: m.kind }); return;
    case 'stats':
      post({ kind: 'stats', transforms: stats }); return;
    default:
      post({ kind: 'error', reason: 'bad_message', detail: JSON.stringify(m) });
  }
};
