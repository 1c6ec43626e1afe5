//! The schema ledger's encoding and checksums, diffs, the rebase merge and value conversions
//! of a retype — the parts of live schema management that need no running actor.

use tabula_actors::schema_diff::{diff_schemas, rebase_schema};
use tabula_actors::schema_ledger::{checksum, Draft, IdWatermarks, Ledger, SchemaVersion};
use tabula_actors::schema_migration::convert_value;
use tabula_storage::{
    Access, FieldDef, FieldType, Permissions, Schema, Store, TableSchema, Value, ViewDef,
};

fn table(id: u32, name: &str, fields: Vec<FieldDef>) -> TableSchema {
    TableSchema {
        id,
        name: name.into(),
        fields,
        permissions: Permissions::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

fn sample_schema() -> Schema {
    let mut status = FieldDef::new(2, "status", FieldType::SingleSelect);
    status.options = Some(vec!["a".into(), "b".into()]);
    status.default = Some(Value::Text("a".into()));
    status.indexed = true;
    let mut tasks = table(
        1,
        "tasks",
        vec![FieldDef::new(1, "title", FieldType::SingleLineText), status],
    );
    tasks.permissions.read = Some(Access::Roles(vec!["member".into()]));
    tasks.views.push(ViewDef {
        id: "open".into(),
        name: "Open".into(),
        is_default: true,
        filter: Some(Value::Text("status='a'".into())),
        sort: Some("-title".into()),
        fields: Some(vec!["title".into()]),
        group_by: None,
        permissions: None,
    });
    tasks.search = Some(vec!["title".into()]);
    Schema {
        tables: vec![
            tasks,
            table(
                2,
                "tags",
                vec![FieldDef::new(1, "label", FieldType::SingleLineText)],
            ),
        ],
    }
}

#[test]
fn versions_round_trip_through_the_ledger_and_keep_their_checksum() {
    let directory = tempfile::tempdir().expect("a directory");
    let store = Store::open(directory.path()).expect("the store opens");
    let ledger = Ledger::open(&store).expect("the ledger opens");
    let schema = sample_schema();
    let version = SchemaVersion {
        number: 1,
        checksum: checksum(&schema).expect("a checksum"),
        created_at: 5,
        created_by: Some("u1".into()),
        message: Some("first".into()),
        restored_from: None,
        snapshot: schema.clone(),
    };
    let mut watermarks = IdWatermarks::default();
    watermarks.cover(&schema);
    assert_eq!(watermarks.table, 2);
    assert_eq!(watermarks.fields.get(&1), Some(&2));
    ledger
        .append(&version, &watermarks, &Draft::of(&version, 5))
        .expect("append");
    assert_eq!(ledger.active_number().expect("active"), Some(1));
    let read = ledger.version(1).expect("read").expect("version 1");
    assert_eq!(read, version);
    assert_eq!(
        checksum(&read.snapshot).expect("checksum"),
        version.checksum
    );
    assert_eq!(ledger.watermarks().expect("watermarks"), watermarks);
    let draft = ledger.draft().expect("draft").expect("a draft");
    assert!(!draft.dirty);
    assert_eq!(draft.snapshot, schema);

    // A different schema has a different checksum.
    let mut changed = schema.clone();
    changed.tables[0].fields[0].required = true;
    assert_ne!(checksum(&changed).expect("checksum"), version.checksum);

    // Prune keeps the newest N and the active one.
    for number in 2..=4 {
        let next = SchemaVersion {
            number,
            ..version.clone()
        };
        ledger
            .append(&next, &watermarks, &Draft::of(&next, 5))
            .expect("append");
    }
    assert_eq!(ledger.prune(2).expect("prune"), 2);
    let kept: Vec<u64> = ledger
        .versions()
        .expect("versions")
        .iter()
        .map(|version| version.number)
        .collect();
    assert_eq!(kept, vec![4, 3]);
    assert_eq!(ledger.prune(0).expect("prune"), 1);
    assert_eq!(ledger.newest_number().expect("newest"), 4);
}

#[test]
fn diffs_match_tables_and_fields_by_id() {
    let before = sample_schema();
    let mut after = before.clone();
    after.tables[0].fields[0].name = "name".into();
    after.tables[0].fields[1].field_type = FieldType::MultiSelect;
    after.tables[0]
        .fields
        .push(FieldDef::new(3, "due", FieldType::Date));
    after.tables.remove(1);
    after.tables.push(table(
        3,
        "notes",
        vec![FieldDef::new(1, "body", FieldType::LongText)],
    ));
    let kinds: Vec<(&str, String)> = diff_schemas(&before, &after)
        .into_iter()
        .map(|change| (change.kind, change.path))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("rename-field", "/tables/tasks/fields/name".to_owned()),
            (
                "change-field-type",
                "/tables/tasks/fields/status".to_owned()
            ),
            ("add-field", "/tables/tasks/fields/due".to_owned()),
            ("add-table", "/tables/notes".to_owned()),
            ("remove-table", "/tables/tags".to_owned()),
        ]
    );
    assert!(diff_schemas(&before, &before).is_empty());
}

