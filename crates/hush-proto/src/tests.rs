//! Round trips and refusals for every message type.

use crate::limits::*;
use crate::*;

fn pid(s: &str) -> ParticipantId {
    ParticipantId::new(s).unwrap()
}

fn info(id: &str, index: u32) -> ParticipantInfo {
    ParticipantInfo {
        id: pid(id),
        sender_index: SenderIndex(index),
        join_seq: u64::from(index) + 1,
        identity_key: OpaqueBytes::new([7u8; 32]),
        attestation: None,
        grants: Grants {
            publish: true,
            subscribe: true,
            ..Grants::default()
        },
        role: Default::default(),
    }
}

fn every_client_message() -> Vec<ClientMessage> {
    let track = TrackRef { track: TrackId(3) };
    vec![
        ClientMessage::Join(Join {
            token: AccessToken::new("a.b.c"),
            room: Some(RoomId::new("r1").unwrap()),
            identity_key: OpaqueBytes::new([1u8; 32]),
            attestation: Some(OpaqueBytes::new([2u8; 64])),
            offers_first: None,
        }),
        ClientMessage::Leave,
        ClientMessage::Offer(Sdp {
            sdp: "v=0\r\n".into(),
        }),
        ClientMessage::Answer(Sdp {
            sdp: "v=0\r\n".into(),
        }),
        ClientMessage::Candidate(Candidate {
            candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }),
        ClientMessage::Publish(Publish {
            source: Source::Camera,
            mid: Some("1".into()),
        }),
        ClientMessage::Unpublish(Unpublish {
            source: Source::Screen,
        }),
        ClientMessage::Subscribe(track),
        ClientMessage::Unsubscribe(track),
        ClientMessage::E2ee(E2eeTo {
            to: pid("bob"),
            payload: OpaqueBytes::new(vec![9; 100]),
        }),
        ClientMessage::E2eeBroadcast(E2eeBroadcast {
            payload: OpaqueBytes::new(vec![4; 62]),
        }),
        ClientMessage::KeyframeRequest(track),
        ClientMessage::VideoSize(VideoSize {
            track: TrackId(3),
            width: 320,
            height: 180,
        }),
        ClientMessage::Rekey(RekeyRequest {
            reason: Some(RekeyReason::UsageLimit),
        }),
        ClientMessage::ForceDisconnect(ForceDisconnect {
            participant: pid("bob"),
        }),
        ClientMessage::ForceUnpublish(ForceUnpublish {
            participant: pid("bob"),
            source: Source::Microphone,
        }),
        ClientMessage::LockRoom(LockRoom { locked: true }),
        ClientMessage::CloseRoom,
        ClientMessage::Record(Record {
            action: RecordAction::Start,
        }),
        ClientMessage::Ping(Ping { seq: 42 }),
        ClientMessage::E2eeStats(E2eeStats {
            dropped: [("auth_failed".to_string(), 3), ("replayed".to_string(), 1)].into(),
            decrypted: 900,
            epoch: Some(4),
            last: true,
        }),
    ]
}

