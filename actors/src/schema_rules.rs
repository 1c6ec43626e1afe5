//! The rules that make a schema valid (SPEC §3): id assignment, names, types and their options,
//! defaults, search, permissions and views. Used for `config.toml` at start-up and for the
//! schema-edit API's drafts; every problem is reported with a JSON pointer and a message naming
//! the table and the field or view it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use tabula_storage::journal::ChangeAction;
use tabula_storage::{FieldDef, FieldType, Schema, TableSchema, ViewDef};

use crate::query::views::check_view;
use crate::validate::{check_default, SYSTEM_ATTRIBUTES};

/// The longest table name: `[a-z][a-z0-9_]{0,62}`.
pub const MAX_TABLE_NAME_LENGTH: usize = 63;

/// The longest field name: `[A-Za-z_][A-Za-z0-9_]{0,63}`.
pub const MAX_FIELD_NAME_LENGTH: usize = 64;

/// The largest `precision` (digits after the point) a decimal, currency or percentage field may
/// ask for: an f64 holds about 15 significant decimal digits, more would be noise.
pub const MAX_PRECISION: u32 = 15;

/// The only `autofill` a user field understands: the caller who creates the record.
pub const AUTOFILL_CURRENT_USER: &str = "current";

/// One problem with a schema: where it is (a JSON pointer into the snapshot form, e.g.
/// `/tables/0/fields/2/type`) and what is wrong, in words naming the table and field or view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for SchemaIssue {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        write!(formatter, "{}: {}", self.path, self.message)
    }
}

/// Assigns the ids a schema leaves at 0 (a table gets the highest table id + 1, a field the
/// highest field id of its table + 1, in declaration order), then checks every rule of SPEC §3.
/// On failure the ids assigned so far stay assigned and every problem is returned.
pub fn normalize_schema(schema: &mut Schema) -> Result<(), Vec<SchemaIssue>> {
    let mut issues = assign_missing_ids(schema);
    issues.extend(validate_schema(schema));
    if issues.is_empty() {
        Ok(())
    } else {
        Err(issues)
    }
}

/// Checks every rule of SPEC §3 without changing anything. An id of 0 means "not yet assigned"
/// and is accepted (it never clashes); [`normalize_schema`] is what assigns it.
pub fn validate_schema(schema: &Schema) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let table_names: BTreeSet<&str> = schema
        .tables
        .iter()
        .map(|table| table.name.as_str())
        .collect();
    let mut first_table_with_id: BTreeMap<u32, &str> = BTreeMap::new();
    let mut seen_table_names: BTreeSet<&str> = BTreeSet::new();
    for (table_index, table) in schema.tables.iter().enumerate() {
        let table_path = format!("/tables/{table_index}");
        let table_label = format!("table '{}'", table.name);
        if table.id != 0 {
            if let Some(earlier) = first_table_with_id.get(&table.id) {
                issues.push(issue(
                    format!("{table_path}/id"),
                    format!(
                        "{table_label}: id {} is already used by table '{earlier}'",
                        table.id
                    ),
                ));
            } else {
                first_table_with_id.insert(table.id, &table.name);
            }
        }
        if let Err(problem) = check_table_name(&table.name) {
            issues.push(issue(
                format!("{table_path}/name"),
                format!("{table_label}: {problem}"),
            ));
        }
        if !seen_table_names.insert(&table.name) {
            issues.push(issue(
                format!("{table_path}/name"),
                format!("{table_label}: another table already has this name"),
            ));
        }
        check_table(table, &table_path, &table_names, &mut issues);
    }
    issues
}

