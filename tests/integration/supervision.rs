//! A table actor that stops on a storage failure is restarted by its supervisor: the request in
//! flight gets a 503, nothing committed is lost, the table keeps serving, other tables too.

use serde_json::json;
use tabula_actors::table::ArmStorageFault;

use crate::common::{get, post, TestApp};
use crate::service;

#[actix_web::test]
async fn a_failed_write_restarts_the_actor_and_the_table_keeps_serving() {
    let app = TestApp::demo();
    let service = service!(app);
    let before = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "kept"}),
    )
    .await;
    assert_eq!(before.status.as_u16(), 201);
    let tasks = app
        .state
        .registry
        .resolve("tasks")
        .expect("the tasks table");
    assert_eq!(tasks.shared.restarts(), 0);

    tasks
        .addr
        .send(ArmStorageFault)
        .await
        .expect("the actor takes the message");
    let failed = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "lost"}),
    )
    .await;
    failed.assert_error(503, "SERVICE_UNAVAILABLE");
    assert!(failed.header("retry-after").is_some());

    let after = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "after"}),
    )
    .await;
    assert_eq!(after.status.as_u16(), 201, "{:?}", after.body);
    assert_eq!(after.body["id"], json!("2"), "the failed write took no id");
    assert_eq!(tasks.shared.restarts(), 1, "restarted exactly once");

    let list = get(&service, "/api/tables/tasks/records?sort=id").await;
    let titles: Vec<&str> = list.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["fields"]["title"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(titles, vec!["kept", "after"]);
    let contacts = app.state.registry.resolve("contacts").expect("contacts");
    assert_eq!(contacts.shared.restarts(), 0, "other tables are unaffected");
}
