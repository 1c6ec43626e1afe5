//! Records CRUD through HTTP (SPEC §4.1): bodies, validation, uniqueness, relationships,
//! optimistic concurrency, soft and permanent delete, listing basics, restart.

use serde_json::json;

use crate::common::{delete, get, patch, post, TestApp};
use crate::service;

pub const PEOPLE_AND_PROJECTS: &str = r#"
[[tables]]
id = 1
name = "people"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"
  required = true
  maxLength = 20

  [[tables.fields]]
  id = 2
  name = "email"
  type = "email"
  unique = true

  [[tables.fields]]
  id = 3
  name = "age"
  type = "integer"
  min = 0
  max = 150
  indexed = true

  [[tables.fields]]
  id = 4
  name = "status"
  type = "single-select"
  options = ["active", "away"]
  default = "active"

  [[tables.fields]]
  id = 5
  name = "serial"
  type = "autonumber"

[[tables]]
id = 2
name = "projects"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "owner"
  type = "relationship"
  relatedTable = "people"
  onDelete = "set-null"
"#;

#[actix_web::test]
async fn create_get_update_delete_round_trip() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    let created = post(
        &service,
        "/api/tables/people/records",
        json!({"fields": {"name": "Ada", "email": "ADA@Example.org", "age": 36}}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let body = &created.body;
    assert_eq!(body["id"], json!("1"));
    assert_eq!(body["fields"]["name"], json!("Ada"));
    assert_eq!(
        body["fields"]["email"],
        json!("ada@example.org"),
        "emails are stored lower-cased"
    );
    assert_eq!(
        body["fields"]["status"],
        json!("active"),
        "defaults apply on create"
    );
    assert_eq!(body["fields"]["serial"], json!(1));
    assert!(body["createdAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    assert_eq!(body["createdAt"], body["updatedAt"]);

    // The flat body is wrapped; ids are assigned in insertion order.
    let flat = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "Grace"}),
    )
    .await;
    assert_eq!(flat.status.as_u16(), 201);
    assert_eq!(flat.body["id"], json!("2"));
    assert_eq!(flat.body["fields"]["serial"], json!(2));

    let fetched = get(&service, "/api/tables/people/records/1").await;
    assert_eq!(fetched.status.as_u16(), 200);
    assert_eq!(fetched.body, created.body);
    // The table may be named by id too.
    assert_eq!(
        get(&service, "/api/tables/1/records/1").await.body,
        created.body
    );

    let updated = patch(
        &service,
        "/api/tables/people/records/1",
        json!({"fields": {"age": 37, "email": null}}),
    )
    .await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.body);
    assert_eq!(updated.body["fields"]["age"], json!(37));
    assert_eq!(
        updated.body["fields"]["name"],
        json!("Ada"),
        "PATCH is partial"
    );
    assert!(
        updated.body["fields"].get("email").is_none(),
        "null clears a field"
    );
    assert_ne!(updated.body["updatedAt"], created.body["updatedAt"]);

    let deleted = delete(&service, "/api/tables/people/records/1").await;
    assert_eq!(deleted.status.as_u16(), 204);
    get(&service, "/api/tables/people/records/1")
        .await
        .assert_error(404, "NOT_FOUND");
    let trashed = get(&service, "/api/tables/people/records/1?includeDeleted=true").await;
    assert_eq!(trashed.status.as_u16(), 200);
    assert!(trashed.body["deletedAt"].is_string());
    let list = get(&service, "/api/tables/people/records").await;
    assert_eq!(list.body["pagination"]["total"], json!(1));

    let permanent = delete(&service, "/api/tables/people/records/1?permanent=true").await;
    assert_eq!(permanent.status.as_u16(), 200);
    assert_eq!(permanent.body, json!({"success": true}));
    get(&service, "/api/tables/people/records/1?includeDeleted=true")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn validation_errors_are_collected_and_change_nothing() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    let reply = post(
        &service,
        "/api/tables/people/records",
        json!({"id": 5, "email": "not-an-email", "age": 200, "status": "gone", "nosuch": 1}),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        reply.body["message"],
        json!("One or more fields failed validation")
    );
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["age", "email", "id", "name", "nosuch", "status"]
    );
    let id_error = reply.body["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|error| error["field"] == json!("id")))
        .expect("an error for id");
    assert_eq!(
        id_error["message"],
        json!("Cannot write to readonly field 'id'")
    );
    let list = get(&service, "/api/tables/people/records").await;
    assert_eq!(list.body["pagination"]["total"], json!(0));
    // The id sequence did not move either.
    let created = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(created.body["id"], json!("1"));
}

