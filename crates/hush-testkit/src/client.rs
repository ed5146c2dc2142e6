//! Participants for a [`TestRelay`]: native [`hush_client::Client`]s that publish and decrypt
//! real media, and [`RawSignal`], a bare signaling WebSocket for tests that play a misbehaving
//! participant (any identity key, any `e2ee` payload, any text). The native half needs the
//! `native` feature (on by default); the relay's own tests leave it off, so that they build
//! without hush-client.

#[cfg(feature = "native")]
mod native;

#[cfg(feature = "native")]
pub use native::{
    ClientBuilder, Media, decrypted_from, next_error, opened_by, pump, pump_past_epoch,
    pump_until_decrypted, refusal_of,
};

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_proto::{
    AccessToken, ClientMessage, ErrorCode, ErrorMessage, Join, Joined, OpaqueBytes, Ping,
    ServerMessage,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, client_async, connect_async};

use crate::STEP;
use crate::http::HttpResponse;
use crate::relay::TestRelay;

/// The WebSocket under a [`RawSignal`].
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The identity key [`RawSignal::join_with`] presents.
pub const RAW_IDENTITY_KEY: [u8; 32] = [9u8; 32];

/// A signaling connection that sends exactly what the test says and reads every message.
#[derive(Debug)]
pub struct RawSignal {
    ws: WsStream,
}

