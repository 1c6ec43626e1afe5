//! Turns the decoded query parameters of a list request into a [`ListRequest`] (SPEC §4.2):
//! paging, sort (three spellings), `fields`, every filter spelling (expression, structured JSON,
//! `field:value`, SonicJs `filters[f][$op]`, `filterByFormula`), `search`, `expand`,
//! `aggregate`, `groupBy`, trash flags and `view`.

use tabula_storage::{TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::aggregate::parse_aggregate;
use crate::query::execute::{ListRequest, SortKey, TrashMode};
use crate::query::expression::parse_expression;
use crate::query::filter::{Attribute, CompareOp, Filter};
use crate::query::formula::parse_formula;
use crate::query::search::parse_search;
use crate::query::structured::parse_structured;
use crate::query::typing::{self, Literal};
use crate::query::views::{apply_view, find_view};

/// Paging limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default_page_size: u64,
    pub max_page_size: u64,
}

/// Parses a JSON document into a [`Value`]; supplied by the HTTP layer so that this crate stays
/// free of JSON.
pub type JsonParser = fn(&str) -> Result<Value, String>;

/// The most names one `expand` may list.
pub const MAX_EXPAND_NAMES: usize = 10;
/// The deepest `expand` path (`project.client` is 2).
pub const MAX_EXPAND_DEPTH: usize = 2;

fn parameter<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn parameters<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The largest count a query parameter may give (`offset`, `limit`, `page`, …): an `int64`, as
/// the OpenAPI document declares them.
pub const MAX_COUNT_PARAMETER: u64 = i64::MAX.unsigned_abs();

/// A count query parameter: a non-negative integer of at most [`MAX_COUNT_PARAMETER`] (else the
/// 400 naming it). `None` when absent.
pub fn count_parameter(pairs: &[(String, String)], name: &str) -> DomainResult<Option<u64>> {
    match parameter(pairs, name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .filter(|number| *number <= MAX_COUNT_PARAMETER)
            .map(Some)
            .ok_or_else(|| {
                DomainError::bad_request(
                    name,
                    format!(
                        "'{name}' must be a non-negative integer of at most {MAX_COUNT_PARAMETER}"
                    ),
                )
            }),
    }
}

/// A boolean query parameter: `true`/`1` or `false`/`0` (else the 400 naming it); absent is
/// `false`.
pub fn flag_parameter(pairs: &[(String, String)], name: &str) -> DomainResult<bool> {
    match parameter(pairs, name).map(str::trim) {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(DomainError::bad_request(
            name,
            format!("'{name}' must be true or false"),
        )),
    }
}

/// Parses every list parameter, including `view=<id|name>` (an unknown view is a 404).
pub fn parse_list_query(
    schema: &TableSchema,
    pairs: &[(String, String)],
    limits: PageLimits,
    parse_json: JsonParser,
) -> DomainResult<ListRequest> {
    let mut request = parse_request(schema, pairs, limits, parse_json)?;
    if let Some(view_key) = parameter(pairs, "view").filter(|key| !key.trim().is_empty()) {
        let view = find_view(schema, view_key.trim())?;
        apply_view(schema, view, &mut request, parse_json)?;
    }
    Ok(request)
}

/// Parses the parameters of `/views/{view}/records`: the request with the view applied (its
/// filter AND-ed, its sort unless `sort` is given, its fields unless `fields` is given).
pub fn parse_view_query(
    schema: &TableSchema,
    view_key: &str,
    pairs: &[(String, String)],
    limits: PageLimits,
    parse_json: JsonParser,
) -> DomainResult<ListRequest> {
    let view = find_view(schema, view_key)?;
    let mut request = parse_request(schema, pairs, limits, parse_json)?;
    apply_view(schema, view, &mut request, parse_json)?;
    Ok(request)
}

