//! The query engine: one filter tree that every filter spelling compiles to, the planner that
//! answers it from the table's indexes, full-text search, expand, aggregates and views.
//!
//! The HTTP layer calls [`parse_list_query`] (or [`parse_view_query`]) with the decoded query
//! pairs, then [`list`], then optionally [`expand::expand`] on the page.

pub mod aggregate;
pub mod budget;
pub mod counts;
pub mod execute;
pub mod expand;
pub mod export;
pub mod expression;
pub mod filter;
pub mod formula;
pub mod like;
pub mod params;
pub mod plan;
pub mod search;
pub mod sql;
pub mod structured;
pub mod typing;
pub mod views;

pub use aggregate::{AggregateSpec, Aggregations, Group};
pub use budget::QueryBudget;
pub use execute::{list, list_by_scan, ListPage, ListRequest, SortKey, TrashMode};
pub use expand::{expand, Expanded, ExpandedRecord, FullAccess, ReadAccess};
pub use expression::{parse_expression, parse_expression_with, print_expression, Variables};
pub use filter::{Attribute, CompareOp, Filter};
pub use params::{
    count_parameter, flag_parameter, parse_list_query, parse_view_query, JsonParser, PageLimits,
    MAX_COUNT_PARAMETER,
};
pub use search::{SearchQuery, SearchScope, SEARCH};
pub use views::{apply_view, check_view, compile_view_filter, find_view};
