//! Saved views (SPEC §3, §4.2 `view=`): checking that a view fits its table (fields, sort,
//! groupBy, and a filter whose operators suit the field types), finding one by id or name, and
//! applying it to a list request.

use tabula_storage::{TableSchema, Value, ViewDef};

use crate::error::{DomainError, DomainResult};
use crate::query::execute::ListRequest;
use crate::query::filter::{Attribute, Filter};
use crate::query::params::{
    parse_filter_text, parse_group_by, parse_projection, parse_sort, JsonParser,
};
use crate::query::structured::parse_structured;

fn message_of(error: DomainError) -> String {
    match error {
        DomainError::BadRequest { message, .. } => message,
        other => other.to_string(),
    }
}

/// Compiles a view's filter: an expression string (or `field:value`), or the structured JSON
/// form held as an object. A JSON text inside a string needs `parse_json`.
pub fn compile_view_filter(
    schema: &TableSchema,
    filter: &Value,
    parse_json: Option<JsonParser>,
) -> DomainResult<Option<Filter>> {
    match filter {
        Value::Null => Ok(None),
        Value::Text(text) => parse_filter_text(schema, text, parse_json),
        Value::Map(_) => parse_structured(schema, filter, "filter").map(Some),
        other => Err(DomainError::bad_request(
            "filter",
            format!(
                "a view filter must be an expression string or an object, got {}",
                other.kind_name()
            ),
        )),
    }
}

/// Problems with one view, each a message naming the view and what is wrong. Empty when the
/// view is valid.
pub fn check_view(schema: &TableSchema, view: &ViewDef) -> Vec<String> {
    let mut problems = Vec::new();
    for name in view.fields.iter().flatten() {
        if schema.field_by_name(name).is_none() {
            problems.push(format!("view '{}' lists unknown field '{name}'", view.id));
        }
    }
    if let Some(group_by) = &view.group_by {
        if schema.field_by_name(group_by).is_none() {
            problems.push(format!(
                "view '{}' groups by unknown field '{group_by}'",
                view.id
            ));
        }
    }
    if let Some(sort) = &view.sort {
        for part in sort
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            let name = part
                .trim_start_matches(['-', '+'])
                .split(':')
                .next()
                .unwrap_or_default()
                .trim();
            if Attribute::resolve(schema, name).is_err() {
                problems.push(format!(
                    "view '{}' sorts by unknown field '{name}'",
                    view.id
                ));
            } else if let Err(error) = parse_sort(schema, part) {
                problems.push(format!("view '{}' sort: {}", view.id, message_of(error)));
            }
        }
    }
    if let Some(filter) = &view.filter {
        if let Err(error) = compile_view_filter(schema, filter, None) {
            problems.push(format!("view '{}' filter: {}", view.id, message_of(error)));
        }
    }
    problems
}

/// The view with this id, or else this name; an unknown one is a 404.
pub fn find_view<'s>(schema: &'s TableSchema, key: &str) -> DomainResult<&'s ViewDef> {
    schema
        .views
        .iter()
        .find(|view| view.id == key)
        .or_else(|| schema.views.iter().find(|view| view.name == key))
        .ok_or_else(|| DomainError::NotFound(format!("View '{key}' not found")))
}

/// Applies a view to a request: its filter is AND-ed with the request's (the view's first),
/// its sort is used unless the request has one, its fields unless the request has `fields`,
/// its groupBy unless the request has one.
pub fn apply_view(
    schema: &TableSchema,
    view: &ViewDef,
    request: &mut ListRequest,
    parse_json: JsonParser,
) -> DomainResult<()> {
    if let Some(filter) = &view.filter {
        if let Some(view_filter) = compile_view_filter(schema, filter, Some(parse_json))? {
            request.filter = Some(match request.filter.take() {
                None => view_filter,
                Some(own) => Filter::and_into(Some(view_filter), own),
            });
        }
    }
    if request.sort.is_empty() {
        if let Some(sort) = &view.sort {
            request.sort = parse_sort(schema, sort)?;
        }
    }
    if request.projection.is_none() {
        if let Some(fields) = &view.fields {
            request.projection = parse_projection(schema, &fields.join(","), "fields")?;
        }
    }
    if request.group_by.is_none() {
        if let Some(group_by) = &view.group_by {
            request.group_by = Some(parse_group_by(schema, group_by)?);
        }
    }
    request.view = Some(view.id.clone());
    Ok(())
}
