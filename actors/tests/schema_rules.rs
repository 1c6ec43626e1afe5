//! Schema rules (SPEC §3): id assignment, and for every rule the JSON pointer and the message
//! (naming the table and the field or view) that a broken schema is reported with.

use tabula_actors::schema_rules::{normalize_schema, validate_schema, SchemaIssue};
use tabula_storage::schema::{FieldPermission, ViewDef};
use tabula_storage::{
    Access, FieldDef, FieldType, OnDelete, Permissions, Schema, TableSchema, Value,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn table(id: u32, name: &str, fields: Vec<FieldDef>) -> TableSchema {
    TableSchema {
        id,
        name: name.to_owned(),
        fields,
        permissions: Permissions::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

fn text_field(id: u32, name: &str) -> FieldDef {
    FieldDef::new(id, name, FieldType::SingleLineText)
}

fn view(id: &str) -> ViewDef {
    ViewDef {
        id: id.to_owned(),
        name: id.to_owned(),
        is_default: false,
        filter: None,
        sort: None,
        fields: None,
        group_by: None,
        permissions: None,
    }
}

/// A valid two-table schema: tasks(title, status) and contacts(name, primaryTask → tasks).
fn valid_schema() -> Schema {
    let mut status = FieldDef::new(2, "status", FieldType::SingleSelect);
    status.options = Some(vec!["todo".to_owned(), "done".to_owned()]);
    status.default = Some(Value::from("todo"));
    let mut primary_task = FieldDef::new(2, "primaryTask", FieldType::Relationship);
    primary_task.related_table = Some("tasks".to_owned());
    primary_task.on_delete = Some(OnDelete::SetNull);
    Schema {
        tables: vec![
            table(1, "tasks", vec![text_field(1, "title"), status]),
            table(2, "contacts", vec![text_field(1, "name"), primary_task]),
        ],
    }
}

/// A schema of one table `things` with one field.
fn schema_with_field(field: FieldDef) -> Schema {
    Schema {
        tables: vec![table(1, "things", vec![field])],
    }
}

/// The issues of `schema`, asserting there is exactly one, and returns it.
fn single_issue(schema: &Schema) -> SchemaIssue {
    let issues = validate_schema(schema);
    assert_eq!(issues.len(), 1, "expected one issue, got {issues:#?}");
    issues.into_iter().next().expect("exactly one issue")
}

fn assert_issue(schema: &Schema, path: &str, message_parts: &[&str]) {
    let found = single_issue(schema);
    assert_eq!(found.path, path, "{found:?}");
    for part in message_parts {
        assert!(
            found.message.contains(part),
            "message {:?} should contain {part:?}",
            found.message
        );
    }
}

fn field_issue(field: FieldDef, key: &str, message_parts: &[&str]) {
    assert_issue(
        &schema_with_field(field),
        &format!("/tables/0/fields/0/{key}"),
        message_parts,
    );
}

// ---------------------------------------------------------------------------------------------
// Valid schemas and id assignment

#[test]
fn a_valid_schema_has_no_issues() {
    assert_eq!(validate_schema(&valid_schema()), Vec::new());
    let mut schema = valid_schema();
    assert_eq!(normalize_schema(&mut schema), Ok(()));
    assert_eq!(schema, valid_schema());
}

#[test]
fn missing_table_ids_are_the_highest_plus_one_in_order() {
    let mut schema = Schema {
        tables: vec![
            table(0, "first", vec![text_field(0, "a")]),
            table(7, "second", vec![text_field(0, "a")]),
            table(0, "third", vec![text_field(0, "a")]),
        ],
    };
    assert_eq!(normalize_schema(&mut schema), Ok(()));
    let ids: Vec<u32> = schema.tables.iter().map(|table| table.id).collect();
    assert_eq!(ids, vec![8, 7, 9]);
}

#[test]
fn missing_field_ids_are_the_highest_of_their_table_plus_one() {
    let mut schema = Schema {
        tables: vec![
            table(
                1,
                "first",
                vec![text_field(0, "a"), text_field(5, "b"), text_field(0, "c")],
            ),
            table(2, "second", vec![text_field(0, "a")]),
        ],
    };
    assert_eq!(normalize_schema(&mut schema), Ok(()));
    let first: Vec<u32> = schema.tables[0]
        .fields
        .iter()
        .map(|field| field.id)
        .collect();
    assert_eq!(first, vec![6, 5, 7]);
    assert_eq!(schema.tables[1].fields[0].id, 1);
}

#[test]
fn validate_schema_accepts_unassigned_ids_and_changes_nothing() {
    let schema = Schema {
        tables: vec![
            table(0, "first", vec![text_field(0, "a"), text_field(0, "b")]),
            table(0, "second", vec![text_field(0, "a")]),
        ],
    };
    assert_eq!(validate_schema(&schema), Vec::new());
}

#[test]
fn normalize_reports_every_issue_at_once() {
    let mut schema = valid_schema();
    schema.tables[0].name = "Tasks".to_owned();
    schema.tables[1].fields[0].field_type = FieldType::Unknown("txt".to_owned());
    let issues = normalize_schema(&mut schema).err().unwrap_or_default();
    let paths: Vec<&str> = issues.iter().map(|issue| issue.path.as_str()).collect();
    // The relationship to "tasks" breaks too, since the table is now called "Tasks".
    assert_eq!(
        paths,
        vec![
            "/tables/0/name",
            "/tables/1/fields/0/type",
            "/tables/1/fields/1/relatedTable"
        ]
    );
}

#[test]
fn an_issue_displays_as_path_and_message() {
    let issue = SchemaIssue {
        path: "/tables/0/name".to_owned(),
        message: "table 'X': bad".to_owned(),
    };
    assert_eq!(issue.to_string(), "/tables/0/name: table 'X': bad");
}

// ---------------------------------------------------------------------------------------------
// Tables

#[test]
fn table_names_are_lowercase_identifiers_of_at_most_63_characters() {
    for bad in [
        "",
        "Tasks",
        "1tasks",
        "_tasks",
        "my-tasks",
        "tâches",
        &"a".repeat(64),
    ] {
        let mut schema = valid_schema();
        schema.tables[0].name = bad.to_owned();
        schema.tables[1].fields[1].related_table = Some(bad.to_owned());
        assert_issue(
            &schema,
            "/tables/0/name",
            &[&format!("table '{bad}'"), "lowercase"],
        );
    }
    for good in ["t", "tasks_2", &"a".repeat(63)] {
        let mut schema = valid_schema();
        schema.tables[0].name = good.to_owned();
        schema.tables[1].fields[1].related_table = Some(good.to_owned());
        assert_eq!(validate_schema(&schema), Vec::new(), "{good}");
    }
}

#[test]
fn table_ids_are_unique() {
    let mut schema = valid_schema();
    schema.tables[1].id = 1;
    assert_issue(
        &schema,
        "/tables/1/id",
        &["table 'contacts'", "id 1", "table 'tasks'"],
    );
}

#[test]
fn table_names_are_unique() {
    let mut schema = valid_schema();
    schema
        .tables
        .push(table(3, "tasks", vec![text_field(1, "a")]));
    assert_issue(
        &schema,
        "/tables/2/name",
        &["table 'tasks'", "already has this name"],
    );
}

#[test]
fn a_table_needs_a_field() {
    let mut schema = valid_schema();
    schema.tables.push(table(3, "empty", Vec::new()));
    assert_issue(
        &schema,
        "/tables/2/fields",
        &["table 'empty'", "at least one field"],
    );
}

// ---------------------------------------------------------------------------------------------
// Fields: names, ids, types

#[test]
fn field_names_are_identifiers() {
    for bad in ["", "1st", "due date", "due-date", "é", &"a".repeat(65)] {
        field_issue(
            text_field(1, bad),
            "name",
            &[&format!("table 'things', field '{bad}'"), "field name"],
        );
    }
    for good in ["a", "_private", "dueDate", "due_date_2", &"a".repeat(64)] {
        assert_eq!(
            validate_schema(&schema_with_field(text_field(1, good))),
            Vec::new()
        );
    }
}

#[test]
fn field_names_may_not_be_system_attributes() {
    for system in [
        "id",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
        "deletedAt",
        "deletedBy",
    ] {
        field_issue(
            text_field(1, system),
            "name",
            &[&format!("field '{system}'"), "system attribute"],
        );
    }
}

#[test]
fn field_ids_and_names_are_unique_within_a_table() {
    let mut schema = valid_schema();
    schema.tables[0].fields.push(text_field(1, "summary"));
    assert_issue(
        &schema,
        "/tables/0/fields/2/id",
        &["table 'tasks', field 'summary'", "id 1", "field 'title'"],
    );

    let mut schema = valid_schema();
    schema.tables[0].fields.push(text_field(3, "title"));
    assert_issue(
        &schema,
        "/tables/0/fields/2/name",
        &["table 'tasks', field 'title'", "already has this name"],
    );

    // The same names and ids in two tables are fine.
    let mut schema = valid_schema();
    schema.tables[1].fields[0].name = "title".to_owned();
    assert_eq!(validate_schema(&schema), Vec::new());
}

#[test]
fn an_unknown_type_names_the_table_the_field_and_the_type() {
    let mut schema = valid_schema();
    schema.tables[0].fields.push(FieldDef::new(
        3,
        "due",
        FieldType::Unknown("dat".to_owned()),
    ));
    assert_issue(
        &schema,
        "/tables/0/fields/2/type",
        &[
            "table 'tasks', field 'due': unknown type 'dat'",
            "did you mean 'date'",
        ],
    );
    field_issue(
        FieldDef::new(1, "x", FieldType::Unknown("spreadsheet".to_owned())),
        "type",
        &[
            "unknown type 'spreadsheet'",
            "known types: single-line-text",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Type options

#[test]
fn select_fields_need_options_without_duplicates_or_blanks() {
    for select in [FieldType::SingleSelect, FieldType::MultiSelect] {
        let field = FieldDef::new(1, "state", select.clone());
        field_issue(
            field.clone(),
            "options",
            &["field 'state'", "non-empty list of options"],
        );

        let mut empty = field.clone();
        empty.options = Some(Vec::new());
        field_issue(empty, "options", &["non-empty list of options"]);

        let mut duplicated = field.clone();
        duplicated.options = Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()]);
        field_issue(
            duplicated,
            "options/2",
            &["field 'state'", "option 'a' is listed twice"],
        );

        let mut blank = field;
        blank.options = Some(vec!["a".to_owned(), " ".to_owned()]);
        field_issue(blank, "options/1", &["blank"]);
    }
}

#[test]
fn options_only_apply_to_select_fields() {
    let mut field = text_field(1, "title");
    field.options = Some(vec!["a".to_owned()]);
    field_issue(
        field,
        "options",
        &["options does not apply to single-line-text fields"],
    );
}

#[test]
fn a_relationship_needs_an_existing_related_table() {
    let mut schema = valid_schema();
    schema.tables[1].fields[1].related_table = None;
    assert_issue(
        &schema,
        "/tables/1/fields/1/relatedTable",
        &[
            "table 'contacts', field 'primaryTask'",
            "needs relatedTable",
        ],
    );

    let mut schema = valid_schema();
    schema.tables[1].fields[1].related_table = Some("projects".to_owned());
    assert_issue(
        &schema,
        "/tables/1/fields/1/relatedTable",
        &["relatedTable 'projects' is not a table"],
    );

    // A table may point at itself.
    let mut schema = valid_schema();
    schema.tables[1].fields[1].related_table = Some("contacts".to_owned());
    assert_eq!(validate_schema(&schema), Vec::new());
}

#[test]
fn on_delete_and_related_table_only_apply_to_relationships() {
    let mut field = text_field(1, "title");
    field.on_delete = Some(OnDelete::Cascade);
    field_issue(
        field,
        "onDelete",
        &["field 'title'", "onDelete does not apply"],
    );

    let mut field = text_field(1, "title");
    field.related_table = Some("things".to_owned());
    field_issue(field, "relatedTable", &["relatedTable does not apply"]);
}

#[test]
fn min_may_not_exceed_max() {
    for numeric in [
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Currency,
        FieldType::Percentage,
    ] {
        let mut field = FieldDef::new(1, "amount", numeric);
        field.min = Some(10.0);
        field.max = Some(1.0);
        field_issue(
            field.clone(),
            "min",
            &["field 'amount'", "min (10) is greater than max (1)"],
        );
        field.max = Some(10.0);
        assert_eq!(validate_schema(&schema_with_field(field)), Vec::new());
    }
}

#[test]
fn bounds_are_finite_and_only_on_numeric_fields() {
    let mut field = FieldDef::new(1, "amount", FieldType::Integer);
    field.max = Some(f64::INFINITY);
    field_issue(field, "max", &["finite"]);

    let mut field = text_field(1, "title");
    field.min = Some(1.0);
    field_issue(
        field,
        "min",
        &["min does not apply to single-line-text fields"],
    );

    let mut field = FieldDef::new(1, "stars", FieldType::Rating);
    field.min = Some(1.0);
    field_issue(field, "min", &["min does not apply to rating fields"]);
}

#[test]
fn precision_is_between_0_and_15_on_decimal_kinds_only() {
    let mut field = FieldDef::new(1, "amount", FieldType::Decimal);
    field.precision = Some(16);
    field_issue(
        field.clone(),
        "precision",
        &["field 'amount'", "between 0 and 15"],
    );
    field.precision = Some(15);
    assert_eq!(validate_schema(&schema_with_field(field)), Vec::new());

    let mut field = FieldDef::new(1, "count", FieldType::Integer);
    field.precision = Some(2);
    field_issue(
        field,
        "precision",
        &["precision does not apply to integer fields"],
    );
}

#[test]
fn a_rating_max_is_a_whole_number_of_at_least_one() {
    for bad in [0.0, -3.0, 2.5] {
        let mut field = FieldDef::new(1, "stars", FieldType::Rating);
        field.max = Some(bad);
        field_issue(field, "max", &["field 'stars'", "at least 1"]);
    }
    let mut field = FieldDef::new(1, "stars", FieldType::Rating);
    field.max = Some(10.0);
    assert_eq!(validate_schema(&schema_with_field(field)), Vec::new());
}

#[test]
fn a_currency_is_a_three_letter_capital_code() {
    for bad in ["eur", "EURO", "E1R", ""] {
        let mut field = FieldDef::new(1, "price", FieldType::Currency);
        field.currency = Some(bad.to_owned());
        field_issue(field, "currency", &["field 'price'", "3-letter ISO 4217"]);
    }
    let mut field = FieldDef::new(1, "price", FieldType::Currency);
    field.currency = Some("EUR".to_owned());
    assert_eq!(validate_schema(&schema_with_field(field)), Vec::new());

    let mut field = FieldDef::new(1, "amount", FieldType::Decimal);
    field.currency = Some("EUR".to_owned());
    field_issue(
        field,
        "currency",
        &["currency does not apply to decimal fields"],
    );
}

#[test]
fn max_length_is_positive_and_only_on_text_fields() {
    let mut field = text_field(1, "title");
    field.max_length = Some(0);
    field_issue(field, "maxLength", &["field 'title'", "at least 1"]);

    let mut field = FieldDef::new(1, "count", FieldType::Integer);
    field.max_length = Some(10);
    field_issue(
        field,
        "maxLength",
        &["maxLength does not apply to integer fields"],
    );
}

#[test]
fn autofill_is_only_current_on_user_fields() {
    let mut field = FieldDef::new(1, "owner", FieldType::User);
    field.autofill = Some("current".to_owned());
    assert_eq!(
        validate_schema(&schema_with_field(field.clone())),
        Vec::new()
    );

    field.autofill = Some("always".to_owned());
    field_issue(field, "autofill", &["field 'owner'", "must be 'current'"]);

    let mut field = text_field(1, "owner");
    field.autofill = Some("current".to_owned());
    field_issue(
        field,
        "autofill",
        &["autofill does not apply to single-line-text fields"],
    );
}

#[test]
fn a_default_must_be_a_valid_value_of_its_field() {
    let mut schema = valid_schema();
    schema.tables[0].fields[1].default = Some(Value::from("archived"));
    assert_issue(
        &schema,
        "/tables/0/fields/1/default",
        &["table 'tasks', field 'status'"],
    );

    let mut field = FieldDef::new(1, "count", FieldType::Integer);
    field.default = Some(Value::from("three"));
    field_issue(field, "default", &["field 'count'"]);

    let mut field = FieldDef::new(1, "number", FieldType::Autonumber);
    field.default = Some(Value::Int(1));
    field_issue(field, "default", &["field 'number'", "readonly"]);
}

// ---------------------------------------------------------------------------------------------
// Search, permissions, views

#[test]
fn search_names_existing_text_fields() {
    let mut schema = valid_schema();
    schema.tables[0].search = Some(vec!["title".to_owned(), "body".to_owned()]);
    assert_issue(
        &schema,
        "/tables/0/search/1",
        &["table 'tasks'", "unknown field 'body'"],
    );

    let mut schema = valid_schema();
    schema.tables[0].search = Some(vec!["status".to_owned()]);
    assert_issue(
        &schema,
        "/tables/0/search/0",
        &["table 'tasks'", "'status'", "not a text field"],
    );
}

#[test]
fn field_permissions_name_existing_fields_once() {
    let permission = |field: &str| FieldPermission {
        field: field.to_owned(),
        read: Some(Access::Authenticated),
        write: Some(Access::Roles(vec!["admin".to_owned()])),
    };
    let mut schema = valid_schema();
    schema.tables[0].permissions.fields = vec![permission("title"), permission("priority")];
    assert_issue(
        &schema,
        "/tables/0/permissions/fields/1/field",
        &["table 'tasks'", "unknown field 'priority'"],
    );

    let mut schema = valid_schema();
    schema.tables[0].permissions.fields = vec![permission("title"), permission("title")];
    assert_issue(
        &schema,
        "/tables/0/permissions/fields/1/field",
        &["table 'tasks', field 'title'", "twice"],
    );
}

#[test]
fn a_row_filter_is_not_blank() {
    let mut schema = valid_schema();
    schema.tables[0].permissions.row_filter = Some("  ".to_owned());
    assert_issue(
        &schema,
        "/tables/0/permissions/rowFilter",
        &["table 'tasks'", "rowFilter may not be blank"],
    );
    schema.tables[0].permissions.row_filter = Some("owner = @user.id".to_owned());
    assert_eq!(validate_schema(&schema), Vec::new());
}

#[test]
fn view_ids_are_lowercase_slugs_and_unique() {
    for bad in ["", "Open", "open tasks", "open.tasks"] {
        let mut schema = valid_schema();
        schema.tables[0].views = vec![view(bad)];
        assert_issue(
            &schema,
            "/tables/0/views/0/id",
            &[&format!("table 'tasks', view '{bad}'"), "view id"],
        );
    }
    let mut schema = valid_schema();
    schema.tables[0].views = vec![view("open-2"), view("done_now")];
    assert_eq!(validate_schema(&schema), Vec::new());

    schema.tables[0].views = vec![view("open"), view("done"), view("open")];
    assert_issue(
        &schema,
        "/tables/0/views/2/id",
        &["table 'tasks', view 'open'", "already has this id"],
    );
}

#[test]
fn at_most_one_view_is_the_default() {
    let mut schema = valid_schema();
    let mut first = view("open");
    first.is_default = true;
    let mut second = view("done");
    second.is_default = true;
    schema.tables[0].views = vec![first, second];
    assert_issue(
        &schema,
        "/tables/0/views/1/isDefault",
        &[
            "table 'tasks', view 'done'",
            "view 'open' is already the default",
        ],
    );
}

#[test]
fn views_refer_only_to_fields_of_their_table() {
    let mut schema = valid_schema();
    let mut open = view("open");
    open.fields = Some(vec!["title".to_owned(), "colour".to_owned()]);
    open.sort = Some("-title".to_owned());
    schema.tables[0].views = vec![open];
    assert_issue(
        &schema,
        "/tables/0/views/0",
        &["table 'tasks'", "view 'open'", "unknown field 'colour'"],
    );
}

// ---------------------------------------------------------------------------------------------
// Webhooks

fn schema_with_webhook(url: &str, events: &[&str], secret: Option<&str>) -> Schema {
    let mut schema = valid_schema();
    schema.tables[0].webhooks = vec![tabula_storage::schema::WebhookDef {
        url: url.to_owned(),
        events: events.iter().map(|event| (*event).to_owned()).collect(),
        secret: secret.map(str::to_owned),
    }];
    schema
}

#[test]
fn a_valid_webhook_has_no_issues() {
    for events in [&[][..], &["*"], &["create", "permanent_delete"]] {
        let schema = schema_with_webhook("https://example.com/hook", events, Some("s"));
        assert!(validate_schema(&schema).is_empty());
    }
}

#[test]
fn a_webhook_needs_an_http_url_known_events_and_a_non_empty_secret() {
    for url in ["example.com/hook", "ftp://example.com/x", "", "http://"] {
        assert_issue(
            &schema_with_webhook(url, &[], None),
            "/tables/0/webhooks/0/url",
            &["table 'tasks', webhook 1", "http or https"],
        );
    }
    assert_issue(
        &schema_with_webhook("http://127.0.0.1:9/x", &["create", "craete"], None),
        "/tables/0/webhooks/0/events/1",
        &["unknown event 'craete'"],
    );
    assert_issue(
        &schema_with_webhook("http://127.0.0.1:9/x", &[], Some("")),
        "/tables/0/webhooks/0/secret",
        &["must not be empty"],
    );
}
