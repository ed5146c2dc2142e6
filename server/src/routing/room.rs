//! One room: members, publications and subscriptions, and the operations that touch only it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hush_proto::{
    ErrorCode, Grants, LeaveReason, MemberRole, OpaqueBytes, ParticipantId, ParticipantInfo,
    ParticipantJoined, ParticipantLeft, RekeyEvent, RoomId, RoomInstance, SenderIndex,
    ServerMessage, Source, TrackId, TrackInfo, TrackUnpublished,
};

use super::config::{RelayConfig, RoomSettings};
use super::gate::MergeGate;
use super::outbox::{Outbox, Refusal};
use super::output::{Audit, ConnId, Output};
use super::recording::{ActiveRecording, RecorderIdentity};

/// A member of a room: what the others are told about it, and its connection.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) info: ParticipantInfo,
    pub(super) conn: ConnId,
}

/// What a newcomer brings.
pub(super) struct Newcomer {
    pub(super) id: ParticipantId,
    pub(super) conn: ConnId,
    pub(super) identity_key: OpaqueBytes,
    pub(super) attestation: Option<OpaqueBytes>,
    pub(super) grants: Grants,
    pub(super) role: MemberRole,
}

/// A published track (as the room's members know it) and who receives it.
#[derive(Debug)]
pub(super) struct Publication {
    pub(super) info: TrackInfo,
    pub(super) publisher: ConnId,
    pub(super) subscribers: BTreeSet<ConnId>,
    pub(super) keyframe: MergeGate,
    /// Subscribers whose first keyframe request went through (later ones are rate limited).
    pub(super) keyframe_started: BTreeSet<ConnId>,
}

/// A room. Members are kept oldest first.
#[derive(Debug)]
pub(super) struct Room {
    pub(super) id: RoomId,
    /// This life of the room: new each time the id is created again after being forgotten.
    pub(super) instance: RoomInstance,
    pub(super) settings: RoomSettings,
    pub(super) members: Vec<Member>,
    pub(super) publications: Vec<Publication>,
    /// The next sender index to hand out; never goes back.
    pub(super) next_sender_index: u32,
    /// The membership sequence number of the last join or leave.
    seq: u64,
    next_track: u64,
    pub(super) locked: bool,
    pub(super) closed_at: Option<Instant>,
    pub(super) empty_since: Option<Instant>,
    /// Rekey requests: at most one rekey point per interval, the rest merged.
    pub(super) rekey: MergeGate,
    /// Who asked for the pending rekey point (each once, oldest first).
    rekey_by: Vec<ParticipantId>,
    /// The recorder identity the app backend set, if any.
    pub(super) recorder: Option<RecorderIdentity>,
    /// The recording in progress, if any (its recorder is in `members`).
    pub(super) recording: Option<ActiveRecording>,
    /// When a recording last started ([`super::recording::RECORDING_RESTART_INTERVAL`]).
    pub(super) recording_started_at: Option<Instant>,
    /// Admissions per participant id in the last minute.
    pub(super) admissions: super::admissions::Admissions,
}

impl Room {
    pub(super) fn new(
        id: RoomId,
        instance: RoomInstance,
        settings: RoomSettings,
        now: Instant,
    ) -> Self {
        Self {
            id,
            instance,
            settings,
            members: Vec::new(),
            publications: Vec::new(),
            next_sender_index: 0,
            seq: 0,
            next_track: 0,
            locked: false,
            closed_at: None,
            empty_since: Some(now),
            rekey: MergeGate::default(),
            rekey_by: Vec::new(),
            recorder: None,
            recording: None,
            recording_started_at: None,
            admissions: super::admissions::Admissions::default(),
        }
    }

    /// The members that are participants (everyone but a recorder).
    pub(super) fn participants(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(|m| m.info.role == MemberRole::Participant)
    }

