//! The activity log (SPEC §6): one entry per change in the same commit, merged across tables
//! newest first, filters and paging, the detail with its changes, and the retention purge.

use actix_web::http::Method;
use serde_json::{json, Value as Json};
use tabula_actors::activity::purge_expired;
use tabula_actors::clock;

use crate::common::{delete, get, patch, post, send, TestApp};
use crate::lifecycle::LIFECYCLE_TABLES;
use crate::service;

fn actions(reply: &Json) -> Vec<String> {
    reply["activities"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| {
                    format!(
                        "{}:{}:{}",
                        item["tableName"].as_str().unwrap_or(""),
                        item["action"].as_str().unwrap_or(""),
                        item["recordId"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn every_change_is_logged_newest_first_across_tables() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    post(
        &service,
        "/api/tables/companies/records",
        json!({"name": "Acme"}),
    )
    .await;
    post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "a"}, {"name": "b"}]}),
    )
    .await;
    patch(
        &service,
        "/api/tables/people/records/1",
        json!({"name": "a2"}),
    )
    .await;
    delete(&service, "/api/tables/people/records/2").await;
    post(&service, "/api/tables/people/records/2/restore", json!({})).await;
    delete(&service, "/api/tables/companies/records/1?permanent=true").await;
    post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"name": "c"}], "fieldsToMergeOn": ["name"]}),
    )
    .await;
    send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({"ids": [1, 3]})),
    )
    .await;

    let list = get(&service, "/api/activity").await;
    assert_eq!(list.status.as_u16(), 200, "{:?}", list.body);
    assert_eq!(
        actions(&list.body),
        vec![
            "people:delete:3",
            "people:delete:1",
            "people:create:3",
            "companies:permanent_delete:1",
            "people:restore:2",
            "people:delete:2",
            "people:update:1",
            "people:create:2",
            "people:create:1",
            "companies:create:1",
        ]
    );
    assert_eq!(
        list.body["pagination"],
        json!({"total": 10, "page": 1, "pageSize": 50, "totalPages": 1})
    );
    let first = &list.body["activities"][0];
    assert_eq!(first["tableId"], json!(2));
    // Attributed to the caller: the harness's admin (or null when there are no accounts).
    match first["userId"].as_str() {
        Some(user_id) => assert_eq!(first["user"]["id"], json!(user_id)),
        None => assert_eq!(first["user"], json!(null)),
    }
    assert!(first.get("changes").is_none(), "changes only on the detail");
    assert!(first["createdAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));

    // Paging.
    let page = get(&service, "/api/activity?page=2&pageSize=4").await;
    assert_eq!(
        actions(&page.body),
        vec![
            "people:restore:2",
            "people:delete:2",
            "people:update:1",
            "people:create:2"
        ]
    );
    assert_eq!(
        page.body["pagination"],
        json!({"total": 10, "page": 2, "pageSize": 4, "totalPages": 3})
    );
    // Filters.
    let companies = get(&service, "/api/activity?tableName=companies").await;
    assert_eq!(
        actions(&companies.body),
        vec!["companies:permanent_delete:1", "companies:create:1"]
    );
    let deletes = get(&service, "/api/activity?action=delete&pageSize=1").await;
    assert_eq!(deletes.body["pagination"]["total"], json!(3));
    assert_eq!(deletes.body["pagination"]["totalPages"], json!(3));
    let by_user = get(&service, "/api/activity?userId=someone").await;
    assert_eq!(by_user.body["pagination"]["total"], json!(0));
    let future = get(&service, "/api/activity?from=2999-01-01").await;
    assert_eq!(future.body["pagination"]["total"], json!(0));
    let past = get(
        &service,
        "/api/activity?from=2000-01-01&to=2999-01-01T00:00:00Z&tableName=people&action=create",
    )
    .await;
    assert_eq!(
        actions(&past.body),
        vec!["people:create:3", "people:create:2", "people:create:1"]
    );
    let unknown_table = get(&service, "/api/activity?tableName=nosuch").await;
    assert_eq!(unknown_table.body["pagination"]["total"], json!(0));

    for bad in [
        "pageSize=0",
        "pageSize=101",
        "pageSize=x",
        "page=0",
        "action=explode",
        "from=yesterday",
        "to=2024-13-45",
    ] {
        get(&service, &format!("/api/activity?{bad}"))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
}

#[actix_web::test]
async fn the_detail_carries_the_changes() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "Ada", "age": 3}),
    )
    .await;
    patch(&service, "/api/tables/people/records/1", json!({"age": 4})).await;
    let list = get(&service, "/api/activity").await;
    let update_id = list.body["activities"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let detail = get(&service, &format!("/api/activity/{update_id}")).await;
    assert_eq!(detail.status.as_u16(), 200, "{:?}", detail.body);
    assert_eq!(detail.body["action"], json!("update"));
    assert_eq!(detail.body["tableName"], json!("people"));
    assert_eq!(detail.body["recordId"], json!("1"));
    assert_eq!(
        detail.body["changes"],
        json!({"before": {"age": 3}, "after": {"age": 4}})
    );
    let create_id = list.body["activities"][1]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let created = get(&service, &format!("/api/activity/{create_id}")).await;
    assert_eq!(
        created.body["changes"],
        json!({"after": {"name": "Ada", "age": 3}})
    );
    // The history entry and the activity entry are the same change.
    let history = get(&service, "/api/tables/people/records/1/history").await;
    assert_eq!(history.body["history"][0]["id"], json!(update_id));

    get(&service, "/api/activity/not-a-number")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/activity/999999999")
        .await
        .assert_error(404, "NOT_FOUND");

    // A permanently deleted record's entries keep their changes until the retention purge.
    delete(&service, "/api/tables/people/records/1?permanent=true").await;
    let gone = get(&service, &format!("/api/activity/{update_id}")).await;
    assert_eq!(gone.body["changes"]["after"], json!({"age": 4}));
}

