//! Property tests of the key layout: the byte order of encoded index values is the value order
//! (integers, decimals, mixed numbers, text, dates, datetimes; null first), index entry keys sort
//! by (value, record id) without interleaving fields, and `prefix_successor` bounds a prefix.

mod common;

use std::cmp::Ordering;

use proptest::prelude::*;
use tabula_storage::keys::{
    self, encode_index_value, index_field_prefix, index_group_key, index_value_prefix,
    trailing_record_id, unique_key,
};
use tabula_storage::store::prefix_successor;
use tabula_storage::Value;

use common::*;

fn encoded(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_index_value(value, &mut bytes);
    bytes
}

fn byte_order(left: &Value, right: &Value) -> Ordering {
    encoded(left).cmp(&encoded(right))
}

const TWO_TO_THE_53: i64 = 1 << 53;

/// Integers spread over the whole range, with the edges and the 2^53 boundary well covered.
fn interesting_integer() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX]),
        2 => (-1024i64..=1024).prop_map(|offset| TWO_TO_THE_53 + offset),
        2 => (-1024i64..=1024).prop_map(|offset| -TWO_TO_THE_53 + offset),
        1 => (0i64..=4096).prop_map(|offset| i64::MAX - offset),
        1 => (0i64..=4096).prop_map(|offset| i64::MIN + offset),
        2 => -100i64..100,
    ]
    .boxed()
}

/// Decimals of every kind but NaN, with values on and near integers well covered.
fn interesting_decimal() -> BoxedStrategy<f64> {
    prop_oneof![
        3 => any_number_but_nan(),
        2 => (-400i32..400).prop_map(|quarters| f64::from(quarters) / 4.0),
        2 => interesting_integer().prop_map(|integer| integer as f64),
        1 => prop::sample::select(vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            9_223_372_036_854_775_808.0,
            -9_223_372_036_854_775_808.0,
            9_007_199_254_740_992.0,
        ]),
    ]
    .boxed()
}

/// A number as either variant, or an integer and a decimal that sit close to each other.
fn number_pair() -> BoxedStrategy<(Value, Value)> {
    let number = prop_oneof![
        interesting_integer().prop_map(Value::Int),
        interesting_decimal().prop_map(Value::Float),
    ];
    let neighbours = (interesting_decimal(), -3i64..=3, any::<bool>()).prop_map(
        |(decimal, offset, integer_first)| {
            // `as` saturates, which is what is wanted for the neighbour of a huge decimal.
            let integer = (decimal as i64).saturating_add(offset);
            if integer_first {
                (Value::Int(integer), Value::Float(decimal))
            } else {
                (Value::Float(decimal), Value::Int(integer))
            }
        },
    );
    prop_oneof![(number.clone(), number), neighbours].boxed()
}

/// (year, month, day).
type DateParts = (u32, u32, u32);
/// (hour, minute, second, millisecond).
type TimeParts = (u32, u32, u32, u32);

/// A plausible calendar date.
fn date_parts() -> BoxedStrategy<DateParts> {
    (0u32..=9999, 1u32..=12, 1u32..=28).boxed()
}

fn date_text((year, month, day): DateParts) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

fn datetime_parts() -> BoxedStrategy<(DateParts, TimeParts)> {
    (date_parts(), (0u32..24, 0u32..60, 0u32..60, 0u32..1000)).boxed()
}

fn datetime_text((date, (hour, minute, second, millisecond)): (DateParts, TimeParts)) -> String {
    format!(
        "{}T{hour:02}:{minute:02}:{second:02}.{millisecond:03}Z",
        date_text(date)
    )
}

