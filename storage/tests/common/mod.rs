//! Shared helpers of the storage integration tests: proptest strategies for values, records and
//! schemas, the exact order index values must follow, and a store in a temporary directory.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;
use tabula_storage::schema::{FieldPermission, ViewPermissions, WebhookDef};
use tabula_storage::{
    Access, FieldDef, FieldType, OnDelete, Permissions, Schema, Store, StoredRecord, TableSchema,
    Value, ViewDef,
};

/// Every f64 but NaN: normal, subnormal, ±0.0 and ±inf.
pub fn any_number_but_nan() -> BoxedStrategy<f64> {
    use proptest::num::f64;
    (f64::POSITIVE | f64::NEGATIVE | f64::NORMAL | f64::SUBNORMAL | f64::ZERO | f64::INFINITE)
        .boxed()
}

/// Every f64, NaN included.
pub fn any_number() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => any_number_but_nan(),
        1 => proptest::num::f64::ANY,
        1 => any::<u64>().prop_map(f64::from_bits),
    ]
    .boxed()
}

/// Finite decimals whose shortest decimal form parses back exactly with any JSON reader.
pub fn json_safe_number() -> BoxedStrategy<f64> {
    (-1_000_000_000i64..1_000_000_000)
        .prop_map(|sixty_fourths| {
            // Exact: both operands are far below 2^53 and 64 is a power of two.
            sixty_fourths as f64 / 64.0
        })
        .boxed()
}

/// Characters that stress byte order: NUL, control bytes, ASCII neighbours, multi-byte UTF-8
/// (including the largest scalar value) and anything else.
pub fn tricky_char() -> BoxedStrategy<char> {
    prop_oneof![
        2 => Just('\0'),
        1 => Just('\u{1}'),
        3 => prop::sample::select(vec!['a', 'b', 'z', 'A', ' ', '-']),
        1 => prop::sample::select(vec!['\u{7f}', '\u{80}', 'é', 'ÿ', '中', '\u{ffff}', '\u{10ffff}']),
        2 => any::<char>(),
    ]
    .boxed()
}

/// Short strings over [`tricky_char`], so that prefixes and shared stems are common.
pub fn tricky_text() -> BoxedStrategy<String> {
    prop::collection::vec(tricky_char(), 0..8)
        .prop_map(String::from_iter)
        .boxed()
}

/// Arbitrary value trees (lists and maps nested up to four levels) with numbers from `numbers`.
pub fn value_tree(numbers: BoxedStrategy<f64>) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        numbers.prop_map(Value::Float),
        tricky_text().prop_map(Value::Text),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            prop::collection::btree_map(tricky_text(), inner, 0..6).prop_map(Value::Map),
        ]
    })
    .boxed()
}

/// Value trees without NaN, so that `PartialEq` is an equivalence on them.
pub fn comparable_value() -> BoxedStrategy<Value> {
    value_tree(any_number_but_nan())
}

/// Value trees that survive the JSON form unchanged (finite, exactly printable numbers).
pub fn json_value() -> BoxedStrategy<Value> {
    value_tree(json_safe_number())
}

/// Equality that compares floats bit for bit (NaN equals the same NaN, -0.0 differs from 0.0).
pub fn same_bits(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Float(left), Value::Float(right)) => left.to_bits() == right.to_bits(),
        (Value::List(left), Value::List(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| same_bits(left, right))
        }
        (Value::Map(left), Value::Map(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|((left_key, left), (right_key, right))| {
                        left_key == right_key && same_bits(left, right)
                    })
        }
        _ => left == right,
    }
}

pub fn stored_record(values: BoxedStrategy<Value>) -> BoxedStrategy<StoredRecord> {
    (
        any::<u64>(),
        prop::collection::btree_map(any::<u32>(), values, 0..8),
        any::<i64>(),
        any::<i64>(),
        prop::option::of(tricky_text()),
        prop::option::of(tricky_text()),
        prop::option::of(any::<i64>()),
        prop::option::of(tricky_text()),
    )
        .prop_map(
            |(
                id,
                fields,
                created_at,
                updated_at,
                created_by,
                updated_by,
                deleted_at,
                deleted_by,
            )| {
                StoredRecord {
                    id,
                    fields,
                    created_at,
                    updated_at,
                    created_by,
                    updated_by,
                    deleted_at,
                    deleted_by,
                    cascade_parent: None,
                    history: Vec::new(),
                }
            },
        )
        .boxed()
}

