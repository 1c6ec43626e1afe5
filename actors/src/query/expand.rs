//! `expand=`: resolves relationship names on a page of records into the related records —
//! a many-to-one relationship field gives one record, a reverse `<table>_via_<field>` name gives
//! the records of `<table>` whose `<field>` points here — nested up to two levels
//! (`project.client`). Only live related records the caller may see (its row rule on the related
//! table) are expanded; fields the caller may not read are removed from them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tabula_storage::{FieldDef, FieldType, StoredRecord, TableSchema, Value};

use crate::error::{DomainError, DomainResult};
use crate::query::budget::QueryBudget;
use crate::query::filter::Filter;
use crate::query::plan::indexable_field;
use crate::registry::{Registry, TableHandle};

/// The most records one reverse relation expands for one parent (in id order).
pub const MAX_EXPANDED_CHILDREN: usize = 1_000;

/// What the caller may read; expansion treats what it may not read as absent. The defaults
/// allow everything.
pub trait ReadAccess {
    fn can_read_table(&self, _table: &TableSchema) -> bool {
        true
    }
    fn can_read_field(&self, _table: &TableSchema, _field: &FieldDef) -> bool {
        true
    }
    /// The row rule that narrows which records of `table` the caller sees (`None`: all).
    fn row_rule(&self, _table: &TableSchema) -> Option<Filter> {
        None
    }
}

/// Whether a related record is shown: live, and inside the caller's row rule (checked on the
/// whole record, before its unreadable fields are removed).
fn shown(record: &StoredRecord, rule: Option<&Filter>) -> bool {
    !record.is_deleted() && rule.is_none_or(|rule| rule.matches(record))
}

/// Reads everything (admins, or before permissions apply).
pub struct FullAccess;

impl ReadAccess for FullAccess {}

/// A related record, with the schema of its table and its own nested expansions.
#[derive(Debug, Clone)]
pub struct ExpandedRecord {
    pub table: Arc<TableSchema>,
    pub record: StoredRecord,
    pub expand: BTreeMap<String, Expanded>,
}

/// One expanded name: an object for a relationship field, an array for a reverse relation.
#[derive(Debug, Clone)]
pub enum Expanded {
    One(Box<ExpandedRecord>),
    Many(Vec<ExpandedRecord>),
}

enum Relation {
    /// A relationship field of this table pointing at `target`.
    Forward { field_id: u32, target: TableHandle },
    /// `child`'s relationship field `field_id` pointing at this table.
    Reverse { child: TableHandle, field_id: u32 },
}

struct ExpandNode {
    name: String,
    relation: Relation,
    children: Vec<ExpandNode>,
}

fn unknown(name: &str) -> DomainError {
    DomainError::bad_request(
        "expand",
        format!(
            "cannot expand '{name}': it is neither a relationship field nor a <table>_via_<field> relation"
        ),
    )
}

fn points_at(field: &FieldDef, schema: &TableSchema) -> bool {
    field.field_type == FieldType::Relationship
        && field
            .related_table
            .as_deref()
            .is_some_and(|related| related == schema.name || related == schema.id.to_string())
}

fn resolve_relation(
    registry: &Registry,
    schema: &TableSchema,
    name: &str,
    access: &dyn ReadAccess,
) -> DomainResult<Relation> {
    if let Some(field) = schema.field_by_name(name) {
        if field.field_type == FieldType::Relationship && access.can_read_field(schema, field) {
            let target = field
                .related_table
                .as_deref()
                .and_then(|related| registry.resolve(related))
                .filter(|target| access.can_read_table(&target.shared.schema()))
                .ok_or_else(|| unknown(name))?;
            return Ok(Relation::Forward {
                field_id: field.id,
                target,
            });
        }
        return Err(unknown(name));
    }
    // `<table>_via_<field>`; table names may themselves contain `_via_`, so try every split.
    let mut search_from = 0;
    while let Some(found) = name[search_from..].find("_via_") {
        let split = search_from + found;
        let (table_name, field_name) = (&name[..split], &name[split + "_via_".len()..]);
        if let Some(child) = registry.resolve(table_name) {
            let child_schema = child.shared.schema();
            if let Some(field) = child_schema.field_by_name(field_name) {
                if points_at(field, schema)
                    && access.can_read_table(&child_schema)
                    && access.can_read_field(&child_schema, field)
                {
                    return Ok(Relation::Reverse {
                        field_id: field.id,
                        child: child.clone(),
                    });
                }
            }
        }
        search_from = split + 1;
    }
    Err(unknown(name))
}

