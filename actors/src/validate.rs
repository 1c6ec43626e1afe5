//! Field-level validation and normalisation of client input against a table's schema (SPEC §3,
//! §4.1): types, formats, options, bounds, required, readonly, defaults, and the stored form of
//! every field type. Checks that need the store (uniqueness, relationship targets) are made by
//! the table actor.

use std::collections::{BTreeMap, BTreeSet};

use tabula_storage::{FieldDef, FieldType, TableSchema, Value};

use crate::clock::{normalise_datetime, parse_date, parse_datetime_ms};
use crate::error::FieldError;

/// System attributes every record has; clients may never write them.
pub const SYSTEM_ATTRIBUTES: &[&str] = &[
    "id",
    "createdAt",
    "updatedAt",
    "createdBy",
    "updatedBy",
    "deletedAt",
    "deletedBy",
];

/// The `maxLength` of a single-line-text field that does not set one.
pub const DEFAULT_SINGLE_LINE_MAX_LENGTH: u32 = 255;

/// The length limit (in characters) of long-text and rich-text fields that do not set `maxLength`.
pub const LONG_TEXT_MAX_LENGTH: u32 = 100_000;

/// The largest value a json field may hold, measured as its compact JSON serialisation.
pub const JSON_MAX_BYTES: usize = 1024 * 1024;

/// Digits after the point kept by decimal and currency fields that do not set `precision`.
pub const DEFAULT_DECIMAL_PRECISION: u32 = 2;

/// The highest rating of a rating field that does not set `max`.
pub const DEFAULT_RATING_MAX: i64 = 5;

/// Digits after the point beyond which rounding is pointless for an f64 (and a huge configured
/// precision would only cost memory when formatting).
const MAX_MEANINGFUL_PRECISION: u32 = 17;

/// Characters allowed in the local part of an email address besides ASCII letters and digits
/// (RFC 5322 `atext`).
const EMAIL_LOCAL_PART_SYMBOLS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Characters a phone number may be written with that are dropped before checking it.
const PHONE_NUMBER_SEPARATORS: &[char] = &[' ', '-', '.', '(', ')'];

/// Whether the write creates a record (defaults and required apply) or patches one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Create,
    Update,
}

