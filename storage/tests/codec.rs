//! Property tests of the codec: values, records and schemas survive encode → decode, another
//! format version is refused, damaged bytes are an error and never a panic; and the JSON form of
//! values and schemas (the human-readable serde path) round-trips too.

mod common;

use proptest::prelude::*;
use tabula_storage::codec::{self, FORMAT_VERSION};
use tabula_storage::{
    Access, FieldDef, FieldType, Schema, StorageError, StoredRecord, TableSchema, Value,
};

use common::*;

fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
    codec::encode(value).expect("every test value can be encoded")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn value_trees_round_trip_bit_for_bit(value in value_tree(any_number())) {
        let bytes = encoded(&value);
        prop_assert_eq!(bytes[0], FORMAT_VERSION);
        let decoded: Value = codec::decode(&bytes, "value").expect("decode what was encoded");
        prop_assert!(same_bits(&value, &decoded), "{:?} decoded as {:?}", value, decoded);
    }

    #[test]
    fn stored_records_round_trip(record in stored_record(comparable_value())) {
        let decoded: StoredRecord =
            codec::decode(&encoded(&record), "record").expect("decode what was encoded");
        prop_assert_eq!(decoded, record);
    }

    #[test]
    fn schemas_round_trip(schema in schema(&SchemaParts::binary())) {
        let decoded: Schema =
            codec::decode(&encoded(&schema), "schema").expect("decode what was encoded");
        prop_assert_eq!(decoded, schema);
    }

    #[test]
    fn table_schemas_round_trip(table in table_schema(&SchemaParts::binary())) {
        let decoded: TableSchema =
            codec::decode(&encoded(&table), "table").expect("decode what was encoded");
        prop_assert_eq!(decoded, table);
    }

    #[test]
    fn field_defs_round_trip(field in field_def(&SchemaParts::binary())) {
        let decoded: FieldDef =
            codec::decode(&encoded(&field), "field").expect("decode what was encoded");
        prop_assert_eq!(decoded, field);
    }

    #[test]
    fn access_round_trips(access in access()) {
        let decoded: Access =
            codec::decode(&encoded(&access), "access").expect("decode what was encoded");
        prop_assert_eq!(decoded, access);
    }

    #[test]
    fn another_version_byte_is_refused(
        record in stored_record(comparable_value()),
        version in any::<u8>().prop_filter("another version", |version| *version != FORMAT_VERSION),
    ) {
        let mut bytes = encoded(&record);
        bytes[0] = version;
        let outcome = codec::decode::<StoredRecord>(&bytes, "record");
        prop_assert!(
            matches!(outcome, Err(StorageError::FormatVersion(found)) if found == version),
            "expected FormatVersion({}), got {:?}", version, outcome
        );
    }

    #[test]
    fn trailing_bytes_are_an_error(
        value in comparable_value(),
        extra in prop::collection::vec(any::<u8>(), 1..16),
    ) {
        let mut bytes = encoded(&value);
        bytes.extend_from_slice(&extra);
        let outcome = codec::decode::<Value>(&bytes, "value");
        prop_assert!(
            matches!(outcome, Err(StorageError::Decode { .. })),
            "a value followed by {:?} decoded as {:?}", extra, outcome
        );
    }

    #[test]
    fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = vec![FORMAT_VERSION];
        bytes.extend_from_slice(&body);
        // Any outcome is fine as long as there is one: no panic, no abort.
        let _ = codec::decode::<Value>(&bytes, "value");
        let _ = codec::decode::<StoredRecord>(&bytes, "record");
        let _ = codec::decode::<Schema>(&bytes, "schema");
        let _ = codec::decode::<u64>(&bytes, "number");
    }

    #[test]
    fn flipped_bytes_never_panic(
        record in stored_record(comparable_value()),
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
    ) {
        let mut bytes = encoded(&record);
        // Leave the version byte alone so the body decoder is what is exercised.
        let position = 1 + position.index(bytes.len() - 1);
        bytes[position] = replacement;
        let _ = codec::decode::<StoredRecord>(&bytes, "record");
    }

    #[test]
    fn values_round_trip_through_json(value in json_value()) {
        let json = serde_json::to_string(&value).expect("a value has a JSON form");
        let decoded: Value = serde_json::from_str(&json).expect("read back the JSON form");
        prop_assert_eq!(decoded, value);
    }

    #[test]
    fn schemas_round_trip_through_json(schema in schema(&SchemaParts::json())) {
        let json = serde_json::to_string(&schema).expect("a schema has a JSON form");
        let decoded: Schema = serde_json::from_str(&json).expect("read back the JSON form");
        prop_assert_eq!(decoded, schema);
    }
}

