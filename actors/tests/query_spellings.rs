//! Every spelling of a list request (SPEC §4.2) compiles to the same engine request: the
//! structured JSON filter, the `field:value` shortcut, SonicJs bracket filters,
//! `filterByFormula`, the three sort spellings, paging, `fields`, `search`, `expand`,
//! `aggregate`, `groupBy` and views — with the error each mistake gets.

mod query_support;

use tabula_actors::query::aggregate::AggregateSpec;
use tabula_actors::query::filter::{Attribute, CompareOp, Filter};
use tabula_actors::query::{
    check_view, parse_list_query, parse_view_query, ListRequest, SortKey, TrashMode,
};
use tabula_actors::DomainError;
use tabula_storage::{TableSchema, Value};

use query_support::{items_schema, pairs, parse_json, text, view, LIMITS};

fn request(items: &[(&str, &str)]) -> ListRequest {
    request_in(&items_schema(), items)
}

fn request_in(schema: &TableSchema, items: &[(&str, &str)]) -> ListRequest {
    match parse_list_query(schema, &pairs(items), LIMITS, parse_json) {
        Ok(request) => request,
        Err(error) => panic!("{items:?} should parse, got {error:?}"),
    }
}

fn filter(items: &[(&str, &str)]) -> Filter {
    request(items).filter.expect("a filter")
}

/// `(errors[0].field, message)` of a 400.
fn failure(items: &[(&str, &str)]) -> (String, String) {
    match parse_list_query(&items_schema(), &pairs(items), LIMITS, parse_json) {
        Err(DomainError::BadRequest { message, errors }) => (errors[0].field.clone(), message),
        other => panic!("{items:?} should be a 400, got {other:?}"),
    }
}

fn compare(field_id: u32, op: CompareOp, value: Value) -> Filter {
    Filter::Compare {
        attribute: Attribute::Field(field_id),
        op,
        value,
    }
}

fn like(field_id: u32, pattern: &str) -> Filter {
    Filter::Like {
        attribute: Attribute::Field(field_id),
        pattern: pattern.into(),
        negated: false,
    }
}

const TITLE: u32 = 1;
const STATUS: u32 = 2;
const PRIORITY: u32 = 3;
const TAGS: u32 = 6;
const DONE: u32 = 8;
const OWNER: u32 = 11;

// ---------------------------------------------------------------------------------------------
// Filters

