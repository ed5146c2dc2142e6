//! The signature and its key: wrong secrets, unknown key ids, `alg: none` and algorithm confusion.

use super::*;

#[test]
fn bad_signature() {
    // Signed with a secret the relay does not have, under a kid it knows.
    let wrong = SigningKey::hs256("hs-1", b"not-the-secret-not-the-secret-!!").unwrap();
    let got = refusal_of(&claims("x"), &wrong);
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
    let got = refusal_of(&claims("x"), &other);
    assert_eq!(got.1, ErrorCode::TokenBadSignature);
}

#[test]
fn unknown_key_id() {
    let stranger = SigningKey::hs256("hs-9", HS_SECRET).unwrap();
    let got = refusal_of(&claims("x"), &stranger);
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
    let got = refusal_of(&claims("x"), &confused);
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
