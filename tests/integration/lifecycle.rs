//! The record lifecycle through HTTP (SPEC §4.1 onDelete, §4.3, §4.4): atomic batch and upsert,
//! trash and restore, relationship rules across tables and within one, revision history,
//! comments, and a SIGKILL of the real binary while batches are being acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::common::{delete, get, patch, post, send, TestApp};
use crate::service;

/// companies ← people (cascade) ← notes (cascade); people ← people.manager (set-null);
/// people ← tasks.assignee (restrict), tasks.reviewer (set-null); tasks ← tasks.parent (cascade).
pub const LIFECYCLE_TABLES: &str = r#"
[[tables]]
id = 1
name = "companies"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "code"
  type = "single-line-text"
  unique = true

[[tables]]
id = 2
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
  indexed = true
  min = 0

  [[tables.fields]]
  id = 4
  name = "company"
  type = "relationship"
  relatedTable = "companies"
  onDelete = "cascade"

  [[tables.fields]]
  id = 5
  name = "manager"
  type = "relationship"
  relatedTable = "people"
  onDelete = "set-null"

  [[tables.fields]]
  id = 6
  name = "city"
  type = "single-line-text"

[[tables]]
id = 3
name = "tasks"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "assignee"
  type = "relationship"
  relatedTable = "people"
  onDelete = "restrict"

  [[tables.fields]]
  id = 3
  name = "reviewer"
  type = "relationship"
  relatedTable = "people"
  onDelete = "set-null"

  [[tables.fields]]
  id = 4
  name = "parent"
  type = "relationship"
  relatedTable = "tasks"
  onDelete = "cascade"

[[tables]]
id = 4
name = "notes"

  [[tables.fields]]
  id = 1
  name = "text"
  type = "long-text"

  [[tables.fields]]
  id = 2
  name = "person"
  type = "relationship"
  relatedTable = "people"
  onDelete = "cascade"
"#;

fn ids(reply: &Json, list: &str) -> Vec<String> {
    reply[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every key and value of a table's tree: the whole stored state of the table.
fn dump(app: &TestApp, table: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let handle = app.state.registry.resolve(table).expect("the table");
    handle
        .shared
        .store
        .tree()
        .iter()
        .map(|entry| {
            let (key, value) = entry.expect("a readable entry");
            (key.to_vec(), value.to_vec())
        })
        .collect()
}

async fn create<S, B>(service: &S, table: &str, fields: Json) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let reply = post(
        service,
        &format!("/api/tables/{table}/records"),
        json!({ "fields": fields }),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
    reply.body["id"].as_str().expect("an id").to_owned()
}

#[actix_web::test]
async fn batch_create_is_atomic_and_names_the_bad_item() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let created = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"fields": {"name": "Ada", "email": "ADA@x.org"}}, {"name": "Grace"}], "returnRecords": true}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(created.body["created"], json!(2));
    assert_eq!(ids(&created.body, "records"), vec!["1", "2"]);
    assert_eq!(
        created.body["records"][0]["fields"]["email"],
        json!("ada@x.org")
    );
    assert_eq!(created.body["records"][0]["commentCount"], json!(0));
    let without = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "Linus"}]}),
    )
    .await;
    assert_eq!(without.status.as_u16(), 201);
    assert_eq!(
        without.body,
        json!({"created": 1}),
        "records only with returnRecords"
    );

    let before = dump(&app, "people");
    let bad = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "ok"}, {"name": "x", "email": "nope"}, {"name": "y", "age": -1}, {"nosuch": 1}]}),
    )
    .await;
    bad.assert_error(400, "VALIDATION_ERROR");
    let mut fields = bad.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "records[1].email",
            "records[2].age",
            "records[3].name",
            "records[3].nosuch"
        ]
    );
    assert_eq!(
        dump(&app, "people"),
        before,
        "records, counts, indexes, history, activity unchanged"
    );

    // A unique clash with a stored record, and one inside the batch: 409, nothing written.
    let stored_clash = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "new"}, {"name": "dup", "email": "ada@x.org"}]}),
    )
    .await;
    stored_clash.assert_error(409, "CONFLICT");
    assert_eq!(
        stored_clash.body["details"]["field"],
        json!("records[1].email")
    );
    let inner_clash = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "a", "email": "same@x.org"}, {"name": "b", "email": "SAME@x.org"}]}),
    )
    .await;
    inner_clash.assert_error(409, "CONFLICT");
    assert_eq!(dump(&app, "people"), before);

    let next = post(
        &service,
        "/api/tables/people/records",
        json!({"name": "next"}),
    )
    .await;
    assert_eq!(next.body["id"], json!("4"), "failed batches took no ids");
}