/// Gives every table and field whose id is 0 the next free id. Returns an issue only when the
/// ids would overflow.
fn assign_missing_ids(schema: &mut Schema) -> Vec<SchemaIssue> {
    let mut issues = Vec::new();
    let mut highest_table_id = schema
        .tables
        .iter()
        .map(|table| table.id)
        .max()
        .unwrap_or(0);
    for (table_index, table) in schema.tables.iter_mut().enumerate() {
        if table.id == 0 {
            match highest_table_id.checked_add(1) {
                Some(next) => {
                    table.id = next;
                    highest_table_id = next;
                }
                None => issues.push(issue(
                    format!("/tables/{table_index}/id"),
                    format!("table '{}': no table id is left to assign", table.name),
                )),
            }
        }
        let mut highest_field_id = table.fields.iter().map(|field| field.id).max().unwrap_or(0);
        for (field_index, field) in table.fields.iter_mut().enumerate() {
            if field.id == 0 {
                match highest_field_id.checked_add(1) {
                    Some(next) => {
                        field.id = next;
                        highest_field_id = next;
                    }
                    None => issues.push(issue(
                        format!("/tables/{table_index}/fields/{field_index}/id"),
                        format!(
                            "table '{}', field '{}': no field id is left to assign",
                            table.name, field.name
                        ),
                    )),
                }
            }
        }
    }
    issues
}

/// Everything inside one table: its fields, search, permissions and views.
fn check_table(
    table: &TableSchema,
    table_path: &str,
    table_names: &BTreeSet<&str>,
    issues: &mut Vec<SchemaIssue>,
) {
    let table_label = format!("table '{}'", table.name);
    if table.fields.is_empty() {
        issues.push(issue(
            format!("{table_path}/fields"),
            format!("{table_label}: a table needs at least one field"),
        ));
    }
    let mut first_field_with_id: BTreeMap<u32, &str> = BTreeMap::new();
    let mut seen_field_names: BTreeSet<&str> = BTreeSet::new();
    for (field_index, field) in table.fields.iter().enumerate() {
        let field_path = format!("{table_path}/fields/{field_index}");
        let field_label = format!("{table_label}, field '{}'", field.name);
        if field.id != 0 {
            if let Some(earlier) = first_field_with_id.get(&field.id) {
                issues.push(issue(
                    format!("{field_path}/id"),
                    format!(
                        "{field_label}: id {} is already used by field '{earlier}'",
                        field.id
                    ),
                ));
            } else {
                first_field_with_id.insert(field.id, &field.name);
            }
        }
        if let Err(problem) = check_field_name(&field.name) {
            issues.push(issue(
                format!("{field_path}/name"),
                format!("{field_label}: {problem}"),
            ));
        }
        if !seen_field_names.insert(&field.name) {
            issues.push(issue(
                format!("{field_path}/name"),
                format!("{field_label}: another field of this table already has this name"),
            ));
        }
        let context = FieldContext {
            path: &field_path,
            label: &field_label,
            table_names,
        };
        check_field(field, &context, issues);
    }
    check_search(table, table_path, issues);
    check_permissions(table, table_path, issues);
    check_views(table, table_path, issues);
    check_webhooks(table, table_path, issues);
}

/// A webhook posts to an absolute http(s) URL, for actions that exist, with a non-empty secret
/// when one is given.
fn check_webhooks(table: &TableSchema, table_path: &str, issues: &mut Vec<SchemaIssue>) {
    for (hook_index, hook) in table.webhooks.iter().enumerate() {
        let path = format!("{table_path}/webhooks/{hook_index}");
        let label = format!("table '{}', webhook {}", table.name, hook_index + 1);
        let scheme_ok = url::Url::parse(&hook.url)
            .map(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if scheme_ok != Ok(true) {
            issues.push(issue(
                format!("{path}/url"),
                format!("{label}: url must be an absolute http or https URL"),
            ));
        }
        for (event_index, event) in hook.events.iter().enumerate() {
            if event != "*" && ChangeAction::parse(event).is_none() {
                issues.push(issue(
                    format!("{path}/events/{event_index}"),
                    format!(
                        "{label}: unknown event '{event}' (create, update, delete, restore, \
                         permanent_delete or *)"
                    ),
                ));
            }
        }
        if hook
            .secret
            .as_deref()
            .is_some_and(|secret| secret.is_empty())
        {
            issues.push(issue(
                format!("{path}/secret"),
                format!("{label}: secret must not be empty (leave it out for unsigned posts)"),
            ));
        }
    }
}

/// Where a field sits, for the issues about it.
struct FieldContext<'a> {
    path: &'a str,
    label: &'a str,
    table_names: &'a BTreeSet<&'a str>,
}

