//! The planner against the brute-force scan on real tables (built through the registry and the
//! table actors): for random data — created, updated, trashed, purged — and random filters,
//! sorts, searches, paging and aggregates, the indexed answer is the scan's answer (same ids,
//! same order, same total). Plus the access path each kind of request gets.

mod query_support;

use std::sync::Arc;

use proptest::prelude::*;
use tabula_actors::query::aggregate::AggregateSpec;
use tabula_actors::query::filter::{Attribute, CompareOp, Filter};
use tabula_actors::query::search::{parse_search, SearchScope};
use tabula_actors::query::{
    list, list_by_scan, parse_list_query, ListPage, ListRequest, SortKey, TrashMode,
};
use tabula_actors::registry::Registry;
use tabula_storage::Value;

use query_support::{
    create, delete, items_schema, list_of, pairs, parse_json, table, text, update, with_registry,
    LIMITS,
};

const TITLE: u32 = 1;
const STATUS: u32 = 2;
const PRIORITY: u32 = 3;
const SCORE: u32 = 4;
const CODE: u32 = 5;
const TAGS: u32 = 6;
const DUE: u32 = 7;
const DONE: u32 = 8;
const NOTES: u32 = 9;

const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "omega"];

#[derive(Debug, Clone)]
struct RecordSpec {
    title: Option<String>,
    status: Option<&'static str>,
    priority: Option<i64>,
    score: Option<f64>,
    code: Option<String>,
    tags: Vec<&'static str>,
    due: Option<String>,
    done: bool,
    notes: Option<String>,
}

impl RecordSpec {
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![("done", Value::Bool(self.done))];
        let mut optional = |name: &'static str, value: Option<Value>| {
            if let Some(value) = value {
                fields.push((name, value));
            }
        };
        optional("title", self.title.clone().map(Value::Text));
        optional("status", self.status.map(text));
        optional("priority", self.priority.map(Value::Int));
        optional("score", self.score.map(Value::Float));
        optional("code", self.code.clone().map(Value::Text));
        optional("due", self.due.clone().map(Value::Text));
        optional("notes", self.notes.clone().map(Value::Text));
        if !self.tags.is_empty() {
            fields.push(("tags", list_of(&self.tags)));
        }
        fields
    }
}

#[derive(Debug, Clone)]
enum Change {
    Update(usize, RecordSpec),
    Trash(usize),
    Purge(usize),
}

fn words() -> impl Strategy<Value = Option<String>> {
    prop::option::of(
        prop::collection::vec(prop::sample::select(WORDS), 1..4).prop_map(|words| words.join(" ")),
    )
}

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    (
        words(),
        prop::option::of(prop::sample::select(&["a", "b", "c", "d"][..])),
        prop::option::of(0i64..6),
        prop::option::of(prop::sample::select(&[1.5, 2.0, 2.25, -1.0, 3.0][..])),
        prop::option::of("c[0-9]"),
        prop::sample::subsequence(vec!["x", "y", "z"], 0..=3),
        prop::option::of("2024-0[1-3]-0[1-5]"),
        any::<bool>(),
        words(),
    )
        .prop_map(
            |(title, status, priority, score, code, tags, due, done, notes)| RecordSpec {
                title,
                status,
                priority,
                score,
                code,
                tags,
                due,
                done,
                notes,
            },
        )
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0usize..40, record_spec()).prop_map(|(index, spec)| Change::Update(index, spec)),
        2 => (0usize..40).prop_map(Change::Trash),
        1 => (0usize..40).prop_map(Change::Purge),
    ]
}

fn compare(attribute: Attribute, op: CompareOp, value: Value) -> Filter {
    Filter::Compare {
        attribute,
        op,
        value,
    }
}

fn op() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Gt,
        CompareOp::Gte,
        CompareOp::Lt,
        CompareOp::Lte,
    ])
}

fn equality() -> impl Strategy<Value = CompareOp> {
    prop::sample::select(vec![CompareOp::Eq, CompareOp::Ne])
}