#[actix_web::test]
async fn batch_sizes_are_checked() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let empty = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": []}),
    )
    .await;
    empty.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(empty.error_fields(), vec!["records"]);
    let records: Vec<Json> = (0..1001)
        .map(|index| json!({"name": format!("p{index}")}))
        .collect();
    let too_many = post(
        &service,
        "/api/tables/people/records/batch",
        json!({ "records": records }),
    )
    .await;
    too_many.assert_error(413, "PAYLOAD_TOO_LARGE");
    let thousand: Vec<Json> = (0..1000)
        .map(|index| json!({"name": format!("p{index}")}))
        .collect();
    let full = post(
        &service,
        "/api/tables/people/records/batch",
        json!({ "records": thousand }),
    )
    .await;
    assert_eq!(full.body["created"], json!(1000));
    let ids: Vec<u64> = (1..=1001).collect();
    send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({ "ids": ids })),
    )
    .await
    .assert_error(413, "PAYLOAD_TOO_LARGE");
    send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({"ids": []})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    post(
        &service,
        "/api/tables/people/records/batch/restore",
        json!({"ids": []}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [], "fieldsToMergeOn": ["email"]}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": []}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // The paths are not taken for record ids.
    let wrong = get(&service, "/api/tables/people/records/batch").await;
    assert_eq!(wrong.status.as_u16(), 405);
    assert_eq!(
        get(&service, "/api/tables/people/records/upsert")
            .await
            .status
            .as_u16(),
        405
    );
}

#[actix_web::test]
async fn the_batch_limit_is_configurable() {
    let app = TestApp::from_toml(&format!("[limits]\nmax_batch = 2\n{LIFECYCLE_TABLES}"));
    let service = service!(app);
    let three = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
    )
    .await;
    three.assert_error(413, "PAYLOAD_TOO_LARGE");
    let two = post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "a"}, {"name": "b"}]}),
    )
    .await;
    assert_eq!(two.status.as_u16(), 201);
}

#[actix_web::test]
async fn batch_update_is_all_or_nothing() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    for name in ["a", "b", "c"] {
        create(
            &service,
            "people",
            json!({"name": name, "email": format!("{name}@x.org")}),
        )
        .await;
    }
    let updated = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"id": "1", "fields": {"age": 10}}, {"id": 2, "age": 20}], "returnRecords": true}),
    )
    .await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.body);
    assert_eq!(updated.body["updated"], json!(2));
    assert_eq!(
        updated.body["records"][1]["fields"],
        json!({"name": "b", "email": "b@x.org", "age": 20})
    );

    let before = dump(&app, "people");
    let missing = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"id": 1, "age": 11}, {"id": 99, "age": 1}]}),
    )
    .await;
    missing.assert_error(404, "NOT_FOUND");
    let invalid = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"id": 1, "age": 11}, {"id": 2, "age": "old"}]}),
    )
    .await;
    invalid.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(invalid.error_fields(), vec!["records[1].age"]);
    let no_id = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"age": 11}]}),
    )
    .await;
    no_id.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(no_id.error_fields(), vec!["records[0].id"]);
    // Swapping two unique values in one batch clashes on the first step: 409.
    let clash = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"id": 1, "email": "c@x.org"}, {"id": 3, "email": "a@x.org"}]}),
    )
    .await;
    clash.assert_error(409, "CONFLICT");
    assert_eq!(
        dump(&app, "people"),
        before,
        "nothing written by any failed batch"
    );
    // Releasing a value earlier in the batch lets a later item take it.
    let moved = patch(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"id": 1, "email": null}, {"id": 3, "email": "a@x.org"}]}),
    )
    .await;
    assert_eq!(moved.status.as_u16(), 200, "{:?}", moved.body);
}