impl FieldContext<'_> {
    fn report(&self, issues: &mut Vec<SchemaIssue>, key: &str, problem: impl fmt::Display) {
        issues.push(issue(
            format!("{}/{key}", self.path),
            format!("{}: {problem}", self.label),
        ));
    }
}

/// The field's type, then each type option: present only where the type uses it, and sane.
fn check_field(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let field_type = &field.field_type;
    if let FieldType::Unknown(type_name) = field_type {
        context.report(issues, "type", unknown_type_message(type_name));
        // The options and default of an unknown type cannot be judged.
        return;
    }
    check_max_length(field, context, issues);
    check_bounds(field, context, issues);
    check_precision(field, context, issues);
    check_currency(field, context, issues);
    check_options(field, context, issues);
    check_relationship(field, context, issues);
    check_autofill(field, context, issues);
    if let Err(problem) = check_default(field) {
        context.report(issues, "default", problem);
    }
}

fn check_max_length(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let Some(max_length) = field.max_length else {
        return;
    };
    let applies = matches!(
        field.field_type,
        FieldType::SingleLineText | FieldType::LongText | FieldType::RichText
    );
    if !applies {
        context.report(
            issues,
            "maxLength",
            option_does_not_apply("maxLength", field),
        );
    } else if max_length == 0 {
        context.report(issues, "maxLength", "maxLength must be at least 1");
    }
}

fn check_bounds(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let takes_minimum = matches!(
        field.field_type,
        FieldType::Integer | FieldType::Decimal | FieldType::Currency | FieldType::Percentage
    );
    let takes_maximum = takes_minimum || field.field_type == FieldType::Rating;
    for (key, bound, applies) in [
        ("min", field.min, takes_minimum),
        ("max", field.max, takes_maximum),
    ] {
        let Some(bound) = bound else {
            continue;
        };
        if !applies {
            context.report(issues, key, option_does_not_apply(key, field));
        } else if !bound.is_finite() {
            context.report(issues, key, format!("{key} must be a finite number"));
        }
    }
    if let (Some(minimum), Some(maximum)) = (field.min, field.max) {
        if takes_minimum && minimum > maximum {
            context.report(
                issues,
                "min",
                format!("min ({minimum}) is greater than max ({maximum})"),
            );
        }
    }
    if field.field_type == FieldType::Rating {
        if let Some(maximum) = field.max {
            if maximum < 1.0 || maximum.fract() != 0.0 {
                context.report(
                    issues,
                    "max",
                    format!("a rating's max must be a whole number of at least 1 (got {maximum})"),
                );
            }
        }
    }
}

fn check_precision(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let Some(precision) = field.precision else {
        return;
    };
    let applies = matches!(
        field.field_type,
        FieldType::Decimal | FieldType::Currency | FieldType::Percentage
    );
    if !applies {
        context.report(
            issues,
            "precision",
            option_does_not_apply("precision", field),
        );
    } else if precision > MAX_PRECISION {
        context.report(
            issues,
            "precision",
            format!("precision must be between 0 and {MAX_PRECISION} (got {precision})"),
        );
    }
}

fn check_currency(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let Some(currency) = &field.currency else {
        return;
    };
    if field.field_type != FieldType::Currency {
        context.report(issues, "currency", option_does_not_apply("currency", field));
    } else if currency.len() != 3 || !currency.bytes().all(|byte| byte.is_ascii_uppercase()) {
        context.report(
            issues,
            "currency",
            format!("currency must be a 3-letter ISO 4217 code in capitals, like 'EUR' (got '{currency}')"),
        );
    }
}

fn check_options(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let is_select = matches!(
        field.field_type,
        FieldType::SingleSelect | FieldType::MultiSelect
    );
    match (&field.options, is_select) {
        (Some(_), false) => {
            context.report(issues, "options", option_does_not_apply("options", field));
        }
        (None, true) => context.report(
            issues,
            "options",
            format!(
                "a {} field needs a non-empty list of options",
                field.field_type
            ),
        ),
        (Some(options), true) => {
            if options.is_empty() {
                context.report(
                    issues,
                    "options",
                    format!(
                        "a {} field needs a non-empty list of options",
                        field.field_type
                    ),
                );
            }
            let mut seen = BTreeSet::new();
            for (option_index, option) in options.iter().enumerate() {
                let key = format!("options/{option_index}");
                if option.trim().is_empty() {
                    context.report(issues, &key, "an option may not be blank");
                } else if !seen.insert(option.as_str()) {
                    context.report(issues, &key, format!("option '{option}' is listed twice"));
                }
            }
        }
        (None, false) => {}
    }
}