/// Leaves typed as the parsers type them.
fn leaf() -> impl Strategy<Value = Filter> {
    let field = Attribute::Field;
    let status = prop::sample::select(vec!["a", "b", "c", "d", "e"]).prop_map(text);
    let number = prop_oneof![
        (-1i64..7).prop_map(Value::Int),
        Just(Value::Float(2.5)),
        Just(Value::Float(2.0))
    ];
    let date = "2024-0[1-3]-0[1-5]".prop_map(Value::Text);
    prop_oneof![
        3 => (op(), status.clone()).prop_map(move |(op, value)| compare(field(STATUS), op, value)),
        1 => equality().prop_map(move |op| compare(field(STATUS), op, Value::Null)),
        2 => prop::collection::vec(status, 1..3).prop_map(move |values| Filter::In { attribute: field(STATUS), values }),
        3 => (op(), number.clone()).prop_map(move |(op, value)| compare(field(PRIORITY), op, value)),
        1 => equality().prop_map(move |op| compare(field(PRIORITY), op, Value::Null)),
        1 => prop::collection::vec(number.clone(), 1..4).prop_map(move |values| Filter::In { attribute: field(PRIORITY), values }),
        1 => (op(), number).prop_map(move |(op, value)| compare(field(SCORE), op, value)),
        2 => (op(), "c[0-9]").prop_map(move |(op, code)| compare(field(CODE), op, Value::Text(code))),
        2 => (equality(), prop::sample::select(vec!["x", "y", "z"])).prop_map(move |(op, tag)| compare(field(TAGS), op, text(tag))),
        1 => equality().prop_map(move |op| compare(field(TAGS), op, Value::Null)),
        1 => prop::collection::vec(prop::sample::select(vec!["x", "z"]), 1..3).prop_map(move |tags| Filter::In {
            attribute: field(TAGS),
            values: tags.into_iter().map(text).collect(),
        }),
        2 => (op(), date).prop_map(move |(op, value)| compare(field(DUE), op, value)),
        1 => (equality(), any::<bool>()).prop_map(move |(op, flag)| compare(field(DONE), op, Value::Bool(flag))),
        1 => (prop::sample::select(vec!["%alpha%", "a%", "%ta", "%_e%"]), any::<bool>()).prop_map(move |(pattern, negated)| Filter::Like {
            attribute: field(TITLE),
            pattern: pattern.into(),
            negated,
        }),
        1 => Just(Filter::IsEmpty { attribute: field(TITLE) }),
        2 => (op(), 0i64..35).prop_map(|(op, id)| compare(Attribute::Id, op, Value::Int(id))),
        1 => prop::collection::vec(0i64..35, 1..4).prop_map(|ids| Filter::In {
            attribute: Attribute::Id,
            values: ids.into_iter().map(Value::Int).collect(),
        }),
        1 => Just(compare(Attribute::CreatedAt, CompareOp::Gt, Value::Int(0))),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    let node = leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 1..4).prop_map(Filter::And),
            2 => prop::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
            1 => inner.prop_map(|part| Filter::Not(Box::new(part))),
        ]
    });
    // The top level is usually an AND holding a plannable leaf.
    prop_oneof![
        2 => (leaf(), prop::collection::vec(node.clone(), 0..3)).prop_map(|(first, mut rest)| {
            rest.insert(0, first);
            Filter::And(rest)
        }),
        2 => leaf(),
        1 => node,
    ]
}

fn sort_key() -> impl Strategy<Value = SortKey> {
    (
        prop::sample::select(vec![
            Attribute::Id,
            Attribute::Field(STATUS),
            Attribute::Field(PRIORITY),
            Attribute::Field(SCORE),
            Attribute::Field(TITLE),
            Attribute::Field(DUE),
            Attribute::Field(TAGS),
            Attribute::Field(CODE),
            Attribute::CreatedAt,
            Attribute::UpdatedAt,
        ]),
        any::<bool>(),
    )
        .prop_map(|(attribute, descending)| SortKey {
            attribute,
            descending,
        })
}

