//! The one place values become bytes: serde + bincode 2 behind a leading format version byte.
//!
//! Every stored value starts with [`FORMAT_VERSION`]; a reader that meets another version refuses
//! it instead of misreading it, so the on-disk format can evolve with a migration.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{StorageError, StorageResult};

/// The version byte written in front of every encoded value.
pub const FORMAT_VERSION: u8 = 1;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value as `[FORMAT_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize>(value: &T) -> StorageResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .map_err(|error| StorageError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// Decodes bytes written by [`encode`]; `what` names the value for error messages.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> StorageResult<T> {
    let (version, body) = bytes.split_first().ok_or(StorageError::Decode {
        what,
        message: "empty value".into(),
    })?;
    if *version != FORMAT_VERSION {
        return Err(StorageError::FormatVersion(*version));
    }
    let (value, _read) = bincode::serde::decode_from_slice(body, config()).map_err(|error| {
        StorageError::Decode {
            what,
            message: error.to_string(),
        }
    })?;
    Ok(value)
}
