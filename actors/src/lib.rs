//! Tabula's actors and domain rules: one supervised actor per table, the registry that finds
//! them, validation, the query engine. Knows nothing of HTTP or JSON.

pub mod accounts;
pub mod activity;
pub mod analytics;
pub mod changes;
pub mod changeset;
pub mod clock;
pub mod comments;
pub mod error;
pub mod history;
pub mod lifecycle;
pub mod operations;
pub mod permissions;
pub mod query;
pub mod registry;
pub mod schema_diff;
pub mod schema_ledger;
pub mod schema_migration;
pub mod schema_publisher;
pub mod schema_rules;
pub mod table;
pub mod validate;

pub use error::{DomainError, DomainResult, FieldError};