fn check_relationship(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let is_relationship = field.field_type == FieldType::Relationship;
    if field.on_delete.is_some() && !is_relationship {
        context.report(issues, "onDelete", option_does_not_apply("onDelete", field));
    }
    match (&field.related_table, is_relationship) {
        (Some(_), false) => context.report(
            issues,
            "relatedTable",
            option_does_not_apply("relatedTable", field),
        ),
        (None, true) => context.report(
            issues,
            "relatedTable",
            "a relationship needs relatedTable (the name of the table it points to)",
        ),
        (Some(related_table), true) => {
            if !context.table_names.contains(related_table.as_str()) {
                context.report(
                    issues,
                    "relatedTable",
                    format!("relatedTable '{related_table}' is not a table of this schema"),
                );
            }
        }
        (None, false) => {}
    }
}

fn check_autofill(field: &FieldDef, context: &FieldContext, issues: &mut Vec<SchemaIssue>) {
    let Some(autofill) = &field.autofill else {
        return;
    };
    if field.field_type != FieldType::User {
        context.report(issues, "autofill", option_does_not_apply("autofill", field));
    } else if autofill != AUTOFILL_CURRENT_USER {
        context.report(
            issues,
            "autofill",
            format!("autofill must be '{AUTOFILL_CURRENT_USER}' (got '{autofill}')"),
        );
    }
}

/// `search` may only name text fields of the table.
fn check_search(table: &TableSchema, table_path: &str, issues: &mut Vec<SchemaIssue>) {
    for (search_index, name) in table.search.iter().flatten().enumerate() {
        let path = format!("{table_path}/search/{search_index}");
        match table.field_by_name(name) {
            None => issues.push(issue(
                path,
                format!(
                    "table '{}': search names unknown field '{name}'",
                    table.name
                ),
            )),
            Some(field) if !field.field_type.is_text() => issues.push(issue(
                path,
                format!(
                    "table '{}': search names field '{name}', which is not a text field (it is {})",
                    table.name, field.field_type
                ),
            )),
            Some(_) => {}
        }
    }
}

/// Field permissions name existing fields (once each); a row filter is not blank.
fn check_permissions(table: &TableSchema, table_path: &str, issues: &mut Vec<SchemaIssue>) {
    let mut seen = BTreeSet::new();
    for (permission_index, permission) in table.permissions.fields.iter().enumerate() {
        let path = format!("{table_path}/permissions/fields/{permission_index}/field");
        let name = &permission.field;
        if table.field_by_name(name).is_none() {
            issues.push(issue(
                path,
                format!(
                    "table '{}': permissions.fields names unknown field '{name}'",
                    table.name
                ),
            ));
        } else if !seen.insert(name.as_str()) {
            issues.push(issue(
                path,
                format!(
                    "table '{}', field '{name}': permissions.fields lists this field twice",
                    table.name
                ),
            ));
        }
    }
    if let Some(row_filter) = &table.permissions.row_filter {
        if row_filter.trim().is_empty() {
            issues.push(issue(
                format!("{table_path}/permissions/rowFilter"),
                format!(
                    "table '{}': permissions.rowFilter may not be blank (leave it out for no row rule)",
                    table.name
                ),
            ));
        }
    }
}

