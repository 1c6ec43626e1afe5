//! `GET /api/tables` and `GET /api/tables/{t}` (SPEC §5).

use serde_json::json;

use crate::common::{get, post, TestApp};
use crate::service;

#[actix_web::test]
async fn lists_tables_with_counts() {
    let app = TestApp::demo();
    let service = service!(app);
    post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "one"}),
    )
    .await;
    post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "two"}),
    )
    .await;
    let reply = get(&service, "/api/tables").await;
    assert_eq!(reply.status.as_u16(), 200);
    let tables = reply.body["tables"].as_array().expect("tables");
    let tasks = tables
        .iter()
        .find(|table| table["name"] == json!("tasks"))
        .expect("the tasks table");
    assert_eq!(tasks["id"], json!(1));
    assert_eq!(tasks["recordCount"], json!(2));
    assert_eq!(tasks["fieldCount"], json!(4));
    assert!(tasks["createdAt"].is_string() && tasks["updatedAt"].is_string());
    assert!(tables
        .iter()
        .any(|table| table["name"] == json!("contacts")));
}

#[actix_web::test]
async fn a_table_by_id_or_name() {
    let app = TestApp::demo();
    let service = service!(app);
    let by_name = get(&service, "/api/tables/tasks").await;
    let by_id = get(&service, "/api/tables/1").await;
    assert_eq!(by_name.status.as_u16(), 200);
    assert_eq!(by_name.body, by_id.body);
    let table = &by_name.body["table"];
    assert_eq!(table["name"], json!("tasks"));
    let fields = table["fields"].as_array().expect("fields");
    let status = fields
        .iter()
        .find(|field| field["name"] == json!("status"))
        .expect("status field");
    assert_eq!(status["type"], json!("single-select"));
    assert_eq!(status["options"], json!(["todo", "doing", "done"]));
    assert_eq!(table["views"][0]["id"], json!("open"));
    get(&service, "/api/tables/nope")
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, "/api/tables/999")
        .await
        .assert_error(404, "NOT_FOUND");
}
