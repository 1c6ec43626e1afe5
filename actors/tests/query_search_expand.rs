//! Full-text search (its index kept by the table actor in the record's own write batch, the
//! query syntax, relevance order, filters and trash) and `expand` of relationships, forward,
//! nested and reverse, on real tables.

mod query_support;

use std::sync::Arc;

use tabula_actors::query::expand::{check_expand, expand, Expanded, FullAccess, ReadAccess};
use tabula_actors::query::{list, parse_list_query, ListPage};
use tabula_actors::registry::Registry;
use tabula_actors::DomainError;
use tabula_storage::{FieldDef, TableSchema, Value};

use query_support::{
    create, delete, items_schema, pairs, parse_json, people_schema, table, teams_schema, text,
    update, with_registry, LIMITS,
};

fn run(registry: &Registry, items: &[(&str, &str)]) -> ListPage {
    let handle = table(registry, "items");
    let request = parse_list_query(&handle.shared.schema(), &pairs(items), LIMITS, parse_json)
        .expect("parses");
    list(&handle.shared, &request).expect("lists")
}

fn ids(page: &ListPage) -> Vec<u64> {
    page.records.iter().map(|record| record.id).collect()
}

async fn seed_texts(registry: &Registry) {
    let items = table(registry, "items");
    for (title, notes) in [
        ("Postgres tuning guide", "indexes and full text search"), // 1
        ("MySQL replication", "postgres users may like it"),       // 2
        ("Full text search in SQLite", "fts5 text text text"),     // 3
        ("Search engines", "postgres postgres postgres"),          // 4
        ("Cooking pasta", "boil water, add salt"),                 // 5
    ] {
        create(&items, vec![("title", text(title)), ("notes", text(notes))]).await;
    }
}

#[test]
fn search_syntax_words_phrases_exclusions_or() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        seed_texts(&registry).await;
        let sorted = |query: &str| {
            let mut found = ids(&run(&registry, &[("search", query)]));
            found.sort_unstable();
            found
        };
        assert_eq!(sorted("postgres"), vec![1, 2, 4]);
        assert_eq!(sorted("POSTGRES search"), vec![1, 4]);
        assert_eq!(sorted("\"full text search\""), vec![1, 3]);
        assert_eq!(sorted("\"text search\" -sqlite"), vec![1]);
        assert_eq!(sorted("pasta or mysql"), vec![2, 5]);
        assert_eq!(sorted("nothing-here"), Vec::<u64>::new());
        let page = run(&registry, &[("search", "postgres"), ("limit", "2")]);
        assert_eq!(
            (page.total, page.has_more, page.plan.as_str()),
            (Some(3), true, "search")
        );
    });
}

#[test]
fn results_are_ranked_by_relevance_unless_sorted() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        seed_texts(&registry).await;
        let page = run(&registry, &[("search", "postgres")]);
        // Record 4 says it three times in a short text; 2 and 1 once.
        assert_eq!(ids(&page)[0], 4);
        let scores = page.scores.expect("scores");
        assert!(
            scores.windows(2).all(|pair| pair[0] >= pair[1]),
            "{scores:?}"
        );
        assert_eq!(
            ids(&run(&registry, &[("search", "postgres"), ("sort", "id")])),
            vec![1, 2, 4]
        );
        assert_eq!(
            ids(&run(&registry, &[("search", "text"), ("sort", "-title")])),
            vec![1, 3]
        );
    });
}

#[test]
fn search_combines_with_filters_and_trash() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        seed_texts(&registry).await;
        let items = table(&registry, "items");
        update(&items, 2, vec![("status", text("a"))]).await;
        update(&items, 4, vec![("status", text("a"))]).await;
        assert_eq!(
            ids(&run(
                &registry,
                &[
                    ("search", "postgres"),
                    ("filter", "status='a'"),
                    ("sort", "id")
                ]
            )),
            vec![2, 4]
        );
        delete(&items, 4, false).await;
        let page = run(&registry, &[("search", "postgres"), ("sort", "id")]);
        assert_eq!((ids(&page), page.total), (vec![1, 2], Some(2)));
        assert_eq!(
            ids(&run(
                &registry,
                &[("search", "postgres"), ("deleted", "true")]
            )),
            vec![4]
        );
        assert_eq!(
            ids(&run(
                &registry,
                &[
                    ("search", "postgres"),
                    ("includeDeleted", "true"),
                    ("sort", "id")
                ]
            )),
            vec![1, 2, 4]
        );
    });
}

/// Every posting of the full-text index, as (term, record id).
fn postings(registry: &Registry) -> Vec<(String, u64)> {
    let handle = table(registry, "items");
    tabula_actors::query::search::stored_postings(&handle.shared.store).expect("readable")
}

#[test]
fn the_index_follows_every_write_in_the_same_batch() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let items = table(&registry, "items");
        create(
            &items,
            vec![("title", text("Hello World")), ("priority", Value::Int(1))],
        )
        .await;
        assert_eq!(
            postings(&registry),
            vec![("hello".into(), 1), ("world".into(), 1)]
        );
        update(&items, 1, vec![("title", text("Hello there"))]).await;
        assert_eq!(
            postings(&registry),
            vec![("hello".into(), 1), ("there".into(), 1)]
        );
        assert_eq!(
            ids(&run(&registry, &[("search", "world")])),
            Vec::<u64>::new()
        );
        // Trashing keeps the postings (trash can be searched); a permanent delete removes them.
        delete(&items, 1, false).await;
        assert_eq!(postings(&registry).len(), 2);
        delete(&items, 1, true).await;
        assert!(postings(&registry).is_empty());
        let totals = tabula_actors::query::search::document_totals(
            table(&registry, "items").shared.store.tree(),
        )
        .expect("readable");
        assert_eq!((totals.documents, totals.tokens), (0, 0));
    });
}

