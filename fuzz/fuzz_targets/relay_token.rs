//! The relay's token verification (`TokenVerifier::verify`: JWS parsing, signature, claims,
//! policy, replay cache) on arbitrary strings, and on tokens the fuzzer assembles: any header
//! (known and unknown `alg` and `kid`, extra members, raw JSON), any claims (built field by
//! field, or raw JSON) signed with the relay's HS256 or Ed25519 key, a key it lacks, or with a
//! changed signature. Never a panic; a token verifies only if one of the relay's keys signed it
//! and its claims meet the policy; a token with a `jti` verifies once.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, KeyInit, Mac};
use hush_proto::RoomId;
use hush_relay::token::{TokenPolicy, TokenVerifier, VerifyingKeys};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use sha2::Sha256;

const NOW: u64 = 1_800_000_000;
const HS_SECRET: [u8; 32] = [42; 32];

#[derive(Arbitrary, Debug)]
enum Header {
    Fields {
        alg: u8,
        kid: u8,
        typ: Option<String>,
        extra: bool,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Aud {
    Ours,
    Other(String),
    Many(Vec<String>),
    Number(u64),
}

/// Claims built field by field; `None` leaves the member out.
#[derive(Arbitrary, Debug)]
struct ClaimFields {
    sub: Option<String>,
    room: Option<String>,
    aud: Option<Aud>,
    /// Seconds from `NOW`.
    exp: Option<i32>,
    nbf: Option<i32>,
    iat: Option<i32>,
    jti: Option<String>,
    grants: Option<(bool, bool, bool, Option<Vec<String>>)>,
    /// An extra member, or a claim with a value of the wrong type.
    extra: Option<(String, i64)>,
}

#[derive(Arbitrary, Debug)]
enum Claims {
    Fields(ClaimFields),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Signer {
    Hs256,
    Ed25519,
    /// Keys the relay does not hold.
    ForeignHs256,
    ForeignEd25519,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Token {
    Raw(String),
    Built {
        header: Header,
        claims: Claims,
        signer: Signer,
        flip: Option<u8>,
    },
}

#[derive(Arbitrary, Debug)]
struct Run {
    token: Token,
    room: Option<String>,
    /// Seconds added to the verifier's clock.
    skew: i16,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn header(h: Header) -> String {
    match h {
        Header::Raw(s) => s,
        Header::Fields {
            alg,
            kid,
            typ,
            extra,
        } => {
            let alg = ["HS256", "EdDSA", "none", "RS256", "ES256", "hs256"][usize::from(alg) % 6];
            let mut v = json!({ "alg": alg });
            match kid % 4 {
                0 => v["kid"] = json!("k1"),
                1 => v["kid"] = json!("e1"),
                2 => v["kid"] = json!("unknown"),
                _ => {}
            }
            if let Some(t) = typ {
                v["typ"] = json!(t);
            }
            if extra {
                v["crit"] = json!(["exp"]);
            }
            v.to_string()
        }
    }
}

fn claims(c: Claims) -> String {
    let f = match c {
        Claims::Raw(s) => return s,
        Claims::Fields(f) => f,
    };
    let rel = |d: i32| Value::from(NOW.saturating_add_signed(i64::from(d)));
    let aud = f.aud.map(|a| match a {
        Aud::Ours => json!("hush"),
        Aud::Other(s) => json!(s),
        Aud::Many(l) => json!(l),
        Aud::Number(n) => json!(n),
    });
    let grants = f.grants.map(|(publish, subscribe, moderator, sources)| {
        let mut g = json!({ "publish": publish, "subscribe": subscribe, "moderator": moderator });
        if let Some(s) = sources {
            g["sources"] = json!(s);
        }
        g
    });
    let mut v = json!({});
    for (name, value) in [
        ("sub", f.sub.map(Value::from)),
        ("room", f.room.map(Value::from)),
        ("aud", aud),
        ("exp", f.exp.map(rel)),
        ("nbf", f.nbf.map(rel)),
        ("iat", f.iat.map(rel)),
        ("jti", f.jti.map(Value::from)),
        ("grants", grants),
    ] {
        if let Some(value) = value {
            v[name] = value;
        }
    }
    if let Some((k, n)) = f.extra {
        v[k] = json!(n);
    }
    v.to_string()
}

fuzz_target!(|run: Run| {
    let ed = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("k1", &HS_SECRET).expect("a valid key");
    keys.add_ed25519("e1", &ed.verifying_key().to_bytes())
        .expect("a valid key");
    let mut policy = TokenPolicy::new("hush");
    policy.replay_capacity = 4;
    let mut verifier = TokenVerifier::new(keys, policy.clone());

    // Whether the relay may accept it at all: signed by one of its keys, unchanged.
    let (token, ours) = match run.token {
        Token::Raw(s) => (s, false),
        Token::Built {
            header: h,
            claims: c,
            signer,
            flip,
        } => {
            let input = format!(
                "{}.{}",
                b64(header(h).as_bytes()),
                b64(claims(c).as_bytes())
            );
            let (mut sig, ours) = match signer {
                Signer::Hs256 | Signer::ForeignHs256 => {
                    let ours = matches!(signer, Signer::Hs256);
                    let secret = if ours { HS_SECRET } else { [7; 32] };
                    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any length");
                    mac.update(input.as_bytes());
                    (mac.finalize().into_bytes().to_vec(), ours)
                }
                Signer::Ed25519 => (ed.sign(input.as_bytes()).to_bytes().to_vec(), true),
                Signer::ForeignEd25519 => {
                    let other = ed25519_dalek::SigningKey::from_bytes(&[12; 32]);
                    (other.sign(input.as_bytes()).to_bytes().to_vec(), false)
                }
                Signer::Raw(b) => (b, false),
            };
            let mut ours = ours;
            if let (Some(i), false) = (flip, sig.is_empty()) {
                let i = usize::from(i) % sig.len();
                sig[i] ^= 0x01;
                ours = false;
            }
            (format!("{input}.{}", b64(&sig)), ours)
        }
    };

    let now = NOW.saturating_add_signed(i64::from(run.skew));
    let room = run.room.and_then(|r| RoomId::new(r).ok());
    match verifier.verify(now, &token, room.as_ref()) {
        Ok(claims) => {
            assert!(
                ours,
                "a token verified that none of the relay's keys signed"
            );
            let leeway = policy.leeway_secs;
            assert!(
                claims.exp.saturating_add(leeway) > now,
                "expired token accepted"
            );
            assert!(claims.exp <= now + policy.max_lifetime_secs + leeway);
            assert!(claims.nbf.is_none_or(|nbf| nbf <= now + leeway));
            assert!(claims.iat.is_none_or(|iat| iat <= now + leeway));
            assert!(claims.aud.contains("hush"), "wrong audience accepted");
            assert!(
                room.as_ref().is_none_or(|r| *r == claims.room),
                "wrong room accepted"
            );
            assert!(claims.jti.is_some(), "jti is required by the policy");
            assert!(
                verifier.verify(now, &token, room.as_ref()).is_err(),
                "a token verified twice"
            );
        }
        Err(e) => {
            let _ = e.code();
        }
    }
});
