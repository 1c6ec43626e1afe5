//! The filter expression language (SPEC §4.2): what each construct compiles to, every error
//! message with its position, and the properties that printing a tree and parsing it back gives
//! the same tree and that no input makes the parser panic.

mod query_support;

use proptest::prelude::*;
use tabula_actors::query::expression::{
    parse_expression, parse_expression_with, print_expression, Variables,
};
use tabula_actors::query::filter::{compare_values, Attribute, CompareOp, Filter};
use tabula_actors::DomainError;
use tabula_storage::{TableSchema, Value};

use query_support::items_schema;

fn parse(text: &str) -> Filter {
    match parse_expression(&items_schema(), text) {
        Ok(filter) => filter,
        Err(error) => panic!("{text:?} should parse, got {error:?}"),
    }
}

/// The message and the `errors[].field` of a 400.
fn failure(text: &str) -> (String, String) {
    match parse_expression(&items_schema(), text) {
        Err(DomainError::BadRequest { message, errors }) => (message, errors[0].field.clone()),
        other => panic!("{text:?} should be a 400, got {other:?}"),
    }
}

fn message(text: &str) -> String {
    let (message, field) = failure(text);
    assert_eq!(field, "filter", "errors name the filter parameter");
    message
}

fn compare(field_id: u32, op: CompareOp, value: Value) -> Filter {
    Filter::Compare {
        attribute: Attribute::Field(field_id),
        op,
        value,
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

const TITLE: u32 = 1;
const STATUS: u32 = 2;
const PRIORITY: u32 = 3;
const SCORE: u32 = 4;
const DUE: u32 = 7;
const DONE: u32 = 8;
const AT: u32 = 10;
const OWNER: u32 = 11;
const EMAIL: u32 = 12;

#[test]
fn the_spec_example_parses_into_one_tree() {
    assert_eq!(
        parse("status='a' AND (priority>=3 || owner=null)"),
        Filter::And(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            Filter::Or(vec![
                compare(PRIORITY, CompareOp::Gte, Value::Int(3)),
                compare(OWNER, CompareOp::Eq, Value::Null),
            ]),
        ])
    );
}

#[test]
fn and_binds_tighter_than_or_and_chains_are_flat() {
    assert_eq!(
        parse("status='a' OR status='b' AND priority>1"),
        Filter::Or(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            Filter::And(vec![
                compare(STATUS, CompareOp::Eq, text("b")),
                compare(PRIORITY, CompareOp::Gt, Value::Int(1)),
            ]),
        ])
    );
    assert_eq!(
        parse("priority>1 && priority<5 && status!='d'"),
        Filter::And(vec![
            compare(PRIORITY, CompareOp::Gt, Value::Int(1)),
            compare(PRIORITY, CompareOp::Lt, Value::Int(5)),
            compare(STATUS, CompareOp::Ne, text("d")),
        ])
    );
    // A parenthesised group stays its own node.
    assert_eq!(
        parse("(priority>1 AND priority<5) AND status='a'"),
        Filter::And(vec![
            Filter::And(vec![
                compare(PRIORITY, CompareOp::Gt, Value::Int(1)),
                compare(PRIORITY, CompareOp::Lt, Value::Int(5)),
            ]),
            compare(STATUS, CompareOp::Eq, text("a")),
        ])
    );
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(
        parse("status='a' and priority>1 Or done=TRUE or owner = NULL"),
        parse("status='a' AND priority>1 OR done=true OR owner=null")
    );
    assert_eq!(parse("status in ('a')"), parse("status IN ('a')"));
}

#[test]
fn every_operator() {
    for (symbol, op) in [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::Ne),
        (">", CompareOp::Gt),
        (">=", CompareOp::Gte),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::Lte),
    ] {
        assert_eq!(
            parse(&format!("priority{symbol}2")),
            compare(PRIORITY, op, Value::Int(2))
        );
    }
    assert_eq!(
        parse("status IN ('a', 'b','c')"),
        Filter::In {
            attribute: Attribute::Field(STATUS),
            values: vec![text("a"), text("b"), text("c")],
        }
    );
    assert_eq!(
        parse("title ~ 'jo_n'"),
        Filter::Like {
            attribute: Attribute::Field(TITLE),
            pattern: "%jo_n%".into(),
            negated: false,
        }
    );
    assert_eq!(
        parse("title !~ 'jo%'"),
        Filter::Like {
            attribute: Attribute::Field(TITLE),
            pattern: "jo%".into(),
            negated: true,
        }
    );
}

#[test]
fn values_and_escapes() {
    assert_eq!(
        parse(r"title='it\'s'"),
        compare(TITLE, CompareOp::Eq, text("it's"))
    );
    assert_eq!(
        parse(r"title='a\\b'"),
        compare(TITLE, CompareOp::Eq, text(r"a\b"))
    );
    assert_eq!(
        parse("priority > -3"),
        compare(PRIORITY, CompareOp::Gt, Value::Int(-3))
    );
    assert_eq!(
        parse("score >= 2.5"),
        compare(SCORE, CompareOp::Gte, Value::Float(2.5))
    );
    assert_eq!(
        parse("score < 1e3"),
        compare(SCORE, CompareOp::Lt, Value::Float(1000.0))
    );
    assert_eq!(
        parse("done = false"),
        compare(DONE, CompareOp::Eq, Value::Bool(false))
    );
}