proptest! {
    // Each case decodes every prefix of its encoding, so fewer cases cover plenty.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_truncation_is_an_error(record in stored_record(comparable_value())) {
        let bytes = encoded(&record);
        for length in 0..bytes.len() {
            let outcome = codec::decode::<StoredRecord>(&bytes[..length], "record");
            prop_assert!(outcome.is_err(), "{} of {} bytes decoded as {:?}", length, bytes.len(), outcome);
        }
    }

    #[test]
    fn truncated_schemas_are_errors(schema in schema(&SchemaParts::binary())) {
        let bytes = encoded(&schema);
        for length in 0..bytes.len() {
            prop_assert!(codec::decode::<Schema>(&bytes[..length], "schema").is_err());
        }
    }
}

#[test]
fn an_empty_value_is_a_decode_error() {
    let outcome = codec::decode::<Value>(&[], "value");
    assert!(
        matches!(outcome, Err(StorageError::Decode { what: "value", .. })),
        "{outcome:?}"
    );
}

#[test]
fn the_version_byte_leads_every_encoding() {
    assert_eq!(encoded(&Value::Null)[0], FORMAT_VERSION);
    assert_eq!(encoded(&Schema::default())[0], FORMAT_VERSION);
    assert_eq!(encoded(&42u64)[0], FORMAT_VERSION);
}

#[test]
fn unknown_field_types_keep_their_name() {
    let field = FieldDef::new(7, "mystery", FieldType::parse("hologram"));
    let decoded: FieldDef = codec::decode(&encoded(&field), "field").expect("round trip");
    assert_eq!(
        decoded.field_type,
        FieldType::Unknown("hologram".to_owned())
    );
}

#[test]
fn values_have_their_natural_json_form() {
    let mut map = std::collections::BTreeMap::new();
    map.insert("k".to_owned(), Value::Bool(true));
    let cases = [
        (Value::Null, "null"),
        (Value::Text("a".into()), r#""a""#),
        (Value::Int(3), "3"),
        (Value::Float(2.5), "2.5"),
        (Value::List(vec![Value::Int(1), Value::Int(2)]), "[1,2]"),
        (Value::Map(map), r#"{"k":true}"#),
    ];
    for (value, json) in cases {
        assert_eq!(
            serde_json::to_string(&value).expect("serialize"),
            json,
            "{value:?}"
        );
        let decoded: Value = serde_json::from_str(json).expect("deserialize");
        assert_eq!(decoded, value, "{json}");
    }
    // Integers beyond i64 become decimals rather than failing.
    let decoded: Value = serde_json::from_str("18446744073709551615").expect("deserialize");
    assert_eq!(decoded, Value::Float(18_446_744_073_709_551_615.0));
}

#[test]
fn access_has_its_keyword_or_list_json_form() {
    let cases = [
        (Access::All, r#""all""#),
        (Access::Authenticated, r#""authenticated""#),
        (Access::Roles(vec!["editor".into()]), r#"["editor"]"#),
        (Access::Roles(vec![]), "[]"),
    ];
    for (access, json) in cases {
        assert_eq!(serde_json::to_string(&access).expect("serialize"), json);
        let decoded: Access = serde_json::from_str(json).expect("deserialize");
        assert_eq!(decoded, access);
    }
    assert!(serde_json::from_str::<Access>(r#""everyone""#).is_err());
}

#[test]
fn the_json_form_of_a_field_leaves_out_what_is_absent() {
    let field = FieldDef::new(1, "title", FieldType::SingleLineText);
    assert_eq!(
        serde_json::to_value(&field).expect("serialize"),
        serde_json::json!({
            "id": 1, "name": "title", "type": "single-line-text",
            "required": false, "unique": false, "indexed": false
        })
    );
    let mut field = field;
    field.max_length = Some(40);
    field.related_table = Some("people".into());
    field.on_delete = Some(tabula_storage::OnDelete::SetNull);
    let json = serde_json::to_value(&field).expect("serialize");
    assert_eq!(json["maxLength"], 40);
    assert_eq!(json["relatedTable"], "people");
    assert_eq!(json["onDelete"], "set-null");
    assert!(json.get("default").is_none());

    let table = TableSchema {
        id: 3,
        name: "tasks".into(),
        fields: vec![],
        permissions: Default::default(),
        views: vec![],
        search: None,
        webhooks: vec![],
    };
    assert_eq!(
        serde_json::to_value(&table).expect("serialize"),
        serde_json::json!({
            "id": 3, "name": "tasks", "fields": [], "permissions": {}, "views": []
        })
    );
}
