//! The list query surface over HTTP (SPEC §4.2, §5 views): every filter spelling, projection,
//! expand, aggregates and groups, search, and views.

use serde_json::json;

use crate::common::{delete, get, patch, post, TestApp};
use crate::records::PEOPLE_AND_PROJECTS;
use crate::service;

fn ids(reply: &crate::common::Reply) -> Vec<String> {
    reply.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["id"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[actix_web::test]
async fn filter_spellings_projection_expand_and_aggregates() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    for (name, age, status) in [
        ("ada", 36, "active"),
        ("bob", 20, "away"),
        ("cy", 50, "active"),
    ] {
        let reply = post(
            &service,
            "/api/tables/people/records",
            json!({"name": name, "age": age, "status": status}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    post(
        &service,
        "/api/tables/projects/records",
        json!({"title": "Engine", "owner": 1}),
    )
    .await;

    let expression = get(
        &service,
        "/api/tables/people/records?filter=status%3D'active'%20AND%20age%3E%3D40",
    )
    .await;
    assert_eq!(ids(&expression), vec!["3"], "{:?}", expression.body);
    let structured = get(&service, "/api/tables/people/records?filter=%7B%22field%22%3A%22age%22%2C%22operator%22%3A%22lessThan%22%2C%22value%22%3A30%7D").await;
    assert_eq!(ids(&structured), vec!["2"], "{:?}", structured.body);
    let sonic = get(
        &service,
        "/api/tables/people/records?filters%5Bstatus%5D%5B%24eq%5D=away",
    )
    .await;
    assert_eq!(ids(&sonic), vec!["2"]);
    let formula = get(
        &service,
        "/api/tables/people/records?filterByFormula=AND(%7Bstatus%7D%3D'active'%2C%7Bage%7D%3C40)",
    )
    .await;
    assert_eq!(ids(&formula), vec!["1"]);
    let bad = get(&service, "/api/tables/people/records?filter=name%3D'open").await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(bad.error_fields(), vec!["filter".to_string()]);
    assert!(bad.body["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("unterminated string")));
    get(&service, "/api/tables/people/records?filter=nosuch%3D1")
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let projected = get(&service, "/api/tables/people/records?fields=name&limit=1").await;
    assert_eq!(
        projected.body["records"][0]["fields"],
        json!({"name": "ada"})
    );

    let expanded = get(&service, "/api/tables/projects/records?expand=owner").await;
    assert_eq!(
        expanded.body["records"][0]["expand"]["owner"]["fields"]["name"],
        json!("ada"),
        "{:?}",
        expanded.body
    );
    let reverse = get(
        &service,
        "/api/tables/people/records?expand=projects_via_owner&limit=1",
    )
    .await;
    assert_eq!(
        reverse.body["records"][0]["expand"]["projects_via_owner"][0]["fields"]["title"],
        json!("Engine"),
        "{:?}",
        reverse.body
    );
    get(&service, "/api/tables/projects/records?expand=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");

    let aggregated = get(
        &service,
        "/api/tables/people/records?aggregate=count,sum:age,avg:age&groupBy=status",
    )
    .await;
    assert_eq!(aggregated.status.as_u16(), 200, "{:?}", aggregated.body);
    assert_eq!(aggregated.body["aggregations"]["count"], json!(3));
    assert_eq!(aggregated.body["aggregations"]["sum"]["age"], json!(106));
    let groups = aggregated.body["groups"].as_array().expect("groups");
    let active = groups
        .iter()
        .find(|group| group["name"] == json!("active"))
        .expect("active group");
    assert_eq!(active["count"], json!(2));
}

#[actix_web::test]
async fn views_apply_their_filter_sort_and_fields() {
    let app = TestApp::demo();
    let service = service!(app);
    for (title, status, priority) in [("a", "todo", 1), ("b", "done", 5), ("c", "doing", 4)] {
        let reply = post(
            &service,
            "/api/tables/tasks/records",
            json!({"title": title, "status": status, "priority": priority}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    }
    let views = get(&service, "/api/tables/tasks/views").await;
    assert_eq!(views.body["views"][0]["id"], json!("open"));
    let view = get(&service, "/api/tables/tasks/views/open").await;
    assert_eq!(view.body["view"]["filter"], json!("status!='done'"));
    get(&service, "/api/tables/tasks/views/nope")
        .await
        .assert_error(404, "NOT_FOUND");
    let through = get(&service, "/api/tables/tasks/views/open/records").await;
    assert_eq!(
        ids(&through),
        vec!["3", "1"],
        "filtered and sorted by -priority: {:?}",
        through.body
    );
    assert!(
        through.body["records"][0]["fields"]
            .get("priority")
            .is_none(),
        "the view's fields"
    );
    let by_param = get(&service, "/api/tables/tasks/records?view=open&sort=title").await;
    assert_eq!(ids(&by_param), vec!["1", "3"], "sort overrides the view's");
    get(&service, "/api/tables/tasks/records?view=nope")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn search_follows_writes_and_survives_a_restart() {
    let app = TestApp::demo();
    {
        let service = service!(app);
        // 300 records: several posting blocks of "buy", appended by batches.
        for batch in 0..3 {
            let records: Vec<serde_json::Value> = (0..100)
                .map(|item| {
                    let note = if item % 2 == 0 { "milk" } else { "bread" };
                    json!({"title": format!("Buy {note} {batch}x{item}")})
                })
                .collect();
            let reply = post(
                &service,
                "/api/tables/tasks/records/batch",
                json!({ "records": records }),
            )
            .await;
            assert_eq!(reply.status, 201, "{}", reply.body);
        }
        let reply = patch(
            &service,
            "/api/tables/tasks/records/7",
            json!({"title": "Sell milk"}),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let reply = delete(&service, "/api/tables/tasks/records/8?permanent=true").await;
        assert!(reply.status.is_success(), "{}", reply.body);
        let reply = delete(&service, "/api/tables/tasks/records/9").await;
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    let app = app.restart().await;
    let service = service!(app);
    let buy = get(&service, "/api/tables/tasks/records?search=buy&limit=5").await;
    assert_eq!(buy.body["pagination"]["total"], json!(297), "{}", buy.body);
    let milk = get(
        &service,
        "/api/tables/tasks/records?search=buy%20milk&sort=id&limit=3",
    )
    .await;
    assert_eq!(ids(&milk), vec!["1", "3", "5"]);
    assert_eq!(milk.body["pagination"]["total"], json!(148));
    let sell = get(&service, "/api/tables/tasks/records?search=sell").await;
    assert_eq!(ids(&sell), vec!["7"]);
    let trashed = get(
        &service,
        "/api/tables/tasks/records?search=buy&deleted=true",
    )
    .await;
    assert_eq!(ids(&trashed), vec!["9"]);
    // Paging through the ranked results gives every match once.
    let mut seen = std::collections::BTreeSet::new();
    for page in 1..=30 {
        let reply = get(
            &service,
            &format!("/api/tables/tasks/records?search=bread&perPage=10&page={page}"),
        )
        .await;
        seen.extend(ids(&reply));
    }
    assert_eq!(seen.len(), 149);
}

#[actix_web::test]
async fn search_finds_words_and_phrases() {
    let app = TestApp::demo();
    let service = service!(app);
    for (title, notes) in [
        ("Buy milk", "from the corner shop"),
        ("Write report", "quarterly numbers"),
        ("Buy stamps", "post office"),
    ] {
        post(
            &service,
            "/api/tables/tasks/records",
            json!({"title": title, "notes": notes}),
        )
        .await;
    }
    let buy = get(&service, "/api/tables/tasks/records?search=buy").await;
    let mut found = ids(&buy);
    found.sort();
    assert_eq!(found, vec!["1", "3"]);
    let phrase = get(
        &service,
        "/api/tables/tasks/records?search=%22post%20office%22",
    )
    .await;
    assert_eq!(ids(&phrase), vec!["3"]);
    let excluded = get(&service, "/api/tables/tasks/records?search=buy%20-milk").await;
    assert_eq!(ids(&excluded), vec!["3"]);
}