/// Known field types and unknown names (kept as `FieldType::Unknown`).
pub fn field_type() -> BoxedStrategy<FieldType> {
    prop_oneof![
        3 => prop::sample::select(FieldType::ALL.to_vec()),
        1 => "[a-z-]{0,14}".prop_map(|name| FieldType::parse(&name)),
        1 => tricky_text().prop_map(|name| FieldType::parse(&name)),
    ]
    .boxed()
}

pub fn access() -> BoxedStrategy<Access> {
    prop_oneof![
        Just(Access::All),
        Just(Access::Authenticated),
        prop::collection::vec(tricky_text(), 0..4).prop_map(Access::Roles),
        // Role names that look like the keyword forms must stay roles.
        Just(Access::Roles(vec!["all".into(), "authenticated".into()])),
    ]
    .boxed()
}

fn on_delete() -> BoxedStrategy<OnDelete> {
    prop::sample::select(vec![
        OnDelete::Restrict,
        OnDelete::SetNull,
        OnDelete::Cascade,
    ])
    .boxed()
}

fn optional_text() -> BoxedStrategy<Option<String>> {
    prop::option::of(tricky_text()).boxed()
}

fn text_list() -> BoxedStrategy<Vec<String>> {
    prop::collection::vec(tricky_text(), 0..4).boxed()
}

/// Strategies for the parts of a schema that depend on the form under test.
#[derive(Clone)]
pub struct SchemaParts {
    /// Values of defaults and view filters.
    pub values: BoxedStrategy<Value>,
    /// Numbers of `min` and `max`.
    pub numbers: BoxedStrategy<f64>,
}

impl SchemaParts {
    /// Anything bincode must carry: non-finite numbers, `Some(Null)` defaults.
    pub fn binary() -> Self {
        SchemaParts {
            values: comparable_value(),
            numbers: any_number_but_nan(),
        }
    }

    /// What the JSON form can carry: `Some(Value::Null)` reads back as absent, and JSON has no
    /// infinities, so both are left out.
    pub fn json() -> Self {
        SchemaParts {
            values: json_value()
                .prop_filter("a null default reads back as no default", |value| {
                    !value.is_null()
                })
                .boxed(),
            numbers: json_safe_number(),
        }
    }
}

