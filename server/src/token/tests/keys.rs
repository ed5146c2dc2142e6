//! Key configuration, and what error messages may say.

use super::*;

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