/// Validates client input (`name → value` pairs as sent) and returns the normalised values keyed
/// by field id. On create the result holds every field that has a value after defaults (a `null`
/// counts as absent, so the default applies); on update only the fields given (`Null` meaning
/// "clear"). Every problem is reported, one error per offending field.
pub fn validate_write(
    schema: &TableSchema,
    input: &[(String, Value)],
    mode: WriteMode,
) -> Result<BTreeMap<u32, Value>, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = Vec::new();
    let mut values = BTreeMap::new();
    for (name, value) in input {
        if errors.iter().any(|error| &error.field == name) {
            // The same name twice in one request: its first problem is enough.
            continue;
        }
        if SYSTEM_ATTRIBUTES.contains(&name.as_str()) {
            errors.push(FieldError::new(name, readonly_message(name)));
            continue;
        }
        let Some(field) = schema.field_by_name(name) else {
            errors.push(FieldError::new(name, format!("Unknown field '{name}'")));
            continue;
        };
        if field.field_type.is_readonly() {
            errors.push(FieldError::new(name, readonly_message(name)));
            continue;
        }
        let normalised = match normalise_value(field, value) {
            Ok(normalised) => normalised,
            Err(message) => {
                errors.push(FieldError::new(name, message));
                continue;
            }
        };
        match mode {
            WriteMode::Create => {
                if normalised.is_null() {
                    // Absent: the default (if any) and the required check below decide.
                    values.remove(&field.id);
                } else {
                    values.insert(field.id, normalised);
                }
            }
            WriteMode::Update => {
                if field.required && normalised.is_empty_value() {
                    errors.push(FieldError::new(name, missing_required_message(name)));
                } else {
                    values.insert(field.id, normalised);
                }
            }
        }
    }
    if mode == WriteMode::Create {
        for field in &schema.fields {
            if values.contains_key(&field.id) || field.field_type.is_readonly() {
                continue;
            }
            if let Some(default) = default_value(field) {
                values.insert(field.id, default);
            }
        }
        for field in &schema.fields {
            if !field.required || is_filled_by_system(field) {
                continue;
            }
            let missing = values.get(&field.id).is_none_or(Value::is_empty_value);
            let already_reported = errors.iter().any(|error| error.field == field.name);
            if missing && !already_reported {
                errors.push(FieldError::new(
                    &field.name,
                    missing_required_message(&field.name),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The value a field gets on create when the input does not give one: its `default`, normalised
/// like client input (an invalid default is not applied), else `false` for a checkbox.
pub fn default_value(field: &FieldDef) -> Option<Value> {
    if field.field_type.is_readonly() {
        return None;
    }
    if let Some(default) = &field.default {
        return normalise_value(field, default)
            .ok()
            .filter(|normalised| !normalised.is_null());
    }
    match field.field_type {
        FieldType::Checkbox => Some(Value::Bool(false)),
        _ => None,
    }
}

/// Checks a field's configured `default` as schema validation needs it: a readonly field may not
/// have one, and any other default must be a valid value of the field.
pub fn check_default(field: &FieldDef) -> Result<(), String> {
    let Some(default) = &field.default else {
        return Ok(());
    };
    if default.is_null() {
        return Ok(());
    }
    if field.field_type.is_readonly() {
        return Err(format!(
            "Field '{}' is readonly ({}) and cannot have a default",
            field.name, field.field_type
        ));
    }
    normalise_value(field, default)
        .map(|_| ())
        .map_err(|message| format!("Invalid default: {message}"))
}

/// Checks and normalises one value for a field and returns its stored form; the error is the
/// message for the envelope's `errors[]` item. `Null` stays `Null`, and so does a blank string
/// given to a field whose strings have a format (email, url, phone, date, select, id …): both
/// mean "no value". Readonly types are normalised like their stored form (so a filter literal
/// can be compared with them); refusing writes to them is [`validate_write`]'s job.
pub fn normalise_value(field: &FieldDef, value: &Value) -> Result<Value, String> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    match &field.field_type {
        FieldType::SingleLineText => normalise_single_line_text(field, value),
        FieldType::LongText => {
            let text = expect_text(field, value)?;
            check_length(
                field,
                text,
                field.max_length.unwrap_or(LONG_TEXT_MAX_LENGTH),
            )?;
            Ok(Value::Text(text.to_owned()))
        }
        FieldType::RichText => {
            let text = expect_text(field, value)?;
            check_length(
                field,
                text,
                field.max_length.unwrap_or(LONG_TEXT_MAX_LENGTH),
            )?;
            Ok(Value::Text(ammonia::clean(text)))
        }
        FieldType::Email => normalise_formatted_text(field, value, normalise_email),
        FieldType::Url => normalise_formatted_text(field, value, normalise_url),
        FieldType::PhoneNumber => normalise_formatted_text(field, value, normalise_phone_number),
        FieldType::Integer | FieldType::Autonumber => normalise_integer(field, value),
        FieldType::Decimal | FieldType::Currency | FieldType::Percentage => {
            normalise_decimal(field, value)
        }
        FieldType::Rating => normalise_rating(field, value),
        FieldType::Checkbox => match value {
            Value::Bool(_) => Ok(value.clone()),
            other => Err(wrong_type_message(field, "a boolean", other)),
        },
        FieldType::Date => normalise_formatted_text(field, value, normalise_date),
        FieldType::Datetime | FieldType::CreatedAt | FieldType::UpdatedAt => {
            normalise_formatted_text(field, value, normalise_datetime_text)
        }
        FieldType::SingleSelect => normalise_formatted_text(field, value, normalise_single_select),
        FieldType::MultiSelect => normalise_multi_select(field, value),
        FieldType::Relationship => normalise_relationship(field, value),
        FieldType::User | FieldType::CreatedBy | FieldType::UpdatedBy => {
            normalise_formatted_text(field, value, |_, user_id| {
                Ok(Value::Text(user_id.to_owned()))
            })
        }
        FieldType::Json => {
            let size = estimated_json_size(value);
            if size > JSON_MAX_BYTES {
                return Err(format!(
                    "Field '{}' must be at most 1 MiB of JSON (got about {size} bytes)",
                    field.name
                ));
            }
            Ok(value.clone())
        }
        FieldType::Unknown(type_name) => Err(format!(
            "Field '{}' has an unknown type '{type_name}'",
            field.name
        )),
    }
}

/// The length in bytes of `value` serialised as compact JSON (floats counted at their longest
/// shortest-round-trip form), without building the text.
pub fn estimated_json_size(value: &Value) -> usize {
    /// The longest shortest-round-trip spelling of an f64 (`-2.2250738585072014e-308`).
    const LONGEST_FLOAT_SPELLING: usize = 24;
    match value {
        Value::Null => 4,
        Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Int(number) => number.to_string().len(),
        Value::Float(_) => LONGEST_FLOAT_SPELLING,
        Value::Text(text) => estimated_json_string_size(text),
        Value::List(items) => items
            .iter()
            .map(estimated_json_size)
            .fold(2 + items.len().saturating_sub(1), usize::saturating_add),
        Value::Map(entries) => entries
            .iter()
            .map(|(key, item)| {
                // `"key":value`
                estimated_json_string_size(key)
                    .saturating_add(1)
                    .saturating_add(estimated_json_size(item))
            })
            .fold(2 + entries.len().saturating_sub(1), usize::saturating_add),
    }
}

/// The serialised length of a JSON string: quotes, UTF-8 bytes, and escapes for quotes,
/// backslashes and control characters.
fn estimated_json_string_size(text: &str) -> usize {
    text.chars().fold(2, |size, character| {
        let extra = match character {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            control if u32::from(control) < 0x20 => 6,
            other => other.len_utf8(),
        };
        size.saturating_add(extra)
    })
}

fn readonly_message(name: &str) -> String {
    format!("Cannot write to readonly field '{name}'")
}

fn missing_required_message(name: &str) -> String {
    format!("Missing required fields: {name}")
}

/// Fields whose value the system (or the table actor, from the caller) provides on create, so
/// the required check does not apply to the input.
fn is_filled_by_system(field: &FieldDef) -> bool {
    field.field_type.is_readonly()
        || (field.field_type == FieldType::User && field.autofill.as_deref() == Some("current"))
}

fn wrong_type_message(field: &FieldDef, expected: &str, got: &Value) -> String {
    format!(
        "Field '{}' expects {expected}, got {}",
        field.name,
        got.kind_name()
    )
}

fn expect_text<'value>(field: &FieldDef, value: &'value Value) -> Result<&'value str, String> {
    match value {
        Value::Text(text) => Ok(text),
        other => Err(wrong_type_message(field, "a string", other)),
    }
}

/// Rejects text longer than `max_length` characters (Unicode scalar values).
fn check_length(field: &FieldDef, text: &str, max_length: u32) -> Result<(), String> {
    let limit = usize::try_from(max_length).unwrap_or(usize::MAX);
    let length = text.chars().count();
    if length > limit {
        return Err(format!(
            "Field '{}' must be at most {max_length} characters (got {length})",
            field.name
        ));
    }
    Ok(())
}

/// Every character Unicode counts as a line break (UAX #14's mandatory breaks): a "single line"
/// shown by any client must not be broken by one of them.
const LINE_BREAKS: [char; 7] = [
    '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{2028}', '\u{2029}',
];

fn normalise_single_line_text(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let text = expect_text(field, value)?;
    if text.contains(LINE_BREAKS) {
        return Err(format!(
            "Field '{}' must be a single line (no line breaks)",
            field.name
        ));
    }
    check_length(
        field,
        text,
        field.max_length.unwrap_or(DEFAULT_SINGLE_LINE_MAX_LENGTH),
    )?;
    Ok(Value::Text(text.to_owned()))
}

/// For string types with a format: requires a string, maps a blank one to `Null`, and hands the
/// trimmed text to `normalise_trimmed`.
fn normalise_formatted_text(
    field: &FieldDef,
    value: &Value,
    normalise_trimmed: impl Fn(&FieldDef, &str) -> Result<Value, String>,
) -> Result<Value, String> {
    let expected = match field.field_type {
        FieldType::Date => "a date string (YYYY-MM-DD)",
        FieldType::Datetime | FieldType::CreatedAt | FieldType::UpdatedAt => "a date-time string",
        FieldType::User | FieldType::CreatedBy | FieldType::UpdatedBy => "a user id string",
        _ => "a string",
    };
    let text = match value {
        Value::Text(text) => text.trim(),
        other => return Err(wrong_type_message(field, expected, other)),
    };
    if text.is_empty() {
        return Ok(Value::Null);
    }
    normalise_trimmed(field, text)
}

fn normalise_email(field: &FieldDef, text: &str) -> Result<Value, String> {
    let address = text.to_lowercase();
    if is_valid_email_address(&address) {
        Ok(Value::Text(address))
    } else {
        Err(format!(
            "Field '{}' must be a valid email address",
            field.name
        ))
    }
}

/// A practical RFC 5322 addr-spec check: a dot-atom local part (no quoted strings), `@`, and a
/// domain of at least two DNS labels whose last one is not all digits (no address literals).
pub fn is_valid_email_address(address: &str) -> bool {
    if address.len() > 254 {
        return false;
    }
    let Some((local_part, domain)) = address.rsplit_once('@') else {
        return false;
    };
    is_valid_email_local_part(local_part) && is_valid_email_domain(domain)
}

fn is_valid_email_local_part(local_part: &str) -> bool {
    !local_part.is_empty()
        && local_part.len() <= 64
        && local_part.split('.').all(|atom| {
            !atom.is_empty()
                && atom.chars().all(|character| {
                    character.is_ascii_alphanumeric()
                        || EMAIL_LOCAL_PART_SYMBOLS.contains(character)
                })
        })
}

fn is_valid_email_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let labels_are_valid = labels.iter().all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || character == '-')
    });
    let top_level_has_letter = labels.last().is_some_and(|label| {
        label
            .chars()
            .any(|character| character.is_ascii_alphabetic())
    });
    domain.len() <= 253 && labels.len() >= 2 && labels_are_valid && top_level_has_letter
}