pub fn field_def(parts: &SchemaParts) -> BoxedStrategy<FieldDef> {
    (
        (
            any::<u32>(),
            tricky_text(),
            field_type(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            prop::option::of(parts.values.clone()),
            prop::option::of(any::<u32>()),
            prop::option::of(parts.numbers.clone()),
            prop::option::of(parts.numbers.clone()),
            prop::option::of(any::<u32>()),
            optional_text(),
        ),
        (
            prop::option::of(text_list()),
            optional_text(),
            prop::option::of(on_delete()),
            optional_text(),
        ),
    )
        .prop_map(
            |(
                (id, name, field_type, required, unique, indexed),
                (default, max_length, min, max, precision, currency),
                (options, related_table, on_delete, autofill),
            )| FieldDef {
                id,
                name,
                field_type,
                required,
                unique,
                indexed,
                default,
                max_length,
                min,
                max,
                precision,
                currency,
                options,
                related_table,
                on_delete,
                autofill,
            },
        )
        .boxed()
}

pub fn permissions() -> BoxedStrategy<Permissions> {
    let optional_access = || prop::option::of(access());
    let field_permission = (tricky_text(), optional_access(), optional_access())
        .prop_map(|(field, read, write)| FieldPermission { field, read, write });
    (
        (
            optional_access(),
            optional_access(),
            optional_access(),
            optional_access(),
            optional_access(),
            optional_access(),
            optional_access(),
        ),
        prop::collection::vec(field_permission, 0..3),
        optional_text(),
    )
        .prop_map(
            |(
                (read, comment, create, update, delete, restore, permanent_delete),
                fields,
                row_filter,
            )| Permissions {
                read,
                comment,
                create,
                update,
                delete,
                restore,
                permanent_delete,
                fields,
                row_filter,
            },
        )
        .boxed()
}

pub fn view_def(parts: &SchemaParts) -> BoxedStrategy<ViewDef> {
    (
        tricky_text(),
        tricky_text(),
        any::<bool>(),
        prop::option::of(parts.values.clone()),
        optional_text(),
        prop::option::of(text_list()),
        optional_text(),
        prop::option::of(prop::option::of(access()).prop_map(|read| ViewPermissions { read })),
    )
        .prop_map(
            |(id, name, is_default, filter, sort, fields, group_by, permissions)| ViewDef {
                id,
                name,
                is_default,
                filter,
                sort,
                fields,
                group_by,
                permissions,
            },
        )
        .boxed()
}

pub fn webhook() -> BoxedStrategy<WebhookDef> {
    (tricky_text(), text_list(), optional_text())
        .prop_map(|(url, events, secret)| WebhookDef {
            url,
            events,
            secret,
        })
        .boxed()
}

pub fn table_schema(parts: &SchemaParts) -> BoxedStrategy<TableSchema> {
    (
        any::<u32>(),
        tricky_text(),
        prop::collection::vec(field_def(parts), 0..4),
        permissions(),
        prop::collection::vec(view_def(parts), 0..3),
        prop::option::of(text_list()),
        prop::collection::vec(webhook(), 0..2),
    )
        .prop_map(
            |(id, name, fields, permissions, views, search, webhooks)| TableSchema {
                id,
                name,
                fields,
                permissions,
                views,
                search,
                webhooks,
            },
        )
        .boxed()
}

pub fn schema(parts: &SchemaParts) -> BoxedStrategy<Schema> {
    prop::collection::vec(table_schema(parts), 0..3)
        .prop_map(|tables| Schema { tables })
        .boxed()
}

/// The exact order of an integer and a (non-NaN) float, with no rounding anywhere.
pub fn compare_integer_with_float(integer: i64, float: f64) -> Ordering {
    const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;
    assert!(!float.is_nan(), "NaN has no numeric order");
    if float >= TWO_TO_THE_63 {
        return Ordering::Less;
    }
    if float < -TWO_TO_THE_63 {
        return Ordering::Greater;
    }
    let whole = float.trunc();
    // `whole` is an integer in [-2^63, 2^63), which i64 holds exactly.
    let whole_integer = whole as i64;
    match integer.cmp(&whole_integer) {
        Ordering::Equal => 0.0f64
            .partial_cmp(&(float - whole))
            .expect("the fraction of a non-NaN float is not NaN"),
        unequal => unequal,
    }
}

/// The order an index must follow: null < booleans < numbers (integers and decimals compared
/// exactly) < text (by UTF-8 bytes). Lists and maps are not covered.
pub fn compare_index_values(left: &Value, right: &Value) -> Ordering {
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Text(_) => 3,
            Value::List(_) | Value::Map(_) => panic!("lists and maps have no reference order"),
        }
    }
    match (left, right) {
        (Value::Bool(left), Value::Bool(right)) => left.cmp(right),
        (Value::Int(left), Value::Int(right)) => left.cmp(right),
        (Value::Float(left), Value::Float(right)) => left
            .partial_cmp(right)
            .expect("index test values contain no NaN"),
        (Value::Int(left), Value::Float(right)) => compare_integer_with_float(*left, *right),
        (Value::Float(left), Value::Int(right)) => {
            compare_integer_with_float(*right, *left).reverse()
        }
        (Value::Text(left), Value::Text(right)) => left.as_bytes().cmp(right.as_bytes()),
        _ => rank(left).cmp(&rank(right)),
    }
}

/// A store in a fresh temporary directory; keep the directory alive as long as the store.
pub fn temporary_store() -> (tempfile::TempDir, Store) {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(directory.path()).expect("open a store in an empty directory");
    (directory, store)
}

/// A small live record with a title, a status and a number.
pub fn sample_record(id: u64) -> StoredRecord {
    let mut fields = BTreeMap::new();
    fields.insert(1, Value::Text(format!("record {id}")));
    fields.insert(2, Value::Text("todo".into()));
    fields.insert(
        3,
        Value::Int(i64::try_from(id).expect("test ids fit an i64")),
    );
    StoredRecord {
        id,
        fields,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_000,
        created_by: Some("user-1".into()),
        updated_by: None,
        deleted_at: None,
        deleted_by: None,
        cascade_parent: None,
        history: Vec::new(),
    }
}

/// Waits for a durable ticket on a small single-threaded runtime.
pub fn wait_durable(ticket: tabula_storage::DurableTicket) -> tabula_storage::StorageResult<()> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
        .block_on(ticket.wait())
}
