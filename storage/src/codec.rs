//! The one place values become bytes: serde + bincode 2 behind a leading format version byte.
//!
//! Every stored value starts with [`FORMAT_VERSION`]; a reader that meets another version refuses
//! it instead of misreading it, so the on-disk format can evolve with a migration.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{StorageError, StorageResult};

/// The version byte written in front of every encoded value.
pub const FORMAT_VERSION: u8 = 1;

/// The most memory one decode may claim (bincode counts each string's length and each scalar's
/// size against it before allocating). Stored values are far smaller (request bodies are capped at
/// 25 MiB); the cap exists so that a damaged length prefix becomes a decode error instead of an
/// allocation of exabytes, which aborts the process.
pub const DECODE_LIMIT_BYTES: usize = 1 << 30;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT_BYTES>()
}

/// Encodes a value as `[FORMAT_VERSION] ++ bincode(value)`.
pub fn encode<T: Serialize>(value: &T) -> StorageResult<Vec<u8>> {
    let mut bytes = Vec::with_capacity(64);
    bytes.push(FORMAT_VERSION);
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .map_err(|error| StorageError::Encode(error.to_string()))?;
    Ok(bytes)
}

/// Decodes bytes written by [`encode`]; `what` names the value for error messages. Bytes left
/// over after the value mean the bytes are not what [`encode`] wrote, and are an error too.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> StorageResult<T> {
    let (version, body) = bytes.split_first().ok_or(StorageError::Decode {
        what,
        message: "empty value".into(),
    })?;
    if *version != FORMAT_VERSION {
        return Err(StorageError::FormatVersion(*version));
    }
    let (value, read) = bincode::serde::decode_from_slice(body, config()).map_err(|error| {
        StorageError::Decode {
            what,
            message: error.to_string(),
        }
    })?;
    if read != body.len() {
        return Err(StorageError::Decode {
            what,
            message: format!("{} bytes left over after the value", body.len() - read),
        });
    }
    Ok(value)
}