fn resolve_tree(
    registry: &Registry,
    schema: &TableSchema,
    paths: &[Vec<String>],
    access: &dyn ReadAccess,
) -> DomainResult<Vec<ExpandNode>> {
    let mut first_names: Vec<&str> = Vec::new();
    for path in paths {
        if let Some(first) = path.first() {
            if !first_names.contains(&first.as_str()) {
                first_names.push(first);
            }
        }
    }
    let mut nodes = Vec::new();
    for name in first_names {
        let relation = resolve_relation(registry, schema, name, access)?;
        let rest: Vec<Vec<String>> = paths
            .iter()
            .filter(|path| path.first().is_some_and(|first| first == name) && path.len() > 1)
            .map(|path| path[1..].to_vec())
            .collect();
        let target_schema = match &relation {
            Relation::Forward { target, .. } => target.shared.schema(),
            Relation::Reverse { child, .. } => child.shared.schema(),
        };
        let children = resolve_tree(registry, &target_schema, &rest, access)?;
        nodes.push(ExpandNode {
            name: name.to_owned(),
            relation,
            children,
        });
    }
    Ok(nodes)
}

/// Checks expand paths against the registry without reading any record (an unknown name is a
/// 400 on `expand`).
pub fn check_expand(
    registry: &Registry,
    schema: &TableSchema,
    paths: &[Vec<String>],
    access: &dyn ReadAccess,
) -> DomainResult<()> {
    resolve_tree(registry, schema, paths, access).map(|_| ())
}

/// Expands `paths` for each record of `records` (a page of the table with `schema`): one map of
/// name → expansion per record, in the same order. A relationship that is empty or points at a
/// missing or trashed record is left out of the map; a reverse relation with no children is an
/// empty array.
pub fn expand(
    registry: &Registry,
    schema: &TableSchema,
    records: &[StoredRecord],
    paths: &[Vec<String>],
    access: &dyn ReadAccess,
) -> DomainResult<Vec<BTreeMap<String, Expanded>>> {
    expand_within(
        registry,
        schema,
        records,
        paths,
        access,
        &QueryBudget::unlimited(),
    )
}

/// [`expand`] within a query's budget, checked for every related record read.
pub fn expand_within(
    registry: &Registry,
    schema: &TableSchema,
    records: &[StoredRecord],
    paths: &[Vec<String>],
    access: &dyn ReadAccess,
    budget: &QueryBudget,
) -> DomainResult<Vec<BTreeMap<String, Expanded>>> {
    let nodes = resolve_tree(registry, schema, paths, access)?;
    expand_level(records, &nodes, access, budget)
}

fn related_id(value: &Value) -> Option<u64> {
    match value {
        Value::Text(text) => text.trim().parse::<u64>().ok(),
        Value::Int(number) => u64::try_from(*number).ok(),
        _ => None,
    }
}

/// Removes the fields the caller may not read (and any the schema no longer has).
fn readable(
    schema: &TableSchema,
    mut record: StoredRecord,
    access: &dyn ReadAccess,
) -> StoredRecord {
    record.fields.retain(|field_id, _| {
        schema
            .field_by_id(*field_id)
            .is_some_and(|field| access.can_read_field(schema, field))
    });
    record
}

