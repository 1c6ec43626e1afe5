//! Checks that a view refers only to what its table has (SPEC §3 views).

use tabula_storage::{TableSchema, ViewDef};

use crate::query::filter::Attribute;

/// Problems with one view, each a message naming what is wrong. Empty when the view is valid.
pub fn check_view(schema: &TableSchema, view: &ViewDef) -> Vec<String> {
    let mut problems = Vec::new();
    for name in view.fields.iter().flatten() {
        if schema.field_by_name(name).is_none() {
            problems.push(format!("view '{}' lists unknown field '{name}'", view.id));
        }
    }
    if let Some(group_by) = &view.group_by {
        if schema.field_by_name(group_by).is_none() {
            problems.push(format!("view '{}' groups by unknown field '{group_by}'", view.id));
        }
    }
    if let Some(sort) = &view.sort {
        for part in sort.split(',').map(str::trim).filter(|part| !part.is_empty()) {
            let name = part
                .trim_start_matches(['-', '+'])
                .split(':')
                .next()
                .unwrap_or_default();
            if Attribute::resolve(schema, name).is_err() {
                problems.push(format!("view '{}' sorts by unknown field '{name}'", view.id));
            }
        }
    }
    problems
}
