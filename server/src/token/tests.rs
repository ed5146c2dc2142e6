//! Every refusal, each with its own code, and honest tokens still accepted beside them.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hush_proto::limits::MAX_TOKEN_BYTES;
use hush_proto::{Audience, ErrorCode, Grants, RoomId, Source, TokenClaims};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_800_000_000;
const HS_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const HS_SECRET_2: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
const ED_SEED: [u8; 32] = [7; 32];

fn room(name: &str) -> RoomId {
    RoomId::new(name).unwrap()
}

fn claims(jti: &str) -> TokenClaims {
    TokenClaims {
        sub: "p1".try_into().unwrap(),
        room: room("standup"),
        aud: Audience::from("hush"),
        exp: NOW + 600,
        nbf: Some(NOW - 10),
        iat: Some(NOW - 10),
        jti: Some(jti.to_owned()),
        grants: Grants {
            publish: true,
            subscribe: true,
            sources: Some(vec![Source::Camera]),
            ..Grants::default()
        },
    }
}

fn hs_key() -> SigningKey {
    SigningKey::hs256("hs-1", HS_SECRET).unwrap()
}

fn ed_key() -> SigningKey {
    SigningKey::ed25519("ed-1", &ED_SEED).unwrap()
}

fn verifier() -> TokenVerifier {
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("hs-1", HS_SECRET).unwrap();
    keys.add_hs256("hs-2", HS_SECRET_2).unwrap();
    keys.add_ed25519("ed-1", &ed_key().ed25519_public_key().unwrap())
        .unwrap();
    TokenVerifier::new(keys, TokenPolicy::new("hush"))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A token assembled by hand: the header and claims as given, any signature.
fn forge(header: Value, claims: Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(&header),
        b64(&claims),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// Mints claims given as JSON (so that claims can be left out or mistyped).
fn mint_json(claims: Value, key: &SigningKey) -> String {
    super::mint::sign(&claims, key).unwrap()
}

fn refusal(token: &str) -> (TokenError, ErrorCode) {
    let err = verifier()
        .verify(NOW, token, Some(&room("standup")))
        .unwrap_err();
    (err, err.code())
}

#[test]
fn honest_tokens_of_both_algorithms_are_accepted() {
    let mut v = verifier();
    for (key, jti) in [(hs_key(), "a"), (ed_key(), "b")] {
        let token = mint(&claims(jti), &key).unwrap();
        let got = v.verify(NOW, &token, Some(&room("standup"))).unwrap();
        assert_eq!(got, claims(jti));
        // Without a room in the join, the token's room is used.
        let token = mint(&claims(&format!("{jti}2")), &key).unwrap();
        assert_eq!(v.verify(NOW, &token, None).unwrap().room, room("standup"));
    }
    // The second HS256 key works too (rotation: several keys at once).
    let token = mint(
        &claims("c"),
        &SigningKey::hs256("hs-2", HS_SECRET_2).unwrap(),
    )
    .unwrap();
    assert!(v.verify(NOW, &token, None).is_ok());
}

#[test]
fn expired() {
    let mut c = claims("x");
    c.exp = NOW - 31; // past the 30 s leeway
    assert_eq!(
        refusal(&mint(&c, &hs_key()).unwrap()),
        (TokenError::Expired, ErrorCode::TokenExpired)
    );
    c.exp = NOW - 29; // within the leeway
    assert!(
        verifier()
            .verify(NOW, &mint(&c, &hs_key()).unwrap(), None)
            .is_ok()
    );
}

#[test]
fn not_yet_valid() {
    let mut c = claims("x");
    c.nbf = Some(NOW + 60);
    let got = refusal(&mint(&c, &ed_key()).unwrap());
    assert_eq!(got, (TokenError::NotYetValid, ErrorCode::TokenNotYetValid));
}

#[test]
fn issued_in_the_future() {
    let mut c = claims("x");
    c.iat = Some(NOW + 60);
    c.nbf = None;
    let got = refusal(&mint(&c, &hs_key()).unwrap());
    assert_eq!(
        got,
        (TokenError::IssuedInFuture, ErrorCode::TokenIssuedInFuture)
    );
}

#[test]
fn lifetime_over_the_policy_cap() {
    let mut c = claims("x");
    c.exp = NOW + 3600 + 31;
    let got = refusal(&mint(&c, &hs_key()).unwrap());
    assert_eq!(
        got,
        (TokenError::LifetimeTooLong, ErrorCode::TokenLifetimeTooLong)
    );
}

#[test]
fn wrong_room() {
    let token = mint(&claims("x"), &hs_key()).unwrap();
    let err = verifier()
        .verify(NOW, &token, Some(&room("board-meeting")))
        .unwrap_err();
    assert_eq!(
        (err, err.code()),
        (TokenError::WrongRoom, ErrorCode::TokenWrongRoom)
    );
}

#[test]
fn wrong_audience() {
    let mut c = claims("x");
    c.aud = Audience::Many(vec!["other-relay".into(), "HUSH".into()]);
    let got = refusal(&mint(&c, &hs_key()).unwrap());
    assert_eq!(
        got,
        (TokenError::WrongAudience, ErrorCode::TokenWrongAudience)
    );
}

#[test]
fn bad_signature() {
    // Signed with a secret the relay does not have, under a kid it knows.
    let wrong = SigningKey::hs256("hs-1", b"not-the-secret-not-the-secret-!!").unwrap();
    let got = refusal(&mint(&claims("x"), &wrong).unwrap());
    assert_eq!(
        got,
        (TokenError::BadSignature, ErrorCode::TokenBadSignature)
    );

    // Claims changed after signing (here: the room), for both algorithms.
    for key in [hs_key(), ed_key()] {
        let token = mint(&claims("x"), &key).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut tampered = claims("x");
        tampered.room = room("board-meeting");
        let body = b64(&serde_json::to_value(&tampered).unwrap());
        let forged = format!("{}.{}.{}", parts[0], body, parts[2]);
        let err = verifier().verify(NOW, &forged, None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenBadSignature);
    }

    // An Ed25519 signature by another key.
    let other = SigningKey::ed25519("ed-1", &[9; 32]).unwrap();
    let got = refusal(&mint(&claims("x"), &other).unwrap());
    assert_eq!(got.1, ErrorCode::TokenBadSignature);
}

#[test]
fn unknown_key_id() {
    let stranger = SigningKey::hs256("hs-9", HS_SECRET).unwrap();
    let got = refusal(&mint(&claims("x"), &stranger).unwrap());
    assert_eq!(got, (TokenError::UnknownKey, ErrorCode::TokenUnknownKey));

    // No kid while several keys are configured: the relay does not guess.
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let token = forge(header, serde_json::to_value(claims("x")).unwrap(), &[0; 32]);
    assert_eq!(refusal(&token).1, ErrorCode::TokenUnknownKey);

    // A revoked key is unknown.
    let mut v = verifier();
    assert!(v.keys_mut().remove("hs-1"));
    let err = v
        .verify(NOW, &mint(&claims("x"), &hs_key()).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::TokenUnknownKey);
}

#[test]
fn alg_none_is_refused() {
    let body = serde_json::to_value(claims("x")).unwrap();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT", "kid": "hs-1"});
        let token = forge(header.clone(), body.clone(), b"");
        let got = refusal(&token);
        assert_eq!(
            got,
            (
                TokenError::UnsupportedAlgorithm,
                ErrorCode::TokenUnsupportedAlgorithm
            )
        );
        // Also without the kid and with a single configured key.
        let mut keys = VerifyingKeys::new();
        keys.add_hs256("hs-1", HS_SECRET).unwrap();
        let mut v = TokenVerifier::new(keys, TokenPolicy::new("hush"));
        let token = forge(json!({"alg": alg}), body.clone(), b"");
        assert_eq!(
            v.verify(NOW, &token, None).unwrap_err(),
            TokenError::UnsupportedAlgorithm
        );
    }
    for alg in ["HS512", "RS256", "ES256", "hs256", "Ed25519"] {
        let token = forge(json!({"alg": alg, "kid": "hs-1"}), body.clone(), &[0; 64]);
        assert_eq!(
            refusal(&token).1,
            ErrorCode::TokenUnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_eddsa_public_key_is_refused() {
    // The classic confusion: the attacker knows the Ed25519 public key and uses it as an HMAC
    // secret, naming the Ed25519 key's kid.
    let public = ed_key().ed25519_public_key().unwrap();
    let confused = SigningKey::hs256("ed-1", &public).unwrap();
    let got = refusal(&mint(&claims("x"), &confused).unwrap());
    assert_eq!(
        got,
        (
            TokenError::AlgorithmMismatch,
            ErrorCode::TokenAlgorithmMismatch
        )
    );

    // Same with no kid and the Ed25519 key as the only key.
    let mut keys = VerifyingKeys::new();
    keys.add_ed25519("ed-1", &public).unwrap();
    let mut v = TokenVerifier::new(keys, TokenPolicy::new("hush"));
    let token = forge(
        json!({"alg": "HS256"}),
        serde_json::to_value(claims("x")).unwrap(),
        &[0; 32],
    );
    assert_eq!(
        v.verify(NOW, &token, None).unwrap_err(),
        TokenError::AlgorithmMismatch
    );
    // And the reverse: an EdDSA header naming an HS256 key.
    let token = forge(
        json!({"alg": "EdDSA", "kid": "hs-1"}),
        serde_json::to_value(claims("x")).unwrap(),
        &[0; 64],
    );
    assert_eq!(refusal(&token).0, TokenError::AlgorithmMismatch);
}

#[test]
fn missing_claims() {
    let full = serde_json::to_value(claims("x")).unwrap();
    for name in ["sub", "room", "aud", "exp", "grants", "jti"] {
        for key in [hs_key(), ed_key()] {
            let mut c = full.clone();
            c.as_object_mut().unwrap().remove(name);
            let got = refusal(&mint_json(c, &key));
            assert_eq!(
                got,
                (TokenError::MissingClaim(name), ErrorCode::TokenMissingClaim)
            );
            assert!(got.0.to_string().contains(name));
        }
    }
    // Optional ones may be missing.
    for name in ["nbf", "iat"] {
        let mut c = full.clone();
        c.as_object_mut().unwrap().remove(name);
        assert!(
            verifier()
                .verify(NOW, &mint_json(c, &hs_key()), None)
                .is_ok(),
            "{name}"
        );
    }
    // jti may be missing when the policy allows it (then tokens are not single use).
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("hs-1", HS_SECRET).unwrap();
    let mut policy = TokenPolicy::new("hush");
    policy.require_jti = false;
    let mut v = TokenVerifier::new(keys, policy);
    let mut c = full.clone();
    c.as_object_mut().unwrap().remove("jti");
    assert!(v.verify(NOW, &mint_json(c, &hs_key()), None).is_ok());
}

#[test]
fn invalid_claims() {
    let full = serde_json::to_value(claims("x")).unwrap();
    for (name, bad) in [
        ("sub", json!("")),
        ("sub", json!(17)),
        ("room", json!("has space")),
        ("aud", json!(7)),
        ("exp", json!("soon")),
        ("exp", json!(-1)),
        ("nbf", json!(1.5)),
        ("grants", json!({"sources": ["hologram"]})),
        ("grants", json!(true)),
        ("jti", json!("")),
        ("jti", json!("j".repeat(129))),
    ] {
        let mut c = full.clone();
        c[name] = bad;
        let got = refusal(&mint_json(c, &hs_key()));
        assert_eq!(
            got,
            (TokenError::InvalidClaim(name), ErrorCode::TokenInvalidClaim),
            "{name}"
        );
    }
}

#[test]
fn oversized_token() {
    let mut c = claims("x");
    c.jti = None;
    let mut big = serde_json::to_value(&c).unwrap();
    big["padding"] = json!("p".repeat(MAX_TOKEN_BYTES));
    let token = mint_json(big, &hs_key());
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(
        refusal(&token),
        (TokenError::TooLarge, ErrorCode::TokenTooLarge)
    );
    // Refused before any parsing: even garbage of that size gets the size code.
    assert_eq!(
        refusal(&"x".repeat(MAX_TOKEN_BYTES + 1)).1,
        ErrorCode::TokenTooLarge
    );
}

#[test]
fn malformed_tokens() {
    let body = serde_json::to_value(claims("x")).unwrap();
    let good = mint(&claims("x"), &hs_key()).unwrap();
    let two_parts = good.rsplit_once('.').unwrap().0.to_owned();
    let bad_header_b64 = format!("!!!.{}", good.split_once('.').unwrap().1);
    for token in [
        String::new(),
        "abc".into(),
        two_parts,
        format!("{good}.extra"),
        bad_header_b64,
        forge(json!("not an object"), body.clone(), &[0; 32]),
        forge(json!({"kid": "hs-1"}), body.clone(), &[0; 32]),
        forge(json!({"alg": 256, "kid": "hs-1"}), body.clone(), &[0; 32]),
        forge(json!({"alg": "HS256", "kid": 1}), body.clone(), &[0; 32]),
        forge(
            json!({"alg": "HS256", "kid": "hs-1", "crit": ["exp"]}),
            body.clone(),
            &[0; 32],
        ),
    ] {
        assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed, "{token}");
    }
    // A correctly signed token whose claims are not an object.
    let token = mint_json(json!(["sub", "p1"]), &hs_key());
    assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed);
}

#[test]
fn replayed_jti() {
    let mut v = verifier();
    let token = mint(&claims("once"), &ed_key()).unwrap();
    assert!(v.verify(NOW, &token, None).is_ok());
    let err = v.verify(NOW + 1, &token, None).unwrap_err();
    assert_eq!(
        (err, err.code()),
        (TokenError::Replayed, ErrorCode::TokenReplayed)
    );
    // A different token with the same jti is a replay too.
    let again = mint(&claims("once"), &hs_key()).unwrap();
    assert_eq!(
        v.verify(NOW + 2, &again, None).unwrap_err(),
        TokenError::Replayed
    );
    // A refused token does not use up its jti.
    let mut c = claims("fresh");
    c.room = room("other");
    let token = mint(&c, &hs_key()).unwrap();
    assert_eq!(
        v.verify(NOW, &token, Some(&room("standup"))).unwrap_err(),
        TokenError::WrongRoom
    );
    assert!(
        v.verify(NOW, &mint(&claims("fresh"), &hs_key()).unwrap(), None)
            .is_ok()
    );
}

#[test]
fn a_full_replay_cache_refuses_instead_of_forgetting() {
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("hs-1", HS_SECRET).unwrap();
    let mut policy = TokenPolicy::new("hush");
    policy.replay_capacity = 2;
    let mut v = TokenVerifier::new(keys, policy);
    for jti in ["a", "b"] {
        assert!(
            v.verify(NOW, &mint(&claims(jti), &hs_key()).unwrap(), None)
                .is_ok()
        );
    }
    let err = v
        .verify(NOW, &mint(&claims("c"), &hs_key()).unwrap(), None)
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServerBusy);
    // Once the first tokens have expired, there is room again.
    let later = NOW + 600 + 31;
    let mut c = claims("c");
    c.exp = later + 60;
    assert!(v.verify(later, &mint(&c, &hs_key()).unwrap(), None).is_ok());
}

#[test]
fn key_configuration_is_checked() {
    let mut keys = VerifyingKeys::new();
    assert_eq!(
        keys.add_hs256("k", &[1; 31]),
        Err(KeyError::ShortSecret(31))
    );
    assert_eq!(keys.add_hs256("", &[1; 32]), Err(KeyError::BadKid));
    assert_eq!(keys.add_hs256("a b", &[1; 32]), Err(KeyError::BadKid));
    keys.add_hs256("k", &[1; 32]).unwrap();
    assert_eq!(keys.add_hs256("k", &[2; 32]), Err(KeyError::DuplicateKid));
    // The identity point has small order: it would verify forged signatures.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        keys.add_ed25519("e", &identity),
        Err(KeyError::WeakEd25519Key)
    );
    assert!(SigningKey::hs256("k", &[1; 16]).is_err());
    // No secret in Debug output.
    let debug = format!("{keys:?} {:?}", hs_key());
    assert!(!debug.contains("0123456789"), "{debug}");
}

