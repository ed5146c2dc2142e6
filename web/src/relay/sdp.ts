/**
 * SDP helpers for the relay client.
 *
 * Header-extension ids (RFC 8285 `a=extmap`) must stay the same for a URI across a BUNDLE group
 * and across renegotiations: Chromium refuses a remote offer that reassigns one ("RTP extension
 * ID reassignment not supported") and then its own next offer ("codec collision for header
 * extension"). An SFU that numbers each new m-section on its own (webrtc-rs does) trips both.
 * `alignExtmapIds` renumbers a remote offer's extmap lines to the ids already in use on this
 * connection, picks free ids for new URIs, and drops lines it cannot place. The answer then
 * carries the same ids, which is what RFC 8285 section 6 asks of the offerer anyway.
 *
 * The Hush relay now avoids both problems itself: its first offer waits (up to 1 s) for the
 * client's, so it adopts the client's ids, and its answers keep the DTLS role of the running
 * transport (server/src/media/peer.rs, server/src/media/sdp.rs). With these helpers turned off
 * tests/browser/relay.test.mjs passes in full. They stay as a fallback for a relay offer that
 * still wins the race (a client whose offer comes later than that) and for other SFUs.
 */

const EXTMAP = /^a=extmap:(\d+)(\/[a-z]+)?\s+(\S+)(.*)$/;

/** URI -> id for every `a=extmap` line in the given descriptions. */
export function extmapIds(...sdps: (string | undefined)[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const sdp of sdps) {
    for (const line of (sdp ?? '').split(/\r?\n/)) {
      const m = EXTMAP.exec(line);
      if (m && !ids.has(m[3])) ids.set(m[3], Number(m[1]));
    }
  }
  return ids;
}

/** `sdp` with every extmap id mapped to `known` (extended with free ids for new URIs). */
export function alignExtmapIds(sdp: string, known: Map<string, number>): string {
  const ids = new Map(known);
  const used = new Set(ids.values());
  const free = (): number | undefined => {
    for (let id = 1; id <= 14; id++) if (!used.has(id)) return id;
    return undefined;
  };
  const eol = sdp.includes('\r\n') ? '\r\n' : '\n';
  const out: string[] = [];
  for (const line of sdp.split(/\r?\n/)) {
    const m = EXTMAP.exec(line);
    if (!m) { out.push(line); continue; }
    const uri = m[3];
    let id = ids.get(uri);
    if (id === undefined) {
      id = free();
      if (id === undefined) continue; // No room in the one-byte range: leave the extension out.
      ids.set(uri, id);
      used.add(id);
    }
    out.push(`a=extmap:${id}${m[2] ?? ''} ${uri}${m[4]}`);
  }
  return out.join(eol);
}

/**
 * `sdp` (a remote answer) with `a=setup` set to keep the DTLS roles of the transport already
 * established: a renegotiation must not flip them (RFC 8842 section 5.5), and Chromium refuses
 * an answer that does ("Failed to set SSL role"). `currentLocal` is our current local
 * description; without one (first negotiation) nothing changes.
 */
export function keepDtlsRole(sdp: string, currentLocal: string | undefined): string {
  const ours = /^a=setup:(active|passive)\s*$/m.exec(currentLocal ?? '')?.[1];
  if (!ours) return sdp;
  const theirs = ours === 'active' ? 'passive' : 'active';
  return sdp.replace(/^a=setup:(active|passive|actpass)(\r?)$/gm, `a=setup:${theirs}$2`);
}
