//! Redaction of personal data in logs.
//!
//! Participant ids, room ids and peer addresses are personal data. Their types here print
//! `***` through both `Debug` and `Display`, so that a log line or a derived `Debug` of a larger
//! struct never carries them by accident; code that really needs the value asks for it by name
//! (`as_str`, [`Pii::expose`]). Access tokens print nothing at all.

use core::fmt;

/// What redacted values print instead of themselves.
pub const REDACTED: &str = "***";

/// Wraps a personal value (an IP address, a participant id from another system) so that it
/// formats as `***`. Modelled on str0m's `Pii<T>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for code that must use it (never for logs).
    pub const fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_never_formats_its_value() {
        let ip = Pii::new("192.0.2.7");
        assert_eq!(format!("{ip} {ip:?} {ip:#?}"), "*** *** ***");
        assert_eq!(*ip.expose(), "192.0.2.7");
    }
}
