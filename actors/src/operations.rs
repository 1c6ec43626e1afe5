//! A mixed batch (the AYB dialect's `POST /collections/{t}/batch`, SPEC §10): creates, partial
//! updates and soft deletes of one table, applied in order in ONE changeset — one atomic,
//! durable commit, one change event per record. The message is handled by the table actor; it
//! lives here so that `table.rs` keeps to the single-purpose messages.

use std::collections::{BTreeMap, BTreeSet};

use actix::{Context, Handler, Message, ResponseFuture};
use tabula_storage::{RecordRef, StoredRecord, Value};

use crate::changeset::Changeset;
use crate::clock;
use crate::error::{DomainError, DomainResult, FieldError};
use crate::lifecycle;
use crate::registry::{Registry, TableHandle};
use crate::table::{
    apply_changes, record_not_found, reply, ClearReference, RecordPatch, TableActor,
};

/// One operation of a mixed batch.
#[derive(Debug, Clone)]
pub enum Operation {
    Create {
        fields: Vec<(String, Value)>,
    },
    Update {
        record_id: u64,
        fields: Vec<(String, Value)>,
    },
    /// A soft delete (to the trash).
    Delete {
        record_id: u64,
    },
}

/// Applies `operations` to `table` as one commit, with the relationship rules of its deletes:
/// planned before anything is written (a `restrict` child anywhere → 409), this table's share
/// in the batch's own commit, other tables' shares once it is durable (see docs/api.md).
pub async fn apply_operations(
    registry: &Registry,
    table: &TableHandle,
    operations: Vec<Operation>,
    user_id: Option<String>,
) -> DomainResult<Vec<OperationOutcome>> {
    let delete_ids: Vec<u64> = operations
        .iter()
        .filter_map(|operation| match operation {
            Operation::Delete { record_id } => Some(*record_id),
            _ => None,
        })
        .collect();
    let mut plan = if delete_ids.is_empty() {
        None
    } else {
        Some(lifecycle::plan_deletion(
            registry,
            table,
            &delete_ids,
            false,
            false,
        )?)
    };
    let (cascaded, cleared) = plan
        .as_mut()
        .map(|plan| plan.take_root_share())
        .unwrap_or_default();
    let outcomes = table
        .addr
        .send(ApplyOperations {
            operations,
            cascaded,
            cleared,
            user_id: user_id.clone(),
        })
        .await
        .map_err(lifecycle::unavailable)??;
    if let Some(plan) = plan.filter(|plan| plan.reaches_other_tables()) {
        plan.apply_to_other_tables(user_id).await?;
    }
    Ok(outcomes)
}

/// What one operation did.
#[derive(Debug, Clone)]
pub enum OperationOutcome {
    Created(StoredRecord),
    Updated(StoredRecord),
    Deleted,
}

/// Applies every operation in order in one atomic commit; the first one that fails fails the
/// batch and nothing is written. Errors name the operation: `operations[2].title`. `cascaded`
/// and `cleared` are this table's share of the deletes' relationship rules, planned by
/// `lifecycle::plan_deletion`.
#[derive(Message)]
#[rtype(result = "DomainResult<Vec<OperationOutcome>>")]
pub struct ApplyOperations {
    pub operations: Vec<Operation>,
    pub cascaded: Vec<(u64, RecordRef)>,
    pub cleared: Vec<ClearReference>,
    pub user_id: Option<String>,
}

/// Renames an error's fields after the operation that caused it.
fn name_operation(index: usize, error: DomainError) -> DomainError {
    let prefix = |field: &str| format!("operations[{index}].{field}");
    match error {
        DomainError::Validation(errors) => DomainError::Validation(
            errors
                .into_iter()
                .map(|error| FieldError::new(prefix(&error.field), error.message))
                .collect(),
        ),
        DomainError::Conflict { message, field } => DomainError::Conflict {
            message,
            field: field.map(|field| prefix(&field)),
        },
        other => other,
    }
}

impl Handler<ApplyOperations> for TableActor {
    type Result = ResponseFuture<DomainResult<Vec<OperationOutcome>>>;

    fn handle(&mut self, message: ApplyOperations, context: &mut Context<Self>) -> Self::Result {
        self.settle(context);
        let (shared, schema) = (std::sync::Arc::clone(&self.shared), self.shared.schema());
        let mut changeset = Changeset::new(&shared, &schema, message.user_id, clock::now_ms());
        let mut sequences = self.sequences();
        let staged = (|| {
            let mut outcomes = Vec::with_capacity(message.operations.len());
            let mut removed = BTreeSet::new();
            for (index, operation) in message.operations.into_iter().enumerate() {
                let outcome = match operation {
                    Operation::Create { fields } => self
                        .stage_creates(&schema, &mut changeset, &mut sequences, vec![fields], false)
                        .map(|mut records| records.pop().map(OperationOutcome::Created)),
                    Operation::Update { record_id, fields } => self
                        .stage_updates(
                            &schema,
                            &mut changeset,
                            vec![RecordPatch { record_id, fields }],
                            None,
                            false,
                        )
                        .map(|mut records| records.pop().map(OperationOutcome::Updated)),
                    Operation::Delete { record_id } => changeset
                        .record(record_id)
                        .and_then(|record| {
                            record
                                .filter(|record| !record.is_deleted())
                                .ok_or_else(|| record_not_found(record_id))
                        })
                        .and_then(|record| changeset.trash(&record, None))
                        .map(|_| {
                            removed.insert(record_id);
                            Some(OperationOutcome::Deleted)
                        }),
                };
                match outcome {
                    Ok(Some(outcome)) => outcomes.push(outcome),
                    Ok(None) => {
                        return Err(DomainError::Unavailable(
                            "The batch could not be applied; retry the request".into(),
                        ))
                    }
                    Err(error) => return Err(name_operation(index, error)),
                }
            }
            for (record_id, parent) in message.cascaded {
                if let Some(record) = changeset.record(record_id)?.filter(|r| !r.is_deleted()) {
                    changeset.trash(&record, Some(parent))?;
                    removed.insert(record_id);
                }
            }
            for clear in message.cleared {
                let target = Value::Text(clear.target.to_string());
                let Some(record) = changeset.record(clear.record_id)? else {
                    continue;
                };
                if record.is_deleted() || record.value(clear.field_id) != &target {
                    continue;
                }
                let changes = BTreeMap::from([(clear.field_id, Value::Null)]);
                let updated = apply_changes(&record, &changes, &changeset);
                // Clearing a value never takes a unique value from anyone.
                let _ = changeset.update(&record, updated, &changes)?;
            }
            self.check_self_restrict(&schema, &changeset, &removed)?;
            Ok((changeset, Some(sequences), outcomes))
        })();
        reply(self, staged, context)
    }
}