#[test]
fn the_structured_form_has_fifteen_operators() {
    let condition = |field: &str, operator: &str, value: &str| {
        format!(r#"{{"field":"{field}","operator":"{operator}","value":{value}}}"#)
    };
    let cases: Vec<(String, Filter)> = vec![
        (
            condition("status", "equals", r#""a""#),
            compare(STATUS, CompareOp::Eq, text("a")),
        ),
        (
            condition("status", "notEquals", r#""a""#),
            compare(STATUS, CompareOp::Ne, text("a")),
        ),
        (
            condition("priority", "greaterThan", "2"),
            compare(PRIORITY, CompareOp::Gt, Value::Int(2)),
        ),
        (
            condition("priority", "lessThan", r#""2""#),
            compare(PRIORITY, CompareOp::Lt, Value::Int(2)),
        ),
        (
            condition("priority", "greaterThanOrEqual", "2"),
            compare(PRIORITY, CompareOp::Gte, Value::Int(2)),
        ),
        (
            condition("priority", "lessThanOrEqual", "2.5"),
            compare(PRIORITY, CompareOp::Lte, Value::Float(2.5)),
        ),
        (
            condition("title", "contains", r#""50%""#),
            like(TITLE, r"%50\%%"),
        ),
        (
            condition("tags", "contains", r#""x""#),
            compare(TAGS, CompareOp::Eq, text("x")),
        ),
        (
            condition("title", "startsWith", r#""ab""#),
            like(TITLE, "ab%"),
        ),
        (
            condition("title", "endsWith", r#""a_b""#),
            like(TITLE, r"%a\_b"),
        ),
        (
            condition("owner", "isNull", "null"),
            compare(OWNER, CompareOp::Eq, Value::Null),
        ),
        (
            r#"{"field":"owner","operator":"isNotNull"}"#.into(),
            compare(OWNER, CompareOp::Ne, Value::Null),
        ),
        (
            condition("title", "isEmpty", "null"),
            Filter::IsEmpty {
                attribute: Attribute::Field(TITLE),
            },
        ),
        (
            condition("done", "isTrue", "null"),
            compare(DONE, CompareOp::Eq, Value::Bool(true)),
        ),
        (
            condition("done", "isFalse", "null"),
            compare(DONE, CompareOp::Eq, Value::Bool(false)),
        ),
        (
            condition("status", "in", r#"["a","b"]"#),
            Filter::In {
                attribute: Attribute::Field(STATUS),
                values: vec![text("a"), text("b")],
            },
        ),
    ];
    for (json, expected) in cases {
        assert_eq!(filter(&[("filter", &json)]), expected, "{json}");
    }
}

#[test]
fn the_structured_form_nests_and_or_not() {
    let json = r#"{"and":[{"field":"status","operator":"equals","value":"a"},
        {"or":[{"field":"priority","operator":"greaterThan","value":3},
               {"not":{"field":"owner","operator":"isNull"}}]}]}"#;
    assert_eq!(
        filter(&[("filter", json)]),
        Filter::And(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            Filter::Or(vec![
                compare(PRIORITY, CompareOp::Gt, Value::Int(3)),
                Filter::Not(Box::new(compare(OWNER, CompareOp::Eq, Value::Null))),
            ]),
        ])
    );
}

#[test]
fn structured_mistakes_are_400s() {
    assert_eq!(
        failure(&[(
            "filter",
            r#"{"field":"status","operator":"like","value":"a"}"#
        )])
        .1,
        "unknown operator 'like' (expected one of: equals, notEquals, greaterThan, lessThan, \
         greaterThanOrEqual, lessThanOrEqual, contains, startsWith, endsWith, isNull, isNotNull, \
         isEmpty, isTrue, isFalse, in)"
    );
    assert_eq!(
        failure(&[(
            "filter",
            r#"{"field":"nosuch","operator":"equals","value":1}"#
        )]),
        ("filter".into(), "unknown field: nosuch".into())
    );
    assert_eq!(
        failure(&[("filter", r#"{"field":"title","operator":"isTrue"}"#)]).1,
        "operator isTrue cannot be used with single-line-text field 'title'"
    );
    assert_eq!(
        failure(&[(
            "filter",
            r#"{"field":"priority","operator":"equals","value":"x"}"#
        )])
        .1,
        "'x' is not a number for integer field 'priority'"
    );
    assert!(failure(&[("filter", r#"{"and": 3"#)])
        .1
        .starts_with("invalid JSON filter: "));
}

#[test]
fn the_shortcut_is_typed_equality() {
    assert_eq!(
        filter(&[("filter", "status:a")]),
        compare(STATUS, CompareOp::Eq, text("a"))
    );
    assert_eq!(
        filter(&[("filter", "priority:3")]),
        compare(PRIORITY, CompareOp::Eq, Value::Int(3))
    );
    assert_eq!(
        filter(&[("filter", "done:true")]),
        compare(DONE, CompareOp::Eq, Value::Bool(true))
    );
    assert_eq!(
        failure(&[("filter", "priority:x")]),
        (
            "filter".into(),
            "'x' is not a number for integer field 'priority'".into()
        )
    );
    assert_eq!(
        failure(&[("filter", "nosuch:1")]).1,
        "unknown field: nosuch"
    );
}

#[test]
fn sonicjs_bracket_filters() {
    assert_eq!(
        filter(&[("filters[status][$eq]", "a")]),
        compare(STATUS, CompareOp::Eq, text("a"))
    );
    assert_eq!(
        filter(&[("filters[status]", "a")]),
        compare(STATUS, CompareOp::Eq, text("a"))
    );
    // Repeated keys are OR-ed.
    assert_eq!(
        filter(&[("filters[status][$eq]", "a"), ("filters[status][$eq]", "b")]),
        Filter::Or(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            compare(STATUS, CompareOp::Eq, text("b")),
        ])
    );
    // Different operators on one field make a range.
    assert_eq!(
        filter(&[
            ("filters[priority][$gte]", "2"),
            ("filters[priority][$lte]", "4")
        ]),
        Filter::And(vec![
            compare(PRIORITY, CompareOp::Gte, Value::Int(2)),
            compare(PRIORITY, CompareOp::Lte, Value::Int(4)),
        ])
    );
    for (operator, op) in [
        ("$ne", CompareOp::Ne),
        ("$gt", CompareOp::Gt),
        ("$lt", CompareOp::Lt),
    ] {
        assert_eq!(
            filter(&[(&format!("filters[priority][{operator}]"), "3")]),
            compare(PRIORITY, op, Value::Int(3))
        );
    }
    assert_eq!(
        filter(&[("filters[status][$in]", "a, b")]),
        Filter::In {
            attribute: Attribute::Field(STATUS),
            values: vec![text("a"), text("b")],
        }
    );
    assert_eq!(
        filter(&[("filters[title][$contains]", "jo")]),
        like(TITLE, "%jo%")
    );
    assert_eq!(
        failure(&[("filters[title][$regex]", "x")]),
        (
            "filters".into(),
            "unknown operator '$regex' (expected $eq, $ne, $gt, $gte, $lt, $lte, $contains or $in)"
                .into()
        )
    );
    assert_eq!(
        failure(&[("filters[nosuch][$eq]", "x")]).1,
        "unknown field: nosuch"
    );
}

#[test]
fn filter_by_formula() {
    assert_eq!(
        filter(&[("filterByFormula", "AND({status}='a',{priority}>=3)")]),
        Filter::And(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            compare(PRIORITY, CompareOp::Gte, Value::Int(3)),
        ])
    );
    assert_eq!(
        filter(&[(
            "filterByFormula",
            r#"OR({status} = "a", NOT({priority} != 2))"#
        )]),
        Filter::Or(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            Filter::Not(Box::new(compare(PRIORITY, CompareOp::Ne, Value::Int(2)))),
        ])
    );
    // A literal on the left flips the comparison.
    assert_eq!(
        filter(&[("filterByFormula", "3 < {priority}")]),
        compare(PRIORITY, CompareOp::Gt, Value::Int(3))
    );
    assert_eq!(
        filter(&[("filterByFormula", "{done} = TRUE()")]),
        compare(DONE, CompareOp::Eq, Value::Bool(true))
    );
    assert_eq!(
        filter(&[("filterByFormula", "{title} = BLANK()")]),
        Filter::IsEmpty {
            attribute: Attribute::Field(TITLE)
        }
    );
    assert_eq!(
        failure(&[("filterByFormula", "AND({status}='a'")]),
        (
            "filterByFormula".into(),
            "expected ')' at end of formula".into()
        )
    );
    assert_eq!(
        failure(&[("filterByFormula", "{nosuch}=1")]).1,
        "unknown field: nosuch"
    );
    assert_eq!(
        failure(&[("filterByFormula", "{title}='abc")]).1,
        "unterminated string at position 8"
    );
    assert_eq!(
        failure(&[("filterByFormula", "{title} # 'a'")]).1,
        "unexpected character '#' at position 8"
    );
    assert_eq!(
        failure(&[("filterByFormula", "{priority} > 'x'")]).1,
        "'x' is not a number for integer field 'priority'"
    );
}

#[test]
fn several_spellings_are_anded() {
    assert_eq!(
        filter(&[
            ("filter", "status='a'"),
            ("filters[priority][$gt]", "1"),
            ("filterByFormula", "{done}=TRUE()"),
        ]),
        Filter::And(vec![
            compare(STATUS, CompareOp::Eq, text("a")),
            compare(PRIORITY, CompareOp::Gt, Value::Int(1)),
            compare(DONE, CompareOp::Eq, Value::Bool(true)),
        ])
    );
    assert!(request(&[("filter", "  ")]).filter.is_none());
}

// ---------------------------------------------------------------------------------------------
// Paging, sort, shape

#[test]
fn paging_parameters() {
    let default = request(&[]);
    assert_eq!(
        (default.limit, default.offset, default.skip_total),
        (10, 0, false)
    );
    assert_eq!(
        request(&[("limit", "5000")]).limit,
        1000,
        "clamped to the maximum"
    );
    let paged = request(&[("page", "3"), ("perPage", "20")]);
    assert_eq!((paged.limit, paged.offset), (20, 40));
    let offset = request(&[
        ("limit", "5"),
        ("offset", "7"),
        ("skipTotal", "true"),
        ("after", "12"),
    ]);
    assert_eq!(
        (offset.limit, offset.offset, offset.skip_total, offset.after),
        (5, 7, true, Some(12))
    );
    assert_eq!(request(&[("includeDeleted", "true")]).trash, TrashMode::All);
    assert_eq!(request(&[("deleted", "true")]).trash, TrashMode::Trashed);
    assert_eq!(request(&[("deleted", "0")]).trash, TrashMode::Live);
    assert_eq!(
        failure(&[("offset", "9223372036854775808")]).0,
        "offset",
        "an offset past int64 is refused"
    );
    assert_eq!(
        failure(&[("skipTotal", "yes")]),
        (
            "skipTotal".into(),
            "'skipTotal' must be true or false".into()
        )
    );
    assert_eq!(
        failure(&[("limit", "ten")]),
        (
            "limit".into(),
            "'limit' must be a non-negative integer of at most 9223372036854775807".into()
        )
    );
}

#[test]
fn the_three_sort_spellings_agree() {
    let expected = vec![
        SortKey {
            attribute: Attribute::Field(PRIORITY),
            descending: true,
        },
        SortKey {
            attribute: Attribute::CreatedAt,
            descending: false,
        },
    ];
    assert_eq!(
        request(&[("sort", "priority:desc,createdAt:asc")]).sort,
        expected
    );
    assert_eq!(request(&[("sort", "-priority,+createdAt")]).sort, expected);
    // `+` arrives as a space once the query string is decoded.
    assert_eq!(request(&[("sort", "-priority, createdAt")]).sort, expected);
    assert_eq!(
        request(&[("sort[1]", "createdAt"), ("sort[0]", "priority:DESC")]).sort,
        expected
    );
    assert_eq!(
        failure(&[("sort", "nosuch")]),
        ("sort".into(), "unknown field: nosuch".into())
    );
    assert_eq!(
        failure(&[("sort", "priority:up")]).1,
        "unknown sort direction 'up' (expected asc or desc)"
    );
}

#[test]
fn fields_project_by_id() {
    assert_eq!(
        request(&[("fields", "status,title,id")]).projection,
        Some(vec![STATUS, TITLE])
    );
    assert_eq!(request(&[]).projection, None);
    assert_eq!(
        failure(&[("fields", "title,nosuch")]),
        ("fields".into(), "unknown field: nosuch".into())
    );
}

#[test]
fn search_expand_aggregate_group_by() {
    let parsed = request(&[("search", "alpha -beta")])
        .search
        .expect("a search");
    assert_eq!(parsed.clauses[0].required, vec![vec!["alpha".to_string()]]);
    assert_eq!(
        request(&[("expand", "owner, owner.team,items_via_owner")]).expand,
        vec![
            vec!["owner".to_string()],
            vec!["owner".to_string(), "team".to_string()],
            vec!["items_via_owner".to_string()],
        ]
    );
    assert_eq!(
        failure(&[("expand", "a.b.c")]),
        (
            "expand".into(),
            "expand 'a.b.c' is too deep (max 2 levels)".into()
        )
    );
    assert_eq!(
        failure(&[("expand", "a,b,c,d,e,f,g,h,i,j,k")]).1,
        "too many expand names (max 10)"
    );
    let expected = AggregateSpec {
        count: true,
        sum: vec![PRIORITY],
        avg: vec![4],
        min: vec![TITLE],
        max: vec![7],
    };
    assert_eq!(
        request(&[(
            "aggregate",
            "count,sum:priority,avg:score,min:title,max:due"
        )])
        .aggregate,
        Some(expected.clone())
    );
    assert_eq!(
        request(&[(
            "aggregate",
            r#"{"count":true,"sum":["priority"],"avg":"score","min":["title"],"max":["due"]}"#
        )])
        .aggregate,
        Some(expected)
    );
    assert_eq!(
        failure(&[("aggregate", "sum:title")]),
        (
            "aggregate".into(),
            "sum needs a number field, 'title' is single-line-text".into()
        )
    );
    assert_eq!(
        failure(&[("aggregate", "median:priority")]).1,
        "unknown aggregate 'median' (expected count, sum, avg, min or max)"
    );
    assert_eq!(request(&[("groupBy", "status")]).group_by, Some(STATUS));
    assert_eq!(
        failure(&[("groupBy", "nosuch")]),
        ("groupBy".into(), "unknown field: nosuch".into())
    );
}

// ---------------------------------------------------------------------------------------------
// Views

fn schema_with_views() -> TableSchema {
    let mut schema = items_schema();
    let mut open = view("open");
    open.filter = Some(text("status!='d'"));
    open.sort = Some("-priority".into());
    open.fields = Some(vec!["title".into(), "status".into()]);
    let mut structured = view("structured");
    structured.filter = parse_json(r#"{"field":"done","operator":"isTrue"}"#).ok();
    schema.views = vec![open, structured];
    schema
}

#[test]
fn a_view_ands_its_filter_and_lends_its_sort_and_fields() {
    let schema = schema_with_views();
    let applied = request_in(&schema, &[("view", "open"), ("filter", "priority>1")]);
    assert_eq!(
        applied.filter,
        Some(Filter::And(vec![
            compare(STATUS, CompareOp::Ne, text("d")),
            compare(PRIORITY, CompareOp::Gt, Value::Int(1)),
        ]))
    );
    assert_eq!(
        applied.sort,
        vec![SortKey {
            attribute: Attribute::Field(PRIORITY),
            descending: true
        }]
    );
    assert_eq!(applied.projection, Some(vec![TITLE, STATUS]));
    assert_eq!(applied.view.as_deref(), Some("open"));
    // By name too; the request's own sort and fields win.
    let own = request_in(
        &schema,
        &[("view", "open view"), ("sort", "title"), ("fields", "due")],
    );
    assert_eq!(
        own.sort,
        vec![SortKey {
            attribute: Attribute::Field(TITLE),
            descending: false
        }]
    );
    assert_eq!(own.projection, Some(vec![7]));
    let structured =
        parse_view_query(&schema, "structured", &[], LIMITS, parse_json).expect("parses");
    assert_eq!(
        structured.filter,
        Some(compare(DONE, CompareOp::Eq, Value::Bool(true)))
    );
    assert!(matches!(
        parse_list_query(&schema, &pairs(&[("view", "nosuch")]), LIMITS, parse_json),
        Err(DomainError::NotFound(message)) if message == "View 'nosuch' not found"
    ));
}

#[test]
fn view_checks_name_unknown_fields_and_operator_mismatches() {
    let schema = items_schema();
    let mut broken = view("broken");
    broken.filter = Some(text("priority ~ 'x'"));
    broken.sort = Some("-nosuch".into());
    broken.fields = Some(vec!["ghost".into()]);
    broken.group_by = Some("phantom".into());
    assert_eq!(
        check_view(&schema, &broken),
        vec![
            "view 'broken' lists unknown field 'ghost'".to_string(),
            "view 'broken' groups by unknown field 'phantom'".to_string(),
            "view 'broken' sorts by unknown field 'nosuch'".to_string(),
            "view 'broken' filter: operator ~ cannot be used with integer field 'priority'"
                .to_string(),
        ]
    );
    let mut structured = view("s");
    structured.filter =
        parse_json(r#"{"and":[{"field":"nosuch","operator":"equals","value":1}]}"#).ok();
    assert_eq!(
        check_view(&schema, &structured),
        vec!["view 's' filter: unknown field: nosuch".to_string()]
    );
    let mut fine = view("fine");
    fine.filter = Some(text("status IN ('a','b') AND done = true"));
    fine.sort = Some("priority:desc,title".into());
    assert!(check_view(&schema, &fine).is_empty());
}