#[actix_web::test]
async fn cascades_log_every_record_they_touch() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    post(
        &service,
        "/api/tables/companies/records",
        json!({"name": "Acme"}),
    )
    .await;
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "a", "company": 1}),
    )
    .await;
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "b", "manager": 1}),
    )
    .await;
    delete(&service, "/api/tables/companies/records/1").await;
    let list = get(&service, "/api/activity?pageSize=3").await;
    assert_eq!(
        actions(&list.body),
        vec!["companies:delete:1", "people:update:2", "people:delete:1"],
        "children first (set-null and cascade in one people commit), the company last"
    );
    let history = get(&service, "/api/tables/people/records/2/history").await;
    assert_eq!(
        history.body["history"][0]["changes"],
        json!({"before": {"manager": "1"}, "after": {"manager": null}})
    );
}

#[actix_web::test]
async fn the_retention_purge_drops_old_entries() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "kept"}),
    )
    .await;
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "gone"}),
    )
    .await;
    delete(&service, "/api/tables/people/records/2?permanent=true").await;
    let before = get(&service, "/api/activity").await;
    assert_eq!(before.body["pagination"]["total"], json!(3));

    let registry = app.state.registry.clone();
    let none = purge_expired(&registry, 365, clock::now_ms())
        .await
        .expect("the purge runs");
    assert_eq!(none, 0, "nothing is older than a year");
    let later = clock::now_ms() + 366 * 86_400_000;
    let purged = purge_expired(&registry, 365, later)
        .await
        .expect("the purge runs");
    assert_eq!(purged, 3);
    let after = get(&service, "/api/activity").await;
    assert_eq!(after.body["pagination"]["total"], json!(0));
    assert_eq!(after.body["activities"], json!([]));
    // History and activity are one journal: the live record's history went with it.
    let history = get(&service, "/api/tables/people/records/1/history").await;
    assert_eq!(history.status.as_u16(), 200);
    assert_eq!(history.body["pagination"]["total"], json!(0));
    assert_eq!(history.body["history"], json!([]));
    let people = app.state.registry.resolve("people").expect("people");
    patch(
        &service,
        "/api/tables/people/records/1",
        json!({"name": "kept2"}),
    )
    .await;
    let history = get(&service, "/api/tables/people/records/1/history").await;
    assert_eq!(
        history.body["pagination"]["total"],
        json!(1),
        "new changes are listed again"
    );
    // The log goes on counting from where the purge left it, also after a restart.
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "new"}),
    )
    .await;
    let one = get(&service, "/api/activity").await;
    assert_eq!(one.body["pagination"]["total"], json!(2));
    drop((service, people, registry));
    let app = app.restart().await;
    let service = service!(app);
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "newer"}),
    )
    .await;
    let two = get(&service, "/api/activity").await;
    assert_eq!(two.body["pagination"]["total"], json!(3));
    assert_eq!(
        actions(&two.body),
        vec!["people:create:4", "people:create:3", "people:update:1"]
    );
}