fn request() -> impl Strategy<Value = ListRequest> {
    let searches = prop::option::weighted(
        0.25,
        prop::sample::select(vec![
            "alpha",
            "alpha beta",
            "\"alpha beta\"",
            "gamma -delta",
            "beta or omega",
            "omega",
        ]),
    );
    // A caller who reads only some search fields, or is under a row rule.
    let scopes = prop::option::weighted(
        0.3,
        (
            prop::sample::select(vec![vec![TITLE], vec![NOTES], vec![TITLE, NOTES], vec![]]),
            prop::option::weighted(0.5, leaf()),
        )
            .prop_map(|(fields, rows)| SearchScope { fields, rows }),
    );
    let aggregates = prop::option::weighted(
        0.15,
        Just(AggregateSpec {
            count: true,
            sum: vec![PRIORITY, SCORE],
            avg: vec![PRIORITY],
            min: vec![TITLE],
            max: vec![DUE],
        }),
    );
    (
        prop::option::weighted(0.85, filter()),
        prop::collection::vec(sort_key(), 0..3),
        (
            0u64..4,
            0u64..8,
            prop::option::weighted(0.2, 0u64..35),
            any::<bool>(),
        ),
        prop::sample::select(vec![
            TrashMode::Live,
            TrashMode::Live,
            TrashMode::All,
            TrashMode::Trashed,
        ]),
        (searches, scopes),
        aggregates,
        prop::option::weighted(0.15, prop::sample::select(vec![STATUS, TAGS, PRIORITY])),
    )
        .prop_map(
            |(
                filter,
                sort,
                (offset, limit, after, skip_total),
                trash,
                (search, search_scope),
                aggregate,
                group_by,
            )| ListRequest {
                filter,
                sort,
                offset,
                limit,
                after,
                skip_total,
                trash,
                search: search.and_then(|text| parse_search(text).ok().flatten()),
                search_scope,
                aggregate,
                group_by,
                ..ListRequest::default()
            },
        )
}

