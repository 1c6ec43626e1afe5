//! Overload of one table's writes (`limits.table_write_queue`): past the limit a write answers
//! 503 `SERVICE_UNAVAILABLE` with `Retry-After` and the envelope, and writes nothing; the writes
//! admitted are stored as usual, and other tables keep serving.

use futures_util::future::join_all;
use serde_json::json;

use crate::common::{demo_config, get, post, TestApp};
use crate::service;

/// The demo app with a write queue of `limit` per table.
fn app_with_write_queue(limit: usize) -> TestApp {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = demo_config(&directory.path().join("data"));
    config.limits.table_write_queue = limit;
    TestApp::with_config(config, directory)
}

#[actix_web::test]
async fn writes_past_the_queue_limit_are_refused_with_503_and_not_stored() {
    let app = app_with_write_queue(1);
    let service = service!(app);
    let replies = join_all((0..64).map(|index| {
        post(
            &service,
            "/api/tables/tasks/records",
            json!({"title": format!("task {index}")}),
        )
    }))
    .await;
    let created: Vec<String> = replies
        .iter()
        .filter(|reply| reply.status == 201)
        .map(|reply| {
            reply.body["fields"]["title"]
                .as_str()
                .expect("a title")
                .to_owned()
        })
        .collect();
    let refused: Vec<_> = replies.iter().filter(|reply| reply.status == 503).collect();
    assert_eq!(created.len() + refused.len(), 64, "only 201s and 503s");
    assert!(!created.is_empty(), "the first write is admitted");
    assert!(
        !refused.is_empty(),
        "64 writes at once against a queue of 1"
    );
    for reply in &refused {
        reply.assert_error(503, "SERVICE_UNAVAILABLE");
        assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
    }
    let list = get(&service, "/api/tables/tasks/records?limit=100&sort=id").await;
    let stored: Vec<String> = list.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| {
            record["fields"]["title"]
                .as_str()
                .expect("a title")
                .to_owned()
        })
        .collect();
    let mut expected = created.clone();
    expected.sort();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort();
    assert_eq!(
        stored_sorted, expected,
        "exactly the admitted writes are stored"
    );
}

#[actix_web::test]
async fn a_full_queue_refuses_every_kind_of_write_and_frees_up_when_the_write_ahead_is_done() {
    let app = app_with_write_queue(1);
    let service = service!(app);
    let first = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "first"}),
    )
    .await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    let tasks = app
        .state
        .registry
        .resolve("tasks")
        .expect("the tasks table");
    assert_eq!(
        tasks.shared.queued_writes(),
        0,
        "a finished write gives its place back"
    );

    // A write in progress holds the one place.
    let in_progress = tasks.shared.admit_write().expect("the one place");
    let refused = [
        post(&service, "/api/tables/tasks/records", json!({"title": "second"})).await,
        crate::common::patch(
            &service,
            "/api/tables/tasks/records/1",
            json!({"title": "renamed"}),
        )
        .await,
        post(
            &service,
            "/api/tables/tasks/records/batch",
            json!({"records": [{"title": "a"}, {"title": "b"}]}),
        )
        .await,
        post(
            &service,
            "/api/tables/tasks/records/upsert",
            json!({"fieldsToMergeOn": ["title"], "records": [{"fields": {"title": "first", "priority": 2}}]}),
        )
        .await,
        crate::common::delete(&service, "/api/tables/tasks/records/1").await,
        post(
            &service,
            "/api/tables/tasks/import",
            json!([{"title": "imported"}]),
        )
        .await,
    ];
    for reply in &refused {
        reply.assert_error(503, "SERVICE_UNAVAILABLE");
        assert_eq!(reply.header("retry-after").as_deref(), Some("1"));
        assert_eq!(reply.body["success"], false, "{:?}", reply.body);
    }
    // Nothing of the refused writes is stored; other tables are not held up.
    let list = get(&service, "/api/tables/tasks/records").await;
    assert_eq!(list.body["pagination"]["total"], 1, "{:?}", list.body);
    assert_eq!(list.body["records"][0]["fields"]["title"], "first");
    let contact = post(
        &service,
        "/api/tables/contacts/records",
        json!({"name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    assert_eq!(contact.status, 201, "{:?}", contact.body);

    drop(in_progress);
    let second = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "second"}),
    )
    .await;
    assert_eq!(second.status, 201, "{:?}", second.body);
    assert_eq!(second.body["id"], "2", "the refused writes took no id");
    assert_eq!(tasks.shared.queued_writes(), 0);
}