fn parse_request(
    schema: &TableSchema,
    pairs: &[(String, String)],
    limits: PageLimits,
    parse_json: JsonParser,
) -> DomainResult<ListRequest> {
    let mut request = ListRequest {
        limit: limits.default_page_size.min(limits.max_page_size),
        ..ListRequest::default()
    };
    let per_page = count_parameter(pairs, "perPage")?;
    if let Some(limit) = count_parameter(pairs, "limit")?.or(per_page) {
        request.limit = limit.min(limits.max_page_size);
    }
    request.offset = count_parameter(pairs, "offset")?.unwrap_or(0);
    if let Some(page) = count_parameter(pairs, "page")? {
        request.offset = page.saturating_sub(1).saturating_mul(request.limit);
    }
    request.skip_total = flag_parameter(pairs, "skipTotal")?;
    request.after = count_parameter(pairs, "after")?;
    let include_deleted = flag_parameter(pairs, "includeDeleted")?;
    request.trash = if flag_parameter(pairs, "deleted")? {
        TrashMode::Trashed
    } else if include_deleted {
        TrashMode::All
    } else {
        TrashMode::Live
    };
    request.sort = parse_sort_parameters(schema, pairs)?;
    if let Some(fields) = parameter(pairs, "fields") {
        request.projection = parse_projection(schema, fields, "fields")?;
    }
    request.filter = parse_filters(schema, pairs, parse_json)?;
    if let Some(text) = parameter(pairs, "search") {
        request.search = parse_search(text)?;
    }
    if let Some(text) = parameter(pairs, "expand") {
        request.expand = parse_expand(text)?;
    }
    if let Some(text) = parameter(pairs, "aggregate").filter(|text| !text.trim().is_empty()) {
        request.aggregate = Some(parse_aggregate(schema, text, parse_json)?);
    }
    if let Some(name) = parameter(pairs, "groupBy")
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        request.group_by = Some(parse_group_by(schema, name)?);
    }
    Ok(request)
}

/// `groupBy=<field>` → the field id.
pub fn parse_group_by(schema: &TableSchema, name: &str) -> DomainResult<u32> {
    schema
        .field_by_name(name)
        .map(|field| field.id)
        .ok_or_else(|| DomainError::bad_request("groupBy", format!("unknown field: {name}")))
}

/// Every filter spelling present, AND-ed in the order: `filter` (each occurrence), SonicJs
/// `filters[…]`, `filterByFormula`.
fn parse_filters(
    schema: &TableSchema,
    pairs: &[(String, String)],
    parse_json: JsonParser,
) -> DomainResult<Option<Filter>> {
    let mut parts = Vec::new();
    for text in parameters(pairs, "filter") {
        if let Some(filter) = parse_filter_text(schema, text, Some(parse_json))? {
            parts.push(filter);
        }
    }
    if let Some(filter) = parse_bracket_filters(schema, pairs)? {
        parts.push(filter);
    }
    for text in parameters(pairs, "filterByFormula") {
        if !text.trim().is_empty() {
            parts.push(parse_formula(schema, text)?);
        }
    }
    Ok(match parts.len() {
        0 => None,
        _ => Some(Filter::all_of(parts)),
    })
}

/// One `filter=` value: structured JSON when it starts with `{`, the `field:value` shortcut
/// when it starts with a name and a colon, else the expression language. `None` when blank.
/// Without a JSON parser a JSON text is refused.
pub fn parse_filter_text(
    schema: &TableSchema,
    text: &str,
    parse_json: Option<JsonParser>,
) -> DomainResult<Option<Filter>> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.starts_with('{') {
        let Some(parse_json) = parse_json else {
            return Err(DomainError::bad_request(
                "filter",
                "a structured filter must be given as an object, not as a string",
            ));
        };
        let value = parse_json(trimmed).map_err(|message| {
            DomainError::bad_request("filter", format!("invalid JSON filter: {message}"))
        })?;
        return parse_structured(schema, &value, "filter").map(Some);
    }
    if shortcut_split(trimmed).is_some() {
        return parse_shortcut(schema, trimmed).map(Some);
    }
    parse_expression(schema, trimmed).map(Some)
}

