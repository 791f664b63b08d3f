//! Trace and span identifiers: fixed-size byte arrays shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier had the wrong number of bytes.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Bytes the identifier must have.
        expected: usize,
        /// Bytes it had.
        got: usize,
    },
    /// The identifier was all zeros, which OTLP defines as invalid.
    #[error("identifier is all zeros")]
    Zero,
    /// The identifier was not hex.
    #[error("not a hex string: `{0}`")]
    NotHex(String),
}

macro_rules! id_type {
    ($name:ident, $len:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in this identifier.
            pub const LEN: usize = $len;

            /// Builds the identifier from raw bytes, rejecting a wrong length or all zeros.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] = bytes.try_into().map_err(|_| IdError::Length {
                    expected: $len,
                    got: bytes.len(),
                })?;
                if arr == [0u8; $len] {
                    return Err(IdError::Zero);
                }
                Ok(Self(arr))
            }

            /// Parses lowercase or uppercase hex.
            pub fn from_hex(s: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(s).map_err(|_| IdError::NotHex(s.to_string()))?;
                Self::from_bytes(&bytes)
            }

            /// The identifier as lowercase hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    TraceId,
    16,
    "A 16-byte trace identifier, shown as 32 hex digits."
);
id_type!(
    SpanId,
    8,
    "An 8-byte span identifier, shown as 16 hex digits."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let t = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(t.to_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"0af7651916cd43dd8448eb211c80319c\""
        );
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            SpanId::from_bytes(&[1, 2, 3]),
            Err(IdError::Length {
                expected: 8,
                got: 3
            })
        );
        assert_eq!(SpanId::from_bytes(&[0; 8]), Err(IdError::Zero));
        assert!(TraceId::from_hex("zz").is_err());
    }
}