impl RawSignal {
    /// Opens `url` (`ws://.../v1/rtc`); panics if the handshake fails or takes over [`STEP`].
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(STEP, connect_async(url))
            .await
            .expect("no WebSocket handshake in time")
            .expect("WebSocket handshake");
        Self { ws }
    }

    /// Opens a WebSocket to `addr` from `source` (an address on the loopback interface such as
    /// 127.0.0.2): the connection, or the relay's HTTP refusal of the upgrade.
    pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> Result<Self, HttpResponse> {
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind the source address");
        let stream = tokio::time::timeout(STEP, socket.connect(addr))
            .await
            .expect("no TCP connection in time")
            .expect("TCP connect");
        Self::handshake(format!("ws://{addr}/v1/rtc"), stream, &[]).await
    }

    /// Opens a WebSocket to `addr` with extra request `headers` (a reverse proxy's
    /// `X-Forwarded-For`, say): the connection, or the relay's HTTP refusal of the upgrade.
    pub async fn connect_with_headers(
        addr: SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<Self, HttpResponse> {
        let stream = tokio::time::timeout(STEP, tokio::net::TcpStream::connect(addr))
            .await
            .expect("no TCP connection in time")
            .expect("TCP connect");
        Self::handshake(format!("ws://{addr}/v1/rtc"), stream, headers).await
    }

    async fn handshake(
        url: String,
        stream: tokio::net::TcpStream,
        headers: &[(&str, &str)],
    ) -> Result<Self, HttpResponse> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = url.into_client_request().expect("a WebSocket URL");
        for (name, value) in headers {
            request.headers_mut().append(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
                tungstenite::http::HeaderValue::from_str(value).expect("a header value"),
            );
        }
        let handshake =
            tokio::time::timeout(STEP, client_async(request, MaybeTlsStream::Plain(stream)))
                .await
                .expect("no WebSocket handshake in time");
        match handshake {
            Ok((ws, _)) => Ok(Self { ws }),
            Err(tungstenite::Error::Http(response)) => Err(HttpResponse {
                status: response.status().as_u16(),
                headers: response
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            }),
            Err(other) => panic!("handshake failed: {other}"),
        }
    }

    /// Sends `join` with `token`, naming `room` if given, with [`RAW_IDENTITY_KEY`].
    pub async fn join_with(&mut self, token: impl Into<String>, room: Option<&str>) {
        self.join_with_key(token, room, RAW_IDENTITY_KEY.to_vec())
            .await;
    }

    /// Connects to `url` and joins with `token`: the connection and the refusal's code, or
    /// `None` when joined.
    pub async fn try_join(url: &str, token: &str) -> (Self, Option<ErrorCode>) {
        let mut c = Self::connect(url).await;
        c.join_with(token, None).await;
        let refusal = match c.recv().await {
            Some(ServerMessage::Joined(_)) => None,
            Some(ServerMessage::Error(e)) => Some(e.code),
            other => panic!("expected joined or an error, got {other:?}"),
        };
        (c, refusal)
    }

    /// Sends `join` presenting any bytes as the identity key.
    pub async fn join_with_key(
        &mut self,
        token: impl Into<String>,
        room: Option<&str>,
        identity_key: Vec<u8>,
    ) {
        let join = ClientMessage::Join(Join {
            token: AccessToken::new(token),
            room: room.map(|r| r.try_into().expect("a valid room id")),
            identity_key: OpaqueBytes::new(identity_key),
            attestation: None,
            offers_first: None,
        });
        self.send(&join).await;
    }

    /// Sends a message.
    pub async fn send(&mut self, message: &ClientMessage) {
        self.send_text(message.encode()).await;
    }

    /// Sends any text.
    pub async fn send_text(&mut self, text: String) {
        self.send_raw(Message::text(text)).await;
    }

    /// Sends any WebSocket message; panics if the socket is gone.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send on the WebSocket");
    }

    /// Like [`RawSignal::send_raw`], for a send the relay may cut short.
    pub async fn try_send_raw(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(message).await
    }

    /// The next WebSocket message of any kind; panics if none comes within [`STEP`].
    pub async fn next_raw(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        self.next_raw_within(STEP)
            .await
            .expect("no WebSocket message in time")
    }

    /// The next WebSocket message of any kind, or `Err` when none came within `limit`.
    pub async fn next_raw_within(
        &mut self,
        limit: Duration,
    ) -> Result<Option<Result<Message, tungstenite::Error>>, tokio::time::error::Elapsed> {
        tokio::time::timeout(limit, self.ws.next()).await
    }

    /// Starts the closing handshake.
    pub async fn close(&mut self) -> Result<(), tungstenite::Error> {
        self.ws.close(None).await
    }

    /// The WebSocket, for a test that drives it itself.
    pub fn into_ws(self) -> WsStream {
        self.ws
    }

    /// The next server message; `None` when the socket closed. Panics if none comes within
    /// [`STEP`] or one does not decode.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            match self.next_raw().await {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        ServerMessage::decode(text.as_str()).expect("a server message decodes"),
                    );
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next server message if one comes within `limit`; `None` on silence or close.
    /// Panics if one does not decode.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<ServerMessage> {
        loop {
            match self.next_raw_within(limit).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(
                        ServerMessage::decode(text.as_str()).expect("a server message decodes"),
                    );
                }
                Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) | Err(_) => return None,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Skips messages until one matches (100 at most).
    pub async fn recv_until(&mut self, want: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        for _ in 0..100 {
            let message = self.recv().await.expect("socket closed");
            if want(&message) {
                return message;
            }
        }
        panic!("no matching message in 100");
    }

    /// Expects `joined` as the next message.
    pub async fn expect_joined(&mut self) -> Joined {
        match self.recv().await {
            Some(ServerMessage::Joined(joined)) => joined,
            other => panic!("expected joined, got {other:?}"),
        }
    }

    /// Expects `error` as the next message.
    pub async fn expect_error(&mut self) -> ErrorMessage {
        match self.recv().await {
            Some(ServerMessage::Error(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Skips messages until an `error`.
    pub async fn next_error(&mut self) -> ErrorMessage {
        match self
            .recv_until(|m| matches!(m, ServerMessage::Error(_)))
            .await
        {
            ServerMessage::Error(e) => e,
            _ => unreachable!("recv_until returned a match"),
        }
    }

    /// Expects a fatal `error` with `code` as the next message, then the socket to close.
    pub async fn expect_fatal(&mut self, code: ErrorCode) {
        let e = self.expect_error().await;
        assert_eq!((e.code, e.fatal), (code, true), "{e:?}");
        self.expect_closed().await;
    }

    /// Expects the socket to close (after at most 10 messages).
    pub async fn expect_closed(&mut self) {
        for _ in 0..10 {
            if self.recv().await.is_none() {
                return;
            }
        }
        panic!("socket stayed open");
    }

    /// Sends `ping` and skips messages until the `pong`, which must carry `seq`.
    pub async fn ping(&mut self, seq: u64) {
        self.send(&ClientMessage::Ping(Ping { seq })).await;
        let pong = self
            .recv_until(|m| matches!(m, ServerMessage::Pong(_)))
            .await;
        assert_eq!(pong, ServerMessage::Pong(Ping { seq }));
    }

    /// Sends `ping` and waits for its `pong`: everything sent before was handled. Panics on an
    /// `error` before it.
    pub async fn round_trip(&mut self, seq: u64) {
        self.send(&ClientMessage::Ping(Ping { seq })).await;
        for _ in 0..10 {
            match self.recv().await {
                Some(ServerMessage::Pong(p)) if p.seq == seq => return,
                Some(ServerMessage::Error(e)) => panic!("refused: {e:?}"),
                Some(_) => {}
                None => panic!("closed"),
            }
        }
        panic!("no pong");
    }
}

impl TestRelay {
    /// A raw signaling connection, not joined.
    pub async fn signal(&self) -> RawSignal {
        RawSignal::connect(&self.ws_url()).await
    }

    /// A raw signaling connection joined as `sub` in `room` (publish and subscribe granted).
    pub async fn join(&self, sub: &str, room: &str) -> (RawSignal, Joined) {
        let mut signal = self.signal().await;
        signal
            .join_with(self.tokens().member(room, sub), None)
            .await;
        let joined = signal.expect_joined().await;
        (signal, joined)
    }
}