async fn build(registry: &Registry, records: &[RecordSpec], changes: &[Change]) {
    let items = table(registry, "items");
    let mut ids = Vec::new();
    for record in records {
        if let Some(id) = create(&items, record.fields()).await {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return;
    }
    for change in changes {
        match change {
            Change::Update(index, spec) => {
                let mut fields = spec.fields();
                // Clear what the new version leaves out.
                for name in [
                    "title", "status", "priority", "score", "code", "due", "notes", "tags",
                ] {
                    if !fields.iter().any(|(field, _)| *field == name) {
                        fields.push((name, Value::Null));
                    }
                }
                update(&items, ids[index % ids.len()], fields).await;
            }
            Change::Trash(index) => {
                delete(&items, ids[index % ids.len()], false).await;
            }
            Change::Purge(index) => {
                delete(&items, ids[index % ids.len()], true).await;
            }
        }
    }
}

fn summary(page: &ListPage) -> (Vec<u64>, Option<u64>, bool) {
    (
        page.records.iter().map(|record| record.id).collect(),
        page.total,
        page.has_more,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn the_planner_answers_what_a_full_scan_answers(
        records in prop::collection::vec(record_spec(), 0..30),
        changes in prop::collection::vec(change(), 0..12),
        requests in prop::collection::vec(request(), 25),
    ) {
        let failures: Vec<String> = with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
            build(&registry, &records, &changes).await;
            let items = table(&registry, "items");
            let mut failures = Vec::new();
            for request in &requests {
                let planned = list(&items.shared, request).expect("the planner answers");
                let scanned = list_by_scan(&items.shared, request).expect("the scan answers");
                if summary(&planned) != summary(&scanned)
                    || planned.records != scanned.records
                    || planned.aggregations != scanned.aggregations
                    || planned.groups != scanned.groups
                    || planned.scores != scanned.scores
                {
                    failures.push(format!(
                        "request {request:?}\nplan {}\nplanned {:?} {:?} {:?}\nscanned {:?} {:?} {:?}",
                        planned.plan,
                        summary(&planned),
                        planned.aggregations,
                        planned.groups,
                        summary(&scanned),
                        scanned.aggregations,
                        scanned.groups,
                    ));
                }
            }
            failures
        });
        prop_assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Access paths

fn plan_of(registry: &Registry, items: &[(&str, &str)]) -> (String, ListPage) {
    let handle = table(registry, "items");
    let request = parse_list_query(&handle.shared.schema(), &pairs(items), LIMITS, parse_json)
        .expect("parses");
    let page = list(&handle.shared, &request).expect("lists");
    let scanned = list_by_scan(&handle.shared, &request).expect("scans");
    assert_eq!(summary(&page), summary(&scanned), "{items:?}");
    (page.plan.clone(), page)
}

#[test]
fn indexed_predicates_and_sorts_use_the_index() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        for index in 0..30i64 {
            let status = ["a", "b", "c"][usize::try_from(index % 3).unwrap_or(0)];
            create(
                &items,
                vec![
                    ("title", text(&format!("item {index}"))),
                    ("status", text(status)),
                    ("priority", Value::Int(index % 5)),
                    ("code", text(&format!("k{index:02}"))),
                ],
            )
            .await;
        }
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("filter", "status='a'")], "index-equality(status)"),
            (
                &[("filter", "status IN ('a','b') AND title ~ '1'")],
                "index-equality(status)",
            ),
            (&[("filters[status][$eq]", "b")], "index-equality(status)"),
            (&[("filter", "code = 'k07'")], "index-equality(code)"),
            (
                &[("filter", "priority >= 2 AND priority < 4")],
                "index-range(priority)",
            ),
            (
                &[("filter", "priority > 2"), ("sort", "-priority")],
                "index-walk(priority)",
            ),
            (&[("sort", "-priority,title")], "index-walk(priority)"),
            (
                &[("sort", "code"), ("limit", "3"), ("skipTotal", "true")],
                "index-walk(code)",
            ),
            (&[("filter", "id IN (3, 5)")], "record-ids"),
            (&[("filter", "title ~ 'item'")], "id-scan"),
            (&[("deleted", "true")], "trash"),
            (&[("search", "item")], "search"),
        ];
        for (query, expected) in cases {
            assert_eq!(plan_of(&registry, query).0, *expected, "{query:?}");
        }
        let (_, page) = plan_of(&registry, &[("filter", "status='a'"), ("limit", "4")]);
        assert_eq!(page.total, Some(10));
        assert_eq!(
            page.records
                .iter()
                .map(|record| record.id)
                .collect::<Vec<_>>(),
            vec![1, 4, 7, 10]
        );
        assert!(page.has_more);
        let (_, page) = plan_of(&registry, &[("sort", "-priority,-code"), ("limit", "3")]);
        let codes: Vec<Value> = page
            .records
            .iter()
            .map(|record| record.value(CODE).clone())
            .collect();
        assert_eq!(codes, vec![text("k29"), text("k24"), text("k19")]);
    });
}

