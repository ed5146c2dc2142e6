//! Native [`hush_client::Client`]s joined to a [`TestRelay`], and media pumps.

use std::time::Duration;

use hush_client::keys::KeyAgent;
use hush_client::synth::{opus_frame, vp8_frame};
use hush_client::{Client, ClientError, ClientEvent, ClientOptions, FrameSink};
use hush_frame::{Codec, Layout};
use hush_proto::{ErrorCode, Grants, Source};
use tokio::time::Instant;

use crate::STEP;
use crate::relay::{RelayProcess, Tap, TestRelay};
use crate::tokens::Tokens;

impl TestRelay {
    /// A native client for `sub` in `room`, to set up and connect.
    pub fn client(&self, room: &str, sub: &str) -> ClientBuilder<'_> {
        ClientBuilder::new(self.tokens(), self.ws_url(), room, sub)
    }
}

impl RelayProcess {
    /// A native client for `sub` in `room` of this relay process, with tokens and attestations
    /// from `tokens` (the process must accept them: `[[keys]]` in its config).
    pub fn client<'a>(&self, tokens: &'a Tokens, room: &str, sub: &str) -> ClientBuilder<'a> {
        ClientBuilder::new(tokens, self.ws_url(), room, sub)
    }
}

impl<'a> ClientBuilder<'a> {
    fn new(tokens: &'a Tokens, ws: String, room: &str, sub: &str) -> Self {
        ClientBuilder {
            tokens,
            ws,
            room: room.to_owned(),
            sub: sub.to_owned(),
            grants: Grants {
                publish: true,
                subscribe: true,
                ..Grants::default()
            },
            options: ClientOptions::vouched_by(tokens.backend_key()),
            vouched: true,
        }
    }
}

/// A native client about to connect: a member who may publish and subscribe, publishing
/// nothing, admitting only members the kit's backend vouched for and vouched for itself (the
/// product path: identity first, then the backend's attestation, then `join`), unless told
/// otherwise.
#[derive(Debug)]
#[must_use = "a builder connects nothing until `connect`"]
pub struct ClientBuilder<'a> {
    tokens: &'a Tokens,
    ws: String,
    room: String,
    sub: String,
    grants: Grants,
    options: ClientOptions,
    vouched: bool,
}

impl ClientBuilder<'_> {
    /// Publishes these sources.
    pub fn publish(mut self, sources: &[Source]) -> Self {
        self.options.publish = sources.to_vec();
        self
    }

    /// The token's grants.
    pub fn grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
        self
    }

    /// Adds the `moderator` grant.
    pub fn moderator(mut self) -> Self {
        self.grants.moderator = true;
        self
    }

    /// Hands every decrypted frame to `sink`.
    pub fn frame_sink(mut self, sink: FrameSink) -> Self {
        self.options.frame_sink = Some(sink);
        self
    }

    /// Joins without the backend's attestation: vouching members refuse this client.
    pub fn unvouched(mut self) -> Self {
        self.vouched = false;
        self
    }

    /// Admits whoever the relay announces ([`hush_participant::Membership::Unauthenticated`]).
    pub fn unauthenticated(mut self) -> Self {
        self.options.membership = hush_participant::Membership::Unauthenticated;
        self
    }

    /// Changes any other option.
    pub fn options(mut self, change: impl FnOnce(&mut ClientOptions)) -> Self {
        change(&mut self.options);
        self
    }

    /// Connects and joins.
    pub async fn try_connect(self) -> Result<Client, ClientError> {
        let token = self
            .tokens
            .mint(&self.room, &self.sub)
            .grants(self.grants)
            .token();
        let mut keys = KeyAgent::new(self.options.membership.clone())?;
        if self.vouched {
            let attestation = self
                .tokens
                .attest(&self.room, &self.sub, &keys.identity_key());
            keys.set_attestation(attestation);
        }
        Client::join(&self.ws, token, keys, self.options).await
    }

    /// Connects and joins; panics on a refusal.
    pub async fn connect(self) -> Client {
        let who = self.sub.clone();
        match self.try_connect().await {
            Ok(client) => client,
            Err(e) => panic!("{who} did not join: {e:?}"),
        }
    }
}

