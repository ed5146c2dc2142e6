/**
 * The Hush demo page: join a room (the form, or `/r/NAME` at once) with camera and microphone,
 * a tile per participant with an E2EE badge and live counters, the room's safety code and a
 * copyable link. Dev relays only: the relay's dev mode stands in for the app backend. The
 * token comes from `POST /dev/token`; the join is the two-step flow a product uses: the Worker
 * makes the identity key, `POST /dev/attest` vouches for it with the dev backend key
 * (`GET /dev/backend-key`), and every member checks every other member's attestation with
 * that key. A member the relay announces without one is listed as refused, with the reason.
 *
 * Keys: the hush-keys exchange by default. A link with `#secret=...` uses shared-secret mode
 * with that secret (the fragment never reaches the server); `?keys=explicit` derives fixed
 * per-sender keys from the room name (no exchange: a test mode, not private).
 *
 * Recording: every dev token asks for the `record` grant (a dev relay is for trying things;
 * `?record=0` joins without it, and the room link never carries it), and a participant with it
 * gets a Record button: `POST /dev/recorder` makes the dev recorder the room's recorder, then
 * `startRecording()`. Every participant sees "● Recording" while the key exchange has the
 * recorder as a member (`recording` event), with who started it, and why it stopped after.
 * `cargo xtask dev` records to target/recordings; without `--recording-dir` the relay says
 * recording is off.
 */
import { HushE2ee, HushError, type ParticipantStats } from '../api/index.js';
import { RelaySession, type KeyMode, type Member, type RecordingEnd, type RecordingState, type RemoteTrack } from '../relay/client.js';
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
  /** Every member of the key exchange (publishing or not), with `vouched` or `refused: reason`. */
  members: Map<string, string>;
  /** The epoch whose key is awaited while sending is stopped (`keyawaited`), else null. */
  keyAwaited: number | null;
  /** The last `recording` event (`active` from the key exchange). */
  recording: RecordingState;
}

const state: DemoState = {
  room: '', mode: '', safetyCode: null, session: null, e2ee: null, closed: null, tiles: new Map(), members: new Map(), keyAwaited: null,
  recording: { active: false },
};
(window as unknown as { hushDemo: DemoState }).hushDemo = state;

