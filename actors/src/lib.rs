//! Tabula's actors and domain rules: one supervised actor per table, the registry that finds
//! them, validation, the query engine. Knows nothing of HTTP or JSON.

pub mod clock;
pub mod error;
pub mod query;
pub mod registry;
pub mod table;
pub mod validate;

pub use error::{DomainError, DomainResult, FieldError};
