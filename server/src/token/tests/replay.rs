//! Replayed `jti`s, and a full replay cache.

use super::*;

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
