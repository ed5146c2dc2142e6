//! The relay's own JWS reader: sizes, malformed tokens, and the edge cases a general JWT
//! library may treat loosely.

use super::*;

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

/// `token`, verified with `keys` alone, is refused with `expected` (a verified signature over
/// claims that are not ours); with the character `from_end` places before its end changed, it
/// is refused as a bad signature.
fn refused_then_tampered(keys: VerifyingKeys, token: &str, expected: TokenError, from_end: usize) {
    let mut v = TokenVerifier::new(keys, TokenPolicy::new("hush"));
    assert_eq!(v.verify(NOW, token, None).unwrap_err(), expected);
    let tampered = flip(token, token.len() - from_end);
    assert_eq!(
        v.verify(NOW, &tampered, None).unwrap_err(),
        TokenError::BadSignature
    );
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
    refused_then_tampered(keys, token, TokenError::MissingClaim("sub"), 5);

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
    refused_then_tampered(keys, token, TokenError::Malformed, 10);
}
