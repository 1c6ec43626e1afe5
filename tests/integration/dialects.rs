//! The compatibility dialects (SPEC §10): AYB `/api/collections/{t}` and `/api/schema`, SonicJs
//! `/v1/{t}` — their shapes and status codes, the same permissions as the main API (anonymous
//! 401, unreadable table 404, unreadable fields stripped and unknown), and the AYB batch: atomic,
//! all or nothing, at most 1000 operations.

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::anonymous_service;
use crate::common::{get, send, send_as, TestApp};
use crate::service;

pub const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "posts"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "status"
  type = "single-select"
  options = ["draft", "published"]
  default = "draft"
  indexed = true

  [[tables.fields]]
  id = 3
  name = "slug"
  type = "single-line-text"
  unique = true

  [[tables.fields]]
  id = 4
  name = "secret"
  type = "single-line-text"

  [tables.permissions]
  read = "authenticated"
  create = ["admin", "member"]
  update = ["admin", "member"]
  delete = ["admin", "member"]
  restore = ["admin", "member"]
  fields = [{ field = "secret", read = ["admin"], write = ["admin"] }]

[[tables]]
id = 2
name = "vault"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [tables.permissions]
  read = ["admin"]
  create = ["admin"]
"#;

pub const MEMBER: &str = "member@dialects.test";

/// Creates a post through the main API (as the harness admin) and returns its id.
async fn seed<S, B>(service: &S, title: &str, status: &str, secret: &str) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let reply = send(
        service,
        Method::POST,
        "/api/tables/posts/records",
        Some(json!({"title": title, "status": status, "secret": secret})),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    reply.body["id"].as_str().expect("an id").to_owned()
}

fn live_count(app: &TestApp, table: &str) -> u64 {
    app.state
        .registry
        .resolve(table)
        .expect("the table")
        .shared
        .live_count()
}

