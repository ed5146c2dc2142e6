//! Shared by the relay's integration tests: a relay on 127.0.0.1:0 and a WebSocket client.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)] // tests may panic

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_proto::{
    AccessToken, Audience, ClientMessage, Grants, Join, OpaqueBytes, ServerMessage, TokenClaims,
};
use hush_relay::http::{RelayOptions, serve};
use hush_relay::token::{SigningKey, VerifyingKeys, mint};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub const SECRET: [u8; 32] = [42u8; 32];
pub const KID: &str = "test";

/// How long any single wait in a test may take.
pub const STEP: Duration = Duration::from_secs(10);

pub fn keys() -> VerifyingKeys {
    let mut keys = VerifyingKeys::new();
    keys.add_hs256(KID, &SECRET).unwrap();
    keys
}

/// Starts a relay with `options` on 127.0.0.1:0.
pub async fn start(options: RelayOptions) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        serve(listener, options).await.unwrap();
    });
    addr
}

pub fn now_unix() -> u64 {
    hush_relay::driver::now().unix_secs()
}

/// A token for `sub` in `room`, expiring `exp_in` seconds from now (negative: in the past).
pub fn token(sub: &str, room: &str, exp_in: i64) -> String {
    let now = now_unix();
    let claims = TokenClaims {
        sub: sub.try_into().unwrap(),
        room: room.try_into().unwrap(),
        aud: Audience::from("hush"),
        exp: now.checked_add_signed(exp_in).unwrap(),
        nbf: None,
        iat: Some(now - 120),
        jti: Some(format!("{sub}-{room}-{exp_in}-{}", now)),
        grants: Grants {
            publish: true,
            subscribe: true,
            ..Grants::default()
        },
    };
    mint(&claims, &SigningKey::hs256(KID, &SECRET).unwrap()).unwrap()
}

pub fn join_message(token: String, room: Option<&str>) -> ClientMessage {
    ClientMessage::Join(Join {
        token: AccessToken::new(token),
        room: room.map(|r| r.try_into().unwrap()),
        identity_key: OpaqueBytes::new([9u8; 32]),
        attestation: None,
    })
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let (ws, _) = tokio::time::timeout(STEP, connect_async(format!("ws://{addr}/v1/rtc")))
            .await
            .unwrap()
            .unwrap();
        Self { ws }
    }

    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_text(message.encode()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next server message; `None` when the socket closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("no message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(ServerMessage::decode(text.as_str()).unwrap());
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Skips messages until one matches.
    pub async fn recv_until(&mut self, want: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        for _ in 0..100 {
            let message = self.recv().await.expect("socket closed");
            if want(&message) {
                return message;
            }
        }
        panic!("no matching message in 100");
    }

    /// Joins and returns `joined`.
    pub async fn join(addr: SocketAddr, sub: &str, room: &str) -> (Self, hush_proto::Joined) {
        let mut client = Self::connect(addr).await;
        client
            .send(&join_message(token(sub, room, 300), None))
            .await;
        match client.recv().await {
            Some(ServerMessage::Joined(joined)) => (client, joined),
            other => panic!("expected joined, got {other:?}"),
        }
    }

    /// Expects the socket to close (after any messages).
    pub async fn expect_closed(&mut self) {
        for _ in 0..10 {
            if self.recv().await.is_none() {
                return;
            }
        }
        panic!("socket stayed open");
    }
}
