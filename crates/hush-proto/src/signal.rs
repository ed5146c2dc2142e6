//! WebRTC negotiation payloads, carried both ways: the client offers when it adds tracks, the
//! relay offers when it adds other participants' tracks to the client's connection.

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_CANDIDATE_BYTES, MAX_MID_BYTES, MAX_SDP_BYTES};
use crate::message::FieldTooLarge;

/// A session description (RFC 8866 text), as in `offer` and `answer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sdp {
    /// The SDP text.
    pub sdp: String,
}

impl Sdp {
    pub(crate) fn check(&self) -> Result<(), FieldTooLarge> {
        FieldTooLarge::check("sdp", self.sdp.len(), MAX_SDP_BYTES)
    }
}

/// A trickle ICE candidate (RFC 8838). An empty `candidate` marks the end of candidates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// The `candidate:` attribute line, without `a=`.
    pub candidate: String,
    /// The media stream identification tag the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

impl Candidate {
    pub(crate) fn check(&self) -> Result<(), FieldTooLarge> {
        FieldTooLarge::check("candidate", self.candidate.len(), MAX_CANDIDATE_BYTES)?;
        let mid = self.sdp_mid.as_deref().map_or(0, str::len);
        FieldTooLarge::check("sdp_mid", mid, MAX_MID_BYTES)?;
        let ufrag = self.username_fragment.as_deref().map_or(0, str::len);
        FieldTooLarge::check("username_fragment", ufrag, MAX_MID_BYTES)
    }
}
