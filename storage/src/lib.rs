//! Tabula's storage engine: the sled store, its key layout, the value codec, indexes and group
//! commit. It knows nothing of actors, HTTP or JSON requests.

pub mod codec;
pub mod durability;
pub mod error;
pub mod journal;
pub mod keys;
pub mod pages;
pub mod record;
pub mod schema;
pub mod store;
pub mod value;

pub use durability::DurableTicket;
pub use error::{StorageError, StorageResult};
pub use record::{RecordRef, StoredRecord};
pub use schema::{
    Access, FieldDef, FieldType, OnDelete, Permissions, Schema, TableSchema, ViewDef,
};
pub use store::{JournalGroup, Store, TableStore, WriteBatch};
pub use value::Value;
