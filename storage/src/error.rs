//! The storage crate's error type.

use thiserror::Error;

/// Everything that can go wrong below the actors. All of these are failures (the store is not
/// usable as asked), never expected outcomes such as a missing record.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("encoding: {0}")]
    Encode(String),
    #[error("decoding {what}: {message}")]
    Decode { what: &'static str, message: String },
    #[error("unsupported on-disk format version {0}")]
    FormatVersion(u8),
    #[error("durable flush failed: {0}")]
    Flush(String),
    #[error("the store is shutting down")]
    ShuttingDown,
}

pub type StorageResult<T> = Result<T, StorageError>;
