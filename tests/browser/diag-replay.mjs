// TEMPORARY diagnostic (helper H): logs every video frame at sender and receiver.
import { writeFile } from 'node:fs/promises';
import { launch, root, serve } from './harness.mjs';
const server = await serve({ '/': root });
const ctx = await launch();
const lines = [];
try {
  const page = await ctx.newPage();
  page.on('console', (m) => { const t = m.text(); if (t.startsWith('HUSHDBG ')) lines.push(t.slice(8)); else if (m.type() === 'error') console.log('[page]', t); });
  await page.goto(`http://127.0.0.1:${server.address().port}/tests/browser/e2ee.html`);
  await page.waitForFunction(() => window.hushReady === true);
  const runs = Number(process.env.RUNS ?? 3);
  for (let i = 0; i < runs; i++) {
    const start = lines.length;
    const r = await page.evaluate((o) => window.hush.call(o), JSON.parse(process.env.OPTS ?? '{"seconds":5}'));
    const rx = r.rx.find((t) => t.kind === 'video'); const tx = r.tx.find((t) => t.kind === 'video');
    console.log(`run ${i}: tx ${JSON.stringify(tx)} rx ${JSON.stringify(rx)} decoded ${r.framesDecoded}`);
    const mine = lines.slice(start).map((l) => ({ run: i, ...JSON.parse(l) }));
    await writeFile(`/tmp/hdiag/run${i}.json`, JSON.stringify(mine));
  }
} finally { await ctx.close(); server.close(); }
