//! The query engine: one filter tree that every filter spelling compiles to, sorting, paging,
//! and the executor that answers a list request from the table's store.

pub mod execute;
pub mod filter;
pub mod params;
pub mod views;

pub use execute::{list, ListPage, ListRequest, SortKey, TrashMode};
pub use filter::{Attribute, CompareOp, Filter};
pub use params::{parse_list_query, JsonParser, PageLimits};