/// What [`pump`] sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// Opus at 50 frames per second.
    Audio,
    /// Opus at 50 and VP8 at 33 frames per second (every third one over one RTP packet).
    AudioVideo,
}

/// Sends synthetic frames (with the plaintext marker) for `secs`, paced on a 10 ms tick;
/// send errors are ignored (a source may not be negotiated yet).
pub async fn pump(client: &Client, secs: u64, media: Media) {
    let start = Instant::now();
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
        if media == Media::AudioVideo && n.is_multiple_of(3) {
            let len = if n.is_multiple_of(9) { 2500 } else { 400 };
            let f = vp8_frame(n / 3, len, 30);
            let _ = client
                .send_frame(Source::Camera, &f, Duration::from_millis(33))
                .await;
        }
        n += 1;
    }
}

/// How many frames `client` decrypted from the sender with `sender_index`.
pub fn decrypted_from(client: &Client, sender_index: u32) -> u64 {
    client
        .stats()
        .received
        .get(&sender_index)
        .map_or(0, |r| r.decrypt.decrypted)
}

/// Pumps `publisher` one second at a time (for `max_secs` at most) until every one of
/// `subscribers` decrypted more than `frames` of its frames. Media flows once each subscriber
/// negotiated; whether they got there is for the caller to assert on what this returns: how
/// many each subscriber decrypted, in order.
pub async fn pump_until_decrypted(
    publisher: &Client,
    subscribers: &[&Client],
    frames: u64,
    media: Media,
    max_secs: u64,
) -> Vec<u64> {
    let from = publisher.info().sender_index;
    let counts = || -> Vec<u64> {
        subscribers
            .iter()
            .map(|c| decrypted_from(c, from))
            .collect()
    };
    for _ in 0..max_secs {
        pump(publisher, 1, media).await;
        if counts().iter().all(|&n| n > frames) {
            break;
        }
    }
    counts()
}

/// Pumps audio one second at a time (8 s at most) until `publisher` sends on an epoch after
/// `epoch`, then one more second (frames in flight at the switch may still be on the old
/// epoch): the [`crate::relay::Tap`] mark after which every payload is on the new epoch, and
/// one second of them follows it. `None` if the epoch never moved.
pub async fn pump_past_epoch(publisher: &Client, epoch: u64, tap: &Tap) -> Option<usize> {
    for _ in 0..8 {
        pump(publisher, 1, Media::Audio).await;
        if publisher.stats().sending_epoch.is_some_and(|e| e > epoch) {
            pump(publisher, 1, Media::Audio).await;
            let mark = tap.len();
            pump(publisher, 1, Media::Audio).await;
            return Some(mark);
        }
    }
    None
}

/// How many of `frames` (forwarded Opus payloads) `client`'s decryptor opens with every key it
/// holds.
pub fn opened_by(client: &Client, frames: &[Vec<u8>]) -> usize {
    let layout = Layout::Media(Codec::Opus);
    client.with_decryptor(|d| {
        frames
            .iter()
            .filter(|p| d.decrypt(layout, &mut p.to_vec()).is_ok())
            .count()
    })
}

/// The next `error` event's code and whether it is fatal, skipping other events (1000 at
/// most); `None` when the session closed first. Panics when no event comes within [`STEP`].
pub async fn next_error(client: &mut Client) -> Option<(ErrorCode, bool)> {
    for _ in 0..1000 {
        let event = tokio::time::timeout(STEP, client.next_event())
            .await
            .expect("no event in time");
        match event {
            Some(ClientEvent::Error { code, fatal, .. }) => return Some((code, fatal)),
            Some(ClientEvent::Closed) | None => return None,
            Some(_) => {}
        }
    }
    panic!("no error in 1000 events");
}

/// Drains `client`'s queued events; the reason code of the last refusal of `who` among them.
pub fn refusal_of(client: &mut Client, who: &str) -> Option<&'static str> {
    let mut refused = None;
    while let Some(ev) = client.try_event() {
        if let ClientEvent::Keys(hush_participant::Event::MemberRefused {
            participant,
            reason,
        }) = ev
            && participant == who
        {
            refused = Some(reason.code());
        }
    }
    refused
}