    pub(super) fn member(&self, id: &ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| m.info.id == *id)
    }

    pub(super) fn member_by_conn(&self, conn: ConnId) -> Option<&Member> {
        self.members.iter().find(|m| m.conn == conn)
    }

    pub(super) fn publication_mut(&mut self, track: TrackId) -> Option<&mut Publication> {
        self.publications.iter_mut().find(|p| p.info.track == track)
    }

    /// The participant limit: the room's own, capped by the server's.
    pub(super) fn capacity(&self, config: &RelayConfig) -> u32 {
        let own = self.settings.max_participants.unwrap_or(u32::MAX);
        own.min(config.max_participants_per_room)
    }

    /// When the room may be forgotten, if it is empty or closed.
    pub(super) fn expires_at(&self, config: &RelayConfig) -> Option<Instant> {
        if let Some(closed) = self.closed_at {
            return closed.checked_add(config.closed_room_retention);
        }
        let timeout: Duration = self
            .settings
            .empty_timeout
            .unwrap_or(config.empty_room_timeout);
        self.empty_since
            .and_then(|since| since.checked_add(timeout))
    }

    /// Whether `id` may join now. Returns the connection of the member it replaces, if it is
    /// already in the room (a reconnect; allowed in a locked room, since it is no newcomer).
    pub(super) fn check_admission(
        &self,
        id: &ParticipantId,
        config: &RelayConfig,
    ) -> Result<Option<ConnId>, Refusal> {
        if self.closed_at.is_some() {
            return Err(Refusal::new(ErrorCode::RoomClosed, "the room was closed"));
        }
        if self
            .member(id)
            .is_some_and(|m| m.info.role != MemberRole::Participant)
        {
            return Err(Refusal::new(
                ErrorCode::AlreadyJoined,
                "this id is the room's recorder",
            ));
        }
        let replaces = self.member(id).map(|m| m.conn);
        if self.locked && replaces.is_none() {
            return Err(Refusal::new(ErrorCode::RoomLocked, "the room is locked"));
        }
        // The recorder takes no participant's place.
        let others = self.participants().count() - usize::from(replaces.is_some());
        if others >= self.capacity(config) as usize {
            return Err(Refusal::new(ErrorCode::RoomFull, "the room is full"));
        }
        if self.next_sender_index >= config.max_sender_indexes {
            return Err(Refusal::new(
                ErrorCode::RoomFull,
                "the room has used all its sender indexes",
            ));
        }
        Ok(replaces)
    }

    /// Adds a member (after [`Room::check_admission`]): `joined` to it, `participant_joined`
    /// to the others, and every published track to it if it subscribes.
    pub(super) fn admit(&mut self, newcomer: Newcomer, out: &mut Outbox) {
        let sender_index = SenderIndex(self.next_sender_index);
        self.next_sender_index = self.next_sender_index.saturating_add(1);
        self.seq += 1;
        let member = Member {
            info: ParticipantInfo {
                id: newcomer.id,
                sender_index,
                join_seq: self.seq,
                identity_key: newcomer.identity_key,
                attestation: newcomer.attestation,
                grants: newcomer.grants,
                role: newcomer.role,
            },
            conn: newcomer.conn,
        };
        let joined = hush_proto::Joined {
            you: member.info.id.clone(),
            sender_index,
            join_seq: member.info.join_seq,
            room: self.id.clone(),
            room_instance: Some(self.instance),
            locked: self.locked,
            grants: member.info.grants.clone(),
            participants: self.members.iter().map(|m| m.info.clone()).collect(),
            tracks: self.publications.iter().map(|p| p.info.clone()).collect(),
            ice_servers: Vec::new(),
        };
        out.send(member.conn, ServerMessage::Joined(joined));
        let event = ServerMessage::ParticipantJoined(ParticipantJoined {
            seq: self.seq,
            participant: member.info.clone(),
        });
        self.broadcast(out, Some(member.conn), &event);
        if member.info.grants.subscribe {
            for publication in &mut self.publications {
                publication.subscribers.insert(member.conn);
                out.push(Output::StartForward {
                    publisher: publication.publisher,
                    track: publication.info.track,
                    subscriber: member.conn,
                });
            }
        }
        self.members.push(member);
        self.empty_since = None;
    }

    /// Removes the member on `conn`: its tracks are unpublished, its subscriptions end, and
    /// (if `announce`) the others get `participant_left`. The caller deals with its connection.
    pub(super) fn remove_member(
        &mut self,
        now: Instant,
        conn: ConnId,
        reason: LeaveReason,
        announce: bool,
        out: &mut Outbox,
    ) -> Option<Member> {
        let index = self.members.iter().position(|m| m.conn == conn)?;
        let member = self.members.remove(index);
        while let Some(index) = self.publications.iter().position(|p| p.publisher == conn) {
            self.drop_publication(index, announce, out);
        }
        for publication in &mut self.publications {
            publication.keyframe_started.remove(&conn);
            if publication.subscribers.remove(&conn) {
                out.push(Output::StopForward {
                    publisher: publication.publisher,
                    track: publication.info.track,
                    subscriber: conn,
                });
            }
        }
        self.seq += 1;
        if announce {
            let event = ServerMessage::ParticipantLeft(ParticipantLeft {
                seq: self.seq,
                participant: member.info.id.clone(),
                sender_index: member.info.sender_index,
                reason,
            });
            self.broadcast(out, None, &event);
        }
        if self.members.is_empty() {
            self.empty_since = Some(now);
        }
        Some(member)
    }

    /// Publishes `source` for the member on `conn` (grants already checked): every other
    /// subscribing member starts receiving it.
    pub(super) fn publish(
        &mut self,
        conn: ConnId,
        source: Source,
        mid: Option<String>,
        out: &mut Outbox,
    ) -> Result<TrackId, Refusal> {
        if self
            .publications
            .iter()
            .any(|p| p.publisher == conn && p.info.source == source)
        {
            return Err(Refusal::new(
                ErrorCode::AlreadyPublished,
                "you already publish this source",
            ));
        }
        let track = TrackId(self.next_track);
        let Some(member) = self.member_by_conn(conn) else {
            return Err(Refusal::new(ErrorCode::InternalError, "internal error"));
        };
        let subscribers: BTreeSet<ConnId> = self
            .members
            .iter()
            .filter(|m| m.conn != conn && m.info.grants.subscribe)
            .map(|m| m.conn)
            .collect();
        let publication = Publication {
            info: TrackInfo {
                track,
                participant: member.info.id.clone(),
                sender_index: member.info.sender_index,
                source,
            },
            publisher: conn,
            subscribers,
            keyframe: MergeGate::default(),
            keyframe_started: BTreeSet::new(),
        };
        self.next_track += 1;
        out.push(Output::Published {
            publisher: conn,
            track,
            source,
            mid,
        });
        self.broadcast(
            out,
            None,
            &ServerMessage::TrackPublished(publication.info.clone()),
        );
        for &subscriber in &publication.subscribers {
            out.push(Output::StartForward {
                publisher: conn,
                track,
                subscriber,
            });
        }
        self.publications.push(publication);
        Ok(track)
    }

    /// Unpublishes the track of `source` published on `conn`; tells everyone if `announce`.
    pub(super) fn unpublish(
        &mut self,
        conn: ConnId,
        source: Source,
        announce: bool,
        out: &mut Outbox,
    ) -> Result<TrackId, Refusal> {
        let Some(index) = self
            .publications
            .iter()
            .position(|p| p.publisher == conn && p.info.source == source)
        else {
            return Err(Refusal::new(
                ErrorCode::NotPublished,
                "no track from this source",
            ));
        };
        Ok(self.drop_publication(index, announce, out))
    }

    /// Removes the publication at `index`: its subscribers stop receiving it.
    fn drop_publication(&mut self, index: usize, announce: bool, out: &mut Outbox) -> TrackId {
        let publication = self.publications.remove(index);
        let conn = publication.publisher;
        let source = publication.info.source;
        for &subscriber in &publication.subscribers {
            out.push(Output::StopForward {
                publisher: conn,
                track: publication.info.track,
                subscriber,
            });
        }
        out.push(Output::Unpublished {
            publisher: conn,
            track: publication.info.track,
        });
        if announce {
            let event = ServerMessage::TrackUnpublished(TrackUnpublished {
                track: publication.info.track,
                participant: publication.info.participant,
                source,
            });
            self.broadcast(out, None, &event);
        }
        publication.info.track
    }

    /// A member asks for a rekey: a rekey point now, or merged into the one due at the end of
    /// the interval.
    pub(super) fn request_rekey(
        &mut self,
        now: Instant,
        interval: Duration,
        by: &ParticipantId,
        out: &mut Outbox,
    ) {
        // Bounded by the room: only members ask, each named once.
        if !self.rekey_by.contains(by) {
            self.rekey_by.push(by.clone());
        }
        if self.rekey.request(now, interval) {
            self.place_rekey(out);
        }
    }

    /// Places a merged rekey point if one is due at `now`.
    pub(super) fn poll_rekey(&mut self, now: Instant, interval: Duration, out: &mut Outbox) {
        if self.rekey.poll(now, interval) {
            self.place_rekey(out);
        }
    }

    /// A rekey point: the next membership sequence number, to every member (the requester too).
    /// With nobody left to tell (everyone left while it was pending) the point is dropped; the
    /// next newcomer's join is a new epoch anyway.
    fn place_rekey(&mut self, out: &mut Outbox) {
        let by = core::mem::take(&mut self.rekey_by);
        if self.members.is_empty() || self.closed_at.is_some() {
            return;
        }
        self.seq += 1;
        let event = ServerMessage::Rekey(RekeyEvent { seq: self.seq, by });
        self.broadcast(out, None, &event);
        out.push(Output::Audit(Audit::Rekey {
            room: self.id.clone(),
            seq: self.seq,
        }));
    }

    /// Sends `message` to every member but `except`.
    pub(super) fn broadcast(
        &self,
        out: &mut Outbox,
        except: Option<ConnId>,
        message: &ServerMessage,
    ) {
        for member in &self.members {
            if Some(member.conn) != except {
                out.send(member.conn, message.clone());
            }
        }
    }

    /// Starts or stops forwarding `track` to the member on `conn`.
    pub(super) fn set_subscribed(
        &mut self,
        conn: ConnId,
        track: TrackId,
        subscribed: bool,
        out: &mut Outbox,
    ) -> Result<(), Refusal> {
        let Some(publication) = self.publication_mut(track).filter(|p| p.publisher != conn) else {
            return Err(Refusal::new(
                ErrorCode::UnknownTrack,
                "no such track in your room",
            ));
        };
        let publisher = publication.publisher;
        if subscribed {
            if publication.subscribers.insert(conn) {
                out.push(Output::StartForward {
                    publisher,
                    track,
                    subscriber: conn,
                });
            }
        } else if publication.subscribers.remove(&conn) {
            publication.keyframe_started.remove(&conn);
            out.push(Output::StopForward {
                publisher,
                track,
                subscriber: conn,
            });
        }
        Ok(())
    }

    /// The membership sequence number of the last join or leave.
    #[cfg(test)]
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }
}
