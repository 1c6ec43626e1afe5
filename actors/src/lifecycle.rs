//! The record lifecycle across tables: deleting records with the relationship `onDelete` rules
//! (restrict, set-null, cascade — SPEC §4.1) and restoring them with what their cascade took,
//! plus the batch-size rule of SPEC §4.3.
//!
//! Only the table actor for T writes T's tree, so a change that reaches other tables is planned
//! here from reads (which records point at which, through the relationship indexes), checked as a
//! whole (a `restrict` anywhere, a unique clash on restore) before anything is written, and then
//! sent to each table's actor as that table's share — one atomic commit per table. Deletion asks
//! the children's tables first and the named records' table last; restore goes the other way.
//! The whole is therefore not atomic across tables (see docs/lifecycle.md); within one table,
//! self-references included, it is.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use tabula_storage::{OnDelete, RecordRef, StoredRecord, TableSchema, Value};

use crate::changeset::Changeset;
use crate::clock;
use crate::error::{DomainError, DomainResult, FieldError};
use crate::registry::{Registry, TableHandle};
use crate::table::{
    record_not_found, restrict_conflict, ClearReference, DeleteOutcome, DeleteRecords,
    RestoreRecords,
};

/// Checks the size of a batch: empty → 400 naming `what`, over `max_batch` → 413.
pub fn check_batch_size(len: usize, max_batch: u64, what: &str) -> DomainResult<()> {
    if len == 0 {
        return Err(DomainError::bad_request(
            what,
            format!("'{what}' must hold at least one item"),
        ));
    }
    if u64::try_from(len).map_or(true, |len| len > max_batch) {
        return Err(DomainError::PayloadTooLarge(format!(
            "A batch holds at most {max_batch} items; this one has {len}"
        )));
    }
    Ok(())
}

/// A relationship field of some table that points at another (or the same) table.
#[derive(Clone)]
struct Referrer {
    handle: TableHandle,
    field_id: u32,
    field_name: String,
    on_delete: OnDelete,
}

/// The relationship fields of every served table that point at each table, computed on demand.
struct Referrers<'r> {
    registry: &'r Registry,
    known: HashMap<u32, Vec<Referrer>>,
}

impl<'r> Referrers<'r> {
    fn new(registry: &'r Registry) -> Self {
        Referrers {
            registry,
            known: HashMap::new(),
        }
    }

    fn of(&mut self, table: &TableHandle) -> &[Referrer] {
        let registry = self.registry;
        self.known.entry(table.shared.id).or_insert_with(|| {
            let target = table.shared.schema();
            let id_text = target.id.to_string();
            let mut referrers = Vec::new();
            for handle in registry.all() {
                let schema = handle.shared.schema();
                for field in &schema.fields {
                    let points_here = field.field_type == tabula_storage::FieldType::Relationship
                        && field
                            .related_table
                            .as_deref()
                            .is_some_and(|related| related == target.name || related == id_text);
                    if points_here {
                        referrers.push(Referrer {
                            handle: handle.clone(),
                            field_id: field.id,
                            field_name: field.name.clone(),
                            on_delete: field.on_delete.unwrap_or_default(),
                        });
                    }
                }
            }
            referrers
        })
    }
}

/// One table's part of a planned deletion.
#[derive(Default)]
struct DeleteShare {
    cascaded: BTreeMap<u64, RecordRef>,
    cleared: Vec<ClearReference>,
}

/// A `restrict` or `set-null` child found while planning, judged once the cascade closure is
/// known (a child that the cascade takes too neither blocks nor needs clearing).
struct PendingReference {
    referrer: Referrer,
    child: u64,
    parent: RecordRef,
}

/// A deletion planned across tables: which records each table trashes (the named ones, what
/// their cascades take) and which references it clears. Planning only reads; nothing is written
/// until the shares are sent.
pub struct DeletionPlan {
    root: u32,
    /// Tables in discovery order (the root first).
    order: Vec<u32>,
    handles: HashMap<u32, TableHandle>,
    shares: HashMap<u32, DeleteShare>,
}

