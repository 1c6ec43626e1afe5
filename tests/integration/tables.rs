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

const DESCRIBED: &str = r#"
[[tables]]
id = 1
name = "board"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "moderation"
  type = "single-select"
  options = ["ok", "flagged"]

  [[tables.fields]]
  id = 3
  name = "owner"
  type = "user"
  autofill = "current"

  [tables.permissions]
  read = "all"
  create = "authenticated"
  fields = [{ field = "moderation", read = ["admin"], write = ["admin"] }]

  [[tables.views]]
  id = "clean"
  name = "Clean"
  filter = "moderation = 'ok'"
  sort = "-moderation"
  fields = ["title", "moderation"]

  [[tables.views]]
  id = "recent"
  name = "Recent"
  sort = "-createdAt"

[[tables]]
id = 2
name = "adminonly_ledger"

  [[tables.fields]]
  id = 1
  name = "amount"
  type = "integer"

[[tables]]
id = 3
name = "diary"

  [[tables.fields]]
  id = 1
  name = "entry"
  type = "long-text"

  [[tables.fields]]
  id = 2
  name = "owner"
  type = "user"
  autofill = "current"

  [tables.permissions]
  read = "authenticated"
  create = "authenticated"
  rowFilter = "owner = @user.id"
"#;

#[actix_web::test]
async fn callers_are_told_only_of_what_they_may_read() {
    use actix_web::http::Method;

    use crate::anonymous_service;
    use crate::common::send_as;

    let app = TestApp::from_toml(DESCRIBED);
    let admin = service!(app);
    let anonymous = anonymous_service!(app);
    let member = app.token_for("writer@described.test", "member").await;
    post(
        &admin,
        "/api/tables/board/records",
        json!({"title": "a", "moderation": "ok"}),
    )
    .await;
    post(
        &admin,
        "/api/tables/diary/records",
        json!({"entry": "the admin's"}),
    )
    .await;

    // The OpenAPI document: anonymous callers see the public table without its hidden field.
    let document = get(&anonymous, "/api/openapi.json").await;
    assert_eq!(document.status.as_u16(), 200);
    let schemas = &document.body["components"]["schemas"];
    assert!(schemas.get("board_fields").is_some());
    assert!(schemas["board_fields"]["properties"]
        .get("moderation")
        .is_none());
    for hidden in [
        "adminonly_ledger_fields",
        "adminonly_ledger_record",
        "diary_fields",
    ] {
        assert!(
            schemas.get(hidden).is_none(),
            "{hidden} is not described to anonymous callers"
        );
    }
    let as_member = send_as(&anonymous, &member, Method::GET, "/api/openapi.json", None).await;
    assert!(as_member.body["components"]["schemas"]
        .get("diary_fields")
        .is_some());
    assert!(as_member.body["components"]["schemas"]
        .get("adminonly_ledger_fields")
        .is_none());
    let as_admin = get(&admin, "/api/openapi.json").await;
    assert!(
        as_admin.body["components"]["schemas"]["board_fields"]["properties"]
            .get("moderation")
            .is_some()
    );

    // Views: what names a hidden field is left out of their description, and still applies.
    let table = get(&anonymous, "/api/tables/board").await;
    assert_eq!(table.status.as_u16(), 200, "{:?}", table.body);
    assert!(
        !table.body.to_string().contains("moderation"),
        "{:?}",
        table.body
    );
    let views = get(&anonymous, "/api/tables/board/views").await;
    assert!(
        !views.body.to_string().contains("moderation"),
        "{:?}",
        views.body
    );
    let clean = &views.body["views"][0];
    assert_eq!(clean["id"], "clean");
    assert_eq!(clean["fields"], json!(["title"]));
    assert_eq!(
        views.body["views"][1]["sort"], "-createdAt",
        "a readable sort stays"
    );
    post(
        &admin,
        "/api/tables/board/records",
        json!({"title": "b", "moderation": "flagged"}),
    )
    .await;
    let listed = get(&anonymous, "/api/tables/board/records?view=clean").await;
    assert_eq!(listed.body["pagination"]["total"], json!(1));

    // The list of tables: anonymous callers get the public ones; counts and last writes of a
    // table under a row rule are not told.
    let tables = get(&anonymous, "/api/tables").await;
    assert_eq!(tables.status.as_u16(), 200);
    let names: Vec<&str> = tables.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["board"]);
    let tables = send_as(&anonymous, &member, Method::GET, "/api/tables", None).await;
    let diary = tables.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "diary")
        .expect("diary")
        .clone();
    assert!(
        diary.get("recordCount").is_none() && diary.get("updatedAt").is_none(),
        "{diary:?}"
    );
    let one = send_as(&anonymous, &member, Method::GET, "/api/tables/diary", None).await;
    assert!(
        one.body["table"].get("recordCount").is_none(),
        "{:?}",
        one.body
    );
    let board = tables.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == "board")
        .expect("board")
        .clone();
    assert_eq!(board["recordCount"], json!(2));
}