#[test]
fn the_search_option_chooses_the_fields() {
    let mut schema = items_schema();
    schema.search = Some(vec!["notes".into()]);
    with_registry(vec![schema], async |registry: Arc<Registry>| {
        seed_texts(&registry).await;
        assert_eq!(
            ids(&run(&registry, &[("search", "tuning")])),
            Vec::<u64>::new()
        );
        assert_eq!(ids(&run(&registry, &[("search", "salt")])), vec![5]);
    });
}

#[test]
fn exclusions_alone_are_refused() {
    with_registry(vec![items_schema()], async |registry: Arc<Registry>| {
        let handle = table(&registry, "items");
        let outcome = parse_list_query(
            &handle.shared.schema(),
            &pairs(&[("search", "-postgres")]),
            LIMITS,
            parse_json,
        );
        assert!(
            matches!(outcome, Err(DomainError::BadRequest { errors, .. }) if errors[0].field == "search")
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Expand

async fn seed_relations(registry: &Registry) {
    let teams = table(registry, "teams");
    let people = table(registry, "people");
    let items = table(registry, "items");
    create(&teams, vec![("label", text("Core"))]).await; // team 1
    create(&people, vec![("name", text("Ada")), ("team", text("1"))]).await; // person 1
    create(&people, vec![("name", text("Bob"))]).await; // person 2
    create(&people, vec![("name", text("Cy"))]).await; // person 3, trashed below
    create(&items, vec![("title", text("one")), ("owner", text("1"))]).await;
    create(&items, vec![("title", text("two")), ("owner", text("1"))]).await;
    create(&items, vec![("title", text("three")), ("owner", text("2"))]).await;
    create(&items, vec![("title", text("four")), ("owner", text("3"))]).await;
    create(&items, vec![("title", text("five"))]).await;
    delete(&people, 3, false).await;
}

fn all_schemas() -> Vec<TableSchema> {
    vec![teams_schema(), people_schema(), items_schema()]
}

fn paths(names: &[&str]) -> Vec<Vec<String>> {
    names
        .iter()
        .map(|name| name.split('.').map(str::to_owned).collect())
        .collect()
}

fn name_of(expanded: &Expanded) -> Value {
    match expanded {
        Expanded::One(record) => record.record.value(1).clone(),
        Expanded::Many(_) => Value::Null,
    }
}

#[test]
fn relationships_expand_forward_nested_and_reverse() {
    with_registry(all_schemas(), async |registry: Arc<Registry>| {
        seed_relations(&registry).await;
        let items = table(&registry, "items");
        let page = run(&registry, &[]);
        let expanded = expand(
            &registry,
            &items.shared.schema(),
            &page.records,
            &paths(&["owner", "owner.team"]),
            &FullAccess,
        )
        .expect("expands");
        assert_eq!(expanded.len(), 5);
        assert_eq!(expanded[0].get("owner").map(name_of), Some(text("Ada")));
        assert_eq!(expanded[2].get("owner").map(name_of), Some(text("Bob")));
        // A trashed target and an empty relationship are left out.
        assert!(!expanded[3].contains_key("owner"));
        assert!(!expanded[4].contains_key("owner"));
        let Some(Expanded::One(ada)) = expanded[0].get("owner") else {
            panic!("owner is one record");
        };
        assert_eq!(ada.expand.get("team").map(name_of), Some(text("Core")));
        assert_eq!(ada.table.name, "people");

        let people = table(&registry, "people");
        let everyone = tabula_actors::query::ListRequest {
            limit: 10,
            ..Default::default()
        };
        let people_page = list(&people.shared, &everyone).expect("lists");
        let reverse = expand(
            &registry,
            &people.shared.schema(),
            &people_page.records,
            &paths(&["items_via_owner"]),
            &FullAccess,
        )
        .expect("expands");
        let titles = |expanded: &Expanded| match expanded {
            Expanded::Many(records) => records
                .iter()
                .map(|record| record.record.value(1).clone())
                .collect::<Vec<_>>(),
            Expanded::One(_) => Vec::new(),
        };
        assert_eq!(
            reverse[0].get("items_via_owner").map(titles),
            Some(vec![text("one"), text("two")])
        );
        assert_eq!(
            reverse[1].get("items_via_owner").map(titles),
            Some(vec![text("three")])
        );
    });
}

struct NoNames;

impl ReadAccess for NoNames {
    fn can_read_field(&self, table: &TableSchema, field: &FieldDef) -> bool {
        !(table.name == "people" && field.name == "name")
    }
}

#[test]
fn expand_names_are_checked_and_unreadable_fields_stripped() {
    with_registry(all_schemas(), async |registry: Arc<Registry>| {
        seed_relations(&registry).await;
        let items = table(&registry, "items");
        let schema = items.shared.schema();
        for name in ["title", "nosuch", "owner.nosuch", "people_via_nothing"] {
            let outcome = check_expand(&registry, &schema, &paths(&[name]), &FullAccess);
            assert!(
                matches!(&outcome, Err(DomainError::BadRequest { errors, .. }) if errors[0].field == "expand"),
                "{name}: {outcome:?}"
            );
        }
        let page = run(&registry, &[("limit", "1")]);
        let expanded = expand(
            &registry,
            &schema,
            &page.records,
            &paths(&["owner"]),
            &NoNames,
        )
        .expect("expands");
        let Some(Expanded::One(owner)) = expanded[0].get("owner") else {
            panic!("owner is one record");
        };
        assert_eq!(
            owner.record.value(1),
            &Value::Null,
            "the unreadable name is stripped"
        );
        assert_eq!(owner.record.value(2), &text("1"));
    });
}