/// An absolute `http://` or `https://` URL with a host, stored as written (trimmed).
fn normalise_url(field: &FieldDef, text: &str) -> Result<Value, String> {
    let invalid = || {
        format!(
            "Field '{}' must be a valid absolute http or https URL",
            field.name
        )
    };
    let lowercase = text.to_ascii_lowercase();
    let has_web_scheme = lowercase.starts_with("http://") || lowercase.starts_with("https://");
    if !has_web_scheme || text.chars().any(char::is_whitespace) {
        return Err(invalid());
    }
    let parsed = url::Url::parse(text).map_err(|_| invalid())?;
    let has_host = parsed.host_str().is_some_and(|host| !host.is_empty());
    if !matches!(parsed.scheme(), "http" | "https") || !has_host {
        return Err(invalid());
    }
    Ok(Value::Text(text.to_owned()))
}

/// `+` and 7–15 digits once spaces, dashes, dots and parentheses are dropped; stored as `+digits`.
fn normalise_phone_number(field: &FieldDef, text: &str) -> Result<Value, String> {
    let compact: String = text
        .chars()
        .filter(|character| {
            !PHONE_NUMBER_SEPARATORS.contains(character) && !character.is_whitespace()
        })
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or("");
    let digit_count = digits.chars().count();
    if digits.chars().all(|character| character.is_ascii_digit()) && (7..=15).contains(&digit_count)
    {
        Ok(Value::Text(compact))
    } else {
        Err(format!(
            "Field '{}' must be a phone number in international format: '+' and 7 to 15 digits",
            field.name
        ))
    }
}

