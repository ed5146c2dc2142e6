// Clients whose network lets no UDP through to the relay still call, through TURN over TCP:
// three network namespaces in a row (harness.mjs `netTurn`): the clients', a gateway that
// forwards no packets (only a TCP forwarder for the relay's web port, and Debian's coturn,
// listening on TCP only toward the clients), and the relay's. The relay is configured with the
// TURN URL and coturn's shared secret (`--turn-url`, `--turn-secret-file`) and hands each
// participant a credential in `joined` (coturn's REST convention). Checked: no UDP datagram
// from the clients' namespace can reach the relay's address; Alice and Bob (Chromium, key
// exchange, vouched) decode each other; each one's connection runs over a TURN relay
// candidate reached over TCP. Then coturn is killed and started again: both clients restart
// ICE on their own (signaling is still up) and decode each other again. Last, coturn comes
// back on TLS only (`turns:`, 5349) with a certificate from a test CA: Carol and Dave, in a
// Chromium that trusts the CA, call over TURN/TLS; Erin, in the same room from a Chromium that
// does not, gets nothing.
// Root and Debian's coturn (`cargo xtask test` installs it); run as:
//   node tests/browser/net-turn.test.mjs
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { drops, flowing, launchBrowser, launchBrowserTrusting, needFiles, netTurn, onLink, participant, relayPages, sleep, startRelay, suite, testPki, until } from './harness.mjs';

await needFiles(['/usr/bin/turnserver'], 'apt-get install -y coturn (cargo xtask test does)');
const link = await onLink('hushturn', netTurn);
const { check, use, run } = suite('TURN tests');
const secretFile = join(tmpdir(), `hush-turn-secret-${process.pid}`);
writeFileSync(secretFile, randomBytes(24).toString('hex'), { mode: 0o600 });
const secret = (await import('node:fs')).readFileSync(secretFile, 'utf8');
// Plain TCP first; TURN over TLS (5349) once coturn is started with a certificate (phase 3).
const turnUrl = `turn:${link.gatewayIp}:3478?transport=tcp,turns:${link.gatewayIp}:5349?transport=tcp`;
const pkiDir = mkdtempSync(join(tmpdir(), 'hush-turn-pki-'));
const pki = testPki(pkiDir, { ips: [link.gatewayIp] });
let coturnLog = '';
/**
 * Starts coturn in the gateway: TCP only toward the clients (`tls`: TLS only, on 5349, with the
 * test PKI's certificate for its address), UDP toward the relay.
 */
