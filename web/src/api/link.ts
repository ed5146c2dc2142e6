/**
 * The page's end of the Worker channel: requests go one at a time (the Worker contract says one
 * message at a time) and each waits for its reply; everything else the Worker sends is an event.
 */
import type { FromWorker, ToWorker } from '../protocol.js';

/**
 * A message the Worker sends on its own (not a reply): the event kinds of `FromWorker`
 * (protocol.ts). Typed loosely because a newer Worker may send kinds this page does not know;
 * `HushE2ee.onWorkerEvent` (index.ts) reads the fields of the kinds it handles and ignores the rest.
 */
export type WorkerEvent = { kind: string; [field: string]: unknown };

/** Why a request failed. */
export class HushError extends Error {
  /** A stable code: `not_initialized`, `closed`, `worker_error`, `timeout`, `unsupported`, ... */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'HushError';
    this.code = code;
  }
}

/** Reply kinds that answer a request (everything else is an event). */
const REPLIES = new Set(['initAck', 'ack', 'stats', 'keysIdentity']);

/** How long a request may wait for its reply. */
const REQUEST_TIMEOUT_MS = 10_000;

interface Pending {
  expect: string;
  resolve(reply: FromWorker): void;
  reject(error: Error): void;
}

/** Serializes requests to one Worker and routes its events to `onEvent`. */
export class WorkerLink {
  private chain: Promise<unknown> = Promise.resolve();
  private pending: Pending | null = null;
  private closed = false;

  constructor(
    readonly worker: Worker,
    private readonly onEvent: (event: WorkerEvent) => void,
  ) {
    worker.addEventListener('message', (e: MessageEvent) => this.receive(e.data as WorkerEvent));
    worker.addEventListener('error', (e: ErrorEvent) => {
      this.pending?.reject(new HushError('worker_error', e.message || 'the Worker failed'));
      this.pending = null;
      this.onEvent({ kind: 'workerFailed', detail: e.message });
    });
  }

  /** Sends `message` once the previous request is answered; resolves with the reply. */
  request<T extends FromWorker>(message: ToWorker, expect: T['kind'], transfer: Transferable[] = []): Promise<T> {
    const run = (): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (this.closed) { reject(new HushError('closed', 'the Worker was terminated')); return; }
        const timer = setTimeout(() => {
          if (this.pending?.expect !== expect) return;
          this.pending = null;
          reject(new HushError('timeout', `no reply to ${message.kind}`));
        }, REQUEST_TIMEOUT_MS);
        this.pending = {
          expect,
          resolve: (r) => { clearTimeout(timer); resolve(r as T); },
          reject: (e) => { clearTimeout(timer); reject(e); },
        };
        this.worker.postMessage(message, transfer);
      });
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Posts a message that has no reply (the legacy transform streams). */
  post(message: unknown, transfer: Transferable[]): void {
    if (!this.closed) this.worker.postMessage(message, transfer);
  }

  /** Terminates the Worker; pending and later requests fail with `closed`. */
  close(): void {
    this.closed = true;
    this.pending?.reject(new HushError('closed', 'the Worker was terminated'));
    this.pending = null;
    this.worker.terminate();
  }

  private receive(m: WorkerEvent): void {
    const p = this.pending;
    if (p && REPLIES.has(m.kind) && m.kind === p.expect) {
      this.pending = null;
      p.resolve(m as unknown as FromWorker);
      return;
    }
    if (p && m.kind === 'error') {
      // One request at a time: an error while one waits is its answer.
      this.pending = null;
      p.reject(new HushError(String(m.reason ?? 'worker_error'), String(m.detail ?? '')));
      return;
    }
    this.onEvent(m);
  }
}
