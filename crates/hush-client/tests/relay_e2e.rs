#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! End to end through the real relay (in process, on 127.0.0.1): native clients publish
//! SFrame-encrypted VP8 and Opus frames, receive and decrypt each other's, and the relay's
//! forwarding tap proves it never saw a plaintext byte of the marker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hush_client::synth::{PLAINTEXT_MARKER, contains_marker_fragment, opus_frame, vp8_frame};
use hush_client::{Client, ClientError, ClientEvent, ClientOptions, FrameSink};
use hush_frame::{BaseKey, CipherSuite, Decryptor, Header, Layout};
use hush_proto::{AccessToken, Audience, ErrorCode, Grants, Source, TokenClaims, TrackId};
use hush_relay::http::{RelayOptions, serve};
use hush_relay::token::{SigningKey, VerifyingKeys, mint};

const SECRET: [u8; 32] = [0x5a; 32];
const KID: &str = "test-1";
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// The forwarded payloads the relay's tap saw (bounded).
#[derive(Default)]
struct Tap {
    payloads: Mutex<Vec<(TrackId, Vec<u8>)>>,
    seen: AtomicU64,
}

const TAP_CAP: usize = 200_000;

async fn start_relay(tap: Arc<Tap>) -> String {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut keys = VerifyingKeys::new();
    keys.add_hs256(KID, &SECRET).unwrap();
    let mut options = RelayOptions::new(keys);
    options.media.forward_tap = Some(Arc::new(move |track: TrackId, payload: &[u8]| {
        tap.seen.fetch_add(1, Ordering::Relaxed);
        let mut p = tap.payloads.lock().unwrap();
        if p.len() < TAP_CAP {
            p.push((track, payload.to_vec()));
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = serve(listener, options).await;
    });
    format!("ws://{addr}/v1/rtc")
}

fn token(sub: &str, room: &str, grants: Grants, secret: &[u8]) -> AccessToken {
    static JTI: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = TokenClaims {
        sub: sub.try_into().unwrap(),
        room: room.try_into().unwrap(),
        aud: Audience::from("hush"),
        exp: now + 300,
        nbf: None,
        iat: Some(now),
        jti: Some(format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed))),
        grants,
    };
    AccessToken::new(mint(&claims, &SigningKey::hs256(KID, secret).unwrap()).unwrap())
}

fn full() -> Grants {
    Grants {
        publish: true,
        subscribe: true,
        ..Grants::default()
    }
}

/// Counts frames the sink saw and those holding the marker.
#[derive(Default)]
struct Seen {
    frames: AtomicU64,
    with_marker: AtomicU64,
}