/// Plans the deletion of records of `table` with every relationship rule that points at them.
/// A `restrict` child that stays live → 409; a missing id → 404; an id already in the trash is
/// left out (`skip_trashed`, or a permanent delete) or a 404.
pub fn plan_deletion(
    registry: &Registry,
    table: &TableHandle,
    record_ids: &[u64],
    permanent: bool,
    skip_trashed: bool,
) -> DomainResult<DeletionPlan> {
    let root = table.shared.id;
    let mut going: HashMap<u32, BTreeSet<u64>> = HashMap::new();
    let mut worklist = VecDeque::new();
    for record_id in record_ids {
        let record = table
            .shared
            .store
            .get_record(*record_id)?
            .ok_or_else(|| record_not_found(*record_id))?;
        if record.is_deleted() && !permanent {
            if skip_trashed {
                continue;
            }
            return Err(record_not_found(*record_id));
        }
        if going.entry(root).or_default().insert(*record_id) {
            worklist.push_back((table.clone(), *record_id));
        }
    }
    let mut referrers = Referrers::new(registry);
    let mut handles: HashMap<u32, TableHandle> = HashMap::from([(root, table.clone())]);
    let mut order = vec![root];
    let mut shares: HashMap<u32, DeleteShare> = HashMap::new();
    let mut pending = Vec::new();
    while let Some((parent_table, parent_id)) = worklist.pop_front() {
        let parent = RecordRef {
            table_id: parent_table.shared.id,
            record_id: parent_id,
        };
        for referrer in referrers.of(&parent_table).to_vec() {
            let child_table = referrer.handle.shared.id;
            for child in live_children(&referrer, parent_id)? {
                if referrer.on_delete != OnDelete::Cascade {
                    pending.push(PendingReference {
                        referrer: referrer.clone(),
                        child,
                        parent,
                    });
                    continue;
                }
                if going.entry(child_table).or_default().insert(child) {
                    shares
                        .entry(child_table)
                        .or_default()
                        .cascaded
                        .insert(child, parent);
                    if handles
                        .insert(child_table, referrer.handle.clone())
                        .is_none()
                    {
                        order.push(child_table);
                    }
                    worklist.push_back((referrer.handle.clone(), child));
                }
            }
        }
    }
    for reference in pending {
        let child_table = reference.referrer.handle.shared.id;
        if going
            .get(&child_table)
            .is_some_and(|ids| ids.contains(&reference.child))
        {
            continue;
        }
        if reference.referrer.on_delete == OnDelete::Restrict {
            let parent_name = handles
                .get(&reference.parent.table_id)
                .map(|handle| handle.shared.schema().name.clone())
                .unwrap_or_default();
            return Err(restrict_conflict(
                &reference.parent.record_id,
                &parent_name,
                reference.child,
                &reference.referrer.handle.shared.schema().name,
                &reference.referrer.field_name,
            ));
        }
        shares
            .entry(child_table)
            .or_default()
            .cleared
            .push(ClearReference {
                record_id: reference.child,
                field_id: reference.referrer.field_id,
                target: reference.parent.record_id,
            });
        if handles
            .insert(child_table, reference.referrer.handle.clone())
            .is_none()
        {
            order.push(child_table);
        }
    }
    Ok(DeletionPlan {
        root,
        order,
        handles,
        shares,
    })
}

impl DeletionPlan {
    /// Takes the named records' own table's share out of the plan: the records its cascades take
    /// in that same table and the references to clear there.
    pub fn take_root_share(&mut self) -> (Vec<(u64, RecordRef)>, Vec<ClearReference>) {
        let share = self.shares.remove(&self.root).unwrap_or_default();
        (share.cascaded.into_iter().collect(), share.cleared)
    }

    /// Whether the deletion reaches tables other than the named records' own.
    pub fn reaches_other_tables(&self) -> bool {
        self.order.iter().any(|table_id| *table_id != self.root)
    }

    /// Sends every table except the root its share, one commit each, the deepest first.
    pub async fn apply_to_other_tables(mut self, user_id: Option<String>) -> DomainResult<()> {
        for table_id in self.order.clone().into_iter().rev() {
            if table_id == self.root {
                continue;
            }
            self.send_share(table_id, Vec::new(), false, false, user_id.clone())
                .await?;
        }
        Ok(())
    }

