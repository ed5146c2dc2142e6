#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Floods, measured (issue 13 item 7), against the relay *binary*: while an honest publisher
//! and subscriber are in a call, one address sends 10,000 signaling messages in a burst, makes
//! 1,000 connection attempts, sends oversized messages, and keeps a joined connection that
//! never reads while the room churns. The relay's resident memory stays within a stated bound
//! of what it used before, the honest subscriber keeps decrypting, and the rate-limit metrics
//! count the hits. A subscriber that never sends RTCP (no receiver report, NACK, congestion
//! feedback or keyframe request) costs the relay bounded memory and the others nothing.

use futures_util::SinkExt;
use hush_proto::{ClientMessage, Grants, Ping, Source};
use hush_testkit::client::{Media, RawSignal, decrypted_from, pump, pump_until_decrypted};
use hush_testkit::http::metric;
use hush_testkit::recording::process_config;
use hush_testkit::relay::{RelayProcess, relay_binary};
use hush_testkit::tokens::Tokens;
use tokio_tungstenite::tungstenite::Message;

const ROOM: &str = "flood-room";
/// How much the relay's resident memory may grow through the floods.
const RSS_BOUND_KB: u64 = 16 * 1024;

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The relay binary with a config of its own (warnings only in its log), and its token minter.
fn start_relay() -> (tempfile::TempDir, Tokens, RelayProcess) {
    let work = tempfile::tempdir().unwrap();
    let tokens = Tokens::default();
    let config = process_config(work.path(), &tokens);
    let relay = RelayProcess::spawn_wrapped(
        &["env", "RUST_LOG=warn"],
        relay_binary(),
        &["--config", config.to_str().unwrap()],
    );
    (work, tokens, relay)
}

