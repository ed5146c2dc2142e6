//! The claims: time, room and audience checks, claims missing or mistyped, and honest
//! tokens accepted beside them.

use super::*;

/// The refusal of the usual claims, changed by `edit`, signed with `key`.
fn refusal_with(key: &SigningKey, edit: impl FnOnce(&mut TokenClaims)) -> (TokenError, ErrorCode) {
    let mut c = claims("x");
    edit(&mut c);
    refusal_of(&c, key)
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
        refusal_of(&c, &hs_key()),
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
    let got = refusal_with(&ed_key(), |c| c.nbf = Some(NOW + 60));
    assert_eq!(got, (TokenError::NotYetValid, ErrorCode::TokenNotYetValid));
}

#[test]
fn issued_in_the_future() {
    let got = refusal_with(&hs_key(), |c| {
        c.iat = Some(NOW + 60);
        c.nbf = None;
    });
    assert_eq!(
        got,
        (TokenError::IssuedInFuture, ErrorCode::TokenIssuedInFuture)
    );
}

#[test]
fn lifetime_over_the_policy_cap() {
    let got = refusal_with(&hs_key(), |c| c.exp = NOW + 3600 + 31);
    assert_eq!(
        got,
        (TokenError::LifetimeTooLong, ErrorCode::TokenLifetimeTooLong)
    );
}

/// Issued two hours ago to live three: one hour left, within the cap by what is left, but its
/// whole life is three times the cap. A removal is remembered for the cap, so such a token,
/// issued before a removal, could bring the removed participant back after it.
#[test]
fn whole_lifetime_over_the_policy_cap() {
    let got = refusal_with(&hs_key(), |c| {
        c.iat = Some(NOW - 7200);
        c.exp = NOW + 3600;
    });
    assert_eq!(
        got,
        (TokenError::LifetimeTooLong, ErrorCode::TokenLifetimeTooLong)
    );
    // Within the cap (and its leeway) over its whole life: accepted.
    let mut c = claims("y");
    c.iat = Some(NOW - 1000);
    c.exp = NOW + 2600 + 30;
    assert!(
        verifier()
            .verify(NOW, &mint(&c, &hs_key()).unwrap(), None)
            .is_ok()
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
    let got = refusal_with(&hs_key(), |c| {
        c.aud = Audience::Many(vec!["other-relay".into(), "HUSH".into()]);
    });
    assert_eq!(
        got,
        (TokenError::WrongAudience, ErrorCode::TokenWrongAudience)
    );
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
fn issued_claims_verify_once_and_carry_the_drawn_jti() {
    let issue = |jti: &[u8; 16]| {
        Issue {
            sub: "p1".try_into().unwrap(),
            room: room("standup"),
            audience: "hush".to_owned(),
            now_unix: NOW,
            ttl_secs: 600,
            grants: Grants::default(),
        }
        .claims(jti)
    };
    let claims = issue(&[0xab; 16]);
    assert_eq!(claims.jti.as_deref(), Some("ab".repeat(16).as_str()));
    assert_eq!((claims.iat, claims.exp), (Some(NOW), NOW + 600));
    let mut v = verifier();
    let token = mint(&claims, &hs_key()).unwrap();
    assert_eq!(v.verify(NOW, &token, None).unwrap(), claims);
    assert_eq!(
        v.verify(NOW, &token, None).unwrap_err(),
        TokenError::Replayed
    );
    // Another draw is another token; past its lifetime it is refused.
    let other = mint(&issue(&[0xcd; 16]), &hs_key()).unwrap();
    assert!(v.verify(NOW + 700, &other, None).is_err());
    assert!(v.verify(NOW, &other, None).is_ok());
}
