//! Comments on a record (SPEC §4.4): list and create under `/records/{id}/comments`, read,
//! edit and delete one under `/records/{id}/comments/{cid}`. Writes are messages to the table's
//! actor; only the author or an admin may edit or delete (the messages carry the caller; with
//! auth off, `caller: None` and everyone may).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::Value as Json;
use tabula_actors::clock;
use tabula_actors::comments::{get_comment, list_comments};
use tabula_actors::permissions::Action;
use tabula_actors::table::{CreateComment, DeleteComment, UpdateComment};
use tabula_storage::journal::Comment;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::routes::history::number_parameter;
use crate::routes::records::{parse_json_body, parse_record_id, query_pairs};
use crate::state::AppState;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            super::resource("/api/tables/{table}/records/{id}/comments")
                .get(list_record_comments)
                .post(create_comment),
        )
        .service(
            super::resource("/api/tables/{table}/records/{id}/comments/{comment}")
                .get(get_record_comment)
                .patch(update_comment)
                .delete(delete_comment),
        );
}

/// A comment's author as shown with it: its id and the account's name (`null` once the account
/// is removed; the email is not shown to other readers of the record).
#[derive(Serialize)]
struct CommentUser<'a> {
    id: &'a str,
    name: Option<String>,
}

/// The comment JSON shape of SPEC §4.4.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentView<'a> {
    id: String,
    record_id: String,
    table_id: u32,
    content: &'a str,
    user_id: Option<&'a str>,
    user: Option<CommentUser<'a>>,
    created_at: String,
    updated_at: String,
}

impl<'a> CommentView<'a> {
    fn of(state: &AppState, table_id: u32, comment: &'a Comment) -> ApiResult<Self> {
        let user = match comment.user_id.as_deref() {
            Some(id) => Some(CommentUser {
                id,
                name: state.accounts.user(id)?.map(|user| user.name.clone()),
            }),
            None => None,
        };
        Ok(CommentView {
            id: comment.id.to_string(),
            record_id: comment.record_id.to_string(),
            table_id,
            content: &comment.content,
            user_id: comment.user_id.as_deref(),
            user,
            created_at: clock::format_ms(comment.created_at),
            updated_at: clock::format_ms(comment.updated_at),
        })
    }
}

#[derive(Serialize)]
struct CommentBody<'a> {
    comment: CommentView<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CommentPagination {
    total: u64,
    limit: u64,
    offset: u64,
    has_more: bool,
}

#[derive(Serialize)]
struct CommentListBody<'a> {
    comments: Vec<CommentView<'a>>,
    pagination: CommentPagination,
}

/// Comment ids are positive integers; anything else names no comment.
fn parse_comment_id(text: &str) -> ApiResult<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("Comment {text} not found")))
}

/// `{content}` (alias `body`): the comment's text.
fn comment_content(body: &[u8]) -> ApiResult<String> {
    let Json::Object(object) = parse_json_body(body)? else {
        return Err(ApiError::validation(
            "body",
            "Request body must be a JSON object",
        ));
    };
    match object.get("content").or_else(|| object.get("body")) {
        Some(Json::String(content)) => Ok(content.clone()),
        Some(_) => Err(ApiError::validation("content", "content must be a string")),
        None => Err(ApiError::validation("content", "content is required")),
    }
}

/// The comments of a record, oldest first: `{comments, pagination:{total, limit, offset, hasMore}}`.
#[utoipa::path(get, path = "/api/tables/{table}/records/{id}/comments", tag = "comments",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("limit" = Option<u64>, Query, description = "Comments per page (default 10, max 1000)"),
           ("offset" = Option<u64>, Query, description = "Comments to skip")),
    responses((status = 200, description = "`{comments, pagination}`"),
              (status = 404, description = "No such record")))]