/// Values with a reference order: null, booleans, numbers and text.
fn ordered_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        interesting_integer().prop_map(Value::Int),
        interesting_decimal().prop_map(Value::Float),
        tricky_text().prop_map(Value::Text),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn integers_keep_their_order(left in interesting_integer(), right in interesting_integer()) {
        prop_assert_eq!(byte_order(&Value::Int(left), &Value::Int(right)), left.cmp(&right));
    }

    #[test]
    fn decimals_keep_their_order(left in interesting_decimal(), right in interesting_decimal()) {
        let expected = left.partial_cmp(&right).expect("no NaN here");
        prop_assert_eq!(
            byte_order(&Value::Float(left), &Value::Float(right)),
            expected,
            "{} vs {}", left, right
        );
    }

    #[test]
    fn integers_and_decimals_compare_numerically((left, right) in number_pair()) {
        prop_assert_eq!(
            byte_order(&left, &right),
            compare_index_values(&left, &right),
            "{:?} vs {:?}", left, right
        );
    }

    #[test]
    fn text_keeps_its_byte_order(left in tricky_text(), right in tricky_text()) {
        prop_assert_eq!(
            byte_order(&Value::Text(left.clone()), &Value::Text(right.clone())),
            left.as_bytes().cmp(right.as_bytes()),
            "{:?} vs {:?}", left, right
        );
    }

    #[test]
    fn text_sorts_before_its_extensions(stem in tricky_text(), tail in tricky_text()) {
        let extended = format!("{stem}{tail}");
        let expected = if tail.is_empty() { Ordering::Equal } else { Ordering::Less };
        prop_assert_eq!(byte_order(&Value::Text(stem), &Value::Text(extended)), expected);
    }

    #[test]
    fn dates_keep_their_order(left in date_parts(), right in date_parts()) {
        prop_assert_eq!(
            byte_order(&Value::Text(date_text(left)), &Value::Text(date_text(right))),
            left.cmp(&right)
        );
    }

    #[test]
    fn datetimes_keep_their_order(left in datetime_parts(), right in datetime_parts()) {
        prop_assert_eq!(
            byte_order(&Value::Text(datetime_text(left)), &Value::Text(datetime_text(right))),
            left.cmp(&right)
        );
    }

    #[test]
    fn scalars_of_any_kind_follow_the_index_order(left in ordered_scalar(), right in ordered_scalar()) {
        prop_assert_eq!(
            byte_order(&left, &right),
            compare_index_values(&left, &right),
            "{:?} vs {:?}", left, right
        );
    }

    #[test]
    fn null_sorts_before_everything(value in comparable_value()) {
        let expected = if value.is_null() { Ordering::Equal } else { Ordering::Less };
        prop_assert_eq!(byte_order(&Value::Null, &value), expected);
    }

    /// No encoding is a proper prefix of another, so whatever follows a value (the record id)
    /// never changes the order between two different values.
    #[test]
    fn encodings_are_prefix_free(left in comparable_value(), right in comparable_value()) {
        let (left, right) = (encoded(&left), encoded(&right));
        if left != right {
            prop_assert!(!right.starts_with(&left) && !left.starts_with(&right));
        }
    }

    #[test]
    fn bitmap_keys_sort_by_value_then_group(
        field_id in any::<u32>(),
        left in ordered_scalar(),
        left_id in any::<u64>(),
        right in ordered_scalar(),
        right_id in prop_oneof![any::<u64>(), Just(0u64), Just(u64::MAX)],
    ) {
        let expected = compare_index_values(&left, &right).then(left_id.cmp(&right_id));
        prop_assert_eq!(
            index_group_key(field_id, &left, left_id).cmp(&index_group_key(field_id, &right, right_id)),
            expected,
            "({:?}, {}) vs ({:?}, {})", left, left_id, right, right_id
        );
    }

    #[test]
    fn bitmap_keys_of_nested_values_sort_by_encoding_then_group(
        left in comparable_value(),
        left_id in any::<u64>(),
        right in comparable_value(),
        right_id in any::<u64>(),
    ) {
        let expected = encoded(&left).cmp(&encoded(&right)).then(left_id.cmp(&right_id));
        prop_assert_eq!(
            index_group_key(9, &left, left_id).cmp(&index_group_key(9, &right, right_id)),
            expected
        );
    }

    #[test]
    fn fields_never_interleave(
        left_field in any::<u32>(),
        right_field in any::<u32>(),
        left in comparable_value(),
        right in comparable_value(),
        left_id in any::<u64>(),
        right_id in any::<u64>(),
    ) {
        prop_assume!(left_field != right_field);
        let left_key = index_group_key(left_field, &left, left_id);
        let right_key = index_group_key(right_field, &right, right_id);
        prop_assert_eq!(left_key.cmp(&right_key), left_field.cmp(&right_field));
        // And each field's whole range lies below the next field's prefix.
        let (lower_field, lower_key) = if left_field < right_field {
            (left_field, &left_key)
        } else {
            (right_field, &right_key)
        };
        prop_assert!(*lower_key < prefix_successor(index_field_prefix(lower_field)));
    }

    #[test]
    fn bitmap_keys_end_in_their_group(
        field_id in any::<u32>(),
        value in comparable_value(),
        record_id in any::<u64>(),
    ) {
        let key = index_group_key(field_id, &value, record_id);
        prop_assert!(key.starts_with(&index_value_prefix(field_id, &value)));
        prop_assert!(key.starts_with(&index_field_prefix(field_id)));
        prop_assert_eq!(key[0], keys::INDEX);
        prop_assert_eq!(trailing_record_id(&key), Some(record_id));
    }

    #[test]
    fn unique_keys_follow_the_value_order(
        field_id in any::<u32>(),
        left in ordered_scalar(),
        right in ordered_scalar(),
    ) {
        prop_assert_eq!(
            unique_key(field_id, &left).cmp(&unique_key(field_id, &right)),
            compare_index_values(&left, &right)
        );
    }

    #[test]
    fn the_prefix_successor_bounds_every_extension(
        prefix in prop::collection::vec(prop_oneof![Just(0xFFu8), Just(0u8), any::<u8>()], 1..8)
            .prop_filter("an all-0xFF prefix has no finite successor", |prefix| {
                prefix.iter().any(|byte| *byte != 0xFF)
            }),
        tail in prop::collection::vec(prop_oneof![Just(0xFFu8), any::<u8>()], 0..24),
        other in prop::collection::vec(prop_oneof![Just(0xFFu8), any::<u8>()], 0..12),
    ) {
        let successor = prefix_successor(prefix.clone());
        let mut extension = prefix.clone();
        extension.extend_from_slice(&tail);
        prop_assert!(extension < successor, "{:?} ++ {:?} >= {:?}", prefix, tail, successor);
        // Nothing outside the prefix falls between the prefix and its successor.
        let mut candidate = prefix[..prefix.len() / 2].to_vec();
        candidate.extend_from_slice(&other);
        if candidate >= prefix && candidate < successor {
            prop_assert!(candidate.starts_with(&prefix), "{:?} sits inside {:?}..{:?}", candidate, prefix, successor);
        }
    }
}

