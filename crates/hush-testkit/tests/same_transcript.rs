//! One recorded relay transcript, driven through both adapters' Rust entry points (the browser
//! Worker's `hush_wasm::keys::KeyCore`, JSON in, and the native client's
//! `hush_client::keys::KeyAgent`, typed messages in), gives the same outputs, event for event,
//! key for key, message for message, refusal for refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_client::keys::KeyAgent;
use hush_participant::{Event, Input, Instant, KeyUpdate, Membership, Output, StreamContext};
use hush_proto::{LeaveReason, ServerMessage};
use hush_testkit::sim::{Room, seed_of};
use hush_wasm::keys::KeyCore;

const SEED: u64 = 42;

/// A room's life as `bob` sees it: joins, a member with an unusable key, a forged message, a
/// duplicate, rekeys, a leave, a removal, and messages that are not about keys.
fn transcript() -> Vec<(u64, ServerMessage)> {
    let mut r = Room::new(SEED);
    r.join("alice");
    r.join("bob");
    r.settle();
    r.join("carol");
    r.advance(500);
    r.announce_only("mallory", vec![0u8; 32], None);
    r.rekey();
    r.settle();
    // Carol hands in alice's switch notice to her as her own.
    let switch = r.sent_to("alice", "carol").pop().unwrap();
    r.inject("bob", Room::e2ee("carol", switch.clone()));
    r.inject("bob", Room::e2ee("alice", vec![1, 2, 3]));
    r.inject("bob", ServerMessage::Pong(hush_proto::Ping { seq: 1 }));
    r.join("dave");
    r.settle();
    r.leave("carol");
    r.advance(300);
    r.depart("dave", LeaveReason::Removed);
    r.settle();
    r.rekey();
    r.settle();
    r.transcript("bob").to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An output as comparable text, keys included (their `Debug` is redacted).
fn show(o: &Output) -> String {
    match o {
        Output::Send(m) => format!("send {}", m.encode()),
        Output::Key(k) => match k {
            KeyUpdate::SetSend { context, kid, key } => {
                format!(
                    "set_send {} {} {}",
                    context.0,
                    kid.get(),
                    hex(key.as_bytes())
                )
            }
            KeyUpdate::StopSend { context } => format!("stop_send {}", context.0),
            KeyUpdate::InstallReceive { kid, key } => {
                format!("install {} {}", kid.get(), hex(key.as_bytes()))
            }
            KeyUpdate::RetireReceive { kid } => format!("retire {}", kid.get()),
            other => panic!("unknown key update {other:?}"),
        },
        Output::Event(e) => match e {
            Event::Joined { you, sender_index } => {
                format!("joined {} {sender_index}", you.as_str())
            }
            Event::MemberJoined {
                participant,
                sender_index,
            } => format!("member_joined {} {sender_index}", participant.as_str()),
            Event::MemberLeft {
                participant,
                reason,
            } => format!("member_left {} {reason:?}", participant.as_str()),
            Event::MemberRefused {
                participant,
                reason,
            } => format!("member_refused {participant} {}", reason.code()),
            Event::SafetyCode(c) => format!("safety_code {c}"),
            other => format!("{other:?}"),
        },
    }
}

/// Drives one adapter through the transcript: at each message's time, timers first, then the
/// message; after `joined`, the microphone starts. Returns one line per result and output.
fn drive(
    t: &[(u64, ServerMessage)],
    mut feed: impl FnMut(u64, &ServerMessage) -> Result<(), &'static str>,
    mut local: impl FnMut(u64, Input<'_>) -> Result<(), &'static str>,
    mut timeout: impl FnMut() -> Option<u64>,
    mut poll: impl FnMut() -> Option<Output>,
) -> Vec<String> {
    let mut lines = Vec::new();
    let drain = |lines: &mut Vec<String>, poll: &mut dyn FnMut() -> Option<Output>| {
        while let Some(o) = poll() {
            lines.push(show(&o));
        }
    };
    for (at, msg) in t {
        while let Some(due) = timeout().filter(|d| d <= at) {
            lines.push(format!("tick {due} {:?}", local(due, Input::Tick)));
            drain(&mut lines, &mut poll);
        }
        lines.push(format!("relay {at} {} {:?}", msg.encode(), feed(*at, msg)));
        drain(&mut lines, &mut poll);
        if matches!(msg, ServerMessage::Joined(_)) {
            let mic = Input::LocalStreamStarted(StreamContext::MICROPHONE);
            lines.push(format!("mic {:?}", local(*at, mic)));
            drain(&mut lines, &mut poll);
        }
    }
    lines
}

#[test]
fn same_transcript() {
    let t = transcript();
    let seed = seed_of(SEED, "bob");

    let wasm = std::cell::RefCell::new(
        KeyCore::with_seed(Membership::Unauthenticated, seed, None).unwrap(),
    );
    let worker = drive(
        &t,
        |at, m| {
            wasm.borrow_mut()
                .handle_relay_event(at, &m.encode())
                .map_err(|r| r.code())
        },
        |at, input| {
            let mut w = wasm.borrow_mut();
            match input {
                Input::Tick => {
                    w.handle_tick(at);
                    Ok(())
                }
                Input::LocalStreamStarted(c) => {
                    w.local_stream_started(at, c.0).map_err(|r| r.code())
                }
                other => panic!("{other:?}"),
            }
        },
        || wasm.borrow().next_timeout(),
        || wasm.borrow_mut().poll(),
    );

    let agent =
        std::cell::RefCell::new(KeyAgent::with_seed(Membership::Unauthenticated, seed).unwrap());
    let native = drive(
        &t,
        |at, m| {
            let r = agent.borrow_mut().on_server(Instant::from_millis(at), m);
            r.map_err(|r| r.code())
        },
        |at, input| {
            let r = agent.borrow_mut().input(Instant::from_millis(at), input);
            r.map_err(|r| r.code())
        },
        || agent.borrow().core().next_timeout().map(Instant::as_millis),
        || agent.borrow_mut().poll_output(),
    );

    // The transcript holds what the test says it holds, and the outputs are not trivial.
    let all = worker.join("\n");
    for want in [
        "member_joined carol",
        "member_refused mallory bad_identity_key",
        "member_joined dave",
        "member_left carol Left",
        "member_left dave Removed",
        "\"type\":\"rekey\"",
        "Err(\"forged\")",
        "Err(\"malformed\")",
        "Err(\"not_a_key_event\")",
        "install ",
        "set_send 0 ",
        "send {\"v\":1,\"type\":\"e2ee\"",
        "safety_code ",
    ] {
        assert!(all.contains(want), "the transcript lacks {want:?}:\n{all}");
    }
    assert!(worker.len() > 60, "{} lines", worker.len());
    for (i, (w, n)) in worker.iter().zip(&native).enumerate() {
        assert_eq!(w, n, "line {i} differs");
    }
    assert_eq!(worker.len(), native.len());
}
