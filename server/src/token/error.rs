//! Why a token was refused, one variant per [`ErrorCode`].

use core::fmt;

use hush_proto::ErrorCode;

/// Why a token was refused. `Display` is safe to send to the client and to log: it never
/// includes the token or a claim's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`hush_proto::limits::MAX_TOKEN_BYTES`].
    TooLarge,
    /// Not a compact JWS with a readable header and claims object (or a `crit` header).
    Malformed,
    /// `alg` is not `HS256` or `EdDSA`.
    UnsupportedAlgorithm,
    /// `kid` names no configured key, or is missing while several keys are configured.
    UnknownKey,
    /// `alg` is not the algorithm of the key `kid` names.
    AlgorithmMismatch,
    /// The signature does not verify.
    BadSignature,
    /// A required claim is missing.
    MissingClaim(&'static str),
    /// A claim has the wrong type or an invalid value.
    InvalidClaim(&'static str),
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `iat` is in the future.
    IssuedInFuture,
    /// `exp` is further away than the policy's maximum lifetime.
    LifetimeTooLong,
    /// `aud` names none of the policy's audiences.
    WrongAudience,
    /// `room` is not the room the client asked for.
    WrongRoom,
    /// The `jti` was seen before.
    Replayed,
    /// The replay cache is full of unexpired token ids: the token cannot be checked for replay,
    /// so it is refused (fail closed).
    ReplayCacheFull,
    /// A configured key could not be used (a relay configuration fault).
    Internal,
}

impl TokenError {
    /// The code sent to the client.
    pub fn code(self) -> ErrorCode {
        match self {
            Self::TooLarge => ErrorCode::TokenTooLarge,
            Self::Malformed => ErrorCode::TokenMalformed,
            Self::UnsupportedAlgorithm => ErrorCode::TokenUnsupportedAlgorithm,
            Self::UnknownKey => ErrorCode::TokenUnknownKey,
            Self::AlgorithmMismatch => ErrorCode::TokenAlgorithmMismatch,
            Self::BadSignature => ErrorCode::TokenBadSignature,
            Self::MissingClaim(_) => ErrorCode::TokenMissingClaim,
            Self::InvalidClaim(_) => ErrorCode::TokenInvalidClaim,
            Self::Expired => ErrorCode::TokenExpired,
            Self::NotYetValid => ErrorCode::TokenNotYetValid,
            Self::IssuedInFuture => ErrorCode::TokenIssuedInFuture,
            Self::LifetimeTooLong => ErrorCode::TokenLifetimeTooLong,
            Self::WrongAudience => ErrorCode::TokenWrongAudience,
            Self::WrongRoom => ErrorCode::TokenWrongRoom,
            Self::Replayed => ErrorCode::TokenReplayed,
            Self::ReplayCacheFull => ErrorCode::ServerBusy,
            Self::Internal => ErrorCode::InternalError,
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("token is too large"),
            Self::Malformed => f.write_str("token is malformed"),
            Self::UnsupportedAlgorithm => f.write_str("token algorithm is not supported"),
            Self::UnknownKey => f.write_str("token key id is unknown"),
            Self::AlgorithmMismatch => f.write_str("token algorithm does not match its key"),
            Self::BadSignature => f.write_str("token signature is invalid"),
            Self::MissingClaim(claim) => write!(f, "token lacks the `{claim}` claim"),
            Self::InvalidClaim(claim) => write!(f, "token claim `{claim}` is invalid"),
            Self::Expired => f.write_str("token has expired"),
            Self::NotYetValid => f.write_str("token is not valid yet"),
            Self::IssuedInFuture => f.write_str("token was issued in the future"),
            Self::LifetimeTooLong => f.write_str("token lifetime is longer than allowed"),
            Self::WrongAudience => f.write_str("token is for another audience"),
            Self::WrongRoom => f.write_str("token is for another room"),
            Self::Replayed => f.write_str("token was already used"),
            Self::ReplayCacheFull => f.write_str("relay is busy"),
            Self::Internal => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for TokenError {}
