//! hush-proto's relay-named participants and ids as hush-keys' members and ids, and back.
//!
//! hush-proto ids are 1 to [`hush_proto::limits::MAX_ID_BYTES`] printable ASCII characters, a subset of what hush-keys
//! accepts (1 to [`hush_keys::MAX_ID_LEN`] bytes), so an id the relay's message decoded with
//! always converts; the checks stay because a refusal is cheaper than a wrong assumption.

use hush_keys::{Attestation, IdentityPublicKey, Member, MembershipError};
use hush_proto::ParticipantInfo;

use crate::refusal::Refusal;

// Every hush-proto id fits a hush-keys id (see the module docs).
const _: () = assert!(hush_proto::limits::MAX_ID_BYTES <= hush_keys::MAX_ID_LEN);

/// A relay-named participant id as a key-exchange id.
pub fn participant_id(id: &hush_proto::ParticipantId) -> Result<hush_keys::ParticipantId, Refusal> {
    hush_keys::ParticipantId::new(id.as_str()).map_err(|_| Refusal::BadId)
}

/// A key-exchange participant id as the relay's (for addressing `e2ee` messages).
pub fn proto_id(id: &hush_keys::ParticipantId) -> Option<hush_proto::ParticipantId> {
    let s = core::str::from_utf8(id.as_bytes()).ok()?;
    hush_proto::ParticipantId::new(s).ok()
}

/// A relay-named room id as a key-exchange room id.
pub fn room_id(id: &hush_proto::RoomId) -> Result<hush_keys::RoomId, Refusal> {
    hush_keys::RoomId::new(id.as_str()).map_err(|_| Refusal::BadId)
}

/// A relay-assigned sender index, if the KID layout has room for it.
pub fn sender_index(i: hush_proto::SenderIndex) -> Result<hush_keys::SenderIndex, Refusal> {
    hush_keys::SenderIndex::new(i.0).ok_or(Refusal::SenderIndexOutOfRange)
}

/// A participant the relay announced, as a member, or why it cannot be one.
pub fn member(p: &ParticipantInfo) -> Result<Member, MembershipError> {
    let participant = participant_id(&p.id).map_err(|_| MembershipError::BadIdentityKey)?;
    let identity = IdentityPublicKey::from_slice(p.identity_key.as_bytes())
        .map_err(|_| MembershipError::BadIdentityKey)?;
    let sender_index =
        sender_index(p.sender_index).map_err(|_| MembershipError::SenderIndexOutOfRange)?;
    let attestation = match &p.attestation {
        Some(a) => Some(Attestation::from_bytes(a.as_bytes())?),
        None => None,
    };
    Ok(Member {
        participant,
        sender_index,
        join_seq: p.join_seq,
        identity,
        attestation,
        role: match p.role {
            hush_proto::MemberRole::Recorder => hush_keys::Role::Recorder,
            _ => hush_keys::Role::Participant,
        },
    })
}