fn sink(seen: Arc<Seen>) -> FrameSink {
    Arc::new(move |f| {
        seen.frames.fetch_add(1, Ordering::Relaxed);
        if f.data
            .windows(PLAINTEXT_MARKER.len())
            .any(|w| w == PLAINTEXT_MARKER)
        {
            seen.with_marker.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Sends video at 30 fps (every third frame over one RTP packet) and audio at 50 per second
/// for `secs`, paced on a 10 ms tick.
async fn pump(client: &Client, secs: u64, video: bool) {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut n: u32 = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        if n.is_multiple_of(2) {
            let f = opus_frame(n, 60 + (n as usize % 100));
            let _ = client
                .send_frame(Source::Microphone, &f, Duration::from_millis(20))
                .await;
        }
        if video && n.is_multiple_of(3) {
            let len = if n.is_multiple_of(9) { 2500 } else { 400 };
            let f = vp8_frame(n / 3, len, 30);
            let _ = client
                .send_frame(Source::Camera, &f, Duration::from_millis(33))
                .await;
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_decrypt_each_other_and_the_relay_sees_no_plaintext() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tap = Arc::new(Tap::default());
        let url = start_relay(tap.clone()).await;
        let mut clients = Vec::new();
        let mut seens = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let seen = Arc::new(Seen::default());
            let opts = ClientOptions {
                publish: vec![Source::Camera, Source::Microphone],
                frame_sink: Some(sink(seen.clone())),
                ..ClientOptions::default()
            };
            let c = Client::connect(&url, token(name, "room-e2e", full(), &SECRET), opts)
                .await
                .unwrap();
            clients.push(c);
            seens.push(seen);
        }
        // Settle: let negotiation and the key exchange finish while media flows.
        let (a, b, c) = (&clients[0], &clients[1], &clients[2]);
        tokio::join!(pump(a, 3, true), pump(b, 3, true), pump(c, 3, true));
        let settled: Vec<_> = clients.iter().map(|c| c.stats()).collect();
        tokio::join!(pump(a, 3, true), pump(b, 3, true), pump(c, 3, true));
        tokio::time::sleep(Duration::from_millis(500)).await;

        let indexes: Vec<u32> = clients.iter().map(|c| c.info().sender_index).collect();
        for (i, c) in clients.iter().enumerate() {
            eprintln!("client {i} ({}): {:?}", indexes[i], c.stats().received);
        }
        {
            let mut per_track = std::collections::BTreeMap::new();
            for (t, _) in tap.payloads.lock().unwrap().iter() {
                *per_track.entry(t.0).or_insert(0u64) += 1;
            }
            eprintln!("tap per track: {per_track:?}");
        }
        for (i, c) in clients.iter().enumerate() {
            let s = c.stats();
            for (j, &other) in indexes.iter().enumerate() {
                if i == j {
                    continue;
                }
                let r = s.received.get(&other).copied().unwrap_or_default();
                let before = settled[i].received.get(&other).copied().unwrap_or_default();
                assert!(r.decrypted > 150, "client {i} from {j}: {r:?}");
                assert_eq!(r.dropped.auth_failed, 0, "client {i} from {j}: {r:?}");
                assert_eq!(
                    r.dropped.total() - before.dropped.total(),
                    0,
                    "client {i} from {j}: drops after the keys settled: {r:?}"
                );
            }
            let seen = &seens[i];
            let frames = seen.frames.load(Ordering::Relaxed);
            assert!(frames > 300, "client {i} saw {frames} frames");
            assert_eq!(
                seen.with_marker.load(Ordering::Relaxed),
                frames,
                "client {i}"
            );
            assert!(s.sent[&Source::Camera].encrypted > 100);
            assert_eq!(s.sent[&Source::Camera].write_errors, 0);
        }
        {
            let payloads = tap.payloads.lock().unwrap();
            assert!(payloads.len() > 1000, "tap saw {}", payloads.len());
            let leaked = payloads
                .iter()
                .filter(|(_, p)| contains_marker_fragment(p))
                .count();
            assert_eq!(leaked, 0, "forwarded payloads holding plaintext");
        }
        for c in &mut clients {
            c.leave().await;
        }
    })
    .await
    .expect("test timed out");
}

// One publisher and two subscribers: with the relay as it is, a forwarded track lands on a new
// m-line only for a subscriber that publishes nothing (see the three-client test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_and_a_wrong_key_decrypt_nothing_of_the_new_epoch() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tap = Arc::new(Tap::default());
        let url = start_relay(tap.clone()).await;
        let mut clients = Vec::new();
        for (name, publish) in [("alice", true), ("bob", false), ("carol", false)] {
            let publish = if publish {
                vec![Source::Microphone]
            } else {
                vec![]
            };
            let opts = ClientOptions {
                publish,
                ..Default::default()
            };
            let c = Client::connect(&url, token(name, "room-leave", full(), &SECRET), opts)
                .await
                .unwrap();
            clients.push(c);
        }
        let ia = clients[0].info().sender_index;
        // Media flows once both subscribers negotiated: pump until they decrypt (bounded).
        for _ in 0..10 {
            pump(&clients[0], 1, false).await;
            let got = |c: &Client| c.stats().received.get(&ia).map_or(0, |r| r.decrypted);
            if got(&clients[1]) > 100 && got(&clients[2]) > 100 {
                break;
            }
        }
        let carol_before = clients[2].stats();
        assert!(
            carol_before.received[&ia].decrypted > 100,
            "{carol_before:?}"
        );
        let epoch_at_leave = clients[0].stats().sending_epoch.unwrap();
        let bob_before = clients[1].stats().received[&ia].decrypted;

        let mut carol = clients.pop().unwrap();
        carol.leave().await;
        // Alice goes on; the committer draws a fresh epoch for the two who stay.
        let mut mark = None;
        for _ in 0..8 {
            pump(&clients[0], 1, false).await;
            let switched = clients[0].stats().sending_epoch.unwrap() > epoch_at_leave;
            if mark.is_none() && switched {
                // Frames in flight at the switch may still be on the old epoch: skip a moment.
                pump(&clients[0], 1, false).await;
                mark = Some(tap.payloads.lock().unwrap().len());
            } else if mark.is_some() {
                break;
            }
        }
        let mark = mark.expect("alice never switched to a new epoch");
        let new_epoch: Vec<Vec<u8>> = tap.payloads.lock().unwrap()[mark..]
            .iter()
            .map(|(_, p)| p.clone())
            .collect();
        assert!(
            new_epoch.len() > 40,
            "only {} new-epoch frames",
            new_epoch.len()
        );

        // Bob still decrypts Alice on the new epoch, with no failure.
        let bob = clients[1].stats().received[&ia];
        assert!(bob.decrypted > bob_before + 40, "{bob:?}");
        assert_eq!(bob.dropped.total(), 0, "{bob:?}");

        // Carol's decryptor, with every key she had, opens none of them.
        let layout = Layout::Media(hush_frame::Codec::Opus);
        let opened = carol.with_decryptor(|d| {
            new_epoch
                .iter()
                .filter(|p| d.decrypt(layout, &mut p.to_vec()).is_ok())
                .count()
        });
        assert_eq!(opened, 0);

        // A wrong key under exactly the right KIDs fails authentication on every frame.
        let mut wrong = Decryptor::new(CipherSuite::Aes128GcmSha256_128);
        let key = BaseKey::new(&[0x11; 32]).unwrap();
        for p in &new_epoch {
            let (h, _) = Header::decode(&p[1..]).unwrap();
            if !wrong.has_key(h.kid) {
                wrong.add_key(h.kid, &key).unwrap();
            }
        }
        let opened = new_epoch
            .iter()
            .filter(|p| wrong.decrypt(layout, &mut p.to_vec()).is_ok());
        assert_eq!(opened.count(), 0);
        assert_eq!(wrong.stats().auth_failed, new_epoch.len() as u64);

        for c in &mut clients {
            c.leave().await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_two_subscribers_decrypt_and_the_relay_sees_no_plaintext() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tap = Arc::new(Tap::default());
        let url = start_relay(tap.clone()).await;
        let mut clients = Vec::new();
        let mut seens = Vec::new();
        for (name, publish) in [("alice", true), ("bob", false), ("carol", false)] {
            let seen = Arc::new(Seen::default());
            let publish = if publish {
                vec![Source::Camera, Source::Microphone]
            } else {
                vec![]
            };
            let opts = ClientOptions {
                publish,
                frame_sink: Some(sink(seen.clone())),
                ..ClientOptions::default()
            };
            let c = Client::connect(&url, token(name, "room-one", full(), &SECRET), opts)
                .await
                .unwrap();
            clients.push(c);
            seens.push(seen);
        }
        let ia = clients[0].info().sender_index;
        for _ in 0..10 {
            pump(&clients[0], 1, true).await;
            let got = |c: &Client| c.stats().received.get(&ia).map_or(0, |r| r.decrypted);
            if got(&clients[1]) > 200 && got(&clients[2]) > 200 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 1..3 {
            let r = clients[i].stats().received[&ia];
            assert!(r.decrypted > 100, "subscriber {i}: {r:?}");
            assert_eq!(r.dropped.auth_failed, 0, "subscriber {i}: {r:?}");
            let frames = seens[i].frames.load(Ordering::Relaxed);
            assert_eq!(frames, r.decrypted);
            assert_eq!(
                seens[i].with_marker.load(Ordering::Relaxed),
                frames,
                "subscriber {i}"
            );
        }
        {
            let payloads = tap.payloads.lock().unwrap();
            assert!(payloads.len() > 200, "tap saw {}", payloads.len());
            let leaked = payloads
                .iter()
                .filter(|(_, p)| contains_marker_fragment(p))
                .count();
            assert_eq!(leaked, 0, "forwarded payloads holding plaintext");
        }
        for c in &mut clients {
            c.leave().await;
        }
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_only_token_cannot_publish() {
    tokio::time::timeout(TEST_LIMIT, async {
        let tap = Arc::new(Tap::default());
        let url = start_relay(tap.clone()).await;
        let grants = Grants {
            publish: false,
            subscribe: true,
            ..Grants::default()
        };
        let opts = ClientOptions {
            publish: vec![Source::Camera],
            ..Default::default()
        };
        let mut c = Client::connect(&url, token("viewer", "room-ro", grants, &SECRET), opts)
            .await
            .unwrap();
        assert!(!c.info().grants.publish);
        let code = loop {
            match c.next_event().await {
                Some(ClientEvent::Error { code, .. }) => break code,
                Some(_) => {}
                None => panic!("closed without an error"),
            }
        };
        assert_eq!(code, ErrorCode::PublishNotAllowed);
        // Whatever it tries to send, nothing reaches the relay's forwarding path.
        for n in 0..30 {
            let f = vp8_frame(n, 300, 10);
            let _ = c
                .send_frame(Source::Camera, &f, Duration::from_millis(33))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(tap.seen.load(Ordering::Relaxed), 0);
        c.leave().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_key_is_refused_with_its_code() {
    tokio::time::timeout(TEST_LIMIT, async {
        let url = start_relay(Arc::new(Tap::default())).await;
        let bad = token("mallory", "room-x", full(), &[0x33; 32]);
        match Client::connect(&url, bad, ClientOptions::default()).await {
            Err(ClientError::Refused { code, .. }) => {
                assert_eq!(code, ErrorCode::TokenBadSignature)
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // An honest client still gets in.
        let ok = Client::connect(
            &url,
            token("alice", "room-x", full(), &SECRET),
            Default::default(),
        );
        let mut ok = ok.await.unwrap();
        assert_eq!(ok.info().room.as_str(), "room-x");
        ok.leave().await;
    })
    .await
    .expect("test timed out");
}