#[actix_web::test]
async fn batch_delete_and_restore() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    for name in ["a", "b", "c", "d"] {
        create(&service, "people", json!({"name": name})).await;
    }
    assert_eq!(
        delete(&service, "/api/tables/people/records/1")
            .await
            .status
            .as_u16(),
        204
    );
    let deleted = send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({"ids": [1, "2", 3]})),
    )
    .await;
    assert_eq!(deleted.status.as_u16(), 200, "{:?}", deleted.body);
    assert_eq!(
        deleted.body,
        json!({"deleted": 2}),
        "the already-trashed id is not counted"
    );
    let missing = send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({"ids": [4, 77]})),
    )
    .await;
    missing.assert_error(404, "NOT_FOUND");
    assert_eq!(
        get(&service, "/api/tables/people/records/4")
            .await
            .status
            .as_u16(),
        200,
        "nothing deleted"
    );
    let trash = get(&service, "/api/tables/people/trash").await;
    assert_eq!(trash.body["pagination"]["total"], json!(3));

    let live = post(
        &service,
        "/api/tables/people/records/batch/restore",
        json!({"ids": [1, 4]}),
    )
    .await;
    live.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(live.body["message"], json!("Record is not deleted"));
    assert_eq!(live.error_fields(), vec!["ids[1]"]);
    let restored = post(
        &service,
        "/api/tables/people/records/batch/restore",
        json!({"ids": [1, 2]}),
    )
    .await;
    assert_eq!(restored.status.as_u16(), 200, "{:?}", restored.body);
    assert_eq!(restored.body, json!({"success": true, "restored": 2}));
    let list = get(&service, "/api/tables/people/records").await;
    assert_eq!(list.body["pagination"]["total"], json!(3));

    let permanent = send(
        &service,
        Method::DELETE,
        "/api/tables/people/records/batch",
        Some(json!({"ids": [3, 4], "permanent": true})),
    )
    .await;
    assert_eq!(
        permanent.body,
        json!({"deleted": 2}),
        "permanent deletes trashed and live ids"
    );
    get(&service, "/api/tables/people/records/3?includeDeleted=true")
        .await
        .assert_error(404, "NOT_FOUND");
    let tables = get(&service, "/api/tables").await;
    let people = tables.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .find(|t| t["name"] == json!("people"))
        .cloned()
        .expect("people");
    assert_eq!(people["recordCount"], json!(2));
}

#[actix_web::test]
async fn upsert_updates_matches_and_creates_the_rest() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    create(
        &service,
        "people",
        json!({"name": "Ada", "email": "ada@x.org", "age": 36, "city": "London"}),
    )
    .await;
    let reply = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [
            {"fields": {"email": "ADA@x.org", "age": 37}},
            {"fields": {"email": "grace@x.org", "name": "Grace"}},
            {"email": "grace@x.org", "city": "Arlington"}
        ], "fieldsToMergeOn": ["email"]}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    assert_eq!(reply.body["created"], json!(1));
    assert_eq!(
        reply.body["updated"],
        json!(2),
        "the third item matches the record the second created"
    );
    assert_eq!(ids(&reply.body, "records"), vec!["1", "2", "2"]);
    let ada = get(&service, "/api/tables/people/records/1").await;
    assert_eq!(
        ada.body["fields"],
        json!({"name": "Ada", "email": "ada@x.org", "age": 37, "city": "London"}),
        "a partial update"
    );
    let grace = get(&service, "/api/tables/people/records/2").await;
    assert_eq!(grace.body["fields"]["city"], json!("Arlington"));

    // Merging on a field without an index, with the alias and without records in the reply.
    let by_city = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"city": "London", "age": 40}, {"city": "Paris", "name": "Marie"}], "matchFields": ["city"], "returnRecords": false}),
    )
    .await;
    assert_eq!(by_city.body, json!({"created": 1, "updated": 1}));
    // Merging on an indexed field, two fields at once.
    let two = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"age": 40, "city": "London", "name": "Ada L."}], "fieldsToMergeOn": ["age", "city"]}),
    )
    .await;
    assert_eq!(two.body["updated"], json!(1), "{:?}", two.body);
    assert_eq!(two.body["records"][0]["id"], json!("1"));

    let before = dump(&app, "people");
    let with_id = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"id": 1, "email": "ada@x.org"}], "fieldsToMergeOn": ["email"]}),
    )
    .await;
    with_id.assert_error(400, "VALIDATION_ERROR");
    assert!(
        with_id.error_fields().contains(&"records[0].id".to_owned()),
        "{:?}",
        with_id.body
    );
    post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"email": "a@x.org"}], "fieldsToMergeOn": ["nosuch"]}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"email": "a@x.org"}], "fieldsToMergeOn": []}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"email": "a@x.org"}]}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    let no_value = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"name": "x"}], "fieldsToMergeOn": ["email"]}),
    )
    .await;
    no_value.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(no_value.error_fields(), vec!["records[0].email"]);
    let bad_create = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [{"email": "new@x.org", "age": 5}], "fieldsToMergeOn": ["email"]}),
    )
    .await;
    bad_create.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        bad_create.error_fields(),
        vec!["records[0].name"],
        "a create needs the required fields"
    );
    assert_eq!(dump(&app, "people"), before);
}