#[actix_web::test]
async fn ayb_records_are_flat_and_listed_with_the_list_query_language() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let created = send(
        &service,
        Method::POST,
        "/api/collections/posts",
        Some(json!({"title": "Gamma", "status": "published", "secret": "s1"})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let record = &created.body;
    assert!(record["id"].is_string());
    assert_eq!(record["title"], "Gamma");
    assert_eq!(record["status"], "published");
    assert_eq!(record["secret"], "s1", "the admin reads every field");
    assert_eq!(
        record["slug"],
        Json::Null,
        "an empty field is present as null"
    );
    assert!(record["createdAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    assert!(record["updatedAt"].is_string());
    assert!(record.get("fields").is_none(), "flat: no nested fields");
    seed(&service, "Alpha", "published", "s2").await;
    seed(&service, "Beta", "published", "s3").await;
    seed(&service, "Draft", "draft", "s4").await;

    let page = get(
        &service,
        "/api/collections/posts?filter=status='published'&sort=-title&page=1&perPage=2",
    )
    .await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let titles: Vec<&str> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["title"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(titles, vec!["Gamma", "Beta"]);
    assert_eq!(page.body["page"], 1);
    assert_eq!(page.body["perPage"], 2);
    assert_eq!(page.body["totalItems"], 3);
    assert_eq!(page.body["totalPages"], 2);

    let second = get(
        &service,
        "/api/collections/posts?filter=status='published'&sort=-title&page=2&perPage=2&fields=title",
    )
    .await;
    assert_eq!(second.body["page"], 2);
    let items = second.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["title"], "Alpha");
    assert!(items[0].get("status").is_none(), "fields= projects");
    assert!(items[0]["id"].is_string(), "system attributes stay");

    let skipped = get(&service, "/api/collections/posts?skipTotal=true").await;
    assert_eq!(skipped.body["totalItems"], -1);
    assert_eq!(skipped.body["totalPages"], -1);

    let searched = get(&service, "/api/collections/posts?search=beta").await;
    assert_eq!(searched.body["totalItems"], 1, "{:?}", searched.body);

    let bad = get(&service, "/api/collections/posts?filter=nosuch='x'").await;
    bad.assert_error(400, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn ayb_get_patch_and_delete_one_record() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let id = seed(&service, "One", "draft", "s").await;
    let path = format!("/api/collections/posts/{id}");
    let fetched = get(&service, &path).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["id"], id.as_str());
    assert_eq!(fetched.body["title"], "One");

    let updated = send(
        &service,
        Method::PATCH,
        &path,
        Some(json!({"status": "published"})),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["status"], "published");
    assert_eq!(
        updated.body["title"], "One",
        "a partial update keeps the rest"
    );

    let invalid = send(&service, Method::PATCH, &path, Some(json!({"status": "x"}))).await;
    invalid.assert_error(400, "VALIDATION_ERROR");

    let deleted = send(&service, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 204);
    get(&service, &path).await.assert_error(404, "NOT_FOUND");
    let trash = get(&service, "/api/tables/posts/trash").await;
    assert_eq!(trash.body["pagination"]["total"], 1, "a soft delete");
    get(&service, "/api/collections/posts/999")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn dialects_apply_the_permissions_of_the_main_api() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let id = seed(&admin, "Visible", "draft", "hidden value").await;
    let anonymous = anonymous_service!(app);
    for path in [
        "/api/collections/posts",
        "/api/collections/vault",
        "/api/collections/nosuch",
        "/v1/posts",
        "/v1/nosuch",
    ] {
        get(&anonymous, path)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    send(
        &anonymous,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({"operations": [{"method": "create", "body": {"title": "x"}}]})),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");

    let member = app.token_for(MEMBER, "member").await;
    let as_member = |method: Method, path: String, body: Option<Json>| {
        let (service, token) = (&anonymous, member.clone());
        async move { send_as(service, &token, method, &path, body).await }
    };
    for path in [
        "/api/collections/vault",
        "/api/collections/nosuch",
        "/v1/vault",
    ] {
        let reply = as_member(Method::GET, path.into(), None).await;
        reply.assert_error(404, "NOT_FOUND");
    }
    let missing = as_member(Method::GET, "/api/collections/nosuch".into(), None).await;
    let hidden = as_member(Method::GET, "/api/collections/vault".into(), None).await;
    assert_eq!(
        missing.body["code"], hidden.body["code"],
        "an unreadable table answers as a missing one"
    );

    let listed = as_member(Method::GET, "/api/collections/posts".into(), None).await;
    assert_eq!(listed.status, 200);
    let item = &listed.body["items"][0];
    assert_eq!(item["title"], "Visible");
    assert!(
        item.get("secret").is_none(),
        "an unreadable field is stripped"
    );
    let one = as_member(Method::GET, format!("/api/collections/posts/{id}"), None).await;
    assert!(one.body.get("secret").is_none());
    let sonic = as_member(Method::GET, format!("/v1/posts/{id}"), None).await;
    assert!(sonic.body["data"].get("secret").is_none());
    assert_eq!(sonic.body["data"]["title"], "Visible");

    let filtered = as_member(
        Method::GET,
        "/api/collections/posts?filter=secret='hidden%20value'".into(),
        None,
    )
    .await;
    filtered.assert_error(400, "VALIDATION_ERROR");
    let sonic_filtered =
        as_member(Method::GET, "/v1/posts?filters[secret][$eq]=x".into(), None).await;
    sonic_filtered.assert_error(400, "VALIDATION_ERROR");

    let write_hidden = as_member(
        Method::POST,
        "/api/collections/posts".into(),
        Some(json!({"title": "t", "secret": "mine"})),
    )
    .await;
    write_hidden.assert_error(400, "VALIDATION_ERROR");
    let vault_write = as_member(
        Method::POST,
        "/v1/vault".into(),
        Some(json!({"data": {"title": "t"}})),
    )
    .await;
    vault_write.assert_error(404, "NOT_FOUND");
    assert_eq!(live_count(&app, "posts"), 1, "nothing was written");

    let viewer = app.token_for("viewer@dialects.test", "viewer").await;
    let denied = send_as(
        &anonymous,
        &viewer,
        Method::POST,
        "/api/collections/posts",
        Some(json!({"title": "t"})),
    )
    .await;
    denied.assert_error(403, "FORBIDDEN");
    let denied_batch = send_as(
        &anonymous,
        &viewer,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({"operations": [{"method": "delete", "id": id}]})),
    )
    .await;
    denied_batch.assert_error(403, "FORBIDDEN");
    assert_eq!(live_count(&app, "posts"), 1);
}

#[actix_web::test]
async fn the_ayb_batch_applies_mixed_operations_in_one_commit() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let keep = seed(&service, "Keep", "draft", "k").await;
    let gone = seed(&service, "Gone", "draft", "g").await;
    let reply = send(
        &service,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({"operations": [
            {"method": "create", "body": {"title": "Post A", "status": "published"}},
            {"method": "create", "body": {"title": "Post B"}},
            {"method": "update", "id": keep, "body": {"status": "published"}},
            {"method": "delete", "id": gone.parse::<u64>().expect("numeric id")},
        ]})),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let results = reply.body.as_array().expect("an array");
    assert_eq!(results.len(), 4);
    let statuses: Vec<i64> = results
        .iter()
        .map(|result| result["status"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(statuses, vec![201, 201, 200, 204]);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert_eq!(results[0]["body"]["title"], "Post A");
    assert!(results[0]["body"]["id"].is_string());
    assert_eq!(results[2]["body"]["status"], "published");
    assert_eq!(results[2]["body"]["title"], "Keep");
    assert!(results[3].get("body").is_none());
    assert_eq!(live_count(&app, "posts"), 3);
    get(&service, &format!("/api/collections/posts/{gone}"))
        .await
        .assert_error(404, "NOT_FOUND");

    // One commit: every record of the batch carries the same change time.
    let created_at = |index: usize| results[index]["body"]["createdAt"].clone();
    assert_eq!(created_at(0), created_at(1));
    assert_eq!(created_at(0), results[2]["body"]["updatedAt"]);
}

#[actix_web::test]
async fn one_bad_operation_writes_nothing() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let keep = seed(&service, "Keep", "draft", "k").await;
    let before = get(&service, "/api/collections/posts").await.body;
    let batches = [
        // An invalid create (title is required) after valid operations.
        (
            json!({"operations": [
                {"method": "create", "body": {"title": "New"}},
                {"method": "update", "id": keep, "body": {"status": "published"}},
                {"method": "create", "body": {"status": "draft"}},
            ]}),
            400,
            "VALIDATION_ERROR",
        ),
        // A unique clash inside the batch.
        (
            json!({"operations": [
                {"method": "create", "body": {"title": "A", "slug": "same"}},
                {"method": "create", "body": {"title": "B", "slug": "same"}},
            ]}),
            409,
            "CONFLICT",
        ),
        // A delete of a record that does not exist.
        (
            json!({"operations": [
                {"method": "create", "body": {"title": "New"}},
                {"method": "delete", "id": "999"},
            ]}),
            404,
            "NOT_FOUND",
        ),
        // An unknown method.
        (
            json!({"operations": [{"method": "upsert", "body": {"title": "x"}}]}),
            400,
            "VALIDATION_ERROR",
        ),
        // An empty batch.
        (json!({"operations": []}), 400, "VALIDATION_ERROR"),
    ];
    for (body, status, code) in batches {
        let reply = send(
            &service,
            Method::POST,
            "/api/collections/posts/batch",
            Some(body),
        )
        .await;
        reply.assert_error(status, code);
    }
    let invalid = send(
        &service,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({"operations": [
            {"method": "create", "body": {"title": "ok"}},
            {"method": "create", "body": {"status": "draft"}},
        ]})),
    )
    .await;
    assert_eq!(invalid.error_fields(), vec!["operations[1].title"]);
    let after = get(&service, "/api/collections/posts").await.body;
    assert_eq!(before["items"], after["items"], "nothing was written");
    assert_eq!(live_count(&app, "posts"), 1);
}

#[actix_web::test]
async fn a_batch_over_the_limit_is_413() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let operations: Vec<Json> = (0..1001)
        .map(|index| json!({"method": "create", "body": {"title": format!("p{index}")}}))
        .collect();
    let reply = send(
        &service,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({ "operations": operations })),
    )
    .await;
    reply.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(live_count(&app, "posts"), 0);

    let operations: Vec<Json> = (0..1000)
        .map(|index| json!({"method": "create", "body": {"title": format!("p{index}")}}))
        .collect();
    let reply = send(
        &service,
        Method::POST,
        "/api/collections/posts/batch",
        Some(json!({ "operations": operations })),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(live_count(&app, "posts"), 1000);
}

#[actix_web::test]
async fn the_schema_lists_what_the_caller_may_read() {
    let app = TestApp::from_toml(SCHEMA);
    let admin = service!(app);
    let everything = get(&admin, "/api/schema").await;
    assert_eq!(everything.status, 200);
    let tables = everything.body["tables"].as_object().expect("tables");
    assert!(tables.contains_key("posts") && tables.contains_key("vault"));
    let posts = &everything.body["tables"]["posts"];
    assert_eq!(posts["primaryKey"], json!(["id"]));
    let columns: Vec<&str> = posts["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| column["name"].as_str().unwrap_or_default())
        .collect();
    assert!(columns.contains(&"secret") && columns.contains(&"title"));
    let title = posts["columns"]
        .as_array()
        .and_then(|columns| columns.iter().find(|column| column["name"] == "title"))
        .expect("title column");
    assert_eq!(title["nullable"], false);
    assert_eq!(title["type"], "single-line-text");

    let member = app.token_for(MEMBER, "member").await;
    let anonymous = anonymous_service!(app);
    let seen = send_as(&anonymous, &member, Method::GET, "/api/schema", None).await;
    let tables = seen.body["tables"].as_object().expect("tables");
    assert!(tables.contains_key("posts"));
    assert!(
        !tables.contains_key("vault"),
        "an unreadable table is not listed"
    );
    let columns = seen.body["tables"]["posts"]["columns"].to_string();
    assert!(
        !columns.contains("secret"),
        "an unreadable field is not listed"
    );
}

#[actix_web::test]
async fn sonicjs_lists_with_bracket_filters_and_writes_data_bodies() {
    let app = TestApp::from_toml(SCHEMA);
    let service = service!(app);
    let created = send(
        &service,
        Method::POST,
        "/v1/posts",
        Some(json!({"data": {"title": "Hello", "status": "published"}})),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["data"]["id"].as_str().expect("id").to_owned();
    assert_eq!(created.body["data"]["title"], "Hello");
    seed(&service, "World", "published", "w").await;
    seed(&service, "Draft", "draft", "d").await;

    let listed = get(
        &service,
        "/v1/posts?filters[status][$eq]=published&sort[0]=title:desc&limit=1&offset=0",
    )
    .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["total"], 2);
    assert!(listed.body["executionTime"].is_number());
    let data = listed.body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["title"], "World");
    let next = get(
        &service,
        "/v1/posts?filters[status][$eq]=published&sort[0]=title:desc&limit=1&offset=1",
    )
    .await;
    assert_eq!(next.body["data"][0]["title"], "Hello");
    let either = get(
        &service,
        "/v1/posts?filters[title][$eq]=Hello&filters[title][$eq]=Draft&sort=title",
    )
    .await;
    assert_eq!(either.body["total"], 2, "repeated keys are OR-ed");
    assert_eq!(either.body["data"][0]["title"], "Draft");

    let fetched = get(&service, &format!("/v1/posts/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["data"]["title"], "Hello");
    assert!(fetched.body["executionTime"].is_number());

    let updated = send(
        &service,
        Method::PUT,
        &format!("/v1/posts/{id}"),
        Some(json!({"data": {"status": "draft"}})),
    )
    .await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(updated.body["data"]["status"], "draft");
    assert_eq!(updated.body["data"]["title"], "Hello");

    let bad = send(
        &service,
        Method::POST,
        "/v1/posts",
        Some(json!({"data": {"status": "draft"}})),
    )
    .await;
    bad.assert_error(400, "VALIDATION_ERROR");
    let not_object = send(
        &service,
        Method::POST,
        "/v1/posts",
        Some(json!({"data": 3})),
    )
    .await;
    not_object.assert_error(400, "VALIDATION_ERROR");

    let deleted = send(&service, Method::DELETE, &format!("/v1/posts/{id}"), None).await;
    assert_eq!(deleted.status, 204);
    get(&service, &format!("/v1/posts/{id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let wrong_method = send(&service, Method::PATCH, "/v1/posts/1", Some(json!({}))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(
        wrong_method.header("allow").as_deref(),
        Some("GET, PUT, DELETE")
    );
}

#[actix_web::test]
async fn the_explorer_page_is_served_from_the_binary() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let page = get(&service, "/api/scalar").await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .is_some_and(|kind| kind.starts_with("text/html")));
    let html = String::from_utf8(page.raw).expect("utf-8");
    assert!(html.contains("/api/openapi.json"));
    assert!(!html.contains("https://"), "no CDN");
}

#[actix_web::test]
async fn a_batch_delete_applies_relationship_rules_of_other_tables() {
    let app = TestApp::demo();
    let service = service!(app);
    let task = send(
        &service,
        Method::POST,
        "/api/tables/tasks/records",
        Some(json!({"title": "Linked"})),
    )
    .await;
    let task_id = task.body["id"].as_str().expect("id").to_owned();
    let contact = send(
        &service,
        Method::POST,
        "/api/tables/contacts/records",
        Some(json!({"name": "Ada", "primaryTask": task_id})),
    )
    .await;
    assert_eq!(contact.status, 201, "{:?}", contact.body);
    let contact_id = contact.body["id"].as_str().expect("id").to_owned();

    let reply = send(
        &service,
        Method::POST,
        "/api/collections/tasks/batch",
        Some(json!({"operations": [
            {"method": "create", "body": {"title": "Fresh"}},
            {"method": "delete", "id": task_id},
        ]})),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let contact = get(&service, &format!("/api/collections/contacts/{contact_id}")).await;
    assert_eq!(
        contact.body["primaryTask"],
        Json::Null,
        "set-null cleared the reference: {:?}",
        contact.body
    );
    assert_eq!(live_count(&app, "tasks"), 1);
}
