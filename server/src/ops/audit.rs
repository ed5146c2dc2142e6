//! The audit trail: each [`Audit`] event of the routing core as one JSON line on the `audit`
//! tracing target, for a log pipeline to keep apart from the debug log.
//!
//! ```json
//! {"event":"joined","room":"r:5f0c2a9e41b7d3c8","participant":"p:a1e4...","conn":3}
//! ```
//!
//! No token, key or envelope ever reaches the core's audit events. Room and participant ids are
//! personal data: they are written as `r:`/`p:` plus 16 hex digits of HMAC-SHA-256 under a
//! pseudonym key (the first 64 bits), so lines about one participant can be linked to each other
//! and, by whoever holds the key, to a known id, but the log alone names nobody. Give the same
//! key to every relay (and keep it) if lines must link across restarts; a random key per
//! process makes them unlinkable across restarts.

use std::fmt;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use hmac::{Hmac, KeyInit, Mac};
use hush_proto::{LeaveReason, ParticipantId, RoomId};
use serde_json::{Value, json};
use sha2::Sha256;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use zeroize::Zeroizing;

use crate::routing::{Audit, ModerationAction, RecordingAction};

/// The tracing target of audit lines.
pub const AUDIT_TARGET: &str = "audit";

/// Turns audit events into JSON lines with pseudonymous ids.
pub struct AuditSink {
    key: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AuditSink(***)")
    }
}

impl AuditSink {
    /// A sink whose pseudonyms are keyed by `key` (from configuration, or random per process).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: Zeroizing::new(key),
        }
    }

    /// Writes `event` as one line on the [`AUDIT_TARGET`] target at `INFO`.
    pub fn record(&self, event: &Audit) {
        let line = self.line(event);
        tracing::info!(target: AUDIT_TARGET, "{line}");
    }

    /// The JSON line for `event` (without a newline).
    pub fn line(&self, event: &Audit) -> String {
        self.to_json(event).to_string()
    }

    fn to_json(&self, event: &Audit) -> Value {
        match event {
            Audit::Joined {
                room,
                participant,
                conn,
            } => json!({
                "event": "joined",
                "room": self.room(room),
                "participant": self.participant(participant),
                "conn": conn.get(),
            }),
            Audit::Left {
                room,
                participant,
                reason,
            } => json!({
                "event": "left",
                "room": self.room(room),
                "participant": self.participant(participant),
                "reason": leave_reason(*reason),
            }),
            Audit::JoinRefused { conn, code, who } => {
                let mut line = json!({
                    "event": "join_refused",
                    "conn": conn.get(),
                    "code": code.as_str(),
                });
                if let (Some((room, participant)), Some(fields)) = (who, line.as_object_mut()) {
                    fields.insert("room".into(), Value::String(self.room(room)));
                    fields.insert(
                        "participant".into(),
                        Value::String(self.participant(participant)),
                    );
                }
                line
            }
            Audit::Moderation {
                room,
                moderator,
                action,
            } => {
                let by = match moderator {
                    Some(m) => Value::String(self.participant(m)),
                    None => Value::String("admin_api".into()),
                };
                let mut line = json!({
                    "event": "moderation",
                    "room": self.room(room),
                    "by": by,
                });
                let fields = match action {
                    ModerationAction::Remove(p) => {
                        json!({"action": "remove", "target": self.participant(p)})
                    }
                    ModerationAction::Unpublish(p, source) => json!({
                        "action": "unpublish",
                        "target": self.participant(p),
                        "source": source.as_str(),
                    }),
                    ModerationAction::Lock(locked) => json!({"action": "lock", "locked": locked}),
                    ModerationAction::Close => json!({"action": "close"}),
                    ModerationAction::SetRecorder {
                        recorder,
                        key_fingerprint,
                    } => json!({
                        "action": "set_recorder",
                        "target": self.participant(recorder),
                        "key_fingerprint": key_fingerprint,
                    }),
                    ModerationAction::Refused { command, code } => json!({
                        "action": "refused",
                        "command": command,
                        "code": code.as_str(),
                    }),
                    ModerationAction::Configure(settings) => json!({
                        "action": "configure",
                        "max_participants": settings.max_participants,
                        "empty_timeout_secs": settings.empty_timeout.map(|d| d.as_secs()),
                    }),
                };
                if let (Value::Object(line), Value::Object(fields)) = (&mut line, fields) {
                    line.extend(fields);
                }
                line
            }
            Audit::Rekey { room, seq } => json!({
                "event": "rekey",
                "room": self.room(room),
                "seq": seq,
            }),
            Audit::Recording { room, by, action } => {
                let by = match by {
                    Some(p) => Value::String(self.participant(p)),
                    None => Value::String("admin_api_or_relay".into()),
                };
                let (what, detail) = match action {
                    RecordingAction::Started => ("started", Value::Null),
                    RecordingAction::Stopped(end) => {
                        ("stopped", Value::String(end.as_str().into()))
                    }
                    RecordingAction::Refused(code) => {
                        ("refused", Value::String(code.as_str().into()))
                    }
                };
                json!({
                    "event": "recording",
                    "room": self.room(room),
                    "by": by,
                    "action": what,
                    "detail": detail,
                })
            }
            Audit::Abuse { conn, code } => json!({
                "event": "abuse",
                "conn": conn.get(),
                "code": code.as_str(),
            }),
        }
    }

    fn room(&self, room: &RoomId) -> String {
        self.pseudonym("r", b"room", room.as_str())
    }

    fn participant(&self, participant: &ParticipantId) -> String {
        self.pseudonym("p", b"participant", participant.as_str())
    }

    fn pseudonym(&self, prefix: &str, domain: &[u8], id: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_slice()) else {
            // HMAC takes keys of any length; this cannot fail. Redact rather than leak.
            return format!("{prefix}:?");
        };
        mac.update(domain);
        mac.update(&[0]);
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = String::with_capacity(prefix.len() + 17);
        out.push_str(prefix);
        out.push(':');
        for byte in &tag[..8] {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

/// A `tracing` layer that writes each event on the [`AUDIT_TARGET`] target as its bare message
/// (the JSON line [`AuditSink::record`] made) and a newline, and ignores every other event. The
/// binary writes them to stdout or to the `--audit-file`; a log pipeline reads them as JSON Lines.
pub struct AuditWriter<W> {
    out: Mutex<W>,
}

impl<W> fmt::Debug for AuditWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditWriter")
    }
}

