//! Value encoding: a one-byte format version, then JSON. A reader refuses a version it does
//! not know instead of guessing; a future format adds a version and a migration.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::model::StoreError;

/// The current format version.
pub const VERSION: u8 = 1;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![VERSION];
    // Serializing these plain data types to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out
}

/// Decodes a value written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
        }
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "{what}: unknown format version {v}"
        ))),
        None => Err(StoreError::Corrupt(format!("{what}: empty value"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        let v = encode(&("a", 1u8));
        assert_eq!(v[0], VERSION);
        assert_eq!(decode::<(String, u8)>(&v, "x").unwrap(), ("a".into(), 1));
        let mut other = v.clone();
        other[0] = 9;
        assert!(
            decode::<(String, u8)>(&other, "x")
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        assert!(decode::<(String, u8)>(&[], "x").is_err());
    }
}
