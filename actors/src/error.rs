//! The domain error: expected outcomes a caller must be told about (missing, invalid, conflict)
//! and failures (storage, an actor that went away). The HTTP layer maps each variant to a code.

use tabula_storage::StorageError;
use thiserror::Error;

/// One field-level validation problem, as it appears in the error envelope's `errors[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// The input row the problem is in (imports: `errors[{row, field, message}]`).
    pub row: Option<u64>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
            row: None,
        }
    }

    /// A problem with one row of an import.
    pub fn in_row(row: u64, field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            row: Some(row),
            ..FieldError::new(field, message)
        }
    }
}

#[derive(Debug, Error)]
pub enum DomainError {
    /// The resource does not exist (or the caller may not know it does).
    #[error("{0}")]
    NotFound(String),
    /// Field-level validation failures, all of them.
    #[error("One or more fields failed validation")]
    Validation(Vec<FieldError>),
    /// A request-level problem that is not about one stored field (bad query parameter …).
    #[error("{message}")]
    BadRequest {
        message: String,
        errors: Vec<FieldError>,
    },
    /// The change clashes with the stored state (unique value, stale `updatedAt`, restrict).
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    /// No valid session or API key where one is needed (SPEC §2.2: checked before the resource
    /// is looked up, so it reveals nothing about what exists).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller may see the resource but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Too many items in one request.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The store failed; the table actor restarts and the request may be retried.
    #[error("storage failure: {0}")]
    Storage(#[from] StorageError),
    /// The component that should answer is restarting or gone.
    #[error("{0}")]
    Unavailable(String),
    /// A query used up its time budget (`query::budget`) and stopped; the same query would take
    /// as long again, so it is the caller's to narrow.
    #[error("The query did not finish within {limit_ms} ms")]
    QueryTimedOut { limit_ms: u64 },
}

impl DomainError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        DomainError::BadRequest {
            errors: vec![FieldError::new(field, message.clone())],
            message,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        DomainError::Conflict {
            message: message.into(),
            field: None,
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
