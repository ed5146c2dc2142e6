#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Secrets never in output (issue 13 item 8): a whole call through the relay *binary* with
//! every log at trace level (webrtc-rs included), the audit trail in a file and `/metrics`
//! scraped: join, publish, rekey, moderate (lock, unpublish, remove), record, leave. Then
//! every secret of the call is searched for in all of that output, in hex, base64 and
//! base64url: the access tokens (and their signatures), the token key, the admin token, every
//! identity public key, the recorder's key and every envelope the relay carried.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hush_client::keys::KeyAgent;
use hush_client::{Client, ClientOptions};
use hush_participant::Membership;
use hush_proto::{
    ClientMessage, ForceDisconnect, ForceUnpublish, Grants, LockRoom, ParticipantId, Record,
    RecordAction, RekeyReason, RekeyRequest, ServerMessage, Source,
};
use hush_record::{Record as Rec, RecordingDir};
use hush_testkit::client::{Media, pump, pump_until_decrypted};
use hush_testkit::recording::{TestRecorder, process_config, recordings_in, set_recorder_at};
use hush_testkit::relay::{ADMIN_TOKEN, RelayProcess, relay_binary};
use hush_testkit::tokens::Tokens;

const ROOM: &str = "secret-room";

/// Joins like `ClientBuilder::connect`, keeping the token and the identity key to search for.
async fn join(
    relay: &RelayProcess,
    tokens: &Tokens,
    sub: &str,
    grants: Grants,
    publish: &[Source],
    secrets: &mut Vec<(String, Vec<u8>)>,
) -> Client {
    let token = tokens.mint(ROOM, sub).grants(grants).string();
    let mut keys = KeyAgent::new(Membership::VouchedBy(tokens.backend_key())).unwrap();
    let identity = keys.identity_key();
    keys.set_attestation(tokens.attest(ROOM, sub, &identity));
    secrets.push((format!("{sub}'s token"), token.clone().into_bytes()));
    // The signature alone, too (a log that cut the token at a dot would still leak it).
    let signature = token.rsplit('.').next().unwrap().to_owned();
    secrets.push((format!("{sub}'s token signature"), signature.into_bytes()));
    secrets.push((format!("{sub}'s identity key"), identity.to_vec()));
    let options = ClientOptions {
        publish: publish.to_vec(),
        // The relay logs at trace level here, and the whole workspace's tests share the
        // cores: this test is about what the logs hold, not how fast a join is (the default
        // 10 s was passed once under that load).
        connect_timeout: Duration::from_secs(30),
        ..ClientOptions::vouched_by(tokens.backend_key())
    };
    Client::join(
        &relay.ws_url(),
        hush_proto::AccessToken::new(token),
        keys,
        options,
    )
    .await
    .unwrap_or_else(|e| panic!("{sub} could not join: {e}"))
}

