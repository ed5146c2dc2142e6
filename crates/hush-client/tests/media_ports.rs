#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
//! Media on a configured UDP port range (`media_ports`): each participant's session binds one
//! port of the range, the call decrypts through them, a newcomer when every port is leased is
//! refused with `server_busy` while the call goes on, and a leaver's port is given back.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hush_proto::{ErrorCode, Source};
use hush_relay::media::ports::PortRange;
use hush_testkit::client::{Media, next_error, pump_until_decrypted};
use hush_testkit::relay::TestRelay;

const AV: &[Source] = &[Source::Camera, Source::Microphone];

/// Two consecutive free UDP ports on 127.0.0.1.
fn free_pair() -> u16 {
    for _ in 0..200 {
        let base = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base < 65000
            && UdpSocket::bind(("127.0.0.1", base)).is_ok()
            && UdpSocket::bind(("127.0.0.1", base + 1)).is_ok()
        {
            return base;
        }
    }
    panic!("no two free ports in a row");
}

fn in_use(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_bind_the_configured_range_and_a_full_range_refuses_newcomers() {
    let test = async {
        let base = free_pair();
        let range = Arc::new(PortRange::new(base, base + 1).unwrap());
        let ports = Arc::clone(&range);
        let relay = TestRelay::builder()
            .configure(move |o| o.media.udp_ports = Some(ports))
            .start()
            .await;
        let alice = relay.client("ports", "alice").publish(AV).connect().await;
        let bob = relay.client("ports", "bob").connect().await;
        let ia = alice.info().sender_index;
        pump_until_decrypted(&alice, &[&bob], 100, Media::AudioVideo, 10).await;
        assert!(bob.stats().received[&ia].decrypt.decrypted > 50);
        assert_eq!(range.leased(), 2);
        assert!(
            in_use(base) && in_use(base + 1),
            "media on {base} and {}",
            base + 1
        );

        // Every port leased: carol's media is refused, precisely, and the call goes on.
        let mut carol = relay.client("ports", "carol").connect().await;
        let refusal = next_error(&mut carol)
            .await
            .expect("an error before closing");
        assert_eq!(refusal, (ErrorCode::ServerBusy, true));
        let before = bob.stats().received[&ia].decrypt.decrypted;
        pump_until_decrypted(&alice, &[&bob], before + 30, Media::AudioVideo, 10).await;
        drop(carol);

        // Bob leaves: his port comes back and dave's media gets it.
        let mut bob = bob;
        bob.leave().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while range.leased() > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(range.leased(), 1, "bob's port given back");
        let dave = relay.client("ports", "dave").connect().await;
        pump_until_decrypted(&alice, &[&dave], 30, Media::AudioVideo, 10).await;
        assert!(dave.stats().received[&ia].decrypt.decrypted >= 30);
        assert_eq!(range.leased(), 2);
    };
    tokio::time::timeout(Duration::from_secs(90), test)
        .await
        .expect("test timed out");
}
