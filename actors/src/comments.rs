//! Reading the comments of a record (SPEC §4.4). Writes are messages to the table actor
//! (`CreateComment`, `UpdateComment`, `DeleteComment`), which keeps each record's comment count
//! (`N` key) in the same batch as the comment.

use tabula_storage::journal::Comment;

use crate::error::DomainResult;
use crate::registry::TableShared;
use crate::table::{comment_not_found, record_not_found};

/// One page of a record's comments, oldest first.
#[derive(Debug, Clone)]
pub struct CommentPage {
    pub comments: Vec<Comment>,
    pub total: u64,
}

fn check_live_record(table: &TableShared, record_id: u64) -> DomainResult<()> {
    match table.store.get_record(record_id)? {
        Some(record) if !record.is_deleted() => Ok(()),
        _ => Err(record_not_found(record_id)),
    }
}

/// The comments of a live record, oldest first, `limit` after skipping `offset`.
pub fn list_comments(
    table: &TableShared,
    record_id: u64,
    limit: u64,
    offset: u64,
) -> DomainResult<CommentPage> {
    check_live_record(table, record_id)?;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let comments = table
        .store
        .comments(record_id)
        .skip(skip)
        .take(take)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CommentPage {
        comments,
        total: table.store.comment_count(record_id)?,
    })
}

/// One comment of a live record.
pub fn get_comment(table: &TableShared, record_id: u64, comment_id: u64) -> DomainResult<Comment> {
    check_live_record(table, record_id)?;
    table
        .store
        .comment(record_id, comment_id)?
        .ok_or_else(|| comment_not_found(comment_id))
}