#[actix_web::test]
async fn upsert_without_records_in_the_reply_writes_the_same_and_keeps_search_in_step() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    create(
        &service,
        "people",
        json!({"name": "Ada", "email": "ada@x.org", "city": "London"}),
    )
    .await;
    // Creates and updates in one batch, the same merge value twice (the second item's record
    // is matched by the third), and searched text changed on a created and a stored record.
    let reply = post(
        &service,
        "/api/tables/people/records/upsert",
        json!({"records": [
            {"email": "ada@x.org", "age": 40},
            {"email": "bo@x.org", "name": "Bo", "city": "Oslo"},
            {"email": "bo@x.org", "city": "Bergen"},
            {"email": "ada@x.org", "city": "Paris"}
        ], "fieldsToMergeOn": ["email"], "returnRecords": false}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"created": 1, "updated": 3}));
    let ada = get(&service, "/api/tables/people/records/1").await;
    assert_eq!(
        ada.body["fields"],
        json!({"name": "Ada", "email": "ada@x.org", "age": 40, "city": "Paris"})
    );
    let bo = get(&service, "/api/tables/people/records/2").await;
    assert_eq!(
        bo.body["fields"],
        json!({"name": "Bo", "email": "bo@x.org", "city": "Bergen"})
    );
    for (word, expected) in [
        ("paris", vec!["1"]),
        ("london", vec![]),
        ("bergen", vec!["2"]),
        ("oslo", vec![]),
        ("ada", vec!["1"]),
    ] {
        let found = get(
            &service,
            &format!("/api/tables/people/records?search={word}"),
        )
        .await;
        assert_eq!(ids(&found.body, "records"), expected, "search={word}");
    }
    // Both updates of Ada are in her history, newest first, with only what they changed.
    let history = get(&service, "/api/tables/people/records/1/history").await;
    assert_eq!(history.status.as_u16(), 200, "{:?}", history.body);
    let changes: Vec<Json> = history.body["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|entry| entry["changes"].clone())
        .collect();
    assert_eq!(
        changes[..2],
        [
            json!({"before": {"city": "London"}, "after": {"city": "Paris"}}),
            json!({"before": {"age": null}, "after": {"age": 40}})
        ]
    );

    // A bad item fails the whole batch: nothing written, the same answer as with records.
    let before = dump(&app, "people");
    for return_records in [false, true] {
        let bad = post(
            &service,
            "/api/tables/people/records/upsert",
            json!({"records": [
                {"email": "ada@x.org", "city": "Rome"},
                {"email": "cy@x.org", "city": "Nice"}
            ], "fieldsToMergeOn": ["email"], "returnRecords": return_records}),
        )
        .await;
        bad.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(bad.error_fields(), vec!["records[1].name"]);
    }
    assert_eq!(dump(&app, "people"), before);
}

#[actix_web::test]
async fn trash_lists_with_the_query_language_and_restores_one() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    for (name, age) in [("a", 30), ("b", 40), ("c", 50)] {
        create(
            &service,
            "people",
            json!({"name": name, "age": age, "email": format!("{name}@x.org")}),
        )
        .await;
    }
    for id in ["1", "2", "3"] {
        delete(&service, &format!("/api/tables/people/records/{id}")).await;
    }
    let trash = get(&service, "/api/tables/people/trash?filter=age:40").await;
    assert_eq!(trash.status.as_u16(), 200, "{:?}", trash.body);
    assert_eq!(ids(&trash.body, "records"), vec!["2"]);
    assert!(trash.body["records"][0]["deletedAt"].is_string());
    let sorted = get(&service, "/api/tables/people/trash?sort=-age&limit=2").await;
    assert_eq!(ids(&sorted.body, "records"), vec!["3", "2"]);
    assert_eq!(sorted.body["pagination"]["total"], json!(3));
    get(&service, "/api/tables/people/trash?sort=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/nosuch/trash")
        .await
        .assert_error(404, "NOT_FOUND");

    let restored = post(&service, "/api/tables/people/records/2/restore", json!({})).await;
    assert_eq!(restored.status.as_u16(), 200, "{:?}", restored.body);
    assert_eq!(restored.body["success"], json!(true));
    assert_eq!(restored.body["record"]["id"], json!("2"));
    assert!(restored.body["record"].get("deletedAt").is_none());
    let again = post(&service, "/api/tables/people/records/2/restore", json!({})).await;
    again.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(again.body["message"], json!("Record is not deleted"));
    post(&service, "/api/tables/people/records/9/restore", json!({}))
        .await
        .assert_error(404, "NOT_FOUND");

    // Trashing released a's email; a live record took it; restoring a would clash → 409.
    create(
        &service,
        "people",
        json!({"name": "a2", "email": "a@x.org"}),
    )
    .await;
    let clash = post(&service, "/api/tables/people/records/1/restore", json!({})).await;
    clash.assert_error(409, "CONFLICT");
    assert_eq!(clash.body["details"]["field"], json!("email"));
    assert!(
        get(&service, "/api/tables/people/records/1")
            .await
            .status
            .as_u16()
            == 404,
        "still trashed"
    );
    // Permanent delete from the trash.
    let gone = delete(&service, "/api/tables/people/records/3?permanent=true").await;
    assert_eq!(gone.status.as_u16(), 200);
    let trash = get(&service, "/api/tables/people/trash").await;
    assert_eq!(ids(&trash.body, "records"), vec!["1"]);
}