pub async fn list_record_comments(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    request: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let pairs = query_pairs(&request)?;
    let limits = state.page_limits();
    let limit = number_parameter(&pairs, "limit")?
        .unwrap_or(limits.default_page_size)
        .min(limits.max_page_size);
    let offset = number_parameter(&pairs, "offset")?.unwrap_or(0);
    let page = list_comments(&handle.shared, record_id, limit, offset)?;
    let shown = u64::try_from(page.comments.len()).unwrap_or(u64::MAX);
    let body = CommentListBody {
        comments: page
            .comments
            .iter()
            .map(|comment| CommentView::of(&state, handle.shared.id, comment))
            .collect::<ApiResult<_>>()?,
        pagination: CommentPagination {
            total: page.total,
            limit,
            offset,
            has_more: offset.saturating_add(shown) < page.total,
        },
    };
    Ok(HttpResponse::Ok().json(body))
}

/// Adds a comment: `{content}` (1..10 000 characters; `body` accepted) → 201 `{comment}`.
#[utoipa::path(post, path = "/api/tables/{table}/records/{id}/comments", tag = "comments",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id")),
    request_body(content = inline(super::request_docs::Comment), description = "`{content}`"),
    responses((status = 201, description = "`{comment}`"),
              (status = 400, description = "Missing, empty or too long content"),
              (status = 404, description = "No such record"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn create_comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (table, id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Comment)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let content = comment_content(&body)?;
    let comment = handle
        .send_write(CreateComment {
            record_id,
            content,
            user_id: caller.acting_user(),
        })
        .await??;
    Ok(HttpResponse::build(StatusCode::CREATED).json(CommentBody {
        comment: CommentView::of(&state, handle.shared.id, &comment)?,
    }))
}

/// One comment → `{comment}`.
#[utoipa::path(get, path = "/api/tables/{table}/records/{id}/comments/{comment}", tag = "comments",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("comment" = String, Path, description = "Comment id")),
    responses((status = 200, description = "`{comment}`"),
              (status = 404, description = "No such record or comment")))]
pub async fn get_record_comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, id, comment_id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Read)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let comment_id = parse_comment_id(&comment_id)?;
    let comment = get_comment(&handle.shared, record_id, comment_id)?;
    Ok(HttpResponse::Ok().json(CommentBody {
        comment: CommentView::of(&state, handle.shared.id, &comment)?,
    }))
}

/// Edits a comment (author or admin) → `{comment}`.
#[utoipa::path(patch, path = "/api/tables/{table}/records/{id}/comments/{comment}", tag = "comments",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("comment" = String, Path, description = "Comment id")),
    request_body(content = inline(super::request_docs::Comment), description = "`{content}`"),
    responses((status = 200, description = "`{comment}`"),
              (status = 400, description = "Missing, empty or too long content"),
              (status = 403, description = "Neither the author nor an admin"),
              (status = 404, description = "No such record or comment"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn update_comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (table, id, comment_id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Comment)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let comment_id = parse_comment_id(&comment_id)?;
    let content = comment_content(&body)?;
    let comment = handle
        .send_write(UpdateComment {
            record_id,
            comment_id,
            content,
            caller: caller.comment_caller(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(CommentBody {
        comment: CommentView::of(&state, handle.shared.id, &comment)?,
    }))
}

/// Deletes a comment (author or admin) → 204.
#[utoipa::path(delete, path = "/api/tables/{table}/records/{id}/comments/{comment}", tag = "comments",
    params(("table" = String, Path, description = "Table id or name"),
           ("id" = String, Path, description = "Record id"),
           ("comment" = String, Path, description = "Comment id")),
    responses((status = 204, description = "Deleted"),
              (status = 403, description = "Neither the author nor an admin"),
              (status = 404, description = "No such record or comment"),
              (status = 503, description = "The table has too many writes in progress (`limits.table_write_queue`): nothing written; retry after `Retry-After` seconds")))]
pub async fn delete_comment(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String, String)>,
) -> ApiResult<HttpResponse> {
    let (table, id, comment_id) = path.into_inner();
    let access = caller.table(&state, &table, Action::Comment)?;
    let handle = &access.handle;
    let record_id = parse_record_id(&id)?;
    access.check_rows(&[record_id])?;
    let comment_id = parse_comment_id(&comment_id)?;
    handle
        .send_write(DeleteComment {
            record_id,
            comment_id,
            caller: caller.comment_caller(),
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}