#[actix_web::test]
async fn unique_values_conflict_but_empty_ones_never_do() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    let first = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "A", "email": "a@x.org"}),
    )
    .await;
    assert_eq!(first.status.as_u16(), 201);
    let clash = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "B", "email": "A@X.org"}),
    )
    .await;
    clash.assert_error(409, "CONFLICT");
    assert!(clash.body["message"]
        .as_str()
        .is_some_and(|message| message.contains("email")));
    for name in ["C", "D"] {
        let without = post(
            &service,
            "/api/tables/people/records",
            json!({"name": name}),
        )
        .await;
        assert_eq!(
            without.status.as_u16(),
            201,
            "empty unique values never clash"
        );
    }
    // Updating a record to its own value is not a clash; to another's is.
    let own = patch(
        &service,
        "/api/tables/people/records/1",
        json!({"email": "a@x.org"}),
    )
    .await;
    assert_eq!(own.status.as_u16(), 200);
    let other = patch(
        &service,
        "/api/tables/people/records/3",
        json!({"email": "a@x.org"}),
    )
    .await;
    other.assert_error(409, "CONFLICT");
    // A trashed record releases its unique value.
    assert_eq!(
        delete(&service, "/api/tables/people/records/1")
            .await
            .status
            .as_u16(),
        204
    );
    let reuse = patch(
        &service,
        "/api/tables/people/records/3",
        json!({"email": "a@x.org"}),
    )
    .await;
    assert_eq!(reuse.status.as_u16(), 200, "{:?}", reuse.body);
}

#[actix_web::test]
async fn relationships_must_point_at_live_records() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    post(
        &service,
        "/api/tables/people/records",
        json!({"name": "Ada"}),
    )
    .await;
    let ok = post(
        &service,
        "/api/tables/projects/records",
        json!({"title": "Engine", "owner": 1}),
    )
    .await;
    assert_eq!(ok.status.as_u16(), 201, "{:?}", ok.body);
    assert_eq!(ok.body["fields"]["owner"], json!("1"));
    let as_string = post(
        &service,
        "/api/tables/projects/records",
        json!({"title": "Loom", "owner": "1"}),
    )
    .await;
    assert_eq!(as_string.status.as_u16(), 201);
    let missing = post(
        &service,
        "/api/tables/projects/records",
        json!({"title": "Nope", "owner": 99}),
    )
    .await;
    missing.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(missing.error_fields(), vec!["owner".to_string()]);
}