/// Every encoding of `secret` a log line could carry.
fn encodings(secret: &[u8]) -> Vec<String> {
    let mut all = vec![
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        all.push(text.to_owned());
    }
    // Long encodings also match as their first 24 characters (a truncated log line).
    all.into_iter()
        .flat_map(|e| {
            let head: String = e.chars().take(24).collect();
            if head.len() < e.len() {
                vec![e, head]
            } else {
                vec![e]
            }
        })
        .collect()
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_whole_call_appears_in_trace_logs_audit_or_metrics() {
    let work = tempfile::tempdir().unwrap();
    let tokens = Tokens::default();
    let config = process_config(work.path(), &tokens);
    let audit = work.path().join("audit.jsonl");
    let disk = work.path().join("recordings");
    let relay = RelayProcess::spawn_wrapped(
        &["env", "RUST_LOG=trace"],
        relay_binary(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--audit-file",
            audit.to_str().unwrap(),
            "--recording-dir",
            disk.to_str().unwrap(),
        ],
    );
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("the HS256 token key".into(), tokens.secret().to_vec()),
        ("the admin token".into(), ADMIN_TOKEN.as_bytes().to_vec()),
    ];
    let recorder = TestRecorder::new("rec", 21);
    secrets.push((
        "the recorder's public key".into(),
        recorder.public().to_vec(),
    ));
    set_recorder_at(relay.addr(), ADMIN_TOKEN, &tokens, ROOM, &recorder).await;

    let boss = Grants {
        publish: true,
        subscribe: true,
        moderator: true,
        record: true,
        ..Grants::default()
    };
    let member = Grants {
        publish: true,
        subscribe: true,
        ..Grants::default()
    };
    let av = [Source::Camera, Source::Microphone];
    let alice = join(&relay, &tokens, "alice", boss, &av, &mut secrets).await;
    let bob = join(&relay, &tokens, "bob", member.clone(), &av, &mut secrets).await;
    pump_until_decrypted(&alice, &[&bob], 20, Media::AudioVideo, 10).await;
    send(
        &alice,
        ClientMessage::Record(Record {
            action: RecordAction::Start,
        }),
    )
    .await;
    send(
        &bob,
        ClientMessage::Rekey(RekeyRequest {
            reason: Some(RekeyReason::Timer),
        }),
    )
    .await;
    tokio::join!(
        pump(&alice, 2, Media::AudioVideo),
        pump(&bob, 2, Media::AudioVideo)
    );
    send(&alice, ClientMessage::LockRoom(LockRoom { locked: true })).await;
    send(&alice, ClientMessage::LockRoom(LockRoom { locked: false })).await;
    let carol = join(
        &relay,
        &tokens,
        "carol",
        member,
        &[Source::Microphone],
        &mut secrets,
    )
    .await;
    tokio::join!(pump(&alice, 1, Media::Audio), pump(&carol, 1, Media::Audio));
    send(
        &alice,
        ClientMessage::ForceUnpublish(ForceUnpublish {
            participant: ParticipantId::new("bob").unwrap(),
            source: Source::Camera,
        }),
    )
    .await;
    send(
        &alice,
        ClientMessage::ForceDisconnect(ForceDisconnect {
            participant: ParticipantId::new("carol").unwrap(),
        }),
    )
    .await;
    pump(&alice, 1, Media::Audio).await;
    send(
        &alice,
        ClientMessage::Record(Record {
            action: RecordAction::Stop,
        }),
    )
    .await;
    let mut bob = bob;
    bob.leave().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = hush_testkit::http::get(relay.addr(), "/metrics").await.body;
    drop(carol);
    drop(alice);

    // Every envelope the relay carried to the recorder (what it carried to the others is the
    // same kind of bytes: sealed, opaque).
    let recording = RecordingDir::open(&recordings_in(&disk)[0]).unwrap();
    let mut envelopes = 0;
    for r in recording.open_events().unwrap() {
        if let Ok(Rec::Event(e)) = r
            && let Ok(ServerMessage::E2ee(m)) = ServerMessage::decode(&e.json)
        {
            envelopes += 1;
            secrets.push((
                format!("envelope {envelopes}"),
                m.payload.as_bytes().to_vec(),
            ));
        }
    }
    assert!(envelopes >= 3, "the recorder got {envelopes} key messages");

    let logs = relay.stderr().join("\n");
    assert!(
        logs.len() > 100_000,
        "trace logs were written ({} bytes)",
        logs.len()
    );
    let audit_text = read(&audit);
    assert!(
        audit_text.contains("\"event\":\"recording\""),
        "{audit_text}"
    );
    assert!(
        audit_text.contains("\"event\":\"moderation\""),
        "{audit_text}"
    );
    let outputs = [
        ("the trace log", &logs),
        ("the audit trail", &audit_text),
        ("/metrics", &metrics),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for enc in encodings(secret) {
            for (name, text) in &outputs {
                if let Some(line) = text.lines().find(|l| l.contains(&enc)) {
                    let at: String = line.chars().take(160).collect();
                    leaks.push(format!("{what} in {name}: {at}"));
                }
            }
        }
    }
    eprintln!(
        "figures {{\"secrets\":{},\"log_bytes\":{},\"audit_lines\":{},\"envelopes\":{envelopes}}}",
        secrets.len(),
        logs.len(),
        audit_text.lines().count()
    );
    assert!(leaks.is_empty(), "leaked: {leaks:#?}");
}

async fn send(c: &Client, m: ClientMessage) {
    c.send_message(m).await.unwrap();
}