fn expand_level(
    records: &[StoredRecord],
    nodes: &[ExpandNode],
    access: &dyn ReadAccess,
    budget: &QueryBudget,
) -> DomainResult<Vec<BTreeMap<String, Expanded>>> {
    let mut out: Vec<BTreeMap<String, Expanded>> = vec![BTreeMap::new(); records.len()];
    for node in nodes {
        match &node.relation {
            Relation::Forward { field_id, target } => {
                let target_schema = target.shared.schema();
                let rule = access.row_rule(&target_schema);
                let mut wanted: Vec<u64> = records
                    .iter()
                    .filter_map(|record| related_id(record.value(*field_id)))
                    .collect();
                wanted.sort_unstable();
                wanted.dedup();
                let mut found = Vec::new();
                for id in wanted {
                    budget.check()?;
                    if let Some(related) = target.shared.store.get_record(id)? {
                        if shown(&related, rule.as_ref()) {
                            found.push(readable(&target_schema, related, access));
                        }
                    }
                }
                let nested = expand_level(&found, &node.children, access, budget)?;
                let by_id: HashMap<u64, ExpandedRecord> = found
                    .into_iter()
                    .zip(nested)
                    .map(|(record, expand)| {
                        (
                            record.id,
                            ExpandedRecord {
                                table: Arc::clone(&target_schema),
                                record,
                                expand,
                            },
                        )
                    })
                    .collect();
                for (record, expansions) in records.iter().zip(out.iter_mut()) {
                    if let Some(related) =
                        related_id(record.value(*field_id)).and_then(|id| by_id.get(&id))
                    {
                        expansions
                            .insert(node.name.clone(), Expanded::One(Box::new(related.clone())));
                    }
                }
            }
            Relation::Reverse { child, field_id } => {
                let child_schema = child.shared.schema();
                let rule = access.row_rule(&child_schema);
                let parents: HashSet<u64> = records.iter().map(|record| record.id).collect();
                let mut children: BTreeMap<u64, Vec<StoredRecord>> = BTreeMap::new();
                if indexable_field(&child_schema, *field_id) {
                    for parent in &parents {
                        let value = Value::Text(parent.to_string());
                        let prefix = tabula_storage::keys::index_value_prefix(*field_id, &value);
                        let mut list = Vec::new();
                        for id in child.shared.store.index_ids(
                            *field_id,
                            std::ops::Bound::Included(prefix.clone()),
                            std::ops::Bound::Included(prefix),
                            false,
                        ) {
                            if list.len() >= MAX_EXPANDED_CHILDREN {
                                break;
                            }
                            budget.check()?;
                            if let Some(record) = child.shared.store.get_record(id?)? {
                                if shown(&record, rule.as_ref()) {
                                    list.push(record);
                                }
                            }
                        }
                        children.insert(*parent, list);
                    }
                } else {
                    for record in child.shared.store.records(None, false) {
                        budget.check()?;
                        let record = record?;
                        if !shown(&record, rule.as_ref()) {
                            continue;
                        }
                        if let Some(parent) =
                            related_id(record.value(*field_id)).filter(|id| parents.contains(id))
                        {
                            let list = children.entry(parent).or_default();
                            if list.len() < MAX_EXPANDED_CHILDREN {
                                list.push(record);
                            }
                        }
                    }
                }
                let flat: Vec<StoredRecord> = children
                    .values()
                    .flatten()
                    .cloned()
                    .map(|record| readable(&child_schema, record, access))
                    .collect();
                let nested = expand_level(&flat, &node.children, access, budget)?;
                let mut expanded_by_id: HashMap<u64, ExpandedRecord> = flat
                    .into_iter()
                    .zip(nested)
                    .map(|(record, expand)| {
                        (
                            record.id,
                            ExpandedRecord {
                                table: Arc::clone(&child_schema),
                                record,
                                expand,
                            },
                        )
                    })
                    .collect();
                for (record, expansions) in records.iter().zip(out.iter_mut()) {
                    let list: Vec<ExpandedRecord> = children
                        .get(&record.id)
                        .map(|list| {
                            list.iter()
                                .filter_map(|child| expanded_by_id.remove(&child.id))
                                .collect()
                        })
                        .unwrap_or_default();
                    expansions.insert(node.name.clone(), Expanded::Many(list));
                }
            }
        }
    }
    Ok(out)
}