#[actix_web::test]
async fn relationships_restrict_set_null_and_cascade() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let acme = create(&service, "companies", json!({"name": "Acme", "code": "AC"})).await;
    let boss = create(&service, "people", json!({"name": "Boss", "company": acme})).await;
    let worker = create(
        &service,
        "people",
        json!({"name": "Worker", "company": acme, "manager": boss}),
    )
    .await;
    let outsider = create(
        &service,
        "people",
        json!({"name": "Out", "manager": worker}),
    )
    .await;
    let note = create(&service, "notes", json!({"text": "hi", "person": worker})).await;
    let task = create(
        &service,
        "tasks",
        json!({"title": "T", "assignee": outsider, "reviewer": worker}),
    )
    .await;

    // restrict: the outsider is assigned a task.
    let before = (
        dump(&app, "people"),
        dump(&app, "tasks"),
        dump(&app, "notes"),
    );
    let refused = delete(&service, &format!("/api/tables/people/records/{outsider}")).await;
    refused.assert_error(409, "CONFLICT");
    assert!(
        refused.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("assignee")),
        "{:?}",
        refused.body
    );
    // Deleting the company cascades to Boss and Worker, whose Outsider (restrict on tasks via
    // assignee does not apply: Outsider stays) — but the task's reviewer (Worker) is set-null
    // and Worker's note cascades.
    assert_eq!(
        (
            dump(&app, "people"),
            dump(&app, "tasks"),
            dump(&app, "notes")
        ),
        before,
        "a refused delete writes nothing"
    );

    let cascade = delete(&service, &format!("/api/tables/companies/records/{acme}")).await;
    assert_eq!(cascade.status.as_u16(), 204, "{:?}", cascade.body);
    get(&service, &format!("/api/tables/people/records/{boss}"))
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, &format!("/api/tables/people/records/{worker}"))
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, &format!("/api/tables/notes/records/{note}"))
        .await
        .assert_error(404, "NOT_FOUND");
    let out = get(&service, &format!("/api/tables/people/records/{outsider}")).await;
    assert!(
        out.body["fields"].get("manager").is_none(),
        "set-null cleared the manager: {:?}",
        out.body
    );
    let task_now = get(&service, &format!("/api/tables/tasks/records/{task}")).await;
    assert!(
        task_now.body["fields"].get("reviewer").is_none(),
        "set-null cleared the reviewer"
    );
    assert_eq!(task_now.body["fields"]["assignee"], json!(outsider));

    // Restoring the company restores what its cascade took, in every table.
    let restored = post(
        &service,
        &format!("/api/tables/companies/records/{acme}/restore"),
        json!({}),
    )
    .await;
    assert_eq!(restored.status.as_u16(), 200, "{:?}", restored.body);
    for (table, id) in [("people", &boss), ("people", &worker), ("notes", &note)] {
        let reply = get(&service, &format!("/api/tables/{table}/records/{id}")).await;
        assert_eq!(
            reply.status.as_u16(),
            200,
            "{table}/{id} restored with its parent"
        );
    }

    // A record trashed on its own is not brought back by its parent's restore.
    let lone = create(&service, "notes", json!({"text": "lone", "person": worker})).await;
    delete(&service, &format!("/api/tables/notes/records/{lone}")).await;
    delete(&service, &format!("/api/tables/people/records/{worker}")).await;
    post(
        &service,
        &format!("/api/tables/people/records/{worker}/restore"),
        json!({}),
    )
    .await;
    assert_eq!(
        get(&service, &format!("/api/tables/notes/records/{note}"))
            .await
            .status
            .as_u16(),
        200
    );
    get(&service, &format!("/api/tables/notes/records/{lone}"))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn a_self_referencing_cascade_is_one_commit() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let root = create(&service, "tasks", json!({"title": "root"})).await;
    let child = create(&service, "tasks", json!({"title": "child", "parent": root})).await;
    let grandchild = create(
        &service,
        "tasks",
        json!({"title": "grandchild", "parent": child}),
    )
    .await;
    let other = create(&service, "tasks", json!({"title": "other"})).await;
    let activity_before =
        get(&service, "/api/activity?tableName=tasks").await.body["pagination"]["total"].clone();
    assert_eq!(
        delete(&service, &format!("/api/tables/tasks/records/{root}"))
            .await
            .status
            .as_u16(),
        204
    );
    let list = get(&service, "/api/tables/tasks/records").await;
    assert_eq!(ids(&list.body, "records"), vec![other.clone()]);
    let activity = get(&service, "/api/activity?tableName=tasks&action=delete").await;
    assert_eq!(activity.body["pagination"]["total"], json!(3));
    let stamps: Vec<&Json> = activity.body["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|a| &a["createdAt"])
        .collect();
    assert!(
        stamps.windows(2).all(|pair| pair[0] == pair[1]),
        "one commit, one time: {stamps:?}"
    );
    assert_eq!(
        get(&service, "/api/activity?tableName=tasks").await.body["pagination"]["total"],
        json!(activity_before.as_u64().unwrap_or(0) + 3)
    );
    let restored = post(
        &service,
        &format!("/api/tables/tasks/records/{root}/restore"),
        json!({}),
    )
    .await;
    assert_eq!(restored.status.as_u16(), 200);
    let list = get(&service, "/api/tables/tasks/records").await;
    assert_eq!(
        ids(&list.body, "records"),
        vec![root, child, grandchild, other]
    );
}