fn every_server_message() -> Vec<ServerMessage> {
    vec![
        ServerMessage::Joined(Joined {
            you: pid("alice"),
            sender_index: SenderIndex(2),
            join_seq: 5,
            room: RoomId::new("r1").unwrap(),
            room_instance: Some(RoomInstance([0xa5; 16])),
            locked: false,
            grants: Grants {
                sources: Some(vec![Source::Camera]),
                ..Grants::default()
            },
            participants: vec![info("bob", 0), info("carol", 1)],
            tracks: vec![TrackInfo {
                track: TrackId(0),
                participant: pid("bob"),
                sender_index: SenderIndex(0),
                source: Source::Microphone,
            }],
            ice_servers: vec![IceServer {
                urls: vec!["turn:turn.example:3478?transport=tcp".into()],
                username: Some("1700000000:alice".into()),
                credential: Some("c2VjcmV0".into()),
            }],
        }),
        ServerMessage::ParticipantJoined(ParticipantJoined {
            seq: 6,
            participant: ParticipantInfo {
                role: MemberRole::Recorder,
                ..info("dan", 3)
            },
        }),
        ServerMessage::ParticipantLeft(ParticipantLeft {
            seq: 7,
            participant: pid("dan"),
            sender_index: SenderIndex(3),
            reason: LeaveReason::Removed,
        }),
        ServerMessage::Rekey(RekeyEvent {
            seq: 8,
            by: vec![pid("alice")],
        }),
        ServerMessage::TrackPublished(TrackInfo {
            track: TrackId(1),
            participant: pid("bob"),
            sender_index: SenderIndex(0),
            source: Source::Camera,
        }),
        ServerMessage::TrackUnpublished(TrackUnpublished {
            track: TrackId(1),
            participant: pid("bob"),
            source: Source::Camera,
        }),
        ServerMessage::Offer(Sdp {
            sdp: "v=0\r\n".into(),
        }),
        ServerMessage::Answer(Sdp {
            sdp: "v=0\r\n".into(),
        }),
        ServerMessage::Candidate(Candidate {
            candidate: String::new(),
            sdp_mid: None,
            sdp_m_line_index: None,
            username_fragment: Some("abcd".into()),
        }),
        ServerMessage::E2ee(E2eeFrom {
            from: pid("bob"),
            payload: OpaqueBytes::new(vec![1, 2]),
        }),
        ServerMessage::KeyframeRequest(TrackRef { track: TrackId(1) }),
        ServerMessage::RoomLocked(LockRoom { locked: true }),
        ServerMessage::Recording(RecordingStatus {
            active: false,
            by: Some(pid("alice")),
            reason: Some(RecordingEnd::DiskFull),
        }),
        ServerMessage::Pong(Ping { seq: 42 }),
        ServerMessage::error(ErrorCode::RoomFull, "room is full", true),
    ]
}