    async fn send_share(
        &mut self,
        table_id: u32,
        record_ids: Vec<u64>,
        permanent: bool,
        skip_trashed: bool,
        user_id: Option<String>,
    ) -> DomainResult<DeleteOutcome> {
        let Some(handle) = self.handles.get(&table_id) else {
            return Ok(DeleteOutcome::default());
        };
        let share = self.shares.remove(&table_id).unwrap_or_default();
        handle
            .addr
            .send(DeleteRecords {
                record_ids,
                permanent,
                skip_trashed,
                cascaded: share.cascaded.into_iter().collect(),
                cleared: share.cleared,
                user_id,
            })
            .await
            .map_err(unavailable)?
    }
}

/// Deletes records of `table` (soft, or for good when `permanent`) with every relationship
/// rule that points at them, and answers how many of the named records were deleted. A
/// `restrict` child that stays live → 409 and nothing is written anywhere. A missing id → 404;
/// an id already in the trash is skipped (`skip_trashed`, batch delete) or a 404.
pub async fn delete_records(
    registry: &Registry,
    table: &TableHandle,
    record_ids: Vec<u64>,
    permanent: bool,
    skip_trashed: bool,
    user_id: Option<String>,
) -> DomainResult<u64> {
    let mut plan = plan_deletion(registry, table, &record_ids, permanent, skip_trashed)?;
    let root = plan.root;
    let mut deleted = 0;
    // Children first, the named records' table last: a failure part-way leaves children
    // trashed or cleared, never a live child pointing at a deleted parent.
    for table_id in plan.order.clone().into_iter().rev() {
        let is_root = table_id == root;
        let outcome = plan
            .send_share(
                table_id,
                if is_root {
                    record_ids.clone()
                } else {
                    Vec::new()
                },
                permanent && is_root,
                skip_trashed,
                user_id.clone(),
            )
            .await?;
        if is_root {
            deleted = outcome.deleted;
        }
    }
    Ok(deleted)
}

/// Live records of the referrer's table whose relationship field points at `parent_id`.
fn live_children(referrer: &Referrer, parent_id: u64) -> DomainResult<Vec<u64>> {
    let value = Value::Text(parent_id.to_string());
    let store = &referrer.handle.shared.store;
    let mut children = Vec::new();
    for child in store.ids_with_value(referrer.field_id, &value)? {
        let points_here = store.get_record(child)?.is_some_and(|record| {
            !record.is_deleted() && record.value(referrer.field_id) == &value
        });
        if points_here {
            children.push(child);
        }
    }
    Ok(children)
}

/// Trashed records of the referrer's table that a cascade from `parent` put there.
fn cascaded_children(referrer: &Referrer, parent: RecordRef) -> DomainResult<Vec<u64>> {
    let value = Value::Text(parent.record_id.to_string());
    let store = &referrer.handle.shared.store;
    let mut children = Vec::new();
    for child in store.ids_with_value(referrer.field_id, &value)? {
        let taken_by_parent = store
            .get_record(child)?
            .is_some_and(|record| record.is_deleted() && record.cascade_parent == Some(parent));
        if taken_by_parent {
            children.push(child);
        }
    }
    Ok(children)
}

