//! Turns the decoded query parameters of a list request into a [`ListRequest`] (SPEC §4.2).

use tabula_storage::{TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::execute::{ListRequest, SortKey, TrashMode};
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::validate::normalise_value;

/// Paging limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default_page_size: u64,
    pub max_page_size: u64,
}

/// Parses a JSON document into a [`Value`]; supplied by the HTTP layer so that this crate stays
/// free of JSON.
pub type JsonParser = fn(&str) -> Result<Value, String>;

fn parameter<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn number_parameter(pairs: &[(String, String)], name: &str) -> DomainResult<Option<u64>> {
    match parameter(pairs, name) {
        None => Ok(None),
        Some(text) => text.trim().parse::<u64>().map(Some).map_err(|_| {
            DomainError::bad_request(name, format!("'{name}' must be a non-negative integer"))
        }),
    }
}

fn flag(pairs: &[(String, String)], name: &str) -> bool {
    parameter(pairs, name).is_some_and(|value| value == "true" || value == "1")
}

/// Parses `limit`/`offset`/`page`/`perPage`, `sort`, `filter`, `includeDeleted`/`deleted`.
pub fn parse_list_query(
    schema: &TableSchema,
    pairs: &[(String, String)],
    limits: PageLimits,
    _parse_json: JsonParser,
) -> DomainResult<ListRequest> {
    let mut request = ListRequest {
        limit: limits.default_page_size,
        ..ListRequest::default()
    };
    let per_page = number_parameter(pairs, "perPage")?;
    if let Some(limit) = number_parameter(pairs, "limit")?.or(per_page) {
        request.limit = limit.min(limits.max_page_size);
    }
    request.offset = number_parameter(pairs, "offset")?.unwrap_or(0);
    if let Some(page) = number_parameter(pairs, "page")? {
        request.offset = page.saturating_sub(1).saturating_mul(request.limit);
    }
    request.skip_total = flag(pairs, "skipTotal");
    request.after = number_parameter(pairs, "after")?;
    request.trash = if flag(pairs, "deleted") {
        TrashMode::Trashed
    } else if flag(pairs, "includeDeleted") {
        TrashMode::All
    } else {
        TrashMode::Live
    };
    if let Some(sort) = parameter(pairs, "sort") {
        request.sort = parse_sort(schema, sort)?;
    }
    if let Some(filter) = parameter(pairs, "filter") {
        request.filter = Some(parse_shortcut(schema, filter)?);
    }
    Ok(request)
}

/// `priority:desc,createdAt:asc` or `-priority,+title`.
pub fn parse_sort(schema: &TableSchema, text: &str) -> DomainResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let (name, descending) = if let Some(name) = part.strip_prefix('-') {
            (name, true)
        } else if let Some(name) = part.strip_prefix('+') {
            (name, false)
        } else {
            match part.split_once(':') {
                Some((name, "desc")) | Some((name, "DESC")) => (name, true),
                Some((name, "asc")) | Some((name, "ASC")) => (name, false),
                Some((_, direction)) => {
                    return Err(DomainError::bad_request(
                        "sort",
                        format!("unknown sort direction '{direction}'"),
                    ))
                }
                None => (part, false),
            }
        };
        let attribute = Attribute::resolve(schema, name)
            .map_err(|_| DomainError::bad_request("sort", format!("unknown field: {name}")))?;
        keys.push(SortKey {
            attribute,
            descending,
        });
    }
    Ok(keys)
}

/// The `field:value` shortcut (equality).
pub fn parse_shortcut(schema: &TableSchema, text: &str) -> DomainResult<Filter> {
    let Some((name, raw)) = text.split_once(':') else {
        return Err(DomainError::bad_request(
            "filter",
            "expected field:value".to_string(),
        ));
    };
    let attribute = Attribute::resolve(schema, name.trim())?;
    let value = typed_literal(schema, attribute, raw)?;
    Ok(Filter::Compare {
        attribute,
        op: CompareOp::Eq,
        value,
    })
}

/// Coerces a literal written in a query string to the attribute's type.
pub fn typed_literal(
    schema: &TableSchema,
    attribute: Attribute,
    raw: &str,
) -> DomainResult<Value> {
    match attribute {
        Attribute::Id => raw
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| DomainError::bad_request("filter", format!("'{raw}' is not a record id"))),
        Attribute::Field(field_id) => {
            let field = schema
                .field_by_id(field_id)
                .ok_or_else(|| DomainError::bad_request("filter", "unknown field"))?;
            let literal = if field.field_type.is_numeric() {
                match raw.parse::<i64>() {
                    Ok(number) => Value::Int(number),
                    Err(_) => raw.parse::<f64>().map(Value::Float).map_err(|_| {
                        DomainError::bad_request(
                            "filter",
                            format!("'{raw}' is not a number for field '{}'", field.name),
                        )
                    })?,
                }
            } else if field.field_type == tabula_storage::FieldType::Checkbox {
                Value::Bool(raw == "true")
            } else {
                Value::Text(raw.to_owned())
            };
            normalise_value(field, &literal)
                .map_err(|message| DomainError::bad_request("filter", message))
        }
        _ => Ok(Value::Text(raw.to_owned())),
    }
}