#[actix_web::test]
async fn optimistic_concurrency_rejects_a_stale_update() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    let created = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "Ada"}),
    )
    .await;
    let read_at = created.body["updatedAt"].clone();
    let first = patch(
        &service,
        "/api/tables/people/records/1",
        json!({"fields": {"age": 1}, "updatedAt": read_at}),
    )
    .await;
    assert_eq!(first.status.as_u16(), 200, "{:?}", first.body);
    let stale = patch(
        &service,
        "/api/tables/people/records/1",
        json!({"fields": {"age": 2}, "updatedAt": read_at}),
    )
    .await;
    stale.assert_error(409, "CONFLICT");
    assert!(stale.body["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("The record was modified after you last read it")));
    let now = get(&service, "/api/tables/people/records/1").await;
    assert_eq!(
        now.body["fields"]["age"],
        json!(1),
        "the stale update changed nothing"
    );
    let fresh = patch(
        &service,
        "/api/tables/people/records/1",
        json!({"age": 3, "updatedAt": now.body["updatedAt"]}),
    )
    .await;
    assert_eq!(
        fresh.status.as_u16(),
        200,
        "flat body with the current updatedAt"
    );
}

#[actix_web::test]
async fn missing_records_and_ids() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    get(&service, "/api/tables/people/records/1")
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, "/api/tables/people/records/abc")
        .await
        .assert_error(404, "NOT_FOUND");
    patch(&service, "/api/tables/people/records/7", json!({"age": 1}))
        .await
        .assert_error(404, "NOT_FOUND");
    delete(&service, "/api/tables/people/records/7")
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, "/api/tables/nosuch/records")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn listing_pages_sorts_and_filters() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    let service = service!(app);
    for (name, age, status) in [
        ("a", 30, "active"),
        ("b", 20, "away"),
        ("c", 40, "active"),
        ("d", 20, "active"),
        ("e", 50, "away"),
    ] {
        let reply = post(
            &service,
            "/api/tables/people/records",
            json!({"name": name, "age": age, "status": status}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    let page = get(&service, "/api/tables/people/records?limit=2&offset=2").await;
    assert_eq!(page.status.as_u16(), 200);
    let ids: Vec<&str> = page.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, vec!["3", "4"]);
    assert_eq!(
        page.body["pagination"],
        json!({"page": 2, "limit": 2, "offset": 2, "total": 5, "totalPages": 3, "hasNextPage": true, "hasPreviousPage": true})
    );
    let by_page = get(&service, "/api/tables/people/records?page=3&perPage=2").await;
    assert_eq!(by_page.body["records"][0]["id"], json!("5"));
    assert_eq!(by_page.body["pagination"]["hasNextPage"], json!(false));

    let sorted = get(&service, "/api/tables/people/records?sort=age:desc").await;
    let names: Vec<&str> = sorted.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["fields"]["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        vec!["e", "c", "a", "b", "d"],
        "ties break by id ascending"
    );
    let ascending = get(&service, "/api/tables/people/records?sort=age").await;
    assert_eq!(ascending.body["records"][0]["fields"]["name"], json!("b"));

    let filtered = get(&service, "/api/tables/people/records?filter=status:away").await;
    assert_eq!(filtered.body["pagination"]["total"], json!(2));
    let clamped = get(&service, "/api/tables/people/records?limit=5000").await;
    assert_eq!(clamped.body["pagination"]["limit"], json!(1000));
    get(&service, "/api/tables/people/records?sort=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn records_survive_a_restart() {
    let app = TestApp::from_toml(PEOPLE_AND_PROJECTS);
    {
        let service = service!(app);
        for name in ["a", "b", "c"] {
            post(
                &service,
                "/api/tables/people/records",
                json!({"name": name, "email": format!("{name}@x.org")}),
            )
            .await;
        }
        delete(&service, "/api/tables/people/records/2").await;
    }
    let app = app.restart().await;
    let service = service!(app);
    let list = get(&service, "/api/tables/people/records").await;
    assert_eq!(list.body["pagination"]["total"], json!(2));
    let next = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "d", "email": "a@x.org"}),
    )
    .await;
    next.assert_error(409, "CONFLICT");
    let next = post(&service, "/api/tables/people/records", json!({"name": "d"})).await;
    assert_eq!(next.body["id"], json!("4"), "the id sequence survives");
    assert_eq!(
        next.body["fields"]["serial"],
        json!(4),
        "so does the autonumber"
    );
    let tables = get(&service, "/api/tables").await;
    assert_eq!(tables.body["tables"][0]["recordCount"], json!(3));
}