/// The exact i64 an integral f64 stands for, if it is in range.
fn integral_float_to_i64(number: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 in [-2^63, 2^63) with no fraction is an i64.
    const TWO_TO_THE_63: f64 = 9_223_372_036_854_775_808.0;
    if number.is_finite()
        && number.fract() == 0.0
        && (-TWO_TO_THE_63..TWO_TO_THE_63).contains(&number)
    {
        // Exact: the checks above prove the value is integral and inside i64's range.
        Some(number as i64)
    } else {
        None
    }
}

/// An integer value: an Int, or a Float without a fractional part that fits an i64.
fn expect_integer(field: &FieldDef, value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(number) => Ok(*number),
        Value::Float(number) if number.is_finite() && number.fract() == 0.0 => {
            integral_float_to_i64(*number).ok_or_else(|| {
                format!(
                    "Field '{}' is out of range for a 64-bit integer",
                    field.name
                )
            })
        }
        Value::Float(number) => Err(format!(
            "Field '{}' expects an integer, got {number}",
            field.name
        )),
        other => Err(wrong_type_message(field, "an integer", other)),
    }
}

/// Rejects a number outside `[minimum, maximum]` (either bound optional).
fn check_bounds(
    field: &FieldDef,
    number: f64,
    minimum: Option<f64>,
    maximum: Option<f64>,
) -> Result<(), String> {
    if let Some(minimum) = minimum {
        if number < minimum {
            return Err(format!("Field '{}' must be at least {minimum}", field.name));
        }
    }
    if let Some(maximum) = maximum {
        if number > maximum {
            return Err(format!("Field '{}' must be at most {maximum}", field.name));
        }
    }
    Ok(())
}