/** One call to a dev endpoint of the relay (the app backend's stand-in): its JSON answer. */
async function dev<T>(path: string, body?: unknown): Promise<T & { error?: string }> {
  const res = await fetch(path, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new Error(`${path} answered ${res.status}${json.error ? `: ${json.error}` : ''}`);
  return json;
}

/** Whether this page asks for the `record` grant (all but `?record=0`). */
const WANTS_RECORD = new URLSearchParams(location.search).get('record') !== '0';

/** A dev token (with the `record` grant unless `?record=0`) and the participant id it names. */
async function devToken(room: string): Promise<{ token: string; participant: string }> {
  const r = await dev<{ token?: string; participant?: string }>('/dev/token', { room, record: WANTS_RECORD });
  if (!r.token || !r.participant) throw new Error('no token from /dev/token');
  return { token: r.token, participant: r.participant };
}

const b64 = (bytes: Uint8Array): string => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
const unb64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** The dev backend's Ed25519 public key, which checks every member's attestation. */
async function devBackendKey(): Promise<Uint8Array> {
  const r = await dev<{ backend_key?: string }>('/dev/backend-key');
  if (!r.backend_key) throw new Error('no key from /dev/backend-key');
  return unb64(r.backend_key);
}

/** What the app backend does in the two-step join: vouch that `identityKey` is `participant`'s. */
function devVouch(room: string, participant: string): (identityKey: Uint8Array) => Promise<Uint8Array> {
  return async (identityKey) => {
    const r = await dev<{ attestation?: string }>('/dev/attest', { room, participant, identity_key: b64(identityKey) });
    if (!r.attestation) throw new Error('no attestation from /dev/attest');
    return unb64(r.attestation);
  };
}

/** Redraws the list of key exchange members. */
function showMembers(): void {
  const list = $('members');
  list.replaceChildren(...[...state.members].map(([id, how]) => {
    const li = document.createElement('li');
    li.dataset.participant = id;
    li.dataset.status = how.startsWith('refused') ? 'refused' : 'ok';
    li.textContent = `${id}${id === state.session?.you ? ' (you)' : ''}: ${how}`;
    return li;
  }));
}

function member(id: string, how: string): void {
  // A refusal sticks: the relay announcing the member again does not vouch for it.
  if (state.members.get(id)?.startsWith('refused') && !how.startsWith('refused')) return;
  state.members.set(id, how);
  showMembers();
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

/** What the page says about why a recording ended. */
const RECORDING_ENDS: Record<RecordingEnd, string> = {
  stopped: 'stopped', disk_full: 'the relay\'s disk is full', write_error: 'the relay could not write it',
  size_limit: 'the size limit was reached', room_empty: 'everyone left', shutdown: 'the relay shut down',
  removed: 'a moderator removed the recorder',
};

/** Shows the recording banner and the Record button's label for `r`. */
function showRecording(r: RecordingState, recordedBefore: boolean): void {
  state.recording = r;
  const el = $('recording');
  el.dataset.active = String(r.active);
  if (r.active) {
    el.textContent = `● Recording${r.by ? ` · started by ${r.by === state.session?.you ? 'you' : r.by}` : ''}`;
    el.hidden = false;
  } else if (recordedBefore) {
    // "stopped by X" when a participant stopped it, the relay's reason otherwise (when it came).
    const why = r.reason === 'stopped'
      ? (r.by ? ` by ${r.by === state.session?.you ? 'you' : r.by}` : '')
      : r.reason ? `: ${RECORDING_ENDS[r.reason]}` : '';
    el.textContent = `Recording stopped${why}.`;
    el.hidden = false;
  }
  $('record').textContent = r.active ? 'Stop recording' : 'Record';
}

/** The Record button: sets the dev recorder for the room, then starts; or stops. */
async function toggleRecording(session: RelaySession): Promise<void> {
  const button = $<HTMLButtonElement>('record');
  button.disabled = true;
  try {
    if (state.recording.active) {
      await session.stopRecording();
    } else {
      // Dev mode's backend stand-in: the room's recorder is the dev recorder, whose private
      // key the relay writes next to the recordings for `hush-record decrypt --key`.
      await dev('/dev/recorder', { room: state.room });
      await session.startRecording();
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    status(`Recording: ${code ? `${code}: ` : ''}${err instanceof Error ? err.message : String(err)}`, true);
  } finally {
    button.disabled = false;
  }
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
  // The key mode travels with the link; the record grant is each participant's own.
  const search = new URLSearchParams(location.search);
  search.delete('record');
  const query = search.toString();
  link.value = `${location.origin}/r/${encodeURIComponent(room)}${query ? `?${query}` : ''}${location.hash}`;
  document.title = `${room} · Hush`;

  status('Starting the E2EE worker…');
  const e2ee = await HushE2ee.init();
  state.e2ee = e2ee;
  e2ee.addEventListener('safetycodepending', () => {
    state.safetyCode = null;
    $('safety-code').textContent = 'agreeing on a new code…';
  });
  e2ee.addEventListener('safetycode', (e) => {
    const d = (e as CustomEvent<{ code: string; changed: boolean }>).detail;
    state.safetyCode = d.code;
    $('safety-code').textContent = state.safetyCode;
    $('safety-code-note').textContent = d.changed ? 'The code changed: the members changed. Compare it again.' : '';
  });
  // A member left and the new key has not come in time: the Worker stopped sending (fail
  // closed) rather than encrypt under a key the leaver holds. Say so until the key arrives.
  e2ee.addEventListener('keyawaited', (e) => {
    const d = (e as CustomEvent<{ epoch: number; committer?: string }>).detail;
    state.keyAwaited = d.epoch;
    const el = $('key-awaited');
    el.textContent = d.committer
      ? `Waiting for ${d.committer} to hand out the new key: you are not being sent to the others until it arrives.`
      : 'Waiting for the new key after a member left: your camera and microphone are not sent until it arrives.';
    el.hidden = false;
  });
  e2ee.addEventListener('keychange', (e) => {
    const d = (e as CustomEvent<{ type: string; epoch?: number }>).detail;
    if (d.type !== 'switched' || state.keyAwaited === null || (d.epoch ?? 0) < state.keyAwaited) return;
    state.keyAwaited = null;
    $('key-awaited').hidden = true;
  });
  // We hand out the keys, and the relay has kept our regular fresh key from happening: keys
  // still change, but only from what the members already had. Say so; it stays on screen.
  e2ee.addEventListener('rekeyoverdue', () => {
    const el = $('rekey-overdue');
    el.textContent = 'The relay is holding back the regular fresh key for this call: keys still change, but only from what members already had. Rejoin if it stays.';
    el.hidden = false;
  });
  // The relay showed us another member list than the one the committer sealed for.
  e2ee.addEventListener('rostermismatch', () => {
    const el = $('roster-mismatch');
    el.textContent = 'The relay showed you a different list of members than the others see: this call is not keyed for you. Rejoin; if it happens again, do not trust this relay.';
    el.hidden = false;
  });
  e2ee.addEventListener('memberrefused', (e) => {
    const d = (e as CustomEvent<{ participant: string; reason: string }>).detail;
    member(String(d.participant), `refused: ${String(d.reason)}`);
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
  const { token, participant } = await devToken(room);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/rtc`;
  let keys = await keyMode(room);
  // Rejoins when the relay is lost: a fresh dev token (a new participant id) per attempt.
  let me = participant;
  const reconnect = {
    token: async () => {
      const t = await devToken(room);
      me = t.participant;
      return t.token;
    },
  };
  // The two-step join: the Worker makes the identity key, the (dev) backend vouches for it.
  const vouching = keys.mode === 'exchange' || keys.mode === 'shared'
    ? { backendKey: await devBackendKey(), vouch: (key: Uint8Array) => devVouch(room, me)(key) }
    : {};
  let session: RelaySession;
  try {
    session = await RelaySession.join({ url, token, room, e2ee, keys, ...vouching, reconnect, publish: { camera: video, microphone: audio } });
  } catch (err) {
    if (!(err instanceof HushError && err.code === 'unsupported' && keys.mode === 'exchange')) throw err;
    // This build's Worker has no key exchange: fall back to the explicit test keys.
    keys = { mode: 'explicit', secret: await roomKey(room) };
    const again = await devToken(room);
    session = await RelaySession.join({ url, token: again.token, room, e2ee, keys, publish: { camera: video, microphone: audio } });
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
  const vouched = keys.mode === 'exchange' || keys.mode === 'shared';
  $('vouching').textContent = vouched
    ? 'Dev mode: this relay vouches for every member with a dev backend key (POST /dev/attest). '
      + 'In a product your backend signs each member\'s key after checking who it is.'
    : 'Members are not vouched for in this mode.';
  const admitted = vouched ? 'vouched' : 'member';
  // The recorder publishes nothing: listed as a member, no tile.
  const joinedMember = (m: Member): void => {
    if (m.role === 'recorder') { member(m.id, `recorder (${admitted})`); return; }
    tileFor(m.id, m.id, false);
    member(m.id, admitted);
  };
  member(session.you, admitted);
  const self = tileFor('self', session.you, true);
  self.setStream(new MediaStream([video]));
  for (const m of session.members.values()) joinedMember(m);
  session.addEventListener('participantjoined', (e) => joinedMember((e as CustomEvent<Member>).detail));

  // Everyone sees the badge; only a participant with the record grant gets the button.
  let recordedBefore = false;
  session.addEventListener('recording', (e) => {
    const r = (e as CustomEvent<RecordingState>).detail;
    recordedBefore ||= r.active;
    showRecording(r, recordedBefore);
  });
  if (session.recording.active) { recordedBefore = true; showRecording(session.recording, true); }
  const record = $<HTMLButtonElement>('record');
  record.hidden = !session.grants.record;
  record.addEventListener('click', () => { void toggleRecording(session); });
  session.addEventListener('participantleft', (e) => {
    const id = (e as CustomEvent<{ id: string }>).detail.id;
    state.tiles.get(id)?.root.remove();
    state.tiles.delete(id);
    state.members.delete(id);
    showMembers();
  });
  session.addEventListener('track', (e) => {
    const t = (e as CustomEvent<RemoteTrack>).detail;
    if (!t.participant) return;
    const tile = tileFor(t.participant, t.participant, false);
    tile.addTrack(t.track);
    // The relay sends each video at about the size of its tile (simulcast).
    if (t.track.kind === 'video') session.observeTile(t, tile.video);
  });
  let selfId = session.you;
  session.addEventListener('reconnecting', (e) => {
    const d = (e as CustomEvent<{ attempt: number; code: string }>).detail;
    status(`Connection to the relay lost (${d.code}): reconnecting, attempt ${d.attempt}…`, true);
  });
  session.addEventListener('reconnected', (e) => {
    const d = (e as CustomEvent<{ ms: number }>).detail;
    state.members.delete(selfId);
    selfId = session.you;
    member(selfId, admitted);
    status(`Reconnected after ${(d.ms / 1000).toFixed(1)} s (a new member of the key exchange: compare the code again).`);
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