#[test]
fn comparisons_are_typed_by_the_field() {
    assert_eq!(
        parse("priority = '3'"),
        compare(PRIORITY, CompareOp::Eq, Value::Int(3))
    );
    assert_eq!(
        parse("score = '2.25'"),
        compare(SCORE, CompareOp::Eq, Value::Float(2.25))
    );
    assert_eq!(
        message("priority = 'x'"),
        "'x' is not a number for integer field 'priority'"
    );
    assert_eq!(
        parse("due >= '2024-01-05'"),
        compare(DUE, CompareOp::Gte, text("2024-01-05"))
    );
    // A datetime against a date field compares by its day; a date against a datetime is midnight.
    assert_eq!(
        parse("due = '2024-01-05T10:00:00Z'"),
        compare(DUE, CompareOp::Eq, text("2024-01-05"))
    );
    assert_eq!(
        parse("at >= '2024-01-05'"),
        compare(AT, CompareOp::Gte, text("2024-01-05T00:00:00.000Z"))
    );
    assert_eq!(
        parse("at < '2024-01-05 10:30:00'"),
        compare(AT, CompareOp::Lt, text("2024-01-05T10:30:00.000Z"))
    );
    assert_eq!(
        message("due = 'soon'"),
        "'soon' is not a date for date field 'due'"
    );
    assert_eq!(
        parse("done = 'true'"),
        compare(DONE, CompareOp::Eq, Value::Bool(true))
    );
    assert_eq!(
        parse("email = 'A@B.Example'"),
        compare(EMAIL, CompareOp::Eq, text("a@b.example"))
    );
    assert_eq!(parse("owner = 7"), compare(OWNER, CompareOp::Eq, text("7")));
    assert_eq!(
        parse("id = '42'"),
        Filter::Compare {
            attribute: Attribute::Id,
            op: CompareOp::Eq,
            value: Value::Int(42),
        }
    );
    assert_eq!(
        parse("createdAt >= '2024-01-01'"),
        Filter::Compare {
            attribute: Attribute::CreatedAt,
            op: CompareOp::Gte,
            value: Value::Int(1_704_067_200_000),
        }
    );
}

#[test]
fn operators_that_do_not_fit_the_type_are_refused() {
    assert_eq!(
        message("priority ~ 'x'"),
        "operator ~ cannot be used with integer field 'priority'"
    );
    assert_eq!(
        message("done > true"),
        "operator > cannot be used with checkbox field 'done'"
    );
    assert_eq!(
        message("tags < 'x'"),
        "operator < cannot be used with multi-select field 'tags'"
    );
}

#[test]
fn error_messages_say_what_and_where() {
    // Positions are 0-based character offsets.
    assert_eq!(message("title = 'abc"), "unterminated string at position 8");
    assert_eq!(
        message("title $ 5"),
        "unexpected character '$' at position 6"
    );
    assert_eq!(message("nosuch = 1"), "unknown field: nosuch");
    assert_eq!(message("title 'x'"), "expected operator after field name");
    assert_eq!(message("title"), "expected operator after field name");
    assert_eq!(message("(title = 'x'"), "expected closing parenthesis");
    assert_eq!(
        message("status IN ('a', 'b'"),
        "expected closing parenthesis"
    );
    assert_eq!(
        message("priority > null"),
        "null can only be compared with = or !="
    );
    assert_eq!(
        message("title ~ null"),
        "null can only be compared with = or !="
    );
    assert_eq!(
        message("status IN ('a', null)"),
        "null can only be compared with = or !="
    );
    assert_eq!(
        message("title = 'a' status = 'b'"),
        "expected AND or OR at position 12"
    );
    assert_eq!(message("title = 'a')"), "unexpected ')' at position 11");
    assert_eq!(
        message("title = "),
        "expected a value at end of filter expression"
    );
    assert_eq!(
        message("title = 'a' AND"),
        "unexpected end of filter expression"
    );
    assert_eq!(message("   "), "filter expression is empty");
    assert_eq!(
        message("title = 'é' & x"),
        "unexpected character '&' at position 12"
    );
}

#[test]
fn nesting_stops_at_fifty_levels() {
    let nested = |depth: usize| format!("{}priority = 1{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(
        parse(&nested(50)),
        compare(PRIORITY, CompareOp::Eq, Value::Int(1))
    );
    assert_eq!(
        message(&nested(51)),
        "filter expression too deeply nested (max 50 levels)"
    );
    assert_eq!(
        message(&"(".repeat(5000)),
        "filter expression too deeply nested (max 50 levels)"
    );
}

#[test]
fn expressions_are_at_most_ten_thousand_characters() {
    let padding = " ".repeat(10_000 - "priority = 1".len());
    assert!(parse_expression(&items_schema(), &format!("priority = 1{padding}")).is_ok());
    assert_eq!(
        message(&format!("priority = 1{padding} ")),
        "filter expression too long (max 10000 characters)"
    );
}