#[actix_web::test]
async fn one_record_takes_fields_and_expand_like_the_list() {
    let app = TestApp::demo();
    let service = service!(app);
    let task = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "Call", "status": "doing"}),
    )
    .await;
    let task_id = task.body["id"].as_str().expect("id").to_owned();
    let contact = post(
        &service,
        "/api/tables/contacts/records",
        json!({"name": "Ada", "email": "ada@example.com", "primaryTask": task_id}),
    )
    .await;
    assert_eq!(contact.status.as_u16(), 201, "{:?}", contact.body);
    let id = contact.body["id"].as_str().expect("id").to_owned();
    let path = format!("/api/tables/contacts/records/{id}");

    let projected = get(&service, &format!("{path}?fields=name")).await;
    assert_eq!(projected.status.as_u16(), 200, "{:?}", projected.body);
    assert_eq!(projected.body["fields"], json!({"name": "Ada"}));
    assert_eq!(projected.body["id"], json!(id), "system attributes stay");

    let expanded = get(&service, &format!("{path}?expand=primaryTask")).await;
    assert_eq!(expanded.body["expand"]["primaryTask"]["id"], json!(task_id));
    assert_eq!(
        expanded.body["expand"]["primaryTask"]["fields"]["title"],
        json!("Call")
    );

    for query in ["fields=nosuch", "expand=nosuch", "expand=a..b"] {
        let reply = get(&service, &format!("{path}?{query}")).await;
        reply.assert_error(400, "VALIDATION_ERROR");
    }
    // Checked before the record is looked up, as on the list.
    get(&service, "/api/tables/contacts/records/999?fields=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let plain = get(&service, &path).await;
    assert!(plain.body.get("expand").is_none());
    assert_eq!(plain.body["commentCount"], json!(0));
}

#[actix_web::test]
async fn the_wrapped_body_refuses_what_the_flat_one_refuses() {
    let app = TestApp::demo();
    let service = service!(app);
    for (body, field) in [
        (json!({"fields": {"title": "A"}, "id": "5"}), "id"),
        (
            json!({"fields": {"title": "A"}, "createdBy": "someone"}),
            "createdBy",
        ),
        (json!({"fields": {"title": "A"}, "nosuch": 1}), "nosuch"),
    ] {
        let reply = post(&service, "/api/tables/tasks/records", body.clone()).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.error_fields(), vec![field.to_owned()], "{body}");
        let flat = {
            let mut flat = body["fields"].clone();
            flat[field] = body[field].clone();
            flat
        };
        let reply = post(&service, "/api/tables/tasks/records", flat).await;
        assert_eq!(
            reply.error_fields(),
            vec![field.to_owned()],
            "the flat form agrees"
        );
    }
    let listed = get(&service, "/api/tables/tasks/records").await;
    assert_eq!(
        listed.body["pagination"]["total"],
        json!(0),
        "nothing was written"
    );
    // `updatedAt` beside `fields` stays the optimistic-concurrency token.
    let created = post(
        &service,
        "/api/tables/tasks/records",
        json!({"fields": {"title": "A"}}),
    )
    .await;
    let id = created.body["id"].as_str().expect("id").to_owned();
    let stamp = created.body["updatedAt"].clone();
    let path = format!("/api/tables/tasks/records/{id}");
    let updated = patch(
        &service,
        &path,
        json!({"fields": {"title": "B"}, "updatedAt": stamp}),
    )
    .await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.body);
    patch(
        &service,
        &path,
        json!({"fields": {"title": "C"}, "updatedAt": stamp}),
    )
    .await
    .assert_error(409, "CONFLICT");
}

#[actix_web::test]
async fn single_line_text_refuses_every_unicode_line_break() {
    let app = TestApp::demo();
    let service = service!(app);
    for separator in [
        "\u{2028}", "\u{2029}", "\u{85}", "\u{0B}", "\u{0C}", "\n", "\r",
    ] {
        let reply = post(
            &service,
            "/api/tables/tasks/records",
            json!({"title": format!("one{separator}two")}),
        )
        .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(reply.error_fields(), vec!["title".to_owned()]);
    }
}
