//! Field-level validation and normalisation (SPEC §3, §4.1): for every field type, what is
//! accepted and in which stored form, what is refused and with which message; plus required,
//! defaults, readonly and system attributes, unknown fields, collected errors and update mode.

use std::collections::BTreeMap;

use tabula_actors::validate::{
    check_default, default_value, estimated_json_size, normalise_value, validate_write, WriteMode,
    JSON_MAX_BYTES,
};
use tabula_actors::FieldError;
use tabula_storage::{FieldDef, FieldType, TableSchema, Value};

// ---------------------------------------------------------------------------------------------
// Helpers

fn table(fields: Vec<FieldDef>) -> TableSchema {
    TableSchema {
        id: 1,
        name: "things".to_owned(),
        fields,
        permissions: Default::default(),
        views: Vec::new(),
        search: None,
        webhooks: Vec::new(),
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn list(items: &[&str]) -> Value {
    Value::List(items.iter().map(|item| text(item)).collect())
}

fn field(field_type: FieldType) -> FieldDef {
    FieldDef::new(1, "subject", field_type)
}

fn select_field(field_type: FieldType, options: &[&str]) -> FieldDef {
    let mut select = FieldDef::new(1, "status", field_type);
    select.options = Some(options.iter().map(|option| (*option).to_owned()).collect());
    select
}

/// The stored form of `value` for `definition`, failing the test with the message otherwise.
fn stored(definition: &FieldDef, value: Value) -> Value {
    match normalise_value(definition, &value) {
        Ok(normalised) => normalised,
        Err(message) => panic!("{value:?} should be valid for {definition:?}: {message}"),
    }
}

/// The message `value` is refused with, failing the test if it is accepted.
fn refused(definition: &FieldDef, value: Value) -> String {
    match normalise_value(definition, &value) {
        Ok(normalised) => panic!("{value:?} should be refused, was stored as {normalised:?}"),
        Err(message) => message,
    }
}

/// The message `check_default` refuses the field's default with, failing the test otherwise.
fn default_refusal(definition: &FieldDef) -> String {
    match check_default(definition) {
        Ok(()) => panic!("the default of {definition:?} should be refused"),
        Err(message) => message,
    }
}

fn input(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

fn accepted(
    schema: &TableSchema,
    pairs: &[(&str, Value)],
    mode: WriteMode,
) -> BTreeMap<u32, Value> {
    match validate_write(schema, &input(pairs), mode) {
        Ok(values) => values,
        Err(errors) => panic!("write should be accepted: {errors:?}"),
    }
}

fn rejected(schema: &TableSchema, pairs: &[(&str, Value)], mode: WriteMode) -> Vec<FieldError> {
    match validate_write(schema, &input(pairs), mode) {
        Ok(values) => panic!("write should be rejected, got {values:?}"),
        Err(errors) => errors,
    }
}

// ---------------------------------------------------------------------------------------------
// Text types

#[test]
fn single_line_text_is_stored_as_given() {
    let title = field(FieldType::SingleLineText);
    assert_eq!(
        stored(&title, text("  Hello, wörld ")),
        text("  Hello, wörld ")
    );
    assert_eq!(stored(&title, text("")), text(""));
    assert_eq!(
        stored(&title, text(&"é".repeat(255))),
        text(&"é".repeat(255))
    );
}

#[test]
fn single_line_text_refuses_newlines_length_and_wrong_types() {
    let title = field(FieldType::SingleLineText);
    let message = refused(&title, text("one\ntwo"));
    assert!(
        message.contains("'subject'") && message.contains("line break"),
        "{message}"
    );
    assert!(refused(&title, text("carriage\rreturn")).contains("line break"));
    for separator in ['\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}'] {
        let message = refused(&title, text(&format!("one{separator}two")));
        assert!(message.contains("line break"), "{separator:?}: {message}");
    }
    let message = refused(&title, text(&"a".repeat(256)));
    assert_eq!(
        message,
        "Field 'subject' must be at most 255 characters (got 256)"
    );
    assert_eq!(
        refused(&title, Value::Int(3)),
        "Field 'subject' expects a string, got number"
    );
    assert_eq!(
        refused(&title, Value::Bool(true)),
        "Field 'subject' expects a string, got boolean"
    );
    assert_eq!(
        refused(&title, list(&["a"])),
        "Field 'subject' expects a string, got array"
    );
}

#[test]
fn single_line_text_honours_max_length() {
    let mut code = field(FieldType::SingleLineText);
    code.max_length = Some(3);
    assert_eq!(stored(&code, text("abc")), text("abc"));
    assert_eq!(
        refused(&code, text("abcd")),
        "Field 'subject' must be at most 3 characters (got 4)"
    );
}

#[test]
fn long_text_allows_newlines_up_to_one_hundred_thousand_characters() {
    let notes = field(FieldType::LongText);
    assert_eq!(
        stored(&notes, text("line one\nline two\r\n")),
        text("line one\nline two\r\n")
    );
    let longest = "x".repeat(100_000);
    assert_eq!(stored(&notes, text(&longest)), text(&longest));
    assert!(refused(&notes, text(&"x".repeat(100_001))).contains("at most 100000 characters"));
    assert!(refused(&notes, Value::Int(1)).contains("expects a string"));
}

#[test]
fn rich_text_is_sanitised_on_write() {
    let body = field(FieldType::RichText);
    let dirty = "<p onclick=\"steal()\">Hi <b>there</b></p><script>alert('x')</script>\
                 <a href=\"javascript:alert(1)\">link</a><img src=x onerror=\"boom()\">";
    let Value::Text(clean) = stored(&body, text(dirty)) else {
        panic!("rich text is stored as text");
    };
    assert!(clean.contains("<b>there</b>"), "{clean}");
    assert!(clean.contains("<p>Hi "), "{clean}");
    assert!(!clean.contains("script"), "{clean}");
    assert!(!clean.contains("alert"), "{clean}");
    assert!(!clean.contains("onclick"), "{clean}");
    assert!(!clean.contains("onerror"), "{clean}");
    assert!(!clean.contains("javascript:"), "{clean}");
    assert_eq!(
        stored(&body, text("<b>bold</b> and <i>it</i>")),
        text("<b>bold</b> and <i>it</i>")
    );
    assert!(refused(&body, Value::Bool(false)).contains("expects a string, got boolean"));
    assert!(refused(&body, text(&"x".repeat(100_001))).contains("at most 100000 characters"));
}

// ---------------------------------------------------------------------------------------------
// Formatted strings

#[test]
fn email_is_trimmed_and_lower_cased() {
    let email = FieldDef::new(1, "email", FieldType::Email);
    assert_eq!(
        stored(&email, text("  Ada.Lovelace@Example.COM ")),
        text("ada.lovelace@example.com")
    );
    assert_eq!(
        stored(&email, text("o'brien+tag@mail.example.co.uk")),
        text("o'brien+tag@mail.example.co.uk")
    );
    assert_eq!(stored(&email, text("a_b-c@x-y.io")), text("a_b-c@x-y.io"));
}

#[test]
fn email_refuses_malformed_addresses() {
    let email = FieldDef::new(1, "email", FieldType::Email);
    for bad in [
        "plainaddress",
        "@example.com",
        "user@",
        "user@localhost",
        "user@@example.com",
        "us er@example.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "user@exa mple.com",
        "user@-example.com",
        "user@example..com",
        "user@example.com.",
        "user@1.2.3.4",
        "user(comment)@example.com",
        "a@b@example.com",
    ] {
        assert_eq!(
            refused(&email, text(bad)),
            "Field 'email' must be a valid email address",
            "{bad} should be refused"
        );
    }
    assert_eq!(
        refused(&email, Value::Int(5)),
        "Field 'email' expects a string, got number"
    );
}

#[test]
fn url_must_be_absolute_http_or_https_with_a_host() {
    let website = FieldDef::new(1, "website", FieldType::Url);
    assert_eq!(
        stored(&website, text("https://example.com")),
        text("https://example.com")
    );
    assert_eq!(
        stored(&website, text(" http://example.com/path?q=1#top ")),
        text("http://example.com/path?q=1#top")
    );
    for bad in [
        "example.com",
        "/relative/path",
        "ftp://example.com/file",
        "javascript:alert(1)",
        "mailto:someone@example.com",
        "http://",
        "https://exa mple.com",
        "http:example.com",
    ] {
        assert_eq!(
            refused(&website, text(bad)),
            "Field 'website' must be a valid absolute http or https URL",
            "{bad} should be refused"
        );
    }
    assert!(refused(&website, Value::Bool(true)).contains("expects a string"));
}

#[test]
fn phone_number_is_normalised_to_plus_and_digits() {
    let phone = FieldDef::new(1, "phone", FieldType::PhoneNumber);
    assert_eq!(
        stored(&phone, text("+1 (555) 123-4567")),
        text("+15551234567")
    );
    assert_eq!(
        stored(&phone, text("+44 20.7946.0958")),
        text("+442079460958")
    );
    assert_eq!(stored(&phone, text("+1234567")), text("+1234567"));
    assert_eq!(
        stored(&phone, text("+123456789012345")),
        text("+123456789012345")
    );
    for bad in [
        "5551234567",
        "+123456",
        "+1234567890123456",
        "+1 555 CALL NOW",
        "++15551234567",
    ] {
        let message = refused(&phone, text(bad));
        assert!(
            message.starts_with("Field 'phone' must be a phone number"),
            "{bad}: {message}"
        );
    }
    assert!(refused(&phone, Value::Int(15551234567)).contains("expects a string, got number"));
}

#[test]
fn blank_strings_clear_formatted_fields() {
    for field_type in [
        FieldType::Email,
        FieldType::Url,
        FieldType::PhoneNumber,
        FieldType::Date,
        FieldType::Datetime,
        FieldType::SingleSelect,
        FieldType::Relationship,
        FieldType::User,
    ] {
        let definition = field(field_type.clone());
        assert_eq!(stored(&definition, text("")), Value::Null, "{field_type}");
        assert_eq!(
            stored(&definition, text("   ")),
            Value::Null,
            "{field_type}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Numbers

#[test]
fn integer_accepts_integral_numbers_only() {
    let count = FieldDef::new(1, "count", FieldType::Integer);
    assert_eq!(stored(&count, Value::Int(-42)), Value::Int(-42));
    assert_eq!(stored(&count, Value::Float(7.0)), Value::Int(7));
    assert_eq!(stored(&count, Value::Int(i64::MAX)), Value::Int(i64::MAX));
    assert_eq!(
        refused(&count, Value::Float(2.5)),
        "Field 'count' expects an integer, got 2.5"
    );
    assert_eq!(
        refused(&count, text("3")),
        "Field 'count' expects an integer, got string"
    );
    assert_eq!(
        refused(&count, Value::Bool(true)),
        "Field 'count' expects an integer, got boolean"
    );
    assert!(refused(&count, Value::Float(1e20)).contains("out of range"));
}

#[test]
fn integer_honours_min_and_max() {
    let mut priority = FieldDef::new(1, "priority", FieldType::Integer);
    priority.min = Some(1.0);
    priority.max = Some(5.0);
    assert_eq!(stored(&priority, Value::Int(1)), Value::Int(1));
    assert_eq!(stored(&priority, Value::Int(5)), Value::Int(5));
    assert_eq!(
        refused(&priority, Value::Int(6)),
        "Field 'priority' must be at most 5"
    );
    assert_eq!(
        refused(&priority, Value::Int(0)),
        "Field 'priority' must be at least 1"
    );
}

#[test]
fn decimal_rounds_to_precision_on_write() {
    let amount = FieldDef::new(1, "amount", FieldType::Decimal);
    assert_eq!(stored(&amount, Value::Float(4.56789)), Value::Float(4.57));
    assert_eq!(stored(&amount, Value::Float(2.999)), Value::Int(3));
    assert_eq!(stored(&amount, Value::Int(12)), Value::Int(12));
    // Half away from zero, on the digits as written (2.675 is 2.67499… in binary).
    assert_eq!(stored(&amount, Value::Float(-0.125)), Value::Float(-0.13));
    assert_eq!(stored(&amount, Value::Float(0.125)), Value::Float(0.13));
    assert_eq!(stored(&amount, Value::Float(2.675)), Value::Float(2.68));
    assert_eq!(stored(&amount, Value::Float(99.995)), Value::Int(100));
    assert_eq!(stored(&amount, Value::Float(0.004)), Value::Int(0));
    assert_eq!(stored(&amount, Value::Float(1e300)), Value::Float(1e300));
    let mut precise = FieldDef::new(1, "amount", FieldType::Decimal);
    precise.precision = Some(4);
    assert_eq!(
        stored(&precise, Value::Float(1.234567)),
        Value::Float(1.2346)
    );
    precise.precision = Some(0);
    assert_eq!(stored(&precise, Value::Float(1.6)), Value::Int(2));
    assert_eq!(stored(&precise, Value::Float(2.5)), Value::Int(3));
    assert_eq!(stored(&precise, Value::Float(-2.5)), Value::Int(-3));
    assert_eq!(
        refused(&amount, text("1.5")),
        "Field 'amount' expects a number, got string"
    );
    assert!(refused(&amount, Value::Float(f64::NAN)).contains("finite"));
}

#[test]
fn decimal_honours_min_and_max_after_rounding() {
    let mut amount = FieldDef::new(1, "amount", FieldType::Decimal);
    amount.min = Some(0.5);
    amount.max = Some(10.0);
    assert_eq!(stored(&amount, Value::Float(10.001)), Value::Int(10));
    assert_eq!(
        refused(&amount, Value::Float(10.01)),
        "Field 'amount' must be at most 10"
    );
    assert_eq!(
        refused(&amount, Value::Float(0.25)),
        "Field 'amount' must be at least 0.5"
    );
}

#[test]
fn currency_is_a_decimal_with_two_digits_by_default() {
    let mut price = FieldDef::new(1, "price", FieldType::Currency);
    price.currency = Some("EUR".to_owned());
    assert_eq!(stored(&price, Value::Float(19.999)), Value::Int(20));
    assert_eq!(stored(&price, Value::Float(19.994)), Value::Float(19.99));
    price.min = Some(0.0);
    assert_eq!(
        refused(&price, Value::Float(-1.0)),
        "Field 'price' must be at least 0"
    );
    assert!(refused(&price, Value::Bool(true)).contains("expects a number, got boolean"));
}

#[test]
fn percentage_is_between_zero_and_one_hundred_unless_configured() {
    let share = FieldDef::new(1, "share", FieldType::Percentage);
    assert_eq!(stored(&share, Value::Int(0)), Value::Int(0));
    assert_eq!(stored(&share, Value::Float(33.333)), Value::Float(33.333));
    assert_eq!(stored(&share, Value::Int(100)), Value::Int(100));
    assert_eq!(
        refused(&share, Value::Float(100.5)),
        "Field 'share' must be at most 100"
    );
    assert_eq!(
        refused(&share, Value::Int(-1)),
        "Field 'share' must be at least 0"
    );
    let mut growth = FieldDef::new(1, "growth", FieldType::Percentage);
    growth.min = Some(-50.0);
    growth.max = Some(200.0);
    growth.precision = Some(1);
    assert_eq!(stored(&growth, Value::Float(150.26)), Value::Float(150.3));
    assert_eq!(stored(&growth, Value::Int(-50)), Value::Int(-50));
    assert_eq!(
        refused(&growth, Value::Int(201)),
        "Field 'growth' must be at most 200"
    );
}

#[test]
fn rating_is_an_integer_from_one_to_max() {
    let stars = FieldDef::new(1, "stars", FieldType::Rating);
    assert_eq!(stored(&stars, Value::Int(1)), Value::Int(1));
    assert_eq!(stored(&stars, Value::Int(5)), Value::Int(5));
    assert_eq!(
        refused(&stars, Value::Int(6)),
        "Field 'stars' must be between 1 and 5"
    );
    assert_eq!(
        refused(&stars, Value::Int(0)),
        "Field 'stars' must be between 1 and 5"
    );
    assert_eq!(
        refused(&stars, Value::Float(2.5)),
        "Field 'stars' expects an integer, got 2.5"
    );
    assert_eq!(
        refused(&stars, text("4")),
        "Field 'stars' expects an integer, got string"
    );
    let mut ten = FieldDef::new(1, "stars", FieldType::Rating);
    ten.max = Some(10.0);
    assert_eq!(stored(&ten, Value::Int(10)), Value::Int(10));
    assert_eq!(
        refused(&ten, Value::Int(11)),
        "Field 'stars' must be between 1 and 10"
    );
}

// ---------------------------------------------------------------------------------------------
// Checkbox, dates

#[test]
fn checkbox_is_a_boolean_defaulting_to_false() {
    let done = FieldDef::new(1, "done", FieldType::Checkbox);
    assert_eq!(stored(&done, Value::Bool(true)), Value::Bool(true));
    assert_eq!(
        refused(&done, text("true")),
        "Field 'done' expects a boolean, got string"
    );
    assert_eq!(
        refused(&done, Value::Int(1)),
        "Field 'done' expects a boolean, got number"
    );
    assert_eq!(default_value(&done), Some(Value::Bool(false)));
}

#[test]
fn date_is_stored_as_year_month_day() {
    let due = FieldDef::new(1, "due", FieldType::Date);
    assert_eq!(stored(&due, text("2026-11-22")), text("2026-11-22"));
    assert_eq!(stored(&due, text("2024-02-29")), text("2024-02-29"));
    assert_eq!(
        stored(&due, text("2026-11-22T23:30:00-05:00")),
        text("2026-11-22")
    );
    assert_eq!(
        stored(&due, text("2026-11-22T10:00:00.000Z")),
        text("2026-11-22")
    );
    assert_eq!(
        stored(&due, text("2026-11-22 10:00:00")),
        text("2026-11-22")
    );
    for bad in [
        "2026-02-30",
        "2025-02-29",
        "2026-13-01",
        "22/11/2026",
        "2026-1-5",
        "20261122",
        "2026-11-22Tnonsense",
        "tomorrow",
    ] {
        assert_eq!(
            refused(&due, text(bad)),
            "Field 'due' must be a valid date (YYYY-MM-DD)",
            "{bad} should be refused"
        );
    }
    assert!(refused(&due, Value::Int(20261122)).contains("expects a date string"));
}

#[test]
fn datetime_is_normalised_to_utc_with_milliseconds() {
    let starts = FieldDef::new(1, "startsAt", FieldType::Datetime);
    assert_eq!(
        stored(&starts, text("2026-11-22T10:00:00Z")),
        text("2026-11-22T10:00:00.000Z")
    );
    assert_eq!(
        stored(&starts, text("2026-11-22T12:30:15.5+02:00")),
        text("2026-11-22T10:30:15.500Z")
    );
    assert_eq!(
        stored(&starts, text("2026-11-22")),
        text("2026-11-22T00:00:00.000Z")
    );
    assert_eq!(
        stored(&starts, text("2026-11-22 10:00:00")),
        text("2026-11-22T10:00:00.000Z")
    );
    for bad in [
        "2026-11-31T10:00:00Z",
        "next week",
        "10:00",
        "2026-11-22T25:00:00Z",
    ] {
        let message = refused(&starts, text(bad));
        assert!(
            message.starts_with("Field 'startsAt' must be a valid date-time"),
            "{bad}: {message}"
        );
    }
    assert!(refused(&starts, Value::Int(1_700_000_000_000))
        .contains("expects a date-time string, got number"));
}

// ---------------------------------------------------------------------------------------------
// Selects

#[test]
fn single_select_must_be_one_of_the_options() {
    let status = select_field(FieldType::SingleSelect, &["todo", "doing", "done"]);
    assert_eq!(stored(&status, text("doing")), text("doing"));
    assert_eq!(
        refused(&status, text("blocked")),
        "Field 'status' must be one of: todo, doing, done"
    );
    assert_eq!(
        refused(&status, text("Done")),
        "Field 'status' must be one of: todo, doing, done"
    );
    assert_eq!(
        refused(&status, list(&["todo"])),
        "Field 'status' expects a string, got array"
    );
}

#[test]
fn multi_select_keeps_order_and_refuses_duplicates_and_unknown_options() {
    let tags = select_field(FieldType::MultiSelect, &["red", "green", "blue"]);
    assert_eq!(
        stored(&tags, list(&["blue", "red"])),
        list(&["blue", "red"])
    );
    assert_eq!(stored(&tags, list(&[])), list(&[]));
    let message = refused(&tags, list(&["red", "red"]));
    assert!(
        message.contains("'status'") && message.contains("duplicate") && message.contains("'red'"),
        "{message}"
    );
    let message = refused(&tags, list(&["red", "pink"]));
    assert!(
        message.contains("red, green, blue") && message.contains("'pink'"),
        "{message}"
    );
    assert_eq!(
        refused(&tags, text("red")),
        "Field 'status' expects an array of strings, got string"
    );
    let message = refused(&tags, Value::List(vec![text("red"), Value::Int(2)]));
    assert!(
        message.contains("expects an array of strings") && message.contains("number"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Relationship, user, json

#[test]
fn relationship_accepts_a_positive_integer_or_numeric_string() {
    let owner = FieldDef::new(1, "owner", FieldType::Relationship);
    assert_eq!(stored(&owner, Value::Int(42)), text("42"));
    assert_eq!(stored(&owner, text("42")), text("42"));
    assert_eq!(stored(&owner, text(" 007 ")), text("7"));
    for bad in [
        Value::Int(0),
        Value::Int(-3),
        text("abc"),
        text("4.2"),
        text("-1"),
        text("0"),
    ] {
        assert_eq!(
            refused(&owner, bad.clone()),
            "Field 'owner' must be a record id (a positive integer)",
            "{bad:?} should be refused"
        );
    }
    assert!(refused(&owner, Value::Float(4.5)).contains("expects a record id, got number"));
    assert!(refused(&owner, Value::Bool(true)).contains("expects a record id, got boolean"));
}

#[test]
fn user_is_a_non_empty_user_id_string() {
    let assignee = FieldDef::new(1, "assignee", FieldType::User);
    assert_eq!(stored(&assignee, text("u_123")), text("u_123"));
    assert_eq!(stored(&assignee, text(" u_123 ")), text("u_123"));
    assert_eq!(
        refused(&assignee, Value::Int(7)),
        "Field 'assignee' expects a user id string, got number"
    );
}

#[test]
fn json_accepts_any_value_up_to_one_mebibyte() {
    let payload = FieldDef::new(1, "payload", FieldType::Json);
    let mut object = BTreeMap::new();
    object.insert(
        "nested".to_owned(),
        Value::List(vec![Value::Int(1), Value::Bool(false), Value::Null]),
    );
    let object = Value::Map(object);
    assert_eq!(stored(&payload, object.clone()), object);
    assert_eq!(
        stored(&payload, text("just a string")),
        text("just a string")
    );
    assert_eq!(stored(&payload, Value::Float(1.5)), Value::Float(1.5));
    // A string of n plain characters serialises to n + 2 bytes.
    let fits = text(&"a".repeat(JSON_MAX_BYTES - 2));
    assert_eq!(stored(&payload, fits.clone()), fits);
    let message = refused(&payload, text(&"a".repeat(JSON_MAX_BYTES - 1)));
    assert!(
        message.starts_with("Field 'payload' must be at most 1 MiB"),
        "{message}"
    );
    // Escapes count: a quote serialises as two bytes.
    let message = refused(
        &payload,
        Value::List(vec![text(&"\"".repeat(JSON_MAX_BYTES / 2))]),
    );
    assert!(message.contains("1 MiB"), "{message}");
}

#[test]
fn estimated_json_size_matches_compact_serialisation() {
    let mut entries = BTreeMap::new();
    entries.insert("a".to_owned(), Value::Int(-12));
    entries.insert(
        "b".to_owned(),
        Value::List(vec![Value::Bool(true), Value::Null, text("x\"y")]),
    );
    // {"a":-12,"b":[true,null,"x\"y"]}
    assert_eq!(estimated_json_size(&Value::Map(entries)), 32);
    assert_eq!(estimated_json_size(&Value::List(Vec::new())), 2);
    assert_eq!(estimated_json_size(&Value::Map(BTreeMap::new())), 2);
    assert_eq!(estimated_json_size(&text("\u{1}")), 8);
}

// ---------------------------------------------------------------------------------------------
// Readonly types and system attributes

#[test]
fn readonly_field_types_cannot_be_written() {
    for (name, field_type) in [
        ("number", FieldType::Autonumber),
        ("created", FieldType::CreatedAt),
        ("updated", FieldType::UpdatedAt),
        ("author", FieldType::CreatedBy),
        ("editor", FieldType::UpdatedBy),
    ] {
        let schema = table(vec![FieldDef::new(1, name, field_type)]);
        for mode in [WriteMode::Create, WriteMode::Update] {
            let errors = rejected(&schema, &[(name, Value::Int(1))], mode);
            assert_eq!(
                errors,
                vec![FieldError::new(
                    name,
                    format!("Cannot write to readonly field '{name}'")
                )]
            );
        }
    }
}

#[test]
fn system_attributes_cannot_be_written() {
    let schema = table(vec![FieldDef::new(1, "title", FieldType::SingleLineText)]);
    for attribute in [
        "id",
        "createdAt",
        "updatedAt",
        "createdBy",
        "updatedBy",
        "deletedAt",
        "deletedBy",
    ] {
        let errors = rejected(
            &schema,
            &[("title", text("A")), (attribute, text("1"))],
            WriteMode::Create,
        );
        assert_eq!(
            errors,
            vec![FieldError::new(
                attribute,
                format!("Cannot write to readonly field '{attribute}'")
            )]
        );
    }
}

#[test]
fn unknown_field_is_named() {
    let schema = table(vec![FieldDef::new(1, "title", FieldType::SingleLineText)]);
    let errors = rejected(
        &schema,
        &[("title", text("A")), ("nosuch", text("x"))],
        WriteMode::Create,
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "nosuch");
    assert!(
        errors[0].message.contains("nosuch"),
        "{}",
        errors[0].message
    );
}

// ---------------------------------------------------------------------------------------------
// Required, defaults, create and update

fn tasks_schema() -> TableSchema {
    let mut title = FieldDef::new(1, "title", FieldType::SingleLineText);
    title.required = true;
    let mut status = select_field(FieldType::SingleSelect, &["todo", "doing", "done"]);
    status.id = 2;
    status.default = Some(text("todo"));
    let mut priority = FieldDef::new(3, "priority", FieldType::Integer);
    priority.min = Some(1.0);
    priority.max = Some(5.0);
    let done = FieldDef::new(4, "done", FieldType::Checkbox);
    let email = FieldDef::new(5, "email", FieldType::Email);
    let mut tags = select_field(FieldType::MultiSelect, &["a", "b"]);
    tags.id = 6;
    tags.name = "tags".to_owned();
    let number = FieldDef::new(7, "number", FieldType::Autonumber);
    table(vec![title, status, priority, done, email, tags, number])
}

#[test]
fn create_applies_defaults_and_normalises() {
    let schema = tasks_schema();
    let values = accepted(
        &schema,
        &[
            ("title", text("Write tests")),
            ("email", text("ME@Example.com")),
            ("priority", Value::Int(3)),
        ],
        WriteMode::Create,
    );
    let expected: BTreeMap<u32, Value> = [
        (1, text("Write tests")),
        (2, text("todo")),
        (3, Value::Int(3)),
        (4, Value::Bool(false)),
        (5, text("me@example.com")),
    ]
    .into_iter()
    .collect();
    assert_eq!(values, expected);
}

#[test]
fn create_with_explicit_values_overrides_defaults_and_null_means_absent() {
    let schema = tasks_schema();
    let values = accepted(
        &schema,
        &[
            ("title", text("T")),
            ("status", text("done")),
            ("done", Value::Bool(true)),
            ("priority", Value::Null),
        ],
        WriteMode::Create,
    );
    assert_eq!(values.get(&2), Some(&text("done")));
    assert_eq!(values.get(&4), Some(&Value::Bool(true)));
    assert_eq!(values.get(&3), None);
    let values = accepted(
        &schema,
        &[("title", text("T")), ("status", Value::Null)],
        WriteMode::Create,
    );
    assert_eq!(values.get(&2), Some(&text("todo")));
}

#[test]
fn create_reports_missing_required_fields() {
    let schema = tasks_schema();
    for missing in [
        vec![],
        vec![("title", Value::Null)],
        vec![("title", text(""))],
    ] {
        let errors = rejected(&schema, &missing, WriteMode::Create);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "title");
        assert!(
            errors[0].message.starts_with("Missing required fields"),
            "{}",
            errors[0].message
        );
        assert!(errors[0].message.contains("title"), "{}", errors[0].message);
    }
}

#[test]
fn required_empty_list_is_missing() {
    let mut tags = select_field(FieldType::MultiSelect, &["a"]);
    tags.required = true;
    let schema = table(vec![tags]);
    let errors = rejected(&schema, &[("status", list(&[]))], WriteMode::Create);
    assert!(
        errors[0].message.starts_with("Missing required fields"),
        "{errors:?}"
    );
    let errors = rejected(&schema, &[("status", list(&[]))], WriteMode::Update);
    assert!(
        errors[0].message.starts_with("Missing required fields"),
        "{errors:?}"
    );
}

#[test]
fn required_field_satisfied_by_default() {
    let mut status = select_field(FieldType::SingleSelect, &["todo", "done"]);
    status.required = true;
    status.default = Some(text("todo"));
    let schema = table(vec![status]);
    let values = accepted(&schema, &[], WriteMode::Create);
    assert_eq!(values.get(&1), Some(&text("todo")));
}

#[test]
fn invalid_default_is_not_applied_and_is_reported_by_check_default() {
    let mut status = select_field(FieldType::SingleSelect, &["todo", "done"]);
    status.default = Some(text("nope"));
    assert_eq!(default_value(&status), None);
    let message = default_refusal(&status);
    assert!(message.contains("must be one of: todo, done"), "{message}");
    let schema = table(vec![status.clone()]);
    assert!(accepted(&schema, &[], WriteMode::Create).is_empty());

    status.default = Some(text("done"));
    assert_eq!(check_default(&status), Ok(()));
    let mut priority = FieldDef::new(1, "priority", FieldType::Integer);
    priority.max = Some(5.0);
    priority.default = Some(Value::Int(9));
    assert!(default_refusal(&priority).contains("at most 5"));
    priority.default = Some(text("3"));
    assert!(default_refusal(&priority).contains("expects an integer"));
    priority.default = None;
    assert_eq!(check_default(&priority), Ok(()));
    let mut autonumber = FieldDef::new(1, "number", FieldType::Autonumber);
    autonumber.default = Some(Value::Int(1));
    assert!(default_refusal(&autonumber).contains("readonly"));
}

#[test]
fn defaults_are_normalised() {
    let mut email = FieldDef::new(1, "email", FieldType::Email);
    email.default = Some(text(" Team@Example.COM "));
    assert_eq!(default_value(&email), Some(text("team@example.com")));
    let mut amount = FieldDef::new(1, "amount", FieldType::Decimal);
    amount.default = Some(Value::Float(1.005_9));
    assert_eq!(default_value(&amount), Some(Value::Float(1.01)));
}

#[test]
fn many_errors_are_collected_one_per_field() {
    let schema = tasks_schema();
    let errors = rejected(
        &schema,
        &[
            ("id", text("9")),
            ("status", text("blocked")),
            ("priority", Value::Int(6)),
            ("email", text("not-an-email")),
            ("tags", list(&["a", "a"])),
            ("number", Value::Int(3)),
            ("ghost", Value::Bool(true)),
            ("done", text("yes")),
        ],
        WriteMode::Create,
    );
    let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["id", "status", "priority", "email", "tags", "number", "ghost", "done", "title"]
    );
    assert_eq!(
        errors[1].message,
        "Field 'status' must be one of: todo, doing, done"
    );
    assert_eq!(errors[2].message, "Field 'priority' must be at most 5");
    assert_eq!(
        errors[3].message,
        "Field 'email' must be a valid email address"
    );
    assert_eq!(
        errors[7].message,
        "Field 'done' expects a boolean, got string"
    );
    assert!(errors[8].message.starts_with("Missing required fields"));
}

#[test]
fn duplicate_names_in_one_request_give_one_error() {
    let schema = tasks_schema();
    let errors = rejected(
        &schema,
        &[
            ("title", text("T")),
            ("priority", Value::Int(9)),
            ("priority", Value::Int(10)),
        ],
        WriteMode::Create,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
}

#[test]
fn update_holds_only_given_fields_without_defaults_or_required_checks() {
    let schema = tasks_schema();
    let values = accepted(
        &schema,
        &[("priority", Value::Float(2.0))],
        WriteMode::Update,
    );
    let expected: BTreeMap<u32, Value> = [(3, Value::Int(2))].into_iter().collect();
    assert_eq!(values, expected);
    assert!(accepted(&schema, &[], WriteMode::Update).is_empty());
}

#[test]
fn update_null_clears_an_optional_field_but_not_a_required_one() {
    let schema = tasks_schema();
    let values = accepted(
        &schema,
        &[("priority", Value::Null), ("email", text(""))],
        WriteMode::Update,
    );
    assert_eq!(values.get(&3), Some(&Value::Null));
    assert_eq!(values.get(&5), Some(&Value::Null));
    for empty in [Value::Null, text("")] {
        let errors = rejected(&schema, &[("title", empty)], WriteMode::Update);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "title");
        assert!(
            errors[0].message.starts_with("Missing required fields"),
            "{}",
            errors[0].message
        );
    }
}

#[test]
fn update_reports_type_errors() {
    let schema = tasks_schema();
    let errors = rejected(
        &schema,
        &[("priority", text("3")), ("id", Value::Int(1))],
        WriteMode::Update,
    );
    assert_eq!(
        errors,
        vec![
            FieldError::new(
                "priority",
                "Field 'priority' expects an integer, got string"
            ),
            FieldError::new("id", "Cannot write to readonly field 'id'"),
        ]
    );
}

#[test]
fn autofilled_user_field_is_not_required_from_the_client() {
    let mut owner = FieldDef::new(1, "owner", FieldType::User);
    owner.required = true;
    owner.autofill = Some("current".to_owned());
    let mut reviewer = FieldDef::new(2, "reviewer", FieldType::User);
    reviewer.required = true;
    let schema = table(vec![owner, reviewer]);
    let errors = rejected(&schema, &[], WriteMode::Create);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "reviewer");
}

#[test]
fn readonly_types_normalise_like_their_stored_form_for_filters() {
    assert_eq!(
        stored(&field(FieldType::Autonumber), Value::Int(3)),
        Value::Int(3)
    );
    assert_eq!(
        stored(&field(FieldType::CreatedAt), text("2026-11-22")),
        text("2026-11-22T00:00:00.000Z")
    );
    assert_eq!(stored(&field(FieldType::UpdatedBy), text("u1")), text("u1"));
}

#[test]
fn unknown_type_is_refused() {
    let odd = FieldDef::new(1, "odd", FieldType::Unknown("hologram".to_owned()));
    assert_eq!(
        refused(&odd, text("x")),
        "Field 'odd' has an unknown type 'hologram'"
    );
}