#[test]
fn keyset_paging_and_trash_modes() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        for index in 0..8i64 {
            create(
                &items,
                vec![
                    ("title", text(&format!("t{index}"))),
                    ("priority", Value::Int(index)),
                ],
            )
            .await;
        }
        delete(&items, 2, false).await;
        delete(&items, 5, false).await;
        delete(&items, 6, true).await;
        let ids = |page: &ListPage| {
            page.records
                .iter()
                .map(|record| record.id)
                .collect::<Vec<_>>()
        };
        let (plan, page) = plan_of(&registry, &[("after", "3"), ("limit", "2")]);
        assert_eq!(
            (plan.as_str(), ids(&page), page.total, page.has_more),
            ("id-scan", vec![4, 7], Some(5), true)
        );
        let (_, page) = plan_of(
            &registry,
            &[("after", "7"), ("limit", "2"), ("skipTotal", "true")],
        );
        assert_eq!(
            (ids(&page), page.total, page.has_more),
            (vec![8], None, false)
        );
        let (_, page) = plan_of(&registry, &[("deleted", "true")]);
        assert_eq!((ids(&page), page.total), (vec![2, 5], Some(2)));
        let (_, page) = plan_of(&registry, &[("includeDeleted", "true"), ("sort", "-id")]);
        assert_eq!(
            (ids(&page), page.total),
            (vec![8, 7, 5, 4, 3, 2, 1], Some(7))
        );
        let (_, page) = plan_of(
            &registry,
            &[
                ("filter", "priority >= 1"),
                ("includeDeleted", "true"),
                ("limit", "3"),
            ],
        );
        assert_eq!((ids(&page), page.total), (vec![2, 3, 4], Some(6)));
    });
}

#[test]
fn aggregates_and_groups_cover_the_whole_filtered_set() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        for (status, priority, score) in [
            ("a", 1, 1.5),
            ("a", 4, 2.0),
            ("b", 3, 2.25),
            ("b", 4, 3.0),
            ("c", 2, -1.0),
        ] {
            create(
                &items,
                vec![
                    ("status", text(status)),
                    ("priority", Value::Int(priority)),
                    ("score", Value::Float(score)),
                ],
            )
            .await;
        }
        let (_, page) = plan_of(
            &registry,
            &[
                ("filter", "status != 'c'"),
                (
                    "aggregate",
                    "count,sum:priority,avg:priority,min:score,max:score,sum:score",
                ),
                ("limit", "1"),
            ],
        );
        let aggregations = page.aggregations.expect("aggregations");
        assert_eq!(aggregations.count, Some(4));
        assert_eq!(aggregations.sum.get("priority"), Some(&Value::Int(12)));
        assert_eq!(aggregations.avg.get("priority"), Some(&Value::Int(3)));
        assert_eq!(aggregations.sum.get("score"), Some(&Value::Float(8.75)));
        assert_eq!(aggregations.min.get("score"), Some(&Value::Float(1.5)));
        // Decimal values that are whole numbers are stored as integers.
        assert_eq!(aggregations.max.get("score"), Some(&Value::Int(3)));
        assert_eq!(page.records.len(), 1);
        let (_, page) = plan_of(
            &registry,
            &[("groupBy", "status"), ("aggregate", "avg:score")],
        );
        let groups = page.groups.expect("groups");
        let summary: Vec<(Value, u64, Option<Value>)> = groups
            .iter()
            .map(|group| {
                let average = group
                    .aggregations
                    .as_ref()
                    .and_then(|aggregations| aggregations.avg.get("score").cloned());
                (group.name.clone(), group.count, average)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (text("a"), 2, Some(Value::Float(1.75))),
                (text("b"), 2, Some(Value::Float(2.625))),
                (text("c"), 1, Some(Value::Int(-1))),
            ]
        );
    });
}

#[test]
fn cached_totals_follow_every_write() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        for _ in 0..3 {
            create(&items, vec![("status", text("a"))]).await;
        }
        let total = |registry: &Registry| {
            plan_of(registry, &[("filter", "status='a'"), ("limit", "1")])
                .1
                .total
        };
        assert_eq!(total(&registry), Some(3));
        assert_eq!(total(&registry), Some(3), "answered from the cache");
        create(&items, vec![("status", text("a"))]).await;
        assert_eq!(total(&registry), Some(4));
        update(&items, 1, vec![("status", text("b"))]).await;
        assert_eq!(total(&registry), Some(3));
        delete(&items, 2, false).await;
        assert_eq!(total(&registry), Some(2));
        delete(&items, 3, true).await;
        assert_eq!(total(&registry), Some(1));
    });
}