/// `name:value` when the text starts with a name followed directly by `:`.
fn shortcut_split(text: &str) -> Option<(&str, &str)> {
    let (name, value) = text.split_once(':')?;
    let mut characters = name.chars();
    let first = characters.next()?;
    let is_name = (first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_');
    is_name.then_some((name, value))
}

/// The `field:value` shortcut (equality, the value typed by the field).
pub fn parse_shortcut(schema: &TableSchema, text: &str) -> DomainResult<Filter> {
    let Some((name, raw)) = shortcut_split(text.trim()) else {
        return Err(DomainError::bad_request("filter", "expected field:value"));
    };
    let attribute = Attribute::resolve_for(schema, name, "filter")?;
    typing::compare(
        schema,
        attribute,
        CompareOp::Eq,
        &Literal::Text(raw.trim().to_owned()),
        "filter",
    )
}

/// SonicJs `filters[field][$op]=value` (`filters[field]=value` is `$eq`). Identical keys are
/// OR-ed (`filters[s][$eq]=a&filters[s][$eq]=b`); different keys are AND-ed (so `$gte` and
/// `$lte` on one field make a range). `$in` takes a comma-separated list.
fn parse_bracket_filters(
    schema: &TableSchema,
    pairs: &[(String, String)],
) -> DomainResult<Option<Filter>> {
    const PARAMETER: &str = "filters";
    let mut groups: Vec<((String, String), Vec<Filter>)> = Vec::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix("filters[") else {
            continue;
        };
        let Some((field, rest)) = rest.split_once(']') else {
            return Err(DomainError::bad_request(
                PARAMETER,
                format!("malformed filter key '{key}'"),
            ));
        };
        let operator = if rest.is_empty() {
            "$eq".to_owned()
        } else {
            rest.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .ok_or_else(|| {
                    DomainError::bad_request(PARAMETER, format!("malformed filter key '{key}'"))
                })?
                .to_owned()
        };
        let attribute = Attribute::resolve_for(schema, field, PARAMETER)?;
        let literal = Literal::Text(value.clone());
        let condition = match operator.as_str() {
            "$eq" => typing::compare(schema, attribute, CompareOp::Eq, &literal, PARAMETER)?,
            "$ne" => typing::compare(schema, attribute, CompareOp::Ne, &literal, PARAMETER)?,
            "$gt" => typing::compare(schema, attribute, CompareOp::Gt, &literal, PARAMETER)?,
            "$gte" => typing::compare(schema, attribute, CompareOp::Gte, &literal, PARAMETER)?,
            "$lt" => typing::compare(schema, attribute, CompareOp::Lt, &literal, PARAMETER)?,
            "$lte" => typing::compare(schema, attribute, CompareOp::Lte, &literal, PARAMETER)?,
            "$contains" | "$contain" => {
                typing::contains(schema, attribute, &literal, &operator, PARAMETER)?
            }
            "$in" => {
                let literals: Vec<Literal> = value
                    .split(',')
                    .map(|item| Literal::Text(item.trim().to_owned()))
                    .collect();
                typing::one_of(schema, attribute, &literals, PARAMETER)?
            }
            other => {
                return Err(DomainError::bad_request(
                    PARAMETER,
                    format!(
                        "unknown operator '{other}' (expected $eq, $ne, $gt, $gte, $lt, $lte, $contains or $in)"
                    ),
                ))
            }
        };
        let group_key = (field.to_owned(), operator);
        match groups
            .iter_mut()
            .find(|(existing, _)| *existing == group_key)
        {
            Some((_, conditions)) => conditions.push(condition),
            None => groups.push((group_key, vec![condition])),
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let parts: Vec<Filter> = groups
        .into_iter()
        .map(|(_, conditions)| Filter::any_of(conditions))
        .collect();
    Ok(Some(Filter::all_of(parts)))
}

/// `sort` (each occurrence, in order) then `sort[0]`, `sort[1]`, … by index.
fn parse_sort_parameters(
    schema: &TableSchema,
    pairs: &[(String, String)],
) -> DomainResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for text in parameters(pairs, "sort") {
        keys.extend(parse_sort(schema, text)?);
    }
    let mut indexed: Vec<(u64, &str)> = Vec::new();
    for (key, value) in pairs {
        if let Some(index) = key
            .strip_prefix("sort[")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            let index = index.trim().parse::<u64>().map_err(|_| {
                DomainError::bad_request("sort", format!("malformed sort key '{key}'"))
            })?;
            indexed.push((index, value));
        }
    }
    indexed.sort_by_key(|(index, _)| *index);
    for (_, text) in indexed {
        keys.extend(parse_sort(schema, text)?);
    }
    // A key repeated later cannot change the order; keep the first.
    let mut seen = Vec::new();
    keys.retain(|key: &SortKey| {
        let fresh = !seen.contains(&key.attribute);
        seen.push(key.attribute);
        fresh
    });
    Ok(keys)
}

