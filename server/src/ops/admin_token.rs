//! The admin API's bearer token (`admin_token_file`): the operator's credential for the app
//! backend's commands (`http::admin` checks it on every request).
//!
//! Only its SHA-256 digest is kept, wiped on drop; a presented token is compared by digest, in
//! time independent of where the two differ.

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// The shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// The admin API's bearer token, kept as its SHA-256 digest.
pub struct AdminToken {
    digest: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(***)")
    }
}

/// Why a token cannot be the admin token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// Shorter than [`MIN_ADMIN_TOKEN_BYTES`].
    TooShort,
    /// Not visible ASCII (it must fit in an `Authorization` header as is).
    NotPrintable,
}

impl std::fmt::Display for AdminTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort => write!(
                f,
                "the admin token needs at least {MIN_ADMIN_TOKEN_BYTES} bytes"
            ),
            Self::NotPrintable => {
                f.write_str("the admin token must be visible ASCII (no spaces or control bytes)")
            }
        }
    }
}

impl std::error::Error for AdminTokenError {}

impl AdminToken {
    /// The token the backend sends as `Authorization: Bearer <token>`.
    pub fn new(token: &[u8]) -> Result<Self, AdminTokenError> {
        if token.len() < MIN_ADMIN_TOKEN_BYTES {
            return Err(AdminTokenError::TooShort);
        }
        if !token.iter().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotPrintable);
        }
        Ok(Self {
            digest: digest(token),
        })
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let other = digest(presented);
        let diff = self
            .digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

fn digest(bytes: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&Sha256::digest(bytes));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_be_long_and_printable_and_match_exactly() {
        assert_eq!(
            AdminToken::new(b"short").err(),
            Some(AdminTokenError::TooShort)
        );
        let spaced = [b'a'; 40].iter().chain(b" x").copied().collect::<Vec<_>>();
        assert_eq!(
            AdminToken::new(&spaced).err(),
            Some(AdminTokenError::NotPrintable)
        );
        let token = AdminToken::new(&[b'k'; 40]).unwrap();
        assert!(token.matches(&[b'k'; 40]));
        assert!(!token.matches(&[b'k'; 39]));
        assert!(!token.matches(&[b'k'; 41]));
        assert!(!token.matches(b""));
        let mut other = [b'k'; 40];
        other[39] = b'j';
        assert!(!token.matches(&other));
        assert_eq!(format!("{token:?}"), "AdminToken(***)");
    }
}