function startCoturn({ tls = false } = {}) {
  const listen = tls
    ? ['--no-tcp', '--tls-listening-port', '5349', '--cert', pki.fullchain, '--pkey', pki.key]
    : ['--no-tls', '--listening-port', '3478'];
  const p = spawn('ip', ['netns', 'exec', link.gatewayNs, '/usr/bin/turnserver', '-n', '--no-cli', ...listen, '--no-dtls',
    '--no-udp', '--listening-ip', link.gatewayIp, '--relay-ip', link.gatewayRelaySideIp,
    '--use-auth-secret', '--static-auth-secret', secret, '--realm', 'hush.test', '--fingerprint',
    '--pidfile', join(tmpdir(), `hush-turn-${process.pid}.pid`), '--log-file', 'stdout', '--simple-log'], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout.on('data', (d) => { coturnLog = (coturnLog + d).slice(-8000); });
  p.stderr.on('data', (d) => { coturnLog = (coturnLog + d).slice(-8000); });
  return p;
}
let coturn = startCoturn();
use({ close() {
  if (coturn.exitCode === null) coturn.kill('SIGTERM');
  rmSync(secretFile, { force: true });
  rmSync(pkiDir, { recursive: true, force: true });
} });
const relay = use(await startRelay({ link, args: ['--turn-url', turnUrl, '--turn-secret-file', secretFile] }));
const pages = use(await relayPages(relay));
const browser = use(await launchBrowser());
const where = { pages, relay, room: 'turn' };

/** Sends one UDP datagram to the relay's address: the error code, or 'sent'. */
const udpToRelay = () => new Promise((resolve) => {
  const s = createSocket('udp4');
  s.send(Buffer.from('hush'), 9, link.relayIp, (err) => { s.close(); resolve(err ? err.code : 'sent'); });
});

await run(async () => {
  check('no UDP from the clients\' network reaches the relay (no route)', (await udpToRelay()) === 'ENETUNREACH');
  await sleep(300);
  check('coturn is running', coturn.exitCode === null, coturnLog.slice(-300));
  const alice = await participant(browser, where, 'alice', { keys: 'exchange' });
  const bob = await participant(browser, where, 'bob', { keys: 'exchange' });
  const [a, b] = [alice.joined.you, bob.joined.you];
  const sa = await until(alice, (s) => flowing(s, b), 30_000);
  const sb = await until(bob, (s) => flowing(s, a), 10_000);
  check('alice and bob decode each other through TURN (decrypted, video and audio)', flowing(sa, b) && flowing(sb, a),
    { alice: sa.remote, bob: sb.remote, coturn: coturnLog.slice(-300) });
  check('no frame failed to decrypt', drops(sa.remote[b]?.dropped) === 0 && drops(sb.remote[a]?.dropped) === 0);
  const paths = [await alice.call('rtp'), await bob.call('rtp')].map((r) => r.path);
  check('each connection runs over a TURN relay candidate reached over TCP',
    paths.every((p) => p?.type === 'relay' && p.relayProtocol === 'tcp'), paths);

  // The TURN server dies and comes back while signaling stays up: the media path is gone, so
  // each client restarts ICE (`icerestart`) and gets a new allocation; media resumes.
  const decoded = async (p, other) => (await p.state()).remote[other]?.framesDecoded ?? 0;
  const killed = Date.now();
  coturn.kill('SIGKILL');
  await new Promise((r) => coturn.once('exit', r));
  await sleep(1000);
  coturn = startCoturn();
  const before = [await decoded(alice, b), await decoded(bob, a)];
  let resumed = null;
  for (let waited = 0; waited < 40_000; waited += 250) {
    const now = [await decoded(alice, b), await decoded(bob, a)];
    const restarted = (await alice.state()).connEvents.some((e) => e.type === 'icerestart')
      && (await bob.state()).connEvents.some((e) => e.type === 'icerestart');
    if (restarted && now[0] > before[0] + 10 && now[1] > before[1] + 10) { resumed = Date.now(); break; }
    await sleep(250);
  }
  const [ra, rb] = [await alice.state(), await bob.state()];
  console.log(`figures ${JSON.stringify({ resumedAfterKillMs: resumed && resumed - killed, alice: ra.connEvents, bob: rb.connEvents })}`);
  check('after the TURN server restarted, both restarted ICE and decode each other again, sessions open',
    resumed !== null && ra.closed === null && rb.closed === null, { alice: [ra.connEvents, ra.remote], bob: [rb.connEvents, rb.remote] });

  // TURN over TLS: coturn comes back listening on TLS only (5349), with a certificate for its
  // address from a test CA. Carol and Dave, in a Chromium whose NSS database trusts that CA,
  // call through it.
  coturn.kill('SIGKILL');
  await new Promise((r) => coturn.once('exit', r));
  coturn = startCoturn({ tls: true });
  const trusting = use(await launchBrowserTrusting(join(pkiDir, 'home'), pki.ca));
  const tlsWhere = { pages, relay, room: 'turn-tls' };
  const tlsStart = Date.now();
  const carol = await participant(trusting, tlsWhere, 'carol', { keys: 'exchange' });
  const dave = await participant(trusting, tlsWhere, 'dave', { keys: 'exchange' });
  const [c, d] = [carol.joined.you, dave.joined.you];
  const sc = await until(carol, (s) => flowing(s, d), 30_000);
  const sd = await until(dave, (s) => flowing(s, c), 10_000);
  console.log(`figures ${JSON.stringify({ tlsCallDecodingAfterMs: Date.now() - tlsStart })}`);
  check('carol and dave decode each other through TURN over TLS (decrypted, video and audio)',
    flowing(sc, d) && flowing(sd, c) && drops(sc.remote[d]?.dropped) === 0 && drops(sd.remote[c]?.dropped) === 0,
    { carol: sc.remote, dave: sd.remote, coturn: coturnLog.slice(-300) });
  const tlsPaths = [await carol.call('rtp'), await dave.call('rtp')].map((r) => r.path);
  check('each of their connections runs over a TURN relay candidate reached over TLS',
    tlsPaths.every((p) => p?.type === 'relay' && p.relayProtocol === 'tls'), tlsPaths);
  // Erin joins the same room at the same time from the browser that does not trust the CA:
  // the only difference is the trust, and she gets nothing.
  const erin = await participant(browser, tlsWhere, 'erin', { keys: 'exchange' });
  const se = await until(erin, (s) => flowing(s, c), 12_000);
  const sd2 = await dave.state();
  check('erin, whose browser does not trust the TURN server\'s certificate, gets no media through it (the certificate is checked)',
    !flowing(se, c) && (se.remote[c]?.framesDecoded ?? 0) === 0 && flowing(sd2, c),
    { erin: se.remote, erinEvents: se.connEvents, dave: sd2.remote });
});