/// `priority:desc,createdAt:asc` or `-priority,+title` (no direction means ascending).
pub fn parse_sort(schema: &TableSchema, text: &str) -> DomainResult<Vec<SortKey>> {
    let mut keys = Vec::new();
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (name, descending) = if let Some(name) = part.strip_prefix('-') {
            (name.trim(), true)
        } else if let Some(name) = part.strip_prefix('+') {
            (name.trim(), false)
        } else {
            match part.split_once(':') {
                Some((name, direction)) => match direction.trim().to_ascii_lowercase().as_str() {
                    "desc" => (name.trim(), true),
                    "asc" => (name.trim(), false),
                    _ => {
                        return Err(DomainError::bad_request(
                            "sort",
                            format!(
                                "unknown sort direction '{}' (expected asc or desc)",
                                direction.trim()
                            ),
                        ))
                    }
                },
                None => (part, false),
            }
        };
        let attribute = Attribute::resolve_for(schema, name, "sort")?;
        keys.push(SortKey {
            attribute,
            descending,
        });
    }
    Ok(keys)
}

/// `fields=a,b` → field ids (system attribute names are accepted and ignored: they are always
/// rendered). `None` when the list is blank.
pub fn parse_projection(
    schema: &TableSchema,
    text: &str,
    parameter: &str,
) -> DomainResult<Option<Vec<u32>>> {
    let mut ids = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        if crate::validate::SYSTEM_ATTRIBUTES.contains(&name) {
            continue;
        }
        let field = schema
            .field_by_name(name)
            .ok_or_else(|| DomainError::bad_request(parameter, format!("unknown field: {name}")))?;
        if !ids.contains(&field.id) {
            ids.push(field.id);
        }
    }
    if ids.is_empty() && text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(ids))
}

/// `expand=owner,project.client` → paths of names (checked against the registry later).
pub fn parse_expand(text: &str) -> DomainResult<Vec<Vec<String>>> {
    let mut paths: Vec<Vec<String>> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let path: Vec<String> = entry
            .split('.')
            .map(|name| name.trim().to_owned())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(DomainError::bad_request(
                "expand",
                format!("malformed expand name '{entry}'"),
            ));
        }
        if path.len() > MAX_EXPAND_DEPTH {
            return Err(DomainError::bad_request(
                "expand",
                format!("expand '{entry}' is too deep (max {MAX_EXPAND_DEPTH} levels)"),
            ));
        }
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    if paths.len() > MAX_EXPAND_NAMES {
        return Err(DomainError::bad_request(
            "expand",
            format!("too many expand names (max {MAX_EXPAND_NAMES})"),
        ));
    }
    Ok(paths)
}

/// Coerces a literal written in a query string to the attribute's type (kept for callers of
/// the first version of this module).
pub fn typed_literal(schema: &TableSchema, attribute: Attribute, raw: &str) -> DomainResult<Value> {
    typing::typed_value(schema, attribute, &Literal::Text(raw.to_owned()), "filter")
}
