//! Opaque bytes carried as standard base64 (RFC 4648 section 4, with padding), the form that a
//! browser's `btoa` and `Uint8Array.toBase64()` produce.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes the relay carries without reading them: E2EE envelopes, identity public keys,
/// attestations. `Debug` prints only the length.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct OpaqueBytes(Vec<u8>);

impl OpaqueBytes {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Unwraps the bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl From<Vec<u8>> for OpaqueBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for OpaqueBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpaqueBytes({} bytes)", self.0.len())
    }
}

impl Serialize for OpaqueBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for OpaqueBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Self)
            .map_err(|_| serde::de::Error::custom("invalid base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let b = OpaqueBytes::new(vec![0, 1, 2, 250, 251, 252, 253]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AAEC+vv8/Q==\"");
        assert_eq!(serde_json::from_str::<OpaqueBytes>(&json).unwrap(), b);
        assert!(
            serde_json::from_str::<OpaqueBytes>("\"AAEC+vv8/Q\"").is_err(),
            "no padding"
        );
        assert!(
            serde_json::from_str::<OpaqueBytes>("\"AAEC-_v8_Q==\"").is_err(),
            "url alphabet"
        );
        assert!(serde_json::from_str::<OpaqueBytes>("17").is_err());
        assert_eq!(format!("{b:?}"), "OpaqueBytes(7 bytes)");
    }
}