#[actix_web::test]
async fn history_is_newest_first_with_only_changed_fields() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let id = create(
        &service,
        "people",
        json!({"name": "Ada", "age": 36, "city": "London"}),
    )
    .await;
    patch(
        &service,
        &format!("/api/tables/people/records/{id}"),
        json!({"age": 37, "city": "London"}),
    )
    .await;
    patch(
        &service,
        &format!("/api/tables/people/records/{id}"),
        json!({"city": null}),
    )
    .await;
    delete(&service, &format!("/api/tables/people/records/{id}")).await;
    post(
        &service,
        &format!("/api/tables/people/records/{id}/restore"),
        json!({}),
    )
    .await;
    let history = get(
        &service,
        &format!("/api/tables/people/records/{id}/history"),
    )
    .await;
    assert_eq!(history.status.as_u16(), 200, "{:?}", history.body);
    let entries = history.body["history"].as_array().expect("history").clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        vec!["restore", "delete", "update", "update", "create"]
    );
    assert_eq!(
        entries[4]["changes"],
        json!({"after": {"name": "Ada", "age": 36, "city": "London"}})
    );
    assert_eq!(
        entries[3]["changes"],
        json!({"before": {"age": 36}, "after": {"age": 37}}),
        "only the changed field"
    );
    assert_eq!(
        entries[2]["changes"],
        json!({"before": {"city": "London"}, "after": {"city": null}})
    );
    assert_eq!(
        entries[1]["changes"],
        json!({"before": {"name": "Ada", "age": 37}})
    );
    assert_eq!(
        entries[0]["changes"],
        json!({"after": {"name": "Ada", "age": 37}})
    );
    // Attributed to the caller (the harness's admin, or null without accounts), like createdBy.
    let record = get(&service, &format!("/api/tables/people/records/{id}")).await;
    assert_eq!(entries[4]["userId"], record.body["createdBy"]);
    assert_eq!(entries[0]["userId"], record.body["createdBy"]);
    assert!(entries[0]["createdAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    assert_eq!(
        history.body["pagination"],
        json!({"limit": 10, "offset": 0, "total": 5})
    );
    let page = get(
        &service,
        &format!("/api/tables/people/records/{id}/history?limit=2&offset=1"),
    )
    .await;
    let actions: Vec<&str> = page.body["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, vec!["delete", "update"]);
    assert_eq!(
        page.body["pagination"],
        json!({"limit": 2, "offset": 1, "total": 5})
    );
    get(
        &service,
        &format!("/api/tables/people/records/{id}/history?limit=x"),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/people/records/99/history")
        .await
        .assert_error(404, "NOT_FOUND");

    // Batch writes write history too.
    post(
        &service,
        "/api/tables/people/records/batch",
        json!({"records": [{"name": "B"}]}),
    )
    .await;
    let batch_history = get(&service, "/api/tables/people/records/2/history").await;
    assert_eq!(batch_history.body["history"][0]["action"], json!("create"));
}

#[actix_web::test]
async fn history_renders_with_the_current_schema() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let id = {
        let service = service!(app);
        let id = create(
            &service,
            "people",
            json!({"name": "Ada", "city": "London", "age": 3}),
        )
        .await;
        patch(
            &service,
            &format!("/api/tables/people/records/{id}"),
            json!({"city": "Paris", "age": 4}),
        )
        .await;
        id
    };
    // Rename `city` (same id 6) to `town` and drop `age` (id 3).
    let renamed = LIFECYCLE_TABLES
        .replace("name = \"city\"", "name = \"town\"")
        .replace(
            "  [[tables.fields]]\n  id = 3\n  name = \"age\"\n  type = \"integer\"\n  indexed = true\n  min = 0\n\n",
            "",
        );
    assert_ne!(renamed, LIFECYCLE_TABLES);
    // The stored live schema wins over an edited config file (SPEC §9), so the change is
    // published as a new schema version, then survives a restart.
    let config = crate::common::config_from_toml(app.directory.path(), &renamed);
    let publisher = &app.state.schema.addr;
    publisher
        .send(tabula_actors::schema_publisher::ReplaceDraft {
            snapshot: tabula_storage::Schema {
                tables: config.tables.clone(),
            },
            base_version: None,
        })
        .await
        .expect("the publisher answers")
        .expect("the draft is accepted");
    publisher
        .send(tabula_actors::schema_publisher::PublishDraft {
            base_version: 1,
            meta: Default::default(),
        })
        .await
        .expect("the publisher answers")
        .expect("the rename is published");
    let app = app.restart().await;
    let service = service!(app);
    let history = get(
        &service,
        &format!("/api/tables/people/records/{id}/history"),
    )
    .await;
    assert_eq!(
        history.body["history"][0]["changes"],
        json!({"before": {"town": "London"}, "after": {"town": "Paris"}}),
        "renamed fields show their new name, removed ones are skipped"
    );
}

#[actix_web::test]
async fn comments_crud_and_counts() {
    let app = TestApp::from_toml(LIFECYCLE_TABLES);
    let service = service!(app);
    let id = create(&service, "people", json!({"name": "Ada"})).await;
    let base = format!("/api/tables/people/records/{id}/comments");
    let first = post(&service, &base, json!({"content": "First!"})).await;
    assert_eq!(first.status.as_u16(), 201, "{:?}", first.body);
    let comment = &first.body["comment"];
    let comment_id = comment["id"].as_str().expect("an id").to_owned();
    assert_eq!(comment["recordId"], json!(id));
    assert_eq!(comment["tableId"], json!(2));
    assert_eq!(comment["content"], json!("First!"));
    let author = app.user_id(crate::common::ADMIN_EMAIL);
    assert_eq!(comment["userId"], json!(author));
    assert_eq!(
        comment["user"],
        json!({"id": author, "name": "admin"}),
        "the author's account name"
    );
    assert!(comment["createdAt"].is_string() && comment["updatedAt"].is_string());
    let keys: Vec<&String> = comment.as_object().expect("an object").keys().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    let second = post(&service, &base, json!({"body": "alias"})).await;
    assert_eq!(second.status.as_u16(), 201);
    post(&service, &base, json!({"content": "   "}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    post(&service, &base, json!({"content": "x".repeat(10_001)}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        post(&service, &base, json!({"content": "x".repeat(10_000)}))
            .await
            .status
            .as_u16(),
        201
    );
    post(&service, &base, json!({}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    post(
        &service,
        "/api/tables/people/records/99/comments",
        json!({"content": "x"}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    let list = get(&service, &format!("{base}?limit=2")).await;
    assert_eq!(list.status.as_u16(), 200);
    assert_eq!(
        list.body["comments"][0]["content"],
        json!("First!"),
        "oldest first"
    );
    assert_eq!(
        list.body["pagination"],
        json!({"total": 3, "limit": 2, "offset": 0, "hasMore": true})
    );
    let record = get(&service, &format!("/api/tables/people/records/{id}")).await;
    assert_eq!(record.body["commentCount"], json!(3));
    let listed = get(&service, "/api/tables/people/records").await;
    assert_eq!(listed.body["records"][0]["commentCount"], json!(3));

    let one = get(&service, &format!("{base}/{comment_id}")).await;
    assert_eq!(one.body["comment"]["content"], json!("First!"));
    let edited = patch(
        &service,
        &format!("{base}/{comment_id}"),
        json!({"content": "Edited"}),
    )
    .await;
    assert_eq!(edited.status.as_u16(), 200, "{:?}", edited.body);
    assert_eq!(edited.body["comment"]["content"], json!("Edited"));
    assert_ne!(edited.body["comment"]["updatedAt"], comment["updatedAt"]);
    patch(
        &service,
        &format!("{base}/{comment_id}"),
        json!({"content": ""}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        delete(&service, &format!("{base}/{comment_id}"))
            .await
            .status
            .as_u16(),
        204
    );
    get(&service, &format!("{base}/{comment_id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    delete(&service, &format!("{base}/{comment_id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, &format!("{base}/abc"))
        .await
        .assert_error(404, "NOT_FOUND");
    let record = get(&service, &format!("/api/tables/people/records/{id}")).await;
    assert_eq!(record.body["commentCount"], json!(2));

    // A trashed record's comments are hidden; deleting it for good removes them.
    delete(&service, &format!("/api/tables/people/records/{id}")).await;
    get(&service, &base).await.assert_error(404, "NOT_FOUND");
    delete(
        &service,
        &format!("/api/tables/people/records/{id}?permanent=true"),
    )
    .await;
    let handle = app.state.registry.resolve("people").expect("people");
    let record_id: u64 = id.parse().expect("numeric");
    assert_eq!(handle.shared.store.comments(record_id).count(), 0);
    assert_eq!(
        handle.shared.store.comment_count(record_id).expect("count"),
        0
    );
}

// ---- SIGKILL while batches are acknowledged -------------------------------------------------

struct Server {
    child: Child,
    base: String,
}

/// The demo config with auth and rate limits off (this test is about durability), written into
/// `directory`; its path.
fn unthrottled_demo_config(directory: &std::path::Path) -> String {
    let demo = tabula::config::DEMO_CONFIG_TOML
        .replacen("[auth]\n", "[auth]\nenabled = false\n", 1)
        .replacen(
            "\nenabled = true\n# Whether anyone may create",
            "\n# Whether anyone may create",
            1,
        )
        .replace("tables_get = 100", "tables_get = 0")
        .replace("tables_post = 50", "tables_post = 0");
    assert!(demo.contains("tables_post = 0") && demo.contains("enabled = false"));
    let path = directory.join("unthrottled.toml");
    std::fs::write(&path, demo).expect("write the test config");
    path.to_str().expect("a UTF-8 path").to_owned()
}

impl Server {
    fn start(working_dir: &std::path::Path) -> Server {
        let config = unthrottled_demo_config(working_dir);
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_tabula"))
            .current_dir(working_dir)
            .args(["serve", "--config", &config, "--port", &port.to_string()])
            .env_remove("TABULA_CONFIG")
            .env("TABULA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if client()
                .get(format!("{}/api/health", server.base))
                .send()
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                return server;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not become healthy");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

#[test]
fn every_acknowledged_batch_is_whole_after_a_sigkill_and_no_other_is_partial() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(directory.path());
    let base = server.base.clone();
    // batch tag → titles it created, for every acknowledged batch.
    let acknowledged = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|writer| {
            let (base, acknowledged, stop) =
                (base.clone(), Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let client = client();
                let mut sequence = 0;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let size = 1 + (sequence * 7 + writer) % 50;
                    let tag = format!("w{writer}b{sequence}s{size}");
                    let records: Vec<Json> = (0..size)
                        .map(|item| json!({"title": format!("{tag}-{item}"), "notes": tag}))
                        .collect();
                    let Ok(response) = client
                        .post(format!("{base}/api/tables/tasks/records/batch"))
                        .json(&json!({ "records": records }))
                        .send()
                    else {
                        break;
                    };
                    if response.status().as_u16() != 201 {
                        break;
                    }
                    acknowledged.lock().expect("the lock").insert(tag, size);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        let _ = writer.join();
    }
    drop(server);
    let acknowledged = acknowledged.lock().expect("the lock").clone();
    assert!(
        acknowledged.len() > 10,
        "the writers made progress: {}",
        acknowledged.len()
    );

    let server = Server::start(directory.path());
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut after = 0u64;
    let client = client();
    loop {
        let page: Json = client
            .get(format!(
                "{}/api/tables/tasks/records?limit=1000&after={after}&skipTotal=true",
                server.base
            ))
            .send()
            .and_then(|response| response.json())
            .expect("a page");
        let records = page["records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for record in &records {
            after = record["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("numeric id");
            let tag = record["fields"]["notes"].as_str().unwrap_or("").to_owned();
            *stored.entry(tag).or_default() += 1;
        }
    }
    for (tag, size) in &acknowledged {
        assert_eq!(
            stored.get(tag),
            Some(size),
            "acknowledged batch {tag} is wholly present"
        );
    }
    for (tag, count) in &stored {
        let expected: usize = tag
            .rsplit('s')
            .next()
            .and_then(|size| size.parse().ok())
            .expect("a well-formed tag");
        assert_eq!(
            *count, expected,
            "batch {tag} is whole or absent, never partial"
        );
    }
    // History and activity came with the records: one create entry per stored record.
    let total: usize = stored.values().sum();
    let activity: Json = client
        .get(format!(
            "{}/api/activity?tableName=tasks&pageSize=1",
            server.base
        ))
        .send()
        .and_then(|response| response.json())
        .expect("activity");
    assert_eq!(activity["pagination"]["total"], json!(total));
}