#[test]
fn a_rebase_takes_each_side_and_names_the_clashes() {
    let base = sample_schema();
    let mut mine = base.clone();
    mine.tables[0].fields[0].required = true;
    mine.tables.push(table(
        3,
        "notes",
        vec![FieldDef::new(1, "body", FieldType::LongText)],
    ));
    let mut theirs = base.clone();
    theirs.tables[1].fields[0].unique = true;
    let merged = rebase_schema(&base, &mine, &theirs).expect("no clash");
    assert!(merged.tables[0].fields[0].required, "my change is kept");
    assert!(merged.tables[1].fields[0].unique, "their change is kept");
    assert_eq!(merged.tables[2].name, "notes");

    let mut clashing = base.clone();
    clashing.tables[0].fields[0].max_length = Some(3);
    let conflicts = rebase_schema(&base, &mine, &clashing).expect_err("a clash");
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].table, "tasks");
}

#[test]
fn retypes_convert_what_they_can() {
    let text = FieldDef::new(1, "t", FieldType::SingleLineText);
    assert_eq!(
        convert_value(&text, &Value::Int(22)),
        Ok(Value::Text("22".into()))
    );
    assert_eq!(
        convert_value(
            &text,
            &Value::List(vec![Value::Text("a".into()), Value::Text("b".into())])
        ),
        Ok(Value::Text("a, b".into()))
    );
    let integer = FieldDef::new(2, "n", FieldType::Integer);
    assert_eq!(
        convert_value(&integer, &Value::Text(" 42 ".into())),
        Ok(Value::Int(42))
    );
    assert!(convert_value(&integer, &Value::Text("many".into())).is_err());
    assert!(convert_value(&integer, &Value::Text("1.5".into())).is_err());
    let decimal = FieldDef::new(3, "d", FieldType::Decimal);
    assert_eq!(
        convert_value(&decimal, &Value::Text("1.5".into())),
        Ok(Value::Float(1.5))
    );
    let checkbox = FieldDef::new(4, "c", FieldType::Checkbox);
    assert_eq!(
        convert_value(&checkbox, &Value::Text("yes".into())),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        convert_value(&checkbox, &Value::Int(0)),
        Ok(Value::Bool(false))
    );
    assert!(convert_value(&checkbox, &Value::Text("maybe".into())).is_err());
    let mut tags = FieldDef::new(5, "m", FieldType::MultiSelect);
    tags.options = Some(vec!["a".into(), "b".into()]);
    assert_eq!(
        convert_value(&tags, &Value::Text("a, b".into())),
        Ok(Value::List(vec![
            Value::Text("a".into()),
            Value::Text("b".into())
        ]))
    );
    assert!(convert_value(&tags, &Value::Text("a, z".into())).is_err());
    let mut single = FieldDef::new(6, "s", FieldType::SingleSelect);
    single.options = Some(vec!["a".into()]);
    assert_eq!(
        convert_value(&single, &Value::List(vec![Value::Text("a".into())])),
        Ok(Value::Text("a".into()))
    );
    let mut short = FieldDef::new(7, "short", FieldType::SingleLineText);
    short.max_length = Some(2);
    assert!(
        convert_value(&short, &Value::Int(12345)).is_err(),
        "the new field's rules apply"
    );
}
