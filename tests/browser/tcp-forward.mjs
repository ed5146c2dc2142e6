// A TCP forwarder for the network tests: `node tcp-forward.mjs LISTEN_HOST:PORT TARGET_HOST:PORT`.
// The relay's dev mode serves only loopback peers, so in a network namespace the relay listens
// on 127.0.0.1 and this, in the same namespace, carries connections from the test's link to it.
import { createServer, connect } from 'node:net';

const [listen, target] = process.argv.slice(2).map((a) => {
  const i = a.lastIndexOf(':');
  return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
});
const server = createServer((client) => {
  const upstream = connect(target.port, target.host);
  client.pipe(upstream).pipe(client);
  const end = () => { client.destroy(); upstream.destroy(); };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});
server.listen(listen.port, listen.host, () => console.log('forwarding'));
process.on('SIGTERM', () => process.exit(0));