/// `sub` joins ROOM allowed to publish and subscribe, publishing `sources`, with `options`
/// changed.
async fn member(
    relay: &RelayProcess,
    tokens: &Tokens,
    sub: &str,
    sources: &[Source],
    options: impl FnOnce(&mut hush_client::ClientOptions),
) -> hush_client::Client {
    let grants = Grants {
        publish: true,
        subscribe: true,
        ..Grants::default()
    };
    relay
        .client(tokens, ROOM, sub)
        .grants(grants)
        .publish(sources)
        .options(options)
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_keep_memory_bounded_and_the_call_going() {
    let (_work, tokens, relay) = start_relay();
    let pid = relay.pid();
    let alice = member(&relay, &tokens, "alice", &[Source::Microphone], |_| {}).await;
    let bob = member(&relay, &tokens, "bob", &[], |_| {}).await;
    let got = pump_until_decrypted(&alice, &[&bob], 20, Media::Audio, 10).await;
    assert!(got[0] > 20);
    pump(&alice, 1, Media::Audio).await;
    let before = rss_kb(pid);
    let from = alice.info().sender_index;
    let decrypted_before = decrypted_from(&bob, from);
    let token_for = |sub: &str| tokens.mint(ROOM, sub).publish().subscribe().string();

    let addr = relay.addr();
    let from_ip = |a: u8, b: u8| std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, a, b));
    let attack = async {
        // A joined connection that never reads, while the room churns around it.
        let mut deaf = RawSignal::connect_from(addr, from_ip(0, 2)).await.unwrap();
        deaf.join_with(token_for("deaf"), None).await;
        // 10,000 messages in a burst from one connection.
        let mut chatty = RawSignal::connect_from(addr, from_ip(0, 3)).await.unwrap();
        chatty.join_with(token_for("chatty"), None).await;
        let mut ws = chatty.into_ws();
        for seq in 0..10_000u64 {
            let ping = ClientMessage::Ping(Ping { seq }).encode();
            if ws.feed(Message::text(ping)).await.is_err() {
                break;
            }
        }
        let _ = ws.flush().await;
        // Oversized messages.
        let big = "x".repeat(hush_proto::MAX_MESSAGE_BYTES + 1);
        for _ in 0..10 {
            if let Ok(mut c) = RawSignal::connect_from(addr, from_ip(0, 4)).await {
                let _ = c.try_send_raw(Message::text(big.clone())).await;
            }
        }
        // 1,000 connection attempts from one address.
        let mut refused = 0;
        for _ in 0..1000 {
            if RawSignal::connect_from(addr, from_ip(0, 5)).await.is_err() {
                refused += 1;
            }
        }
        // Churn: members join and leave (from addresses of their own), each event queued for
        // the deaf one.
        for i in 0..50u8 {
            if let Ok(mut c) = RawSignal::connect_from(addr, from_ip(1, i + 1)).await {
                c.join_with(token_for(&format!("churn{i}")), None).await;
                let _ = c.close().await;
            }
        }
        drop(deaf);
        refused
    };
    let (refused, ()) = tokio::join!(attack, pump(&alice, 6, Media::Audio));
    pump(&alice, 1, Media::Audio).await;
    let after = rss_kb(pid);
    let decrypted = decrypted_from(&bob, from) - decrypted_before;
    let metrics = hush_testkit::http::get(relay.addr(), "/metrics").await.body;
    let count = |prefix: &str| metric::<f64>(&metrics, prefix).unwrap_or(0.0);
    eprintln!(
        "figures {{\"rss_before_kb\":{before},\"rss_after_kb\":{after},\"rss_growth_kb\":{},\"connect_refused\":{refused},\"bob_decrypted_during\":{decrypted},\"rate_limited\":{},\"connect_rate\":{},\"too_large\":{}}}",
        after.saturating_sub(before),
        count("hush_refusals_total{code=\"rate_limited\"}"),
        count("hush_connections_refused_total{reason=\"connect_rate\"}"),
        count("hush_refusals_total{code=\"message_too_large\"}"),
    );
    assert!(
        after.saturating_sub(before) < RSS_BOUND_KB,
        "RSS grew from {before} kB to {after} kB"
    );
    // 7 s of audio at 50 frames/s: most of it decrypted through the floods.
    assert!(
        decrypted > 250,
        "bob decrypted {decrypted} frames during the floods"
    );
    assert!(
        refused > 500,
        "{refused} of 1,000 connection attempts refused"
    );
    assert!(
        count("hush_refusals_total{code=\"rate_limited\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        count("hush_connections_refused_total{reason=\"connect_rate\"}") >= 500.0,
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_sends_rtcp_costs_bounded_memory_and_nobody_else() {
    let (_work, tokens, relay) = start_relay();
    let pid = relay.pid();
    let av = [Source::Camera, Source::Microphone];
    let alice = member(&relay, &tokens, "alice", &av, |_| {}).await;
    let bob = member(&relay, &tokens, "bob", &[], |_| {}).await;
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&dropped);
    let silent = member(&relay, &tokens, "silent", &[], |o| {
        o.send_rtcp = false;
        o.rtcp_dropped = counter;
    })
    .await;
    let from = alice.info().sender_index;
    pump_until_decrypted(&alice, &[&bob], 50, Media::AudioVideo, 10).await;
    let before = rss_kb(pid);
    let bob_before = decrypted_from(&bob, from);
    let silent_before = decrypted_from(&silent, from);
    // 10 s of audio and video (VP8 at 30 frames/s) to both.
    pump(&alice, 10, Media::AudioVideo).await;
    let after = rss_kb(pid);
    let bob_got = decrypted_from(&bob, from) - bob_before;
    let silent_got = decrypted_from(&silent, from) - silent_before;
    let rtcp_dropped = dropped.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "figures {{\"rss_before_kb\":{before},\"rss_after_kb\":{after},\"bob_decrypted\":{bob_got},\"silent_decrypted\":{silent_got},\"silent_rtcp_dropped\":{rtcp_dropped}}}"
    );
    // The silent client really sent none: its RTCP was dropped before the wire.
    assert!(rtcp_dropped > 10, "{rtcp_dropped} RTCP packets dropped");
    assert!(
        after.saturating_sub(before) < RSS_BOUND_KB,
        "RSS grew from {before} kB to {after} kB"
    );
    // 10 s at 50 audio + 30 video frames/s: the honest subscriber gets most of it.
    assert!(bob_got > 600, "bob decrypted {bob_got} frames");
}