#[test]
fn every_client_message_round_trips() {
    let all = every_client_message();
    assert_eq!(all.len(), ClientMessage::TYPES.len(), "one sample per type");
    for msg in all {
        let text = msg.encode();
        assert!(text.starts_with(r#"{"v":1,"type":""#), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["type"], msg.type_name());
        assert!(ClientMessage::TYPES.contains(&msg.type_name()));
        assert_eq!(ClientMessage::decode(&text).unwrap(), msg, "{text}");
    }
}

#[test]
fn every_server_message_round_trips() {
    let all = every_server_message();
    assert_eq!(all.len(), ServerMessage::TYPES.len(), "one sample per type");
    for msg in all {
        let text = msg.encode();
        assert!(text.starts_with(r#"{"v":1,"type":""#), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["type"], msg.type_name());
        assert!(ServerMessage::TYPES.contains(&msg.type_name()));
        assert_eq!(ServerMessage::decode(&text).unwrap(), msg, "{text}");
    }
}

#[test]
fn every_message_type_is_in_the_crate_docs() {
    let docs = include_str!("lib.rs");
    for t in ClientMessage::TYPES.iter().chain(ServerMessage::TYPES) {
        assert!(
            docs.contains(&format!("| `{t}`")) || docs.contains(&format!("/ `{t}`")),
            "{t}"
        );
    }
}

#[test]
fn wire_form_is_as_documented() {
    let text = ClientMessage::E2ee(E2eeTo {
        to: pid("bob"),
        payload: OpaqueBytes::new([0xff]),
    })
    .encode();
    assert_eq!(text, r#"{"v":1,"type":"e2ee","to":"bob","payload":"/w=="}"#);
    let text = ClientMessage::E2eeBroadcast(E2eeBroadcast {
        payload: OpaqueBytes::new([0xff]),
    })
    .encode();
    assert_eq!(text, r#"{"v":1,"type":"e2ee_broadcast","payload":"/w=="}"#);
    let text = ClientMessage::Leave.encode();
    assert_eq!(text, r#"{"v":1,"type":"leave"}"#);
}

#[test]
fn rekey_has_an_optional_reason() {
    // No body at all: the form the key layer sends.
    let msg = ClientMessage::decode(r#"{"v":1,"type":"rekey"}"#).unwrap();
    assert_eq!(msg, ClientMessage::Rekey(RekeyRequest::default()));
    assert_eq!(msg.encode(), r#"{"v":1,"type":"rekey"}"#);
    let msg = ClientMessage::decode(r#"{"v":1,"type":"rekey","reason":"timer"}"#).unwrap();
    assert_eq!(
        msg,
        ClientMessage::Rekey(RekeyRequest {
            reason: Some(RekeyReason::Timer)
        })
    );
    // A reason from a newer client is accepted as `other`, not refused.
    let msg = ClientMessage::decode(r#"{"v":1,"type":"rekey","reason":"solar_flare"}"#).unwrap();
    assert_eq!(
        msg,
        ClientMessage::Rekey(RekeyRequest {
            reason: Some(RekeyReason::Other)
        })
    );
    // A mistyped one is refused.
    for text in [
        r#"{"v":1,"type":"rekey","reason":7}"#,
        r#"{"v":1,"type":"rekey","reason":{"timer":true}}"#,
    ] {
        assert_eq!(refused(text), ErrorCode::MalformedMessage, "{text}");
    }
    // The relay's event carries the sequence number only.
    let text = ServerMessage::Rekey(RekeyEvent {
        seq: 12,
        by: Vec::new(),
    })
    .encode();
    assert_eq!(text, r#"{"v":1,"type":"rekey","seq":12}"#);
    assert!(ServerMessage::decode(r#"{"v":1,"type":"rekey"}"#).is_err());
}

#[test]
fn room_instance_is_16_bytes_of_base64() {
    let j = |instance: &str| {
        format!(
            r#"{{"v":1,"type":"joined","you":"a","sender_index":0,"join_seq":1,"room":"r","room_instance":{instance},"locked":false,"grants":{{}},"participants":[],"tracks":[]}}"#
        )
    };
    let ok = ServerMessage::decode(&j(r#""AAECAwQFBgcICQoLDA0ODw==""#)).unwrap();
    let ServerMessage::Joined(joined) = ok else {
        panic!("not joined")
    };
    let want: [u8; 16] = core::array::from_fn(|i| i as u8);
    assert_eq!(joined.room_instance, Some(RoomInstance(want)));
    for bad in [
        r#""AAECAwQFBgcICQoLDA0O""#,
        r#""not base64!""#,
        "16",
        r#""AAECAwQFBgcICQoLDA0ODxA=""#,
    ] {
        assert!(ServerMessage::decode(&j(bad)).is_err(), "{bad}");
    }
    // Absent (an older relay): still a valid `joined`.
    let old = r#"{"v":1,"type":"joined","you":"a","sender_index":0,"join_seq":1,"room":"r","locked":false,"grants":{},"participants":[],"tracks":[]}"#;
    assert!(
        matches!(ServerMessage::decode(old), Ok(ServerMessage::Joined(j)) if j.room_instance.is_none())
    );
    assert_eq!(
        format!("{:?}", RoomInstance(want)),
        "RoomInstance(00010203..)"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let msg = ClientMessage::decode(r#"{"v":1,"type":"ping","seq":1,"later":"field"}"#).unwrap();
    assert_eq!(msg, ClientMessage::Ping(Ping { seq: 1 }));
    let msg = ClientMessage::decode(r#"{"type":"leave","extra":[1],"v":1}"#).unwrap();
    assert_eq!(msg, ClientMessage::Leave);
}

fn refused(text: &str) -> ErrorCode {
    ClientMessage::decode(text).unwrap_err().code()
}

#[test]
fn unknown_or_missing_version_is_refused() {
    assert_eq!(
        refused(r#"{"v":2,"type":"ping","seq":1}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        refused(r#"{"v":0,"type":"ping","seq":1}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        refused(r#"{"v":"1","type":"ping","seq":1}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        refused(r#"{"v":1.5,"type":"ping","seq":1}"#),
        ErrorCode::UnsupportedVersion
    );
    assert_eq!(
        refused(r#"{"type":"ping","seq":1}"#),
        ErrorCode::MalformedMessage
    );
    // The version is checked before the type: a v2 message may have types v1 does not know.
    assert_eq!(
        refused(r#"{"v":2,"type":"hologram"}"#),
        ErrorCode::UnsupportedVersion
    );
}

#[test]
fn unknown_or_missing_type_is_refused() {
    assert_eq!(
        refused(r#"{"v":1,"type":"hologram"}"#),
        ErrorCode::UnknownMessageType
    );
    // A relay-to-client type is not a client message.
    assert_eq!(
        refused(r#"{"v":1,"type":"joined"}"#),
        ErrorCode::UnknownMessageType
    );
    assert_eq!(
        refused(r#"{"v":1,"type":"JOIN"}"#),
        ErrorCode::UnknownMessageType
    );
    assert_eq!(refused(r#"{"v":1}"#), ErrorCode::MalformedMessage);
    assert_eq!(refused(r#"{"v":1,"type":7}"#), ErrorCode::MalformedMessage);
}

#[test]
fn missing_or_mistyped_fields_are_refused() {
    for text in [
        r#"{"v":1,"type":"join","identity_key":"AAAA"}"#,
        r#"{"v":1,"type":"join","token":"a.b.c"}"#,
        r#"{"v":1,"type":"offer"}"#,
        r#"{"v":1,"type":"e2ee","to":"bob"}"#,
        r#"{"v":1,"type":"e2ee","payload":"AAAA"}"#,
        r#"{"v":1,"type":"e2ee","to":"bob","payload":"not base64!"}"#,
        r#"{"v":1,"type":"e2ee","to":"","payload":"AAAA"}"#,
        r#"{"v":1,"type":"publish","source":"hologram"}"#,
        r#"{"v":1,"type":"ping","seq":-1}"#,
        r#"{"v":1,"type":"keyframe_request","track":"3"}"#,
        r#"{"v":1,"type":"lock_room"}"#,
        r#"{"v":1,"type":"ping","seq":1,"seq":2}"#,
    ] {
        assert_eq!(refused(text), ErrorCode::MalformedMessage, "{text}");
    }
}

#[test]
fn malformed_json_is_refused() {
    for text in [
        "",
        "null",
        "[]",
        "\"join\"",
        "{",
        r#"{"v":1,"type":"ping","seq":1"#,
        "{}x",
    ] {
        assert_eq!(refused(text), ErrorCode::MalformedMessage, "{text:?}");
    }
}

#[test]
fn oversized_messages_and_fields_are_refused() {
    let padding = "x".repeat(MAX_MESSAGE_BYTES);
    let text = format!(r#"{{"v":1,"type":"ping","seq":1,"pad":"{padding}"}}"#);
    assert_eq!(
        ClientMessage::decode(&text).unwrap_err(),
        DecodeError::TooLarge { len: text.len() }
    );
    assert_eq!(refused(&text), ErrorCode::MessageTooLarge);

    let sdp = "x".repeat(MAX_SDP_BYTES + 1);
    let err = ClientMessage::decode(&format!(r#"{{"v":1,"type":"offer","sdp":"{sdp}"}}"#));
    assert_eq!(
        err.unwrap_err(),
        DecodeError::FieldTooLarge(FieldTooLarge {
            field: "sdp",
            limit: MAX_SDP_BYTES
        })
    );

    let payload = OpaqueBytes::new(vec![0; MAX_E2EE_PAYLOAD_BYTES + 1]);
    let text = ClientMessage::E2ee(E2eeTo {
        to: pid("bob"),
        payload,
    })
    .encode();
    assert_eq!(refused(&text), ErrorCode::FieldTooLarge);
    let payload = OpaqueBytes::new(vec![0; MAX_E2EE_PAYLOAD_BYTES]);
    let text = ClientMessage::E2ee(E2eeTo {
        to: pid("bob"),
        payload,
    })
    .encode();
    assert!(ClientMessage::decode(&text).is_ok(), "exactly at the limit");
    let payload = OpaqueBytes::new(vec![0; MAX_E2EE_PAYLOAD_BYTES + 1]);
    let text = ClientMessage::E2eeBroadcast(E2eeBroadcast { payload }).encode();
    assert_eq!(refused(&text), ErrorCode::FieldTooLarge, "a broadcast too");

    let candidate = "c".repeat(MAX_CANDIDATE_BYTES + 1);
    let text = format!(r#"{{"v":1,"type":"candidate","candidate":"{candidate}"}}"#);
    assert_eq!(refused(&text), ErrorCode::FieldTooLarge);

    let key = OpaqueBytes::new(vec![0; MAX_IDENTITY_KEY_BYTES + 1]);
    let join = ClientMessage::Join(Join {
        token: AccessToken::new("t"),
        room: None,
        identity_key: key,
        attestation: None,
        offers_first: None,
    });
    assert_eq!(refused(&join.encode()), ErrorCode::FieldTooLarge);
}

#[test]
fn decode_errors_do_not_echo_input_in_display() {
    let err = ClientMessage::decode(r#"{"v":1,"type":"publish","source":"s3cr3t"}"#).unwrap_err();
    assert_eq!(err.code(), ErrorCode::MalformedMessage);
    assert!(!err.to_string().contains("s3cr3t"));
    // The sender may see what was wrong with its own message.
    assert!(err.client_message().contains("source") || err.client_message().contains("variant"));
}

#[test]
fn error_messages_are_cut_to_their_limit() {
    let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
    let ServerMessage::Error(e) = ServerMessage::error(ErrorCode::InternalError, long, false)
    else {
        panic!("not an error")
    };
    assert!(e.message.len() <= MAX_ERROR_MESSAGE_BYTES);
    assert!(e.message.chars().all(|c| c == 'é'));
}

#[test]
fn join_debug_never_shows_the_token_or_ids() {
    let join = ClientMessage::Join(Join {
        token: AccessToken::new("eyJhbGciOiJIUzI1NiJ9.claims.signature"),
        room: Some(RoomId::new("private-room").unwrap()),
        identity_key: OpaqueBytes::new([1u8; 32]),
        attestation: None,
        offers_first: None,
    });
    let debug = format!("{join:?}");
    for secret in ["eyJ", "signature", "private-room"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn e2ee_stats_wire_form_and_defaults() {
    let msg = ClientMessage::E2eeStats(E2eeStats {
        dropped: [("unknown_kid".to_string(), 2)].into(),
        decrypted: 10,
        epoch: Some(1),
        last: false,
    });
    assert_eq!(
        msg.encode(),
        r#"{"v":1,"type":"e2ee_stats","dropped":{"unknown_kid":2},"decrypted":10,"epoch":1}"#
    );
    // Every field is optional: an empty report is a valid one.
    let empty = ClientMessage::decode(r#"{"v":1,"type":"e2ee_stats"}"#).unwrap();
    assert_eq!(empty, ClientMessage::E2eeStats(E2eeStats::default()));
    // Reasons a newer client names decode (the relay counts them as `other`).
    let text = r#"{"v":1,"type":"e2ee_stats","dropped":{"made_up":1},"decrypted":0}"#;
    let ClientMessage::E2eeStats(s) = ClientMessage::decode(text).unwrap() else {
        panic!("not e2ee_stats");
    };
    assert_eq!(s.dropped.get("made_up"), Some(&1));
}

#[test]
fn e2ee_stats_limits_are_enforced() {
    // Counts are unsigned integers: negatives and fractions are malformed, not clamped.
    for bad in [
        r#"{"v":1,"type":"e2ee_stats","decrypted":-1}"#,
        r#"{"v":1,"type":"e2ee_stats","decrypted":1.5}"#,
        r#"{"v":1,"type":"e2ee_stats","dropped":{"replayed":-3}}"#,
        r#"{"v":1,"type":"e2ee_stats","dropped":["replayed"]}"#,
        r#"{"v":1,"type":"e2ee_stats","epoch":"1"}"#,
        r#"{"v":1,"type":"e2ee_stats","decrypted":18446744073709551616}"#,
    ] {
        assert_eq!(refused(bad), ErrorCode::MalformedMessage, "{bad}");
    }
    // Too many reasons, or too long a reason name: refused before anyone reads them.
    let many: BTreeMapOf = (0..=MAX_E2EE_STATS_REASONS)
        .map(|i| (format!("r{i}"), 1))
        .collect();
    let msg = ClientMessage::E2eeStats(E2eeStats {
        dropped: many,
        ..E2eeStats::default()
    });
    assert_eq!(refused(&msg.encode()), ErrorCode::FieldTooLarge);
    let long = ClientMessage::E2eeStats(E2eeStats {
        dropped: [("x".repeat(MAX_E2EE_STATS_REASON_BYTES + 1), 1)].into(),
        ..E2eeStats::default()
    });
    assert_eq!(refused(&long.encode()), ErrorCode::FieldTooLarge);
    assert!(long.check_limits().is_err());
    // At the limits: accepted.
    let most: BTreeMapOf = (0..MAX_E2EE_STATS_REASONS)
        .map(|i| (format!("{i:0>32}"), u64::MAX))
        .collect();
    let ok = ClientMessage::E2eeStats(E2eeStats {
        dropped: most,
        decrypted: u64::MAX,
        epoch: Some(u64::MAX),
        last: true,
    });
    assert_eq!(ClientMessage::decode(&ok.encode()).unwrap(), ok);
}

type BTreeMapOf = std::collections::BTreeMap<String, u64>;

#[test]
fn e2ee_drop_reasons_are_a_closed_set() {
    for r in E2eeDropReason::ALL {
        assert_eq!(E2eeDropReason::from_wire(r.as_str()), r);
    }
    for unknown in ["", "AUTH_FAILED", "auth_failed ", "made_up", "other"] {
        assert_eq!(E2eeDropReason::from_wire(unknown), E2eeDropReason::Other);
    }
    let names: std::collections::BTreeSet<_> =
        E2eeDropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), E2eeDropReason::ALL.len());
    assert!(E2eeDropReason::ALL.len() <= MAX_E2EE_STATS_REASONS);
}

/// The one drop vocabulary (issue #16): hush-frame's `DropReason` is the definition, the wire
/// reasons take its names through the one `From` impl, and the browser API's `DropReason` union
/// (web/src/protocol.ts) lists exactly the wire names. Fails when a reason exists on one side
/// only.
#[test]
fn drop_reasons_are_one_vocabulary_from_hush_frame_to_the_wire_and_typescript() {
    use hush_frame::DropReason;
    use std::collections::BTreeSet;

    // hush-frame -> wire: every frame reason has its own wire reason, with hush-frame's name.
    let mapped: BTreeSet<E2eeDropReason> = DropReason::ALL
        .into_iter()
        .map(E2eeDropReason::from)
        .collect();
    assert_eq!(
        mapped.len(),
        DropReason::ALL.len(),
        "two frame reasons share a wire reason"
    );
    for r in DropReason::ALL {
        let wire = E2eeDropReason::from(r);
        assert_ne!(wire, E2eeDropReason::Other, "{r}");
        assert_eq!(wire.frame(), Some(r));
        assert_eq!(wire.as_str(), r.as_str());
        assert_eq!(E2eeDropReason::from_wire(r.as_str()), wire);
    }

    // wire -> hush-frame: every wire reason is a frame reason or one the layers above add.
    let above = [
        E2eeDropReason::Duplicate,
        E2eeDropReason::EncryptFailed,
        E2eeDropReason::NoKey,
        E2eeDropReason::WrongSender,
        E2eeDropReason::BeforeJoin,
        E2eeDropReason::Other,
    ];
    for r in E2eeDropReason::ALL {
        assert!(
            r.frame().is_some() != above.contains(&r),
            "{r:?} must be either hush-frame's or the transforms'"
        );
    }
    assert_eq!(
        E2eeDropReason::ALL.len(),
        DropReason::ALL.len() + above.len()
    );

    // wire <-> TypeScript: the `DropReason` union has exactly the wire names.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/src/protocol.ts");
    let ts = std::fs::read_to_string(path).expect("web/src/protocol.ts");
    let ts_names = ts_string_union(&ts, "DropReason");
    let wire_names: BTreeSet<String> = E2eeDropReason::ALL
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    assert_eq!(ts_names, wire_names, "web/src/protocol.ts DropReason");
}

/// The string literals of `export type <name> = | 'a' | 'b' ...;` in TypeScript source, skipping
/// comments; panics on any other member so that the check cannot pass by not reading it.
fn ts_string_union(ts: &str, name: &str) -> std::collections::BTreeSet<String> {
    let decl = format!("export type {name} =");
    let start = ts.find(&decl).unwrap_or_else(|| panic!("no `{decl}`")) + decl.len();
    let mut names = std::collections::BTreeSet::new();
    for line in ts[start..].lines().map(str::trim) {
        if line.is_empty()
            || line.starts_with("/*")
            || line.starts_with('*')
            || line.starts_with("//")
        {
            continue;
        }
        let member = line.trim_start_matches('|').trim();
        let (member, last) = match member.strip_suffix(';') {
            Some(m) => (m.trim(), true),
            None => (member, false),
        };
        let literal = member
            .strip_prefix('\'')
            .and_then(|m| m.strip_suffix('\''))
            .unwrap_or_else(|| panic!("`{line}` in {name} is not a string literal"));
        assert!(names.insert(literal.to_owned()), "{literal} listed twice");
        if last {
            return names;
        }
    }
    panic!("{name} does not end with `;`");
}

#[test]
fn key_event_decoder_agrees_with_the_full_decoder() {
    let key_events = [
        r#"{"v":1,"type":"rekey","seq":9}"#,
        r#"{"v":1,"type":"e2ee","from":"alice","payload":"AQID"}"#,
        r#"{"v":1,"type":"participant_left","seq":3,"participant":"bob","sender_index":2,"reason":"removed"}"#,
    ];
    for text in key_events {
        assert_eq!(
            ServerMessage::decode_key_event(text),
            ServerMessage::decode(text),
            "{text}"
        );
    }
    for (text, want) in [
        (r#"{"v":1,"type":"pong","seq":1}"#, "unknown"),
        (r#"{"v":1,"type":"nonsense"}"#, "unknown"),
        (r#"{"v":2,"type":"rekey","seq":9}"#, "version"),
        (
            r#"{"v":1,"type":"e2ee","from":"alice","payload":"%%%"}"#,
            "malformed",
        ),
        ("not json", "malformed"),
    ] {
        let got = match ServerMessage::decode_key_event(text) {
            Err(DecodeError::UnknownType) => "unknown",
            Err(DecodeError::UnsupportedVersion) => "version",
            Err(DecodeError::Malformed { .. }) => "malformed",
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(got, want, "{text}");
    }
    let big = format!(
        r#"{{"v":1,"type":"rekey","seq":1,"x":"{}"}}"#,
        "a".repeat(MAX_MESSAGE_BYTES)
    );
    assert!(matches!(
        ServerMessage::decode_key_event(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn join_offers_first_is_optional_and_typed() {
    let base = r#"{"v":1,"type":"join","token":"t","identity_key":"AQID""#;
    let offers = |text: &str| match ClientMessage::decode(text) {
        Ok(ClientMessage::Join(j)) => Ok(j.offers_first),
        Ok(other) => panic!("not a join: {other:?}"),
        Err(e) => Err(e.code()),
    };
    assert_eq!(
        offers(&format!("{base}}}")),
        Ok(None),
        "absent: the relay holds its offer a while"
    );
    assert_eq!(
        offers(&format!(r#"{base},"offers_first":false}}"#)),
        Ok(Some(false))
    );
    assert_eq!(
        offers(&format!(r#"{base},"offers_first":true}}"#)),
        Ok(Some(true))
    );
    assert_eq!(
        offers(&format!(r#"{base},"offers_first":"yes"}}"#)),
        Err(ErrorCode::MalformedMessage)
    );
    // Absent stays absent on the wire.
    let join = ClientMessage::Join(Join {
        token: AccessToken::new("t"),
        room: None,
        identity_key: OpaqueBytes::new([1u8; 3]),
        attestation: None,
        offers_first: None,
    });
    assert!(!join.encode().contains("offers_first"));
}

#[test]
fn ice_server_debug_leaves_the_credential_out() {
    let server = IceServer {
        urls: vec!["turn:turn.example:3478".into()],
        username: Some("1700000000:alice".into()),
        credential: Some("s3cr3tCredential".into()),
    };
    let debug = format!("{server:?}");
    assert!(debug.contains("turn.example"));
    for secret in ["s3cr3t", "alice"] {
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn a_video_size_beyond_16k_or_not_a_number_is_refused() {
    let ok = r#"{"v":1,"type":"video_size","track":3,"width":16384,"height":9216}"#;
    assert!(ClientMessage::decode(ok).is_ok());
    let wide = r#"{"v":1,"type":"video_size","track":3,"width":16385,"height":9}"#;
    assert_ne!(refused(wide), ErrorCode::MalformedMessage);
    let DecodeError::FieldTooLarge(f) = ClientMessage::decode(wide).unwrap_err() else {
        panic!("not FieldTooLarge");
    };
    assert_eq!(f.field, "width");
    let negative = r#"{"v":1,"type":"video_size","track":3,"width":-1,"height":9}"#;
    assert_eq!(refused(negative), ErrorCode::MalformedMessage);
}