#[test]
fn error_messages_never_contain_the_token() {
    let token = mint(&claims("x"), &SigningKey::hs256("hs-9", HS_SECRET).unwrap()).unwrap();
    let (err, _) = refusal(&token);
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&token[..20]));
}

// The relay's own JWS reader: the edge cases a general JWT library may treat loosely.

/// Signs `header.payload` given as raw JSON text with `HS_SECRET` (so duplicate members and odd
/// numbers can be put in a correctly signed token).
fn sign_raw_hs(header: &str, payload: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HS_SECRET).unwrap();
    mac.update(input.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

const RAW_HEADER: &str = r#"{"alg":"HS256","kid":"hs-1","typ":"JWT"}"#;

fn raw_claims(extra: &str) -> String {
    format!(
        r#"{{"sub":"p1","room":"standup","aud":"hush","exp":{},"jti":"raw"{extra},"grants":{{"publish":true}}}}"#,
        NOW + 600
    )
}

#[test]
fn a_hand_signed_token_is_accepted() {
    // The control for the tests below: the raw signer makes tokens the verifier accepts.
    let token = sign_raw_hs(RAW_HEADER, &raw_claims(""));
    let claims = verifier().verify(NOW, &token, None).unwrap();
    assert!(claims.grants.publish);
    // No `typ` is fine too.
    let token = sign_raw_hs(r#"{"alg":"HS256","kid":"hs-1"}"#, &raw_claims(""));
    assert!(verifier().verify(NOW, &token, None).is_ok());
}

#[test]
fn non_canonical_base64_is_refused_even_when_it_decodes_to_a_valid_signature() {
    let token = mint(&claims("x"), &hs_key()).unwrap();
    // A 32-byte tag is 43 characters: the last one carries 4 bits and 2 unused ones, which
    // must be zero. Setting them gives another spelling of the very same tag.
    let (rest, last) = token.split_at(token.len() - 1);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    assert_eq!(index & 0b11, 0, "canonical to begin with");
    let twin = format!("{rest}{}", alphabet[index | 0b01] as char);
    assert_eq!(
        refusal(&twin),
        (TokenError::Malformed, ErrorCode::TokenMalformed)
    );
    // The honest spelling still verifies (nothing was used up by the refusal).
    assert!(verifier().verify(NOW, &token, None).is_ok());
}

#[test]
fn padding_whitespace_and_foreign_characters_are_refused() {
    let token = mint(&claims("x"), &hs_key()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let padded_sig = format!("{}.{}.{}=", parts[0], parts[1], parts[2]);
    let std_alphabet = token.replace('-', "+").replace('_', "/");
    for bad in [
        format!(" {token}"),
        format!("{token}\n"),
        format!("{}. {}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}\n.{}", parts[0], parts[1], parts[2]),
        padded_sig,
        format!("{}.{}.{}", parts[0], parts[1], "é".repeat(20)),
    ] {
        assert_eq!(refusal(&bad).1, ErrorCode::TokenMalformed, "{bad:?}");
    }
    if std_alphabet != token {
        assert_eq!(refusal(&std_alphabet).1, ErrorCode::TokenMalformed);
    }
}

#[test]
fn the_three_parts_must_all_be_there() {
    let token = mint(&claims("x"), &hs_key()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    for bad in [
        format!("{}{}{}", parts[0], parts[1], parts[2]),
        format!("{}.{}{}", parts[0], parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}.{}.{}.", parts[0], parts[1], parts[2]),
        "..".to_owned(),
        ".".to_owned(),
    ] {
        assert_eq!(refusal(&bad).1, ErrorCode::TokenMalformed, "{bad}");
    }
    // An empty or short signature part is a bad signature, not a crash.
    let empty_sig = format!("{}.{}.", parts[0], parts[1]);
    assert_eq!(refusal(&empty_sig).0, TokenError::BadSignature);
    let short = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode([0u8; 31])
    );
    assert_eq!(refusal(&short).0, TokenError::BadSignature);
    let ed = mint(&claims("x"), &ed_key()).unwrap();
    let p: Vec<&str> = ed.split('.').collect();
    let short = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode([0u8; 63]));
    assert_eq!(refusal(&short).0, TokenError::BadSignature);
}

#[test]
fn the_header_is_strict() {
    let body = serde_json::to_value(claims("x")).unwrap();
    for header in [
        json!({"alg": "HS256", "kid": "hs-1", "typ": "jwt"}),
        json!({"alg": "HS256", "kid": "hs-1", "typ": "at+jwt"}),
        json!({"alg": "HS256", "kid": "hs-1", "jku": "https://evil.example/keys"}),
        json!({"alg": "HS256", "kid": "hs-1", "jwk": {"kty": "oct", "k": "AAAA"}}),
        json!({"alg": "HS256", "kid": "hs-1", "x5u": "https://evil.example/cert"}),
        json!({"alg": "HS256", "kid": "hs-1", "x5c": ["AAAA"]}),
        json!({"alg": "HS256", "kid": "hs-1", "b64": false}),
        json!({"alg": "HS256", "kid": "hs-1", "crit": []}),
        json!({"alg": "HS256", "kid": "hs-1", "cty": "JWT"}),
        json!({"alg": "HS256", "kid": null}),
    ] {
        let token = forge(header.clone(), body.clone(), &[0; 32]);
        assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed, "{header}");
    }
    // Duplicate members: a parser keeping the first `alg` and one keeping the last would
    // disagree about the algorithm.
    let token = sign_raw_hs(
        r#"{"alg":"HS256","kid":"hs-1","alg":"none"}"#,
        &raw_claims(""),
    );
    assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed);
    let token = sign_raw_hs(
        r#"{"alg":"HS256","kid":"hs-2","kid":"hs-1"}"#,
        &raw_claims(""),
    );
    assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed);
}

