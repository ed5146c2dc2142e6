/** One participant's tile on the demo page: video, name, E2EE badge and counters. */
import type { ParticipantStats } from '../api/index.js';

/** How long a decrypt failure keeps the badge red. */
const FAILURE_HOLD_MS = 3000;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A short, stable label for a participant id. */
export function shortId(id: string): string {
  return id.length > 10 ? `${id.slice(0, 4)}…${id.slice(-4)}` : id;
}

/** A tile. `root` goes into the grid. */
export class Tile {
  readonly root: HTMLElement;
  /** The video element (its size is what the relay is told, `RelaySession.observeTile`). */
  readonly video: HTMLVideoElement;
  private readonly audio: HTMLAudioElement;
  private readonly badge: HTMLElement;
  private readonly stats: HTMLElement;
  private stream = new MediaStream();
  private lastOk = 0;
  private lastFailure = 0;
  private lastDropped = 0;

  constructor(readonly id: string, label: string, private readonly local: boolean) {
    this.root = el('div', 'tile');
    this.root.dataset.participant = id;
    this.video = el('video');
    this.video.autoplay = true;
    this.video.muted = true;
    this.video.playsInline = true;
    this.audio = el('audio');
    this.audio.autoplay = true;
    const meta = el('div', 'meta');
    const name = el('div', 'name', shortId(label));
    name.title = label;
    if (local) name.append(' ', el('small', undefined, '(you)'));
    this.badge = el('span', 'badge', 'E2EE: waiting');
    meta.append(name, this.badge);
    this.stats = el('div', 'stats', '');
    this.root.append(this.video, this.audio, meta, this.stats);
  }

  /** Shows a local stream (self view). */
  setStream(stream: MediaStream): void {
    this.stream = stream;
    this.video.srcObject = stream;
  }

  /** Adds a received track. */
  addTrack(track: MediaStreamTrack): void {
    if (track.kind === 'video') {
      this.video.srcObject = new MediaStream([track]);
    } else {
      this.audio.srcObject = new MediaStream([track]);
      void this.audio.play().catch(() => undefined); // Autoplay may wait for a click.
    }
  }

  /** A decrypt failure was reported for this participant. */
  failed(): void {
    this.lastFailure = performance.now();
    this.setBadge('bad', 'E2EE: decrypt failures');
  }

  /** New counters. */
  update(s: ParticipantStats): void {
    const dropped = Object.values(s.dropped).reduce((a, b) => a + (b ?? 0), 0);
    if (dropped > this.lastDropped) this.lastFailure = performance.now();
    this.lastDropped = dropped;
    const progressing = s.ok > this.lastOk;
    this.lastOk = s.ok;
    const recentFailure = performance.now() - this.lastFailure < FAILURE_HOLD_MS;
    if (recentFailure) this.setBadge('bad', 'E2EE: decrypt failures');
    else if (progressing) this.setBadge('ok', this.local ? 'E2EE: encrypting' : 'E2EE: decrypting');
    else this.setBadge('wait', 'E2EE: waiting');
    const reasons = Object.entries(s.dropped).map(([r, n]) => `${r} ${n}`).join(', ') || 'none';
    const kbps = Math.round(s.bitrate / 1000);
    this.stats.textContent = this.local
      ? `frames encrypted ${s.ok} · dropped ${reasons} · ${kbps} kbit/s`
      : `frames decrypted ${s.ok} · dropped ${reasons} · decoded ${s.framesDecoded} · ${kbps} kbit/s`;
    this.root.dataset.ok = String(s.ok);
  }

  /** Stops local media (after leaving). */
  stop(): void {
    if (this.local) this.stream.getTracks().forEach((t) => t.stop());
  }

  private setBadge(state: 'ok' | 'bad' | 'wait', text: string): void {
    this.badge.className = `badge${state === 'wait' ? '' : ` ${state}`}`;
    this.badge.textContent = text;
    this.root.dataset.e2ee = state;
  }
}