impl<W: Write> AuditWriter<W> {
    /// A layer writing audit lines to `out` (flushed after each line).
    pub fn new(out: W) -> Self {
        Self {
            out: Mutex::new(out),
        }
    }
}

/// Collects an event's `message` field.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            // `format_args!` messages print as their text through `Debug`.
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber, W: Write + Send + 'static> Layer<S> for AuditWriter<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if message.0.is_empty() {
            return;
        }
        message.0.push('\n');
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // An audit line that cannot be written is lost; the relay keeps serving.
        let _ = out.write_all(message.0.as_bytes());
        let _ = out.flush();
    }
}

fn leave_reason(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::Disconnected => "disconnected",
        LeaveReason::Removed => "removed",
        LeaveReason::Replaced => "replaced",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use hush_proto::{ErrorCode, Source};
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;
    use crate::routing::ConnId;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::new(s).unwrap()
    }

    fn rid(s: &str) -> RoomId {
        RoomId::new(s).unwrap()
    }

    /// Records `events` through a subscriber that writes bare messages, returns the lines.
    fn capture(sink: &AuditSink, events: &[Audit]) -> Vec<String> {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_target(true)
            .with_level(false)
            .without_time()
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for e in events {
                sink.record(e);
            }
            // Not an audit line: must not show up among them.
            tracing::info!(target: "hush_relay::driver", "debug noise");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("audit: ").map(str::to_owned))
            .collect()
    }

    #[test]
    fn every_event_is_one_json_line_without_ids() {
        let sink = AuditSink::new([3; 32]);
        let events = [
            Audit::Joined {
                room: rid("board-meeting"),
                participant: pid("alice@example.com"),
                conn: ConnId(7),
            },
            Audit::Left {
                room: rid("board-meeting"),
                participant: pid("alice@example.com"),
                reason: LeaveReason::Removed,
            },
            Audit::JoinRefused {
                conn: ConnId(8),
                code: ErrorCode::TokenExpired,
                who: None,
            },
            Audit::Moderation {
                room: rid("board-meeting"),
                moderator: Some(pid("bob")),
                action: ModerationAction::Unpublish(pid("alice@example.com"), Source::Screen),
            },
            Audit::Moderation {
                room: rid("board-meeting"),
                moderator: None,
                action: ModerationAction::Close,
            },
            Audit::Abuse {
                conn: ConnId(9),
                code: ErrorCode::RateLimited,
            },
            Audit::Rekey {
                room: rid("board-meeting"),
                seq: 12,
            },
            // Refused after its token was verified: tied to the (pseudonymous) participant.
            Audit::JoinRefused {
                conn: ConnId(10),
                code: ErrorCode::Removed,
                who: Some((rid("board-meeting"), pid("alice@example.com"))),
            },
        ];
        let lines = capture(&sink, &events);
        assert_eq!(lines.len(), events.len(), "{lines:?}");
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for line in &lines {
            for secret in ["alice", "example.com", "board-meeting", "bob"] {
                assert!(!line.contains(secret), "{line}");
            }
        }
        assert_eq!(parsed[0]["event"], "joined");
        assert_eq!(parsed[0]["conn"], 7);
        // The same participant gets the same pseudonym in every line; rooms and participants
        // are told apart.
        let alice = parsed[0]["participant"].as_str().unwrap();
        assert!(alice.starts_with("p:") && alice.len() == 18, "{alice}");
        assert_eq!(parsed[1]["participant"], alice);
        assert_eq!(parsed[3]["target"], alice);
        assert_eq!(parsed[0]["room"], parsed[1]["room"]);
        assert_ne!(parsed[3]["by"], alice);
        assert_eq!(parsed[1]["reason"], "removed");
        assert_eq!(parsed[2]["code"], "token_expired");
        assert_eq!(parsed[3]["action"], "unpublish");
        assert_eq!(parsed[3]["source"], "screen");
        assert_eq!(parsed[4]["by"], "admin_api");
        assert_eq!(parsed[5]["event"], "abuse");
        assert_eq!(parsed[6]["event"], "rekey");
        assert_eq!(parsed[6]["seq"], 12);
        assert_eq!(parsed[6]["room"], parsed[0]["room"]);
        // A token refusal names nobody; a refusal after the token was verified names whom it
        // named, under the same pseudonyms.
        assert!(parsed[2].get("participant").is_none(), "{}", parsed[2]);
        assert_eq!(parsed[7]["code"], "removed");
        assert_eq!(parsed[7]["participant"], alice);
        assert_eq!(parsed[7]["room"], parsed[0]["room"]);
    }

    #[test]
    fn the_writer_keeps_only_audit_lines_and_writes_them_bare() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry().with(AuditWriter::new(captured.clone()));
        let sink = AuditSink::new([5; 32]);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "hush_relay::driver", "not audit");
            sink.record(&Audit::JoinRefused {
                conn: ConnId(4),
                code: ErrorCode::TokenBadSignature,
                who: None,
            });
            tracing::warn!("not audit either");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "{\"code\":\"token_bad_signature\",\"conn\":4,\"event\":\"join_refused\"}\n"
        );
    }

    #[test]
    fn pseudonyms_depend_on_the_key() {
        let a = AuditSink::new([1; 32]);
        let b = AuditSink::new([2; 32]);
        let event = Audit::Joined {
            room: rid("r"),
            participant: pid("p"),
            conn: ConnId(0),
        };
        assert_ne!(a.line(&event), b.line(&event));
        assert_eq!(a.line(&event), AuditSink::new([1; 32]).line(&event));
        assert_eq!(format!("{a:?}"), "AuditSink(***)");
    }
}
