/**
 * The Hush demo page: join a room (the form, or `/r/NAME` at once) with camera and microphone,
 * a tile per participant with an E2EE badge and live counters, the room's safety code and a
 * copyable link. Dev relays only: the token comes from `POST /dev/token`.
 *
 * Keys: the hush-keys exchange by default. A link with `#secret=...` uses shared-secret mode
 * with that secret (the fragment never reaches the server); `?keys=explicit` derives fixed
 * per-sender keys from the room name (no exchange: a test mode, not private).
 */
import { HushE2ee, HushError, type ParticipantStats } from '../api/index.js';
import { RelaySession, type KeyMode, type RemoteTrack } from '../relay/client.js';
import { Tile } from './tile.js';

const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

function status(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', error);
}

/** The demo's state, exposed as `window.hushDemo` for tests and curious developers. */
interface DemoState {
  room: string;
  mode: string;
  safetyCode: string | null;
  session: RelaySession | null;
  e2ee: HushE2ee | null;
  closed: { code: string; message: string } | null;
  tiles: Map<string, Tile>;
}

const state: DemoState = { room: '', mode: '', safetyCode: null, session: null, e2ee: null, closed: null, tiles: new Map() };
(window as unknown as { hushDemo: DemoState }).hushDemo = state;

async function devToken(room: string): Promise<string> {
  const res = await fetch('/dev/token', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ room }),
  });
  const body = (await res.json().catch(() => ({}))) as { token?: string; error?: string };
  if (!res.ok || !body.token) throw new Error(`no token from /dev/token (${res.status}${body.error ? `: ${body.error}` : ''})`);
  return body.token;
}

async function roomKey(room: string): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`hush demo explicit ${room}`));
  return new Uint8Array(digest);
}

function keyMode(room: string): Promise<KeyMode> | KeyMode {
  const secret = new URLSearchParams(location.hash.slice(1)).get('secret');
  if (secret) return { mode: 'shared', secret: new TextEncoder().encode(secret) };
  if (new URLSearchParams(location.search).get('keys') === 'explicit') {
    return roomKey(room).then((secret) => ({ mode: 'explicit', secret }));
  }
  return { mode: 'exchange' };
}

function tileFor(id: string, label: string, local: boolean): Tile {
  let tile = state.tiles.get(id);
  if (!tile) {
    tile = new Tile(id, label, local);
    state.tiles.set(id, tile);
    $('tiles').append(tile.root);
  }
  return tile;
}

async function join(room: string): Promise<void> {
  state.room = room;
  $('join').hidden = true;
  $('call').hidden = false;
  const link = $<HTMLInputElement>('link');
  link.value = `${location.origin}/r/${encodeURIComponent(room)}${location.search}${location.hash}`;
  document.title = `${room} · Hush`;

  status('Starting the E2EE worker…');
  const e2ee = await HushE2ee.init();
  state.e2ee = e2ee;
  e2ee.addEventListener('safetycode', (e) => {
    state.safetyCode = (e as CustomEvent<{ code: string }>).detail.code;
    $('safety-code').textContent = state.safetyCode;
  });
  e2ee.addEventListener('decryptfailure', (e) => {
    const d = (e as CustomEvent<{ participant?: string }>).detail;
    if (d.participant) state.tiles.get(d.participant)?.failed();
  });

  status('Opening camera and microphone…');
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  const [video] = media.getVideoTracks();
  const [audio] = media.getAudioTracks();

  status('Joining…');
  const token = await devToken(room);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/rtc`;
  let keys = await keyMode(room);
  let session: RelaySession;
  try {
    session = await RelaySession.join({ url, token, room, e2ee, keys, publish: { camera: video, microphone: audio } });
  } catch (err) {
    if (!(err instanceof HushError && err.code === 'unsupported' && keys.mode === 'exchange')) throw err;
    // This build's Worker has no key exchange: fall back to the explicit test keys.
    keys = { mode: 'explicit', secret: await roomKey(room) };
    session = await RelaySession.join({ url, token: await devToken(room), room, e2ee, keys, publish: { camera: video, microphone: audio } });
  }
  state.session = session;
  state.mode = keys.mode;
  $('key-mode').textContent = {
    exchange: 'Keys: hush-keys exchange (HPKE)',
    shared: 'Keys: shared room secret',
    explicit: 'Keys: fixed test keys (no exchange)',
    none: 'No E2EE',
  }[keys.mode];
  if (keys.mode === 'explicit') $('safety-code').textContent = 'none (no key exchange)';

  const self = tileFor('self', session.you, true);
  self.setStream(new MediaStream([video]));
  for (const m of session.members.values()) tileFor(m.id, m.id, false);
  session.addEventListener('participantjoined', (e) => {
    const id = (e as CustomEvent<{ id: string }>).detail.id;
    tileFor(id, id, false);
  });
  session.addEventListener('participantleft', (e) => {
    const id = (e as CustomEvent<{ id: string }>).detail.id;
    state.tiles.get(id)?.root.remove();
    state.tiles.delete(id);
  });
  session.addEventListener('track', (e) => {
    const t = (e as CustomEvent<RemoteTrack>).detail;
    if (t.participant) tileFor(t.participant, t.participant, false).addTrack(t.track);
  });
  session.addEventListener('close', (e) => {
    const d = (e as CustomEvent<{ code: string; message: string }>).detail;
    state.closed = d;
    status(d.code === 'left' ? 'You left the room.' : `Disconnected: ${d.code} (${d.message})`, d.code !== 'left');
  });
  status('');
  void pollStats(e2ee);
}

/** Refreshes every tile's counters once a second while the call runs. */
async function pollStats(e2ee: HushE2ee): Promise<void> {
  while (!state.closed) {
    let stats: ParticipantStats[] = [];
    try {
      stats = await e2ee.getStats();
    } catch {
      return; // The Worker is gone.
    }
    for (const s of stats) state.tiles.get(s.participant)?.update(s);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function main(): void {
  $('copy').addEventListener('click', () => {
    const link = $<HTMLInputElement>('link');
    link.select();
    void navigator.clipboard?.writeText(link.value).then(() => status('Link copied.'), () => undefined);
  });
  $('leave').addEventListener('click', () => {
    state.session?.leave();
    state.e2ee?.close();
    for (const tile of state.tiles.values()) tile.stop();
  });
  const fromPath = /^\/r\/([^/]+)$/.exec(location.pathname)?.[1];
  const start = (room: string): void => {
    join(room).catch((err: unknown) => {
      const code = (err as { code?: string }).code;
      status(`Could not join: ${code ? `${code}: ` : ''}${err instanceof Error ? err.message : String(err)}`, true);
    });
  };
  if (fromPath !== undefined) {
    const room = decodeURIComponent(fromPath);
    if (ROOM_NAME.test(room)) { start(room); return; }
    status('That room name is not valid: letters, digits, - and _ only.', true);
  }
  const form = $<HTMLFormElement>('join');
  form.hidden = false;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = $<HTMLInputElement>('room').value.trim();
    if (!ROOM_NAME.test(room)) { status('Letters, digits, - and _ only.', true); return; }
    history.pushState(null, '', `/r/${encodeURIComponent(room)}${location.search}${location.hash}`);
    start(room);
  });
}

main();