fn normalise_integer(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let number = expect_integer(field, value)?;
    // Bounds are f64 options; a comparison in f64 is what the config can express.
    check_bounds(field, number as f64, field.min, field.max)?;
    Ok(Value::Int(number))
}

/// `number` rounded to `precision` digits after the point, half away from zero, on its shortest
/// decimal spelling: the digits the client wrote are rounded, not the binary approximation, so
/// 2.675 gives 2.68 and 0.125 gives 0.13 (what a person rounding by hand expects).
pub fn round_to_precision(number: f64, precision: u32) -> f64 {
    if !number.is_finite() {
        return number;
    }
    let digits = usize::try_from(precision.min(MAX_MEANINGFUL_PRECISION)).unwrap_or(0);
    // Display for f64 is the shortest round-trip spelling and never uses exponent notation.
    let spelled = number.abs().to_string();
    let (integer_part, fraction_part) = spelled.split_once('.').unwrap_or((&spelled, ""));
    if fraction_part.len() <= digits {
        return number;
    }
    let round_up = fraction_part
        .as_bytes()
        .get(digits)
        .is_some_and(|next_digit| *next_digit >= b'5');
    let mut kept: Vec<u8> = integer_part
        .bytes()
        .chain(fraction_part.bytes().take(digits))
        .collect();
    if round_up {
        increment_decimal_digits(&mut kept);
    }
    let integer_length = kept.len() - digits;
    let (integer_digits, fraction_digits) = kept.split_at(integer_length);
    let rounded_text = format!(
        "{}.{}",
        String::from_utf8_lossy(integer_digits),
        String::from_utf8_lossy(fraction_digits)
    );
    let rounded: f64 = rounded_text.parse().unwrap_or(number.abs());
    if number.is_sign_negative() {
        -rounded
    } else {
        rounded
    }
}

/// Adds one to the last digit of an ASCII decimal digit string, carrying as far as needed.
fn increment_decimal_digits(digits: &mut Vec<u8>) {
    for digit in digits.iter_mut().rev() {
        if *digit == b'9' {
            *digit = b'0';
        } else {
            *digit += 1;
            return;
        }
    }
    digits.insert(0, b'1');
}

/// The stored form of a non-integer number: Int when integral and in range (as JSON input would
/// arrive), else Float.
fn number_value(number: f64) -> Value {
    integral_float_to_i64(number).map_or(Value::Float(number), Value::Int)
}

fn normalise_decimal(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let number = match value {
        // Beyond ±2^53 an i64 rounds to the nearest f64: a decimal field is an f64 by definition.
        Value::Int(number) => *number as f64,
        Value::Float(number) if number.is_finite() => *number,
        Value::Float(_) => return Err(format!("Field '{}' must be a finite number", field.name)),
        other => return Err(wrong_type_message(field, "a number", other)),
    };
    let precision = match field.field_type {
        FieldType::Percentage => field.precision,
        _ => Some(field.precision.unwrap_or(DEFAULT_DECIMAL_PRECISION)),
    };
    let rounded = precision.map_or(number, |digits| round_to_precision(number, digits));
    let (minimum, maximum) = match field.field_type {
        FieldType::Percentage => (
            Some(field.min.unwrap_or(0.0)),
            Some(field.max.unwrap_or(100.0)),
        ),
        _ => (field.min, field.max),
    };
    check_bounds(field, rounded, minimum, maximum)?;
    Ok(number_value(rounded))
}

