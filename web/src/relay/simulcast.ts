/**
 * Simulcast: the encodings a published camera or screen track is sent in, so the relay can
 * give each subscriber the one its downlink and tile can take (it switches at keyframes it can
 * see without decrypting; see the relay's `media::layers`). One send transform seals the frames
 * of every encoding with the sender's one key and counter, so E2EE is unchanged.
 *
 * The relay names layers by RTP stream id: `q`, `h`, `f`, lowest first.
 */

/** One encoding: its RTP stream id, how far it is scaled down, and its bitrate cap (bits/s). */
export interface SimulcastLayer {
  rid: 'q' | 'h' | 'f';
  scaleResolutionDownBy: number;
  maxBitrate: number;
}

/**
 * `true` or absent: encodings chosen from the track's height (3 from 540 lines, 2 from 360,
 * otherwise 1); `false`: one encoding; a list: exactly those.
 */
export type SimulcastOption = boolean | SimulcastLayer[];

/**
 * The top layer's bitrate cap for a track `height` lines high (bits/s). The lowest layer gets a
 * 24th (three layers) or a quarter (two): small enough that two of them and two Opus
 * streams fit a 300 kbit/s downlink with their packet overhead.
 */
function topBitrate(height: number): number {
  if (height >= 1080) return 3_000_000;
  if (height >= 720) return 1_500_000;
  if (height >= 540) return 1_000_000;
  return 600_000;
}

/**
 * The `sendEncodings` for a track of `kind` that is `height` lines high, or `undefined` for a
 * single encoding (audio, small video, or `option` false).
 */
export function sendEncodings(
  kind: string,
  height: number | undefined,
  option: SimulcastOption | undefined,
): RTCRtpEncodingParameters[] | undefined {
  if (kind !== 'video' || option === false) return undefined;
  if (Array.isArray(option)) return option.length > 1 ? option.map((l) => ({ ...l, active: true })) : undefined;
  const h = height ?? 0;
  const top = topBitrate(h);
  if (h >= 540) {
    return [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: Math.round(top / 24), active: true },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: Math.round(top / 4), active: true },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: top, active: true },
    ];
  }
  if (h >= 360) {
    return [
      { rid: 'q', scaleResolutionDownBy: 2, maxBitrate: Math.round(top / 4), active: true },
      { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: top, active: true },
    ];
  }
  return undefined;
}