#[test]
fn duplicate_claims_are_refused_at_any_depth() {
    // Correctly signed, so only the parser stands between the token and a second `room`.
    let token = sign_raw_hs(RAW_HEADER, &raw_claims(r#","room":"board-meeting""#));
    assert_eq!(
        refusal(&token),
        (TokenError::Malformed, ErrorCode::TokenMalformed)
    );
    let token = sign_raw_hs(
        RAW_HEADER,
        &format!(
            r#"{{"sub":"p1","room":"standup","aud":"hush","exp":{},"jti":"d","grants":{{"publish":false,"publish":true}}}}"#,
            NOW + 600
        ),
    );
    assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed);
    let token = sign_raw_hs(RAW_HEADER, &raw_claims(r#","x":[{"a":1,"a":2}]"#));
    assert_eq!(refusal(&token).1, ErrorCode::TokenMalformed);
}

#[test]
fn huge_and_odd_numbers_in_claims() {
    for (exp, want) in [
        ("18446744073709551616", TokenError::InvalidClaim("exp")), // u64::MAX + 1
        ("-1", TokenError::InvalidClaim("exp")),
        ("1.8e9", TokenError::InvalidClaim("exp")),
        ("1e400", TokenError::Malformed), // not a finite number: refused by the parser
        (&"9".repeat(400), TokenError::Malformed), // overflows f64 too
    ] {
        let payload = format!(
            r#"{{"sub":"p1","room":"standup","aud":"hush","exp":{exp},"jti":"n","grants":{{}}}}"#
        );
        let token = sign_raw_hs(RAW_HEADER, &payload);
        assert_eq!(refusal(&token).0, want, "{exp}");
    }
    // u64::MAX itself parses, and is then over the lifetime cap.
    let payload = format!(
        r#"{{"sub":"p1","room":"standup","aud":"hush","exp":{},"jti":"m","grants":{{}}}}"#,
        u64::MAX
    );
    let token = sign_raw_hs(RAW_HEADER, &payload);
    assert_eq!(refusal(&token).0, TokenError::LifetimeTooLong);
}

#[test]
fn the_payload_is_not_read_before_the_signature_verifies() {
    // Claims that are not even JSON, under a wrong signature: the answer is the signature.
    let header = URL_SAFE_NO_PAD.encode(RAW_HEADER);
    let token = format!(
        "{header}.{}.{}",
        URL_SAFE_NO_PAD.encode("{{{{"),
        URL_SAFE_NO_PAD.encode([1u8; 32])
    );
    assert_eq!(refusal(&token).0, TokenError::BadSignature);
    // Correctly signed, the same payload is malformed.
    let token = sign_raw_hs(RAW_HEADER, "{{{{");
    assert_eq!(refusal(&token).0, TokenError::Malformed);
}

/// `token` with the base64url character at `at` replaced by another one.
fn flip(token: &str, at: usize) -> String {
    let mut out = token.to_owned();
    let other = if &token[at..=at] == "A" { "B" } else { "A" };
    out.replace_range(at..=at, other);
    out
}

#[test]
fn interoperates_with_the_rfc_examples() {
    // RFC 7515 appendix A.1: HS256 with a 64-byte key; its claims are not ours, so a verified
    // signature shows as the first missing claim (not as a bad signature).
    let k = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let mut keys = VerifyingKeys::new();
    keys.add_hs256("rfc", &k).unwrap();
    let mut v = TokenVerifier::new(keys, TokenPolicy::new("hush"));
    assert_eq!(
        v.verify(NOW, token, None).unwrap_err(),
        TokenError::MissingClaim("sub")
    );
    let tampered = flip(token, token.len() - 5);
    assert_eq!(
        v.verify(NOW, &tampered, None).unwrap_err(),
        TokenError::BadSignature
    );

    // RFC 8037 appendix A.4: Ed25519; the payload ("Example of Ed25519 signing") is not JSON,
    // so a verified signature shows as malformed claims.
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        .unwrap()
        .try_into()
        .unwrap();
    let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    let mut keys = VerifyingKeys::new();
    keys.add_ed25519("rfc", &x).unwrap();
    let mut v = TokenVerifier::new(keys, TokenPolicy::new("hush"));
    assert_eq!(
        v.verify(NOW, token, None).unwrap_err(),
        TokenError::Malformed
    );
    let tampered = flip(token, token.len() - 10);
    assert_eq!(
        v.verify(NOW, &tampered, None).unwrap_err(),
        TokenError::BadSignature
    );
}