#[test]
fn mixed_numbers_interleave_by_value() {
    let ascending = [
        Value::Float(f64::NEG_INFINITY),
        Value::Int(i64::MIN),
        Value::Float(-2.5),
        Value::Int(-2),
        Value::Float(-0.5),
        Value::Int(0),
        Value::Float(0.5),
        Value::Int(2),
        Value::Float(2.5),
        Value::Int(3),
        Value::Float(9_007_199_254_740_992.0),
        Value::Int(TWO_TO_THE_53 + 1),
        Value::Int(TWO_TO_THE_53 + 2),
        Value::Int(TWO_TO_THE_53 + 3),
        Value::Float(9_007_199_254_740_996.0),
        Value::Int(i64::MAX - 1),
        Value::Int(i64::MAX),
        Value::Float(9_223_372_036_854_775_808.0),
        Value::Float(f64::MAX),
        Value::Float(f64::INFINITY),
    ];
    for pair in ascending.windows(2) {
        assert!(
            encoded(&pair[0]) < encoded(&pair[1]),
            "{:?} should sort before {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn equal_numbers_encode_equally() {
    assert_eq!(encoded(&Value::Float(-0.0)), encoded(&Value::Float(0.0)));
    assert_eq!(encoded(&Value::Float(0.0)), encoded(&Value::Int(0)));
    assert_eq!(encoded(&Value::Float(2.0)), encoded(&Value::Int(2)));
    assert_eq!(
        encoded(&Value::Float(-9_223_372_036_854_775_808.0)),
        encoded(&Value::Int(i64::MIN))
    );
    assert_eq!(
        encoded(&Value::Float(9_007_199_254_740_992.0)),
        encoded(&Value::Int(TWO_TO_THE_53))
    );
}

#[test]
fn strings_with_nul_bytes_sort_between_their_neighbours() {
    let ascending = [
        "",
        "\0",
        "\0\0",
        "\0\u{1}",
        "\u{1}",
        "a",
        "a\0",
        "a\0b",
        "a\u{1}",
        "ab",
        "é",
        "\u{10ffff}",
    ];
    for pair in ascending.windows(2) {
        assert!(
            encoded(&Value::Text(pair[0].into())) < encoded(&Value::Text(pair[1].into())),
            "{:?} should sort before {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[test]
fn page_and_trash_keys_sort_by_number() {
    let ids = [0u64, 1, 255, 256, 65_535, 1 << 32, u64::MAX - 1, u64::MAX];
    for pair in ids.windows(2) {
        assert!(keys::page_key(pair[0]) < keys::page_key(pair[1]));
        assert!(keys::trash_key(pair[0]) < keys::trash_key(pair[1]));
    }
    assert_eq!(trailing_record_id(&keys::page_key(42)), Some(42));
    assert_eq!(trailing_record_id(&[1, 2, 3]), None);
}
