//! `hush-load`: N native clients against a running relay for T seconds, each publishing
//! synthetic VP8 + Opus frames (SFrame-encrypted), printing packets received per second (what
//! the relay forwarded) and decrypt failures. Tokens come from a file, one per line (mint them
//! with `hush-relay token`); their `room` claims place the clients in rooms.
//!
//! ```text
//! hush-load --url ws://127.0.0.1:8080/v1/rtc --tokens tokens.txt --seconds 20
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hush_client::synth::{opus_frame, vp8_frame};
use hush_client::{Client, ClientOptions};
use hush_proto::{AccessToken, Source};

/// Load generator for a Hush relay.
#[derive(Parser, Debug)]
struct Args {
    /// The relay's signaling URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/rtc")]
    url: String,
    /// A file with one access token per line; one client per token.
    #[arg(long)]
    tokens: PathBuf,
    /// How long to send, in seconds (at most one hour).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Publish video too (VP8, 30 fps); audio (Opus, 50/s) is always sent.
    #[arg(long, default_value_t = true)]
    video: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let seconds = args.seconds.min(3600);
    let text = std::fs::read_to_string(&args.tokens)?;
    let tokens: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut publish = vec![Source::Microphone];
    if args.video {
        publish.push(Source::Camera);
    }
    let mut clients = Vec::new();
    for t in tokens {
        // The load tool's members are all its own clients, joined with tokens it was handed
        // and no backend to vouch for them: it admits whoever the relay announces.
        let opts = ClientOptions {
            publish: publish.clone(),
            ..ClientOptions::unauthenticated()
        };
        match Client::connect(&args.url, AccessToken::new(t), opts).await {
            Ok(c) => clients.push(Arc::new(c)),
            Err(e) => eprintln!("a client could not join: {e}"),
        }
    }
    println!("{} clients joined", clients.len());
    let mut senders = Vec::new();
    for c in &clients {
        let c = c.clone();
        let video = args.video;
        senders.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let ticks = seconds * 100;
            for n in 0..ticks {
                tick.tick().await;
                let n = u32::try_from(n).unwrap_or(u32::MAX);
                if n.is_multiple_of(2) {
                    let f = opus_frame(n, 80);
                    let _ = c
                        .send_frame(Source::Microphone, &f, Duration::from_millis(20))
                        .await;
                }
                if video && n.is_multiple_of(3) {
                    let f = vp8_frame(n / 3, if n.is_multiple_of(90) { 6000 } else { 900 }, 30);
                    let _ = c
                        .send_frame(Source::Camera, &f, Duration::from_millis(33))
                        .await;
                }
            }
        }));
    }
    let totals = |cs: &[Arc<Client>]| {
        cs.iter().fold((0u64, 0u64, 0u64), |(p, d, f), c| {
            let s = c.stats();
            let packets: u64 = s.received.values().map(|r| r.packets).sum();
            (p + packets, d + s.decrypted_total(), f + s.dropped_total())
        })
    };
    let mut last = totals(&clients);
    for second in 1..=seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = totals(&clients);
        println!(
            "t={second}s packets/s={} decrypted/s={} decrypt_failures={}",
            now.0 - last.0,
            now.1 - last.1,
            now.2
        );
        last = now;
    }
    for s in senders {
        let _ = s.await;
    }
    let (p, d, f) = totals(&clients);
    println!("total: packets={p} decrypted={d} decrypt_failures={f}");
    Ok(())
}