/// The highest rating a rating field allows: its `max` (rounded down) or 5.
pub fn rating_max(field: &FieldDef) -> i64 {
    field
        .max
        .and_then(|maximum| integral_float_to_i64(maximum.floor()))
        .filter(|maximum| *maximum >= 1)
        .unwrap_or(DEFAULT_RATING_MAX)
}

fn normalise_rating(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let number = expect_integer(field, value)?;
    let maximum = rating_max(field);
    if !(1..=maximum).contains(&number) {
        return Err(format!(
            "Field '{}' must be between 1 and {maximum}",
            field.name
        ));
    }
    Ok(Value::Int(number))
}

/// `YYYY-MM-DD`, or a datetime whose date part is kept as written (no shift to UTC: a date is a
/// calendar day, not an instant).
fn normalise_date(field: &FieldDef, text: &str) -> Result<Value, String> {
    let invalid = || format!("Field '{}' must be a valid date (YYYY-MM-DD)", field.name);
    let date_part = text.get(..10).ok_or_else(invalid)?;
    let has_date_shape = date_part.bytes().enumerate().all(|(position, byte)| {
        if position == 4 || position == 7 {
            byte == b'-'
        } else {
            byte.is_ascii_digit()
        }
    });
    if !has_date_shape || parse_date(date_part).is_none() {
        return Err(invalid());
    }
    if text.len() > 10 && parse_datetime_ms(text).is_none() {
        return Err(invalid());
    }
    Ok(Value::Text(date_part.to_owned()))
}

fn normalise_datetime_text(field: &FieldDef, text: &str) -> Result<Value, String> {
    normalise_datetime(text).map(Value::Text).ok_or_else(|| {
        format!(
            "Field '{}' must be a valid date-time (RFC 3339, YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)",
            field.name
        )
    })
}

fn options_list(field: &FieldDef) -> String {
    match field.options.as_deref() {
        Some(options) if !options.is_empty() => options.join(", "),
        _ => "(no options defined)".to_owned(),
    }
}

fn is_option(field: &FieldDef, candidate: &str) -> bool {
    field
        .options
        .as_deref()
        .is_some_and(|options| options.iter().any(|option| option == candidate))
}

/// One of the field's `options`, matched exactly (case-sensitive, after trimming).
fn normalise_single_select(field: &FieldDef, text: &str) -> Result<Value, String> {
    if is_option(field, text) {
        Ok(Value::Text(text.to_owned()))
    } else {
        Err(format!(
            "Field '{}' must be one of: {}",
            field.name,
            options_list(field)
        ))
    }
}

/// An array of distinct option strings, stored in the order given.
fn normalise_multi_select(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let Value::List(items) = value else {
        return Err(wrong_type_message(field, "an array of strings", value));
    };
    let mut seen = BTreeSet::new();
    let mut stored = Vec::with_capacity(items.len());
    for item in items {
        let Value::Text(text) = item else {
            return Err(format!(
                "Field '{}' expects an array of strings, got an array containing {}",
                field.name,
                item.kind_name()
            ));
        };
        if !is_option(field, text) {
            return Err(format!(
                "Field '{}' values must each be one of: {} ('{text}' is not)",
                field.name,
                options_list(field)
            ));
        }
        if !seen.insert(text.as_str()) {
            return Err(format!(
                "Field '{}' must not contain duplicates ('{text}' appears more than once)",
                field.name
            ));
        }
        stored.push(Value::Text(text.clone()));
    }
    Ok(Value::List(stored))
}

/// A record id given as a positive integer or a string of digits; stored as its canonical string.
fn normalise_relationship(field: &FieldDef, value: &Value) -> Result<Value, String> {
    let invalid = || {
        format!(
            "Field '{}' must be a record id (a positive integer)",
            field.name
        )
    };
    let record_id = match value {
        Value::Int(number) => u64::try_from(*number).map_err(|_| invalid())?,
        Value::Text(text) => {
            let digits = text.trim();
            if digits.is_empty() {
                return Ok(Value::Null);
            }
            if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(invalid());
            }
            digits.parse::<u64>().map_err(|_| invalid())?
        }
        other => return Err(wrong_type_message(field, "a record id", other)),
    };
    if record_id == 0 || i64::try_from(record_id).is_err() {
        return Err(invalid());
    }
    Ok(Value::Text(record_id.to_string()))
}