/// View ids are well-formed and unique, at most one view is the default, and each view refers
/// only to what the table has.
fn check_views(table: &TableSchema, table_path: &str, issues: &mut Vec<SchemaIssue>) {
    let mut seen_ids = BTreeSet::new();
    let mut default_view: Option<&str> = None;
    for (view_index, view) in table.views.iter().enumerate() {
        let view_path = format!("{table_path}/views/{view_index}");
        let view_label = format!("table '{}', view '{}'", table.name, view.id);
        if !is_view_id(&view.id) {
            issues.push(issue(
                format!("{view_path}/id"),
                format!("{view_label}: a view id is one or more of a-z, 0-9, '_' and '-'"),
            ));
        }
        if !seen_ids.insert(view.id.as_str()) {
            issues.push(issue(
                format!("{view_path}/id"),
                format!("{view_label}: another view of this table already has this id"),
            ));
        }
        if view.is_default {
            match default_view {
                Some(earlier) => issues.push(issue(
                    format!("{view_path}/isDefault"),
                    format!(
                        "{view_label}: view '{earlier}' is already the default (at most one view per table may be)"
                    ),
                )),
                None => default_view = Some(&view.id),
            }
        }
        check_view_references(table, view, &view_path, issues);
    }
}

fn check_view_references(
    table: &TableSchema,
    view: &ViewDef,
    view_path: &str,
    issues: &mut Vec<SchemaIssue>,
) {
    for problem in check_view(table, view) {
        issues.push(issue(
            view_path.to_owned(),
            format!("table '{}': {problem}", table.name),
        ));
    }
}

/// `[a-z][a-z0-9_]{0,62}`.
fn check_table_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let starts_well = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase());
    let rest_is_well_formed = characters.all(|character| {
        character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
    });
    if !starts_well || !rest_is_well_formed || name.len() > MAX_TABLE_NAME_LENGTH {
        return Err(format!(
            "a table name is a lowercase letter followed by up to {} lowercase letters, digits or '_'",
            MAX_TABLE_NAME_LENGTH - 1
        ));
    }
    Ok(())
}

/// `[A-Za-z_][A-Za-z0-9_]{0,63}`, and not the name of a system attribute.
fn check_field_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let starts_well = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_');
    let rest_is_well_formed =
        characters.all(|character| character.is_ascii_alphanumeric() || character == '_');
    if !starts_well || !rest_is_well_formed || name.len() > MAX_FIELD_NAME_LENGTH {
        return Err(format!(
            "a field name is a letter or '_' followed by up to {} letters, digits or '_'",
            MAX_FIELD_NAME_LENGTH - 1
        ));
    }
    if SYSTEM_ATTRIBUTES.contains(&name) {
        return Err(format!(
            "'{name}' is a system attribute every record has; choose another name"
        ));
    }
    Ok(())
}

/// `[a-z0-9_-]+`.
fn is_view_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().all(|character| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || character == '_'
                || character == '-'
        })
}

fn option_does_not_apply(key: &str, field: &FieldDef) -> String {
    format!("{key} does not apply to {} fields", field.field_type)
}

/// "unknown type 'dat'", with the closest known type when one is near, else the list of types.
fn unknown_type_message(type_name: &str) -> String {
    let closest = FieldType::ALL
        .iter()
        .map(|known| (edit_distance(type_name, known.name()), known.name()))
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((distance, known)) if distance <= 2 => {
            format!("unknown type '{type_name}' (did you mean '{known}'?)")
        }
        _ => {
            let known: Vec<&str> = FieldType::ALL.iter().map(FieldType::name).collect();
            format!(
                "unknown type '{type_name}' (known types: {})",
                known.join(", ")
            )
        }
    }
}

/// Levenshtein distance over characters; the inputs are short type names.
fn edit_distance(left: &str, right: &str) -> usize {
    let right: Vec<char> = right.chars().collect();
    let mut previous_row: Vec<usize> = (0..=right.len()).collect();
    for (left_index, left_character) in left.chars().enumerate() {
        let mut current_row = Vec::with_capacity(right.len() + 1);
        current_row.push(left_index + 1);
        for (right_index, right_character) in right.iter().enumerate() {
            let substitution =
                previous_row[right_index] + usize::from(left_character != *right_character);
            let deletion = previous_row[right_index + 1] + 1;
            let insertion = current_row[right_index] + 1;
            current_row.push(substitution.min(deletion).min(insertion));
        }
        previous_row = current_row;
    }
    previous_row[right.len()]
}

fn issue(path: String, message: String) -> SchemaIssue {
    SchemaIssue { path, message }
}
