//! Differences between two schemas (for `GET /api/admin/schema/diff`) and the three-way merge
//! behind a draft rebase. Tables and fields are matched by id, so a new name under the same id
//! is a rename.

use serde::Serialize;
use tabula_storage::{FieldDef, Permissions, Schema, TableSchema, ViewDef};

/// What one side of a change holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ChangeSide {
    Table(Box<TableSchema>),
    Field(Box<FieldDef>),
    Permissions(Box<Permissions>),
    View(Box<ViewDef>),
    Names(Option<Vec<String>>),
    Text(String),
}

/// One difference: its kind (`add-table`, `remove-field`, …), where it is
/// (`/tables/<table>/fields/<field>`, by name) and the two sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaChange {
    pub kind: &'static str,
    pub path: String,
    pub before: Option<ChangeSide>,
    pub after: Option<ChangeSide>,
}

fn change(
    kind: &'static str,
    path: String,
    before: Option<ChangeSide>,
    after: Option<ChangeSide>,
) -> SchemaChange {
    SchemaChange {
        kind,
        path,
        before,
        after,
    }
}

/// The changes that turn `from` into `to`, table by table in `to`'s order, removed tables last.
pub fn diff_schemas(from: &Schema, to: &Schema) -> Vec<SchemaChange> {
    let mut changes = Vec::new();
    for table in &to.tables {
        let path = format!("/tables/{}", table.name);
        match from.tables.iter().find(|old| old.id == table.id) {
            None => changes.push(change(
                "add-table",
                path,
                None,
                Some(ChangeSide::Table(Box::new(table.clone()))),
            )),
            Some(old) => diff_tables(old, table, &path, &mut changes),
        }
    }
    for old in &from.tables {
        if !to.tables.iter().any(|table| table.id == old.id) {
            changes.push(change(
                "remove-table",
                format!("/tables/{}", old.name),
                Some(ChangeSide::Table(Box::new(old.clone()))),
                None,
            ));
        }
    }
    changes
}

fn diff_tables(old: &TableSchema, new: &TableSchema, path: &str, changes: &mut Vec<SchemaChange>) {
    if old.name != new.name {
        changes.push(change(
            "rename-table",
            path.to_owned(),
            Some(ChangeSide::Text(old.name.clone())),
            Some(ChangeSide::Text(new.name.clone())),
        ));
    }
    for field in &new.fields {
        let field_path = format!("{path}/fields/{}", field.name);
        let Some(before) = old.field_by_id(field.id) else {
            changes.push(change(
                "add-field",
                field_path,
                None,
                Some(ChangeSide::Field(Box::new(field.clone()))),
            ));
            continue;
        };
        if before.name != field.name {
            changes.push(change(
                "rename-field",
                field_path.clone(),
                Some(ChangeSide::Text(before.name.clone())),
                Some(ChangeSide::Text(field.name.clone())),
            ));
        }
        if before.field_type != field.field_type {
            changes.push(change(
                "change-field-type",
                field_path.clone(),
                Some(ChangeSide::Text(before.field_type.name().to_owned())),
                Some(ChangeSide::Text(field.field_type.name().to_owned())),
            ));
        }
        let mut renamed = before.clone();
        renamed.name = field.name.clone();
        renamed.field_type = field.field_type.clone();
        if &renamed != field {
            changes.push(change(
                "change-field",
                field_path,
                Some(ChangeSide::Field(Box::new(before.clone()))),
                Some(ChangeSide::Field(Box::new(field.clone()))),
            ));
        }
    }
    for before in &old.fields {
        if new.field_by_id(before.id).is_none() {
            changes.push(change(
                "remove-field",
                format!("{path}/fields/{}", before.name),
                Some(ChangeSide::Field(Box::new(before.clone()))),
                None,
            ));
        }
    }
    if old.permissions != new.permissions {
        changes.push(change(
            "change-permissions",
            format!("{path}/permissions"),
            Some(ChangeSide::Permissions(Box::new(old.permissions.clone()))),
            Some(ChangeSide::Permissions(Box::new(new.permissions.clone()))),
        ));
    }
    for view in &new.views {
        let view_path = format!("{path}/views/{}", view.id);
        match old.views.iter().find(|before| before.id == view.id) {
            None => changes.push(change(
                "add-view",
                view_path,
                None,
                Some(ChangeSide::View(Box::new(view.clone()))),
            )),
            Some(before) if before != view => changes.push(change(
                "change-view",
                view_path,
                Some(ChangeSide::View(Box::new(before.clone()))),
                Some(ChangeSide::View(Box::new(view.clone()))),
            )),
            Some(_) => {}
        }
    }
    for before in &old.views {
        if !new.views.iter().any(|view| view.id == before.id) {
            changes.push(change(
                "remove-view",
                format!("{path}/views/{}", before.id),
                Some(ChangeSide::View(Box::new(before.clone()))),
                None,
            ));
        }
    }
    if old.search != new.search {
        changes.push(change(
            "change-search",
            format!("{path}/search"),
            Some(ChangeSide::Names(old.search.clone())),
            Some(ChangeSide::Names(new.search.clone())),
        ));
    }
    if old.webhooks != new.webhooks {
        changes.push(change(
            "change-webhooks",
            format!("{path}/webhooks"),
            None,
            None,
        ));
    }
}

/// A table both sides of a rebase changed, differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebaseConflict {
    pub table: String,
    pub message: String,
}

/// Re-applies the changes `mine` made to `base` on top of `theirs`, table by table: a table only
/// one side changed takes that side; a table both changed the same way is kept; a table both
/// changed differently is a conflict. Tables keep `theirs`' order, tables only `mine` has follow.
pub fn rebase_schema(
    base: &Schema,
    mine: &Schema,
    theirs: &Schema,
) -> Result<Schema, Vec<RebaseConflict>> {
    let find = |schema: &Schema, id: u32| schema.tables.iter().find(|t| t.id == id).cloned();
    let mut ids: Vec<u32> = theirs.tables.iter().map(|table| table.id).collect();
    for table in &mine.tables {
        if !ids.contains(&table.id) {
            ids.push(table.id);
        }
    }
    let mut merged = Vec::new();
    let mut conflicts = Vec::new();
    for id in ids {
        let (base_table, my_table, their_table) =
            (find(base, id), find(mine, id), find(theirs, id));
        let chosen = if my_table == base_table {
            their_table
        } else if their_table == base_table || my_table == their_table {
            my_table
        } else {
            let name = my_table
                .as_ref()
                .or(their_table.as_ref())
                .or(base_table.as_ref())
                .map(|table| table.name.clone())
                .unwrap_or_default();
            let message = match (&my_table, &their_table) {
                (None, _) => "the draft removes this table, which the active version changed",
                (_, None) => "the active version removed this table, which the draft changes",
                _ => "the draft and the active version both changed this table",
            };
            conflicts.push(RebaseConflict {
                table: name,
                message: message.to_owned(),
            });
            continue;
        };
        merged.extend(chosen);
    }
    if conflicts.is_empty() {
        Ok(Schema { tables: merged })
    } else {
        Err(conflicts)
    }
}