/// Restores trashed records of `table`, and after them every record a cascade took with them
/// (recursively, in any table). Every named record must be in the trash (missing → 404, live →
/// 400 "Record is not deleted"); a unique value that a live record took meanwhile → 409, checked
/// for every table before anything is written. Answers the named records as restored.
pub async fn restore_records(
    registry: &Registry,
    table: &TableHandle,
    record_ids: Vec<u64>,
    user_id: Option<String>,
) -> DomainResult<Vec<StoredRecord>> {
    let root = table.shared.id;
    let mut restoring: HashMap<u32, BTreeSet<u64>> = HashMap::new();
    let mut worklist = VecDeque::new();
    for (index, record_id) in record_ids.iter().copied().enumerate() {
        let record = table
            .shared
            .store
            .get_record(record_id)?
            .ok_or_else(|| record_not_found(record_id))?;
        if !record.is_deleted() {
            return Err(not_deleted(index, record_id));
        }
        if restoring.entry(root).or_default().insert(record_id) {
            worklist.push_back((table.clone(), record_id));
        }
    }
    let mut referrers = Referrers::new(registry);
    let mut handles: HashMap<u32, TableHandle> = HashMap::from([(root, table.clone())]);
    let mut order = vec![root];
    let mut shares: HashMap<u32, Vec<(u64, RecordRef)>> = HashMap::new();
    while let Some((parent_table, parent_id)) = worklist.pop_front() {
        let parent = RecordRef {
            table_id: parent_table.shared.id,
            record_id: parent_id,
        };
        for referrer in referrers.of(&parent_table).to_vec() {
            if referrer.on_delete != OnDelete::Cascade {
                continue;
            }
            let child_table = referrer.handle.shared.id;
            for child in cascaded_children(&referrer, parent)? {
                if restoring.entry(child_table).or_default().insert(child) {
                    shares.entry(child_table).or_default().push((child, parent));
                    if handles
                        .insert(child_table, referrer.handle.clone())
                        .is_none()
                    {
                        order.push(child_table);
                    }
                    worklist.push_back((referrer.handle.clone(), child));
                }
            }
        }
    }
    if order.len() > 1 {
        // Several tables: find a clash anywhere before the first commit.
        for table_id in &order {
            if let Some(handle) = handles.get(table_id) {
                let named: &[u64] = if *table_id == root { &record_ids } else { &[] };
                let cascaded = shares.get(table_id).map(Vec::as_slice).unwrap_or(&[]);
                dry_run_restore(handle, named, cascaded)?;
            }
        }
    }
    let mut restored = Vec::new();
    // The named records first, then what their cascade took (parents before children).
    for table_id in order {
        let Some(handle) = handles.get(&table_id) else {
            continue;
        };
        let is_root = table_id == root;
        let records = handle
            .addr
            .send(RestoreRecords {
                record_ids: if is_root {
                    record_ids.clone()
                } else {
                    Vec::new()
                },
                cascaded: shares.remove(&table_id).unwrap_or_default(),
                user_id: user_id.clone(),
            })
            .await
            .map_err(unavailable)??;
        if is_root {
            restored = records;
        }
    }
    Ok(restored)
}

/// Restores one trashed record (and what its cascade took); a live one → 400 "Record is not
/// deleted" naming `id`.
pub async fn restore_record(
    registry: &Registry,
    table: &TableHandle,
    record_id: u64,
    user_id: Option<String>,
) -> DomainResult<StoredRecord> {
    let restored = restore_records(registry, table, vec![record_id], user_id)
        .await
        .map_err(|error| match error {
            DomainError::BadRequest { message, errors } => DomainError::BadRequest {
                message,
                errors: errors
                    .into_iter()
                    .map(|error| FieldError::new("id", error.message))
                    .collect(),
            },
            other => other,
        })?;
    restored
        .into_iter()
        .next()
        .ok_or_else(|| record_not_found(record_id))
}

/// Stages a table's share of a restore without writing, to find unique clashes.
fn dry_run_restore(
    handle: &TableHandle,
    named: &[u64],
    cascaded: &[(u64, RecordRef)],
) -> DomainResult<()> {
    let schema: std::sync::Arc<TableSchema> = handle.shared.schema();
    let mut changeset = Changeset::new(&handle.shared, &schema, None, clock::now_ms());
    let ids = named
        .iter()
        .copied()
        .chain(cascaded.iter().map(|(id, _)| *id));
    for record_id in ids {
        let Some(record) = changeset.record(record_id)? else {
            continue;
        };
        if !record.is_deleted() {
            continue;
        }
        if let Err(clash) = changeset.restore(&record)? {
            return Err(DomainError::Conflict {
                message: format!(
                    "Cannot restore record {record_id} of table '{}': record {} now holds its value for unique field '{}'",
                    schema.name, clash.holder, clash.field
                ),
                field: Some(clash.field),
            });
        }
    }
    Ok(())
}

/// The 400 for restoring a record that is not in the trash.
fn not_deleted(index: usize, record_id: u64) -> DomainError {
    DomainError::BadRequest {
        message: "Record is not deleted".into(),
        errors: vec![FieldError::new(
            format!("ids[{index}]"),
            format!("Record {record_id} is not deleted"),
        )],
    }
}

pub(crate) fn unavailable(error: actix::MailboxError) -> DomainError {
    tracing::warn!(%error, "table actor mailbox unavailable");
    DomainError::Unavailable("The table is temporarily unavailable; retry the request".into())
}
