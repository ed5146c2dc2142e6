//! Offer/answer with the client, following the contract in the crate's signaling docs: the
//! client offers what it sends, the relay offers what it forwards, and the relay is the
//! impolite peer (on glare the client rolls back). The relay's first offer waits briefly for the
//! client's ([`crate::media::MediaOptions::first_offer_hold`]) unless the client said it
//! publishes nothing; answers keep the DTLS role of the running transport
//! ([`crate::media::sdp`]); candidates name the bundle's mid.

use hush_proto::{Candidate, ErrorCode, Sdp, ServerMessage};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

use super::{Peer, PeerFailed};
use crate::media::sdp::{answer_setup, first_mid, role_from_client_answer, with_setup};

/// Client candidates kept while no remote description is set.
const MAX_EARLY_CANDIDATES: usize = 64;

/// Client candidates taken per remote description (a browser sends a handful; each one is a
/// pair the ICE agent checks with STUN requests to the address it names): past it they are
/// refused, so a client cannot grow the agent's candidate list, or have the relay probe
/// addresses, without bound.
pub(super) const MAX_REMOTE_CANDIDATES: usize = 64;

impl Peer {
    /// Offers if the connection is stable, else remembers to offer after the current exchange.
    pub(super) async fn negotiate(&mut self) -> Result<(), PeerFailed> {
        if self.offer_outstanding || (self.hold_first_offer && !self.has_remote) {
            self.needs_offer = true;
            return Ok(());
        }
        self.needs_offer = false;
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(|_| PeerFailed("create_offer"))?;
        let sdp = offer.sdp.clone();
        self.pc
            .set_local_description(offer)
            .await
            .map_err(|_| PeerFailed("set_local_description(offer)"))?;
        self.offer_outstanding = true;
        self.note_bundle_mid(&sdp);
        self.send(ServerMessage::Offer(Sdp { sdp }));
        Ok(())
    }

    /// Remembers the first m-section's mid of the first description: it names the bundled
    /// transport for the rest of the session.
    pub(super) fn note_bundle_mid(&mut self, sdp: &str) {
        if self.bundle_mid.is_none() {
            self.bundle_mid = first_mid(sdp);
        }
    }

    pub(super) async fn client_offer(&mut self, sdp: Sdp) -> Result<(), PeerFailed> {
        self.hold_first_offer = false;
        if self.offer_outstanding {
            // Glare: the relay is impolite; the client rolls back, answers ours, offers again.
            return Ok(());
        }
        let Ok(offer) = RTCSessionDescription::offer(sdp.sdp) else {
            self.refuse(ErrorCode::MalformedMessage, "offer: not a valid SDP offer");
            return Ok(());
        };
        if let Err(err) = self.pc.set_remote_description(offer).await {
            tracing::debug!(%err, "client offer refused");
            self.refuse(ErrorCode::MalformedMessage, "offer: not a valid SDP offer");
            return Ok(());
        }
        self.has_remote = true;
        self.flush_early_candidates().await;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|_| PeerFailed("create_answer"))?;
        let mut sdp = answer.sdp.clone();
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|_| PeerFailed("set_local_description(answer)"))?;
        match self.dtls_role {
            // A renegotiation: the client gets the role the transport runs with. Only the copy
            // we send is corrected: webrtc-rs takes no SDP but the one it created as its local
            // answer, and it reads the role only on the first exchange (see `super::sdp`).
            Some(role) if answer_setup(&sdp) != Some(role) => sdp = with_setup(&sdp, role),
            Some(_) => {}
            None => self.dtls_role = answer_setup(&sdp),
        }
        self.note_bundle_mid(&sdp);
        self.negotiated.send_modify(|n| *n += 1);
        self.send(ServerMessage::Answer(Sdp { sdp }));
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    pub(super) async fn client_answer(&mut self, sdp: Sdp) -> Result<(), PeerFailed> {
        if !self.offer_outstanding {
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: no offer is outstanding",
            );
            return Ok(());
        }
        let client_role = role_from_client_answer(&sdp.sdp);
        let Ok(answer) = RTCSessionDescription::answer(sdp.sdp) else {
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: not a valid SDP answer",
            );
            return Ok(());
        };
        if let Err(err) = self.pc.set_remote_description(answer).await {
            tracing::debug!(%err, "client answer refused");
            self.refuse(
                ErrorCode::MalformedMessage,
                "answer: not a valid SDP answer",
            );
            return Ok(());
        }
        self.offer_outstanding = false;
        self.has_remote = true;
        if self.dtls_role.is_none() {
            self.dtls_role = client_role;
        }
        self.negotiated.send_modify(|n| *n += 1);
        self.flush_early_candidates().await;
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }

    pub(super) async fn client_candidate(&mut self, c: Candidate) {
        if c.candidate.is_empty() {
            return; // end of candidates
        }
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        if !self.has_remote {
            if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
                self.early_candidates.push(init);
            }
            return;
        }
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            self.refuse(
                ErrorCode::MalformedMessage,
                "candidate: too many candidates for this description",
            );
            return;
        }
        self.remote_candidates += 1;
        if let Err(err) = self.pc.add_ice_candidate(init).await {
            tracing::debug!(%err, "client candidate refused");
            self.refuse(
                ErrorCode::MalformedMessage,
                "candidate: not a valid ICE candidate",
            );
        }
    }

    /// Called after each remote description is set: the candidate count starts again, with
    /// those that came early.
    pub(super) async fn flush_early_candidates(&mut self) {
        self.remote_candidates = self.early_candidates.len();
        for init in std::mem::take(&mut self.early_candidates) {
            let _ = self.pc.add_ice_candidate(init).await;
        }
    }

    /// A candidate of ours for the client.
    pub(super) fn local_candidate(&self, init: RTCIceCandidateInit) {
        // webrtc-rs reports "" for every candidate's mid, which browsers refuse; with BUNDLE the
        // first m-section stands for the whole transport. Before any description the mid is
        // unknown and the index alone says it.
        self.send(ServerMessage::Candidate(Candidate {
            candidate: init.candidate,
            sdp_mid: self.bundle_mid.clone(),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }));
    }

    /// The first-offer hold is over: offer now if something waits for it.
    pub(super) async fn hold_over(&mut self) -> Result<(), PeerFailed> {
        self.hold_first_offer = false;
        if self.needs_offer {
            self.negotiate().await?;
        }
        Ok(())
    }
}