#[test]
fn variables_fill_row_filters() {
    let mut variables = Variables::new();
    variables.insert("user.id".into(), text("u7"));
    let filter = parse_expression_with(&items_schema(), "owner = @user.id", Some(&variables));
    assert_eq!(filter.ok(), Some(compare(OWNER, CompareOp::Eq, text("u7"))));
    assert_eq!(
        message("owner = @user.id"),
        "unknown variable @user.id at position 8"
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

fn leaf() -> impl Strategy<Value = Filter> {
    let ops = prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Gt),
        Just(CompareOp::Gte),
        Just(CompareOp::Lt),
        Just(CompareOp::Lte),
    ];
    let equality = prop_oneof![Just(CompareOp::Eq), Just(CompareOp::Ne)];
    let finite = any::<f64>().prop_filter("finite", |number| number.is_finite());
    let number = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        finite.prop_map(Value::Float)
    ];
    let free_text = "\\PC{0,8}";
    prop_oneof![
        (ops.clone(), free_text).prop_map(|(op, value)| compare(TITLE, op, Value::Text(value))),
        (ops.clone(), number.clone()).prop_map(|(op, value)| compare(PRIORITY, op, value)),
        (ops.clone(), number.clone()).prop_map(|(op, value)| compare(SCORE, op, value)),
        (equality.clone(), Just(Value::Null)).prop_map(|(op, value)| compare(OWNER, op, value)),
        (ops.clone(), "20[0-9]{2}-0[1-9]-[12][0-8]").prop_map(|(op, date)| compare(
            DUE,
            op,
            Value::Text(date)
        )),
        (equality.clone(), any::<bool>()).prop_map(|(op, flag)| compare(
            DONE,
            op,
            Value::Bool(flag)
        )),
        (equality, "[xyz]").prop_map(|(op, tag)| compare(6, op, Value::Text(tag))),
        (ops.clone(), "[a-z0-9.@]{1,8}").prop_map(|(op, email)| compare(
            EMAIL,
            op,
            Value::Text(email)
        )),
        (ops.clone(), any::<i64>()).prop_map(|(op, id)| Filter::Compare {
            attribute: Attribute::Id,
            op,
            value: Value::Int(id),
        }),
        (ops, any::<i64>()).prop_map(|(op, millis)| Filter::Compare {
            attribute: Attribute::CreatedAt,
            op,
            value: Value::Int(millis),
        }),
        prop::collection::vec("[a-d]", 1..4).prop_map(|values| Filter::In {
            attribute: Attribute::Field(STATUS),
            values: values.into_iter().map(Value::Text).collect(),
        }),
        prop::collection::vec(number, 1..4).prop_map(|values| Filter::In {
            attribute: Attribute::Field(PRIORITY),
            values,
        }),
        ("\\PC{0,4}", "\\PC{0,4}", any::<bool>()).prop_map(|(before, after, negated)| {
            Filter::Like {
                attribute: Attribute::Field(TITLE),
                pattern: format!("{before}%{after}").replace('\\', "").into(),
                negated,
            }
        }),
    ]
}

fn tree() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner, 2..4).prop_map(Filter::Or),
        ]
    })
}

fn schema() -> TableSchema {
    items_schema()
}

fn any_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![Just(i64::MAX), Just(i64::MIN), Just(1 << 53), -3i64..3].prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        prop_oneof![
            Just(9.223372036854776e18),
            Just(-0.0),
            Just(2.5),
            Just(9007199254740993.0)
        ]
        .prop_map(Value::Float),
        "\\PC{0,4}".prop_map(Value::Text),
        "[a\\x00b]{0,3}".prop_map(Value::Text),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop::collection::vec(inner, 0..3).prop_map(Value::List)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_filter_order_is_the_index_order(left in any_value(), right in any_value()) {
        let encode = |value: &Value| {
            let mut key = Vec::new();
            tabula_storage::keys::encode_index_value(value, &mut key);
            key
        };
        prop_assert_eq!(compare_values(&left, &right), encode(&left).cmp(&encode(&right)));
    }

    #[test]
    fn printing_a_tree_and_parsing_it_back_gives_the_same_tree(filter in tree()) {
        let schema = schema();
        let printed = print_expression(&schema, &filter).expect("the generated trees are printable");
        let parsed = parse_expression(&schema, &printed);
        prop_assert_eq!(parsed.ok(), Some(filter), "printed as {}", printed);
    }

    #[test]
    fn random_text_never_panics_the_parser(text in "\\PC{0,200}") {
        let _ = parse_expression(&schema(), &text);
    }

    #[test]
    fn random_grammar_soup_never_panics_the_parser(
        text in "[a-z_ ()'\\\\=!<>~&|,0-9.@-]{0,300}|(title|priority|status|AND|OR|IN|null|true|\\(|\\)|'x'|=|~|!=|>=|,| )*"
    ) {
        let _ = parse_expression(&schema(), &text);
    }
}
