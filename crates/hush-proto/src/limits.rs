//! Size limits of the wire protocol.
//!
//! Both sides enforce them: [`crate::ClientMessage::decode`] refuses a message or field over its
//! limit before anything else looks at it, and the relay refuses tokens over
//! [`MAX_TOKEN_BYTES`] before parsing them. Every limit is in bytes of the UTF-8 JSON text, except
//! [`MAX_E2EE_PAYLOAD_BYTES`] and [`MAX_IDENTITY_KEY_BYTES`], which count decoded bytes.

/// Largest signaling message, as JSON text. An SDP offer with every codec, simulcast and three
/// sources stays well under it.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest SDP in an `offer` or `answer`.
pub const MAX_SDP_BYTES: usize = 56 * 1024;

/// Largest trickle ICE candidate line (an `a=candidate` line is under 300 bytes in practice).
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// Largest `sdp_mid` or `username_fragment` of a candidate, and largest `mid` of a publication.
pub const MAX_MID_BYTES: usize = 64;

/// Largest access token (a compact JWS). Checked by the relay's token verifier, which refuses a
/// larger one with [`crate::ErrorCode::TokenTooLarge`] before decoding it.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Largest room or participant id.
pub const MAX_ID_BYTES: usize = 128;

/// Largest token id (`jti`).
pub const MAX_JTI_BYTES: usize = 128;

/// Largest opaque E2EE envelope payload, decoded. An HPKE envelope carrying one 32-byte epoch
/// secret is about 100 bytes; the rest is room for larger key-exchange messages later.
pub const MAX_E2EE_PAYLOAD_BYTES: usize = 16 * 1024;

/// Largest identity public key, decoded: room for post-quantum hybrid keys (an X-Wing public key
/// is 1216 bytes), not only X25519's 32.
pub const MAX_IDENTITY_KEY_BYTES: usize = 2048;

/// Largest member attestation (signed by the app's backend), decoded.
pub const MAX_ATTESTATION_BYTES: usize = 2048;

/// Largest human-readable `message` of an `error`.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

/// The most participants a `rekey` event names as having asked for it (`by`): one per member
/// of the largest room a relay may be configured for.
pub const MAX_REKEY_REQUESTERS: usize = 1024;

/// Most entries in an `e2ee_stats` report's `dropped` map (there are 11 known reasons).
pub const MAX_E2EE_STATS_REASONS: usize = 16;

/// Longest reason name in an `e2ee_stats` report's `dropped` map.
pub const MAX_E2EE_STATS_REASON_BYTES: usize = 32;
