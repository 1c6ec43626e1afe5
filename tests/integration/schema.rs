//! Live schema management (SPEC §9): the surface switch and access, versions and drift, the
//! draft workflow, publishing live (renames, retypes, added fields, under write load), restore,
//! export, prune, and the runtime table operations — each checked across restarts.

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::common::{delete, get, patch, post, send, send_as, TestApp};
use crate::{anonymous_service, service};

/// A small app with the schema edit API on: `items` (title, count, status).
const ITEMS: &str = r#"
[schema]
edit_api = true

[[tables]]
id = 1
name = "items"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "count"
  type = "integer"

  [[tables.fields]]
  id = 3
  name = "status"
  type = "single-select"
  options = ["new", "old"]

  [tables.permissions]
  read = "authenticated"
  create = ["admin", "member"]
  update = ["admin", "member"]
"#;

fn items_app() -> TestApp {
    TestApp::from_toml(ITEMS)
}

async fn put<S, B>(service: &S, path: &str, body: Json) -> crate::common::Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    send(service, Method::PUT, path, Some(body)).await
}

/// The draft's snapshot with `edit` applied, PUT back on `base`.
async fn put_draft<S, B>(service: &S, edit: impl FnOnce(&mut Json)) -> crate::common::Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let draft = get(service, "/api/admin/schema/draft").await;
    assert_eq!(draft.status.as_u16(), 200, "{:?}", draft.body);
    let mut snapshot = draft.body["snapshot"].clone();
    edit(&mut snapshot);
    put(
        service,
        "/api/admin/schema/draft",
        json!({"snapshot": snapshot, "baseVersion": draft.body["baseVersion"]}),
    )
    .await
}

async fn publish<S, B>(service: &S, base_version: u64) -> crate::common::Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    post(
        service,
        "/api/admin/schema/draft/publish",
        json!({"baseVersion": base_version, "message": "test"}),
    )
    .await
}

fn field_mut<'a>(snapshot: &'a mut Json, table: &str, field: &str) -> &'a mut Json {
    snapshot["tables"]
        .as_array_mut()
        .and_then(|tables| tables.iter_mut().find(|t| t["name"] == json!(table)))
        .and_then(|table| table["fields"].as_array_mut())
        .and_then(|fields| fields.iter_mut().find(|f| f["name"] == json!(field)))
        .expect("the field is in the snapshot")
}

fn fields_mut<'a>(snapshot: &'a mut Json, table: &str) -> &'a mut Vec<Json> {
    snapshot["tables"]
        .as_array_mut()
        .and_then(|tables| tables.iter_mut().find(|t| t["name"] == json!(table)))
        .and_then(|table| table["fields"].as_array_mut())
        .expect("the table is in the snapshot")
}

/// Every record of a table (live ones), in id order.
async fn all_records<S, B>(service: &S, table: &str) -> Vec<Json>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let reply = get(
            service,
            &format!("/api/tables/{table}/records?limit=1000&offset={offset}&sort=id"),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
        let page = reply.body["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let done = page.len() < 1000;
        offset += page.len();
        records.extend(page);
        if done {
            return records;
        }
    }
}

async fn status<S, B>(service: &S) -> Json
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let reply = get(service, "/api/admin/schema/status").await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    reply.body
}

#[actix_web::test]
async fn the_surface_is_404_when_switched_off() {
    let app = TestApp::demo();
    assert!(!app.state.config.schema.edit_api);
    let service = service!(app);
    for path in [
        "/api/admin/schema/status",
        "/api/admin/schema/versions",
        "/api/admin/schema/draft",
        "/api/admin/schema/export?format=json",
        "/api/admin/schema/anything",
    ] {
        get(&service, path).await.assert_error(404, "NOT_FOUND");
    }
    post(
        &service,
        "/api/admin/schema/draft/publish",
        json!({"baseVersion": 1}),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    // A wrong method is 404 too (not 405): the path does not exist.
    delete(&service, "/api/admin/schema/status")
        .await
        .assert_error(404, "NOT_FOUND");
    let anonymous = anonymous_service!(app);
    get(&anonymous, "/api/admin/schema/status")
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn only_admins_reach_the_surface() {
    let app = items_app();
    let member = app.token_for("member@example.com", "member").await;
    let anonymous = anonymous_service!(app);
    get(&anonymous, "/api/admin/schema/status")
        .await
        .assert_error(401, "UNAUTHORIZED");
    send_as(
        &anonymous,
        &member,
        Method::GET,
        "/api/admin/schema/status",
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
    send_as(
        &anonymous,
        &member,
        Method::POST,
        "/api/admin/tables",
        Some(json!({"name": "x", "fields": [{"name": "a", "type": "integer"}]})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    post(
        &anonymous,
        "/api/admin/tables",
        json!({"name": "x", "fields": [{"name": "a", "type": "integer"}]}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let admin = app.admin_token().await;
    let reply = send_as(
        &anonymous,
        &admin,
        Method::GET,
        "/api/admin/schema/status",
        None,
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200);
}

#[actix_web::test]
async fn the_config_seeds_version_one_and_drift_is_reported() {
    let app = items_app();
    let service = service!(app);
    let seeded = status(&service).await;
    assert_eq!(seeded["activeVersion"], json!(1));
    assert_eq!(seeded["driftStatus"], json!("in-sync"));
    assert_eq!(seeded["draftDirty"], json!(false));
    assert_eq!(seeded["draftStale"], json!(false));
    assert_eq!(seeded["draftBaseVersion"], json!(1));
    assert_eq!(seeded["fileChecksum"], seeded["activeChecksum"]);
    let diff = get(&service, "/api/admin/schema/diff").await;
    assert_eq!(diff.body["changes"], json!([]));

    // Live changes through the API: drifted from the file, and the diff names each change.
    let reply = put_draft(&service, |snapshot| {
        fields_mut(snapshot, "items").push(json!({"name": "notes", "type": "long-text"}));
        field_mut(snapshot, "items", "count")["name"] = json!("quantity");
        fields_mut(snapshot, "items").retain(|field| field["name"] != json!("status"));
        snapshot["tables"].as_array_mut().expect("tables").push(
            json!({"name": "tags", "fields": [{"name": "label", "type": "single-line-text"}]}),
        );
    })
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    assert_eq!(reply.body["dirty"], json!(true));
    assert_eq!(status(&service).await["draftDirty"], json!(true));
    let published = publish(&service, 1).await;
    assert_eq!(published.status.as_u16(), 200, "{:?}", published.body);
    assert_eq!(published.body["activeVersion"], json!(2));
    assert_eq!(published.body["version"]["versionNumber"], json!(2));
    assert_eq!(published.body["version"]["message"], json!("test"));
    let drifted = status(&service).await;
    assert_eq!(drifted["driftStatus"], json!("drifted-from-file"));
    assert_eq!(drifted["draftDirty"], json!(false));
    assert_ne!(drifted["fileChecksum"], drifted["activeChecksum"]);
    let diff = get(&service, "/api/admin/schema/diff").await;
    assert_eq!(diff.body["from"], json!("file"));
    let kinds: Vec<(String, String)> = diff.body["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|change| {
            (
                change["kind"].as_str().unwrap_or_default().to_owned(),
                change["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("add-field", "/tables/items/fields/notes"),
        ("rename-field", "/tables/items/fields/quantity"),
        ("remove-field", "/tables/items/fields/status"),
        ("add-table", "/tables/tags"),
    ] {
        assert!(
            kinds.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {kinds:?}"
        );
    }
    let rename = diff.body["changes"]
        .as_array()
        .and_then(|changes| changes.iter().find(|c| c["kind"] == json!("rename-field")))
        .cloned()
        .expect("the rename");
    assert_eq!(rename["before"], json!("count"));
    assert_eq!(rename["after"], json!("quantity"));

    // The new table serves at once, and everything survives a restart.
    let created = post(
        &service,
        "/api/tables/tags/records",
        json!({"label": "red"}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    let after = status(&service).await;
    assert_eq!(after["activeVersion"], json!(2));
    assert_eq!(after["driftStatus"], json!("drifted-from-file"));
    let tags = get(&service, "/api/tables/tags/records").await;
    assert_eq!(tags.body["records"][0]["fields"]["label"], json!("red"));
    get(&service, "/api/tables/items").await.body["table"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == json!("quantity"))
        .expect("the renamed field is live after the restart");
}

#[actix_web::test]
async fn a_changed_config_file_is_file_ahead() {
    let app = items_app();
    let directory = app.directory.path().to_path_buf();
    // Restart on the same data directory with a config file that has one more field.
    let changed = ITEMS.replace(
        "  [tables.permissions]",
        "  [[tables.fields]]\n  id = 4\n  name = \"extra\"\n  type = \"checkbox\"\n\n  [tables.permissions]",
    );
    let config = crate::common::config_from_toml(&directory, &changed);
    let app = app.restart_with(config).await;
    let service = service!(app);
    let ahead = status(&service).await;
    assert_eq!(ahead["driftStatus"], json!("file-ahead"));
    assert_eq!(
        ahead["activeVersion"],
        json!(1),
        "the stored live version wins"
    );
    let diff = get(&service, "/api/admin/schema/diff").await;
    assert_eq!(diff.body["from"], json!("live"));
    assert_eq!(diff.body["to"], json!("file"));
    assert_eq!(diff.body["changes"][0]["kind"], json!("add-field"));
    assert_eq!(
        diff.body["changes"][0]["path"],
        json!("/tables/items/fields/extra")
    );
    // The live schema is still the stored one: the file's new field is not served.
    let table = get(&service, "/api/tables/items").await;
    assert!(!table.body["table"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|field| field["name"] == json!("extra")));
}

#[actix_web::test]
async fn a_stale_publish_is_a_conflict_with_details() {
    let app = items_app();
    let service = service!(app);
    let reply = put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "title")["maxLength"] = json!(100);
    })
    .await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(publish(&service, 1).await.status.as_u16(), 200);
    let stale = publish(&service, 1).await;
    stale.assert_error(409, "CONFLICT");
    assert_eq!(stale.body["details"], json!({"expected": 2, "actual": 1}));
    // PUT with a stale base is refused the same way, and changes nothing.
    let before = get(&service, "/api/admin/schema/draft").await;
    let stale_put = put(
        &service,
        "/api/admin/schema/draft",
        json!({"snapshot": {"tables": []}, "baseVersion": 1}),
    )
    .await;
    stale_put.assert_error(409, "CONFLICT");
    assert_eq!(stale_put.body["details"]["actual"], json!(1));
    assert_eq!(
        get(&service, "/api/admin/schema/draft").await.body,
        before.body
    );
    // A missing baseVersion on publish is a 400.
    post(&service, "/api/admin/schema/draft/publish", json!({}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn validation_reports_json_pointers() {
    let app = items_app();
    let service = service!(app);
    let reply = put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "count")["type"] = json!("integr");
        field_mut(snapshot, "items", "status")["options"] = json!([]);
    })
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let validated = post(&service, "/api/admin/schema/draft/validate", json!({})).await;
    assert_eq!(validated.status.as_u16(), 200);
    assert_eq!(validated.body["valid"], json!(false));
    let paths: Vec<&str> = validated.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|error| error["path"].as_str())
        .collect();
    assert!(paths.contains(&"/tables/0/fields/1/type"), "{paths:?}");
    assert!(paths.contains(&"/tables/0/fields/2/options"), "{paths:?}");
    let message = validated.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("integr"), "{message}");
    // Publishing it is a 400 with the same pointers, and nothing changes.
    let refused = publish(&service, 1).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        refused.body["errors"][0]["path"],
        json!("/tables/0/fields/1/type")
    );
    assert_eq!(status(&service).await["activeVersion"], json!(1));
    // A snapshot of the wrong shape is refused at PUT, with the pointer of the bad part.
    let malformed = put(
        &service,
        "/api/admin/schema/draft",
        json!({"snapshot": {"tables": [{"name": "x", "fields": [{"name": "a", "type": "integer", "colour": 1}]}]}, "baseVersion": 1}),
    )
    .await;
    malformed.assert_error(400, "VALIDATION_ERROR");
    let path = malformed.body["errors"][0]["path"]
        .as_str()
        .unwrap_or_default();
    assert!(path.starts_with("/snapshot/tables/0/fields/0"), "{path}");
    // A snapshot is an object: an array (which serde would read member by member) is refused.
    for snapshot in [json!([]), json!([[]]), json!("tables")] {
        let refused = put(
            &service,
            "/api/admin/schema/draft",
            json!({"snapshot": snapshot, "baseVersion": 1}),
        )
        .await;
        refused.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            refused.body["errors"][0]["path"],
            json!("/snapshot"),
            "{snapshot}"
        );
    }
    let refused = post(&service, "/api/admin/tables", json!([])).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    // A valid draft validates clean.
    post(&service, "/api/admin/schema/draft/discard", json!({})).await;
    let clean = post(&service, "/api/admin/schema/draft/validate", json!({})).await;
    assert_eq!(clean.body, json!({"valid": true, "errors": []}));
}

#[actix_web::test]
async fn renames_keep_data_and_retypes_convert_or_list_the_records() {
    let app = items_app();
    let service = service!(app);
    for (title, count) in [("a", 1), ("b", 22), ("c", 333)] {
        let reply = post(
            &service,
            "/api/tables/items/records",
            json!({"title": title, "count": count}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    // Rename title → name, retype count integer → text: data kept and converted.
    put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "title")["name"] = json!("name");
        field_mut(snapshot, "items", "count")["type"] = json!("single-line-text");
    })
    .await;
    let published = publish(&service, 1).await;
    assert_eq!(published.status.as_u16(), 200, "{:?}", published.body);
    let records = all_records(&service, "items").await;
    assert_eq!(records[1]["fields"]["name"], json!("b"));
    assert_eq!(records[1]["fields"]["count"], json!("22"));
    assert!(records[1]["fields"].get("title").is_none());
    // Text that is not a number cannot become an integer: the publish fails naming the records.
    post(
        &service,
        "/api/tables/items/records",
        json!({"name": "d", "count": "many"}),
    )
    .await;
    post(
        &service,
        "/api/tables/items/records",
        json!({"name": "e", "count": "lots"}),
    )
    .await;
    put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "count")["type"] = json!("integer");
    })
    .await;
    let validated = post(&service, "/api/admin/schema/draft/validate", json!({})).await;
    assert_eq!(validated.body["valid"], json!(false));
    assert_eq!(
        validated.body["errors"][0]["path"],
        json!("/tables/0/fields/1/type")
    );
    let message = validated.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("records 4, 5"), "{message}");
    let refused = publish(&service, 2).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(status(&service).await["activeVersion"], json!(2));
    let still = all_records(&service, "items").await;
    assert_eq!(
        still[0]["fields"]["count"],
        json!("1"),
        "nothing was converted"
    );
    // Once the offending values are fixed, the same change publishes and converts.
    patch(
        &service,
        "/api/tables/items/records/4",
        json!({"count": "4"}),
    )
    .await;
    patch(
        &service,
        "/api/tables/items/records/5",
        json!({"count": null}),
    )
    .await;
    assert_eq!(publish(&service, 2).await.status.as_u16(), 200);
    let converted = all_records(&service, "items").await;
    assert_eq!(converted[2]["fields"]["count"], json!(333));
    assert_eq!(converted[3]["fields"]["count"], json!(4));
    // Filters and sorting work on the converted values.
    let filtered = get(
        &service,
        "/api/tables/items/records?filter=count%3E10&sort=-count",
    )
    .await;
    assert_eq!(filtered.status.as_u16(), 200, "{:?}", filtered.body);
    let names: Vec<&Json> = filtered.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| &record["fields"]["name"])
        .collect();
    assert_eq!(names, vec![&json!("c"), &json!("b")]);
}

#[actix_web::test]
async fn added_fields_are_backfilled_and_new_indexes_are_built() {
    let app = items_app();
    let service = service!(app);
    for title in ["a", "b"] {
        post(
            &service,
            "/api/tables/items/records",
            json!({"title": title, "count": 7}),
        )
        .await;
    }
    put_draft(&service, |snapshot| {
        fields_mut(snapshot, "items").push(
            json!({"name": "stage", "type": "single-select", "options": ["x", "y"], "default": "x", "indexed": true}),
        );
        fields_mut(snapshot, "items").push(json!({"name": "seq", "type": "autonumber"}));
        field_mut(snapshot, "items", "count")["unique"] = json!(true);
    })
    .await;
    // count is not unique yet: both records hold 7.
    let refused = publish(&service, 1).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    let message = refused.body["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("records 1, 2"), "{message}");
    assert_eq!(
        refused.body["errors"][0]["path"],
        json!("/tables/0/fields/1/unique")
    );
    patch(&service, "/api/tables/items/records/2", json!({"count": 8})).await;
    let published = publish(&service, 1).await;
    assert_eq!(published.status.as_u16(), 200, "{:?}", published.body);
    let records = all_records(&service, "items").await;
    assert_eq!(records[0]["fields"]["stage"], json!("x"));
    assert_eq!(records[1]["fields"]["seq"], json!(2));
    // The new index answers an equality filter, and the unique index refuses a duplicate.
    let by_stage = get(&service, "/api/tables/items/records?filter=stage='x'").await;
    assert_eq!(by_stage.body["pagination"]["total"], json!(2));
    post(
        &service,
        "/api/tables/items/records",
        json!({"title": "c", "count": 8}),
    )
    .await
    .assert_error(409, "CONFLICT");
    let third = post(
        &service,
        "/api/tables/items/records",
        json!({"title": "c", "count": 9}),
    )
    .await;
    assert_eq!(
        third.body["fields"]["seq"],
        json!(3),
        "the autonumber sequence continues"
    );
}

#[actix_web::test]
async fn removed_fields_are_hidden_and_come_back_with_a_restore() {
    let app = items_app();
    let service = service!(app);
    post(
        &service,
        "/api/tables/items/records",
        json!({"title": "a", "count": 5}),
    )
    .await;
    let v1 = get(&service, "/api/admin/schema/versions/1").await;
    assert_eq!(v1.status.as_u16(), 200);
    let v1_checksum = v1.body["version"]["checksum"].clone();
    put_draft(&service, |snapshot| {
        fields_mut(snapshot, "items").retain(|field| field["name"] != json!("count"));
    })
    .await;
    assert_eq!(publish(&service, 1).await.status.as_u16(), 200);
    let hidden = get(&service, "/api/tables/items/records/1").await;
    assert!(hidden.body["fields"].get("count").is_none());
    get(&service, "/api/tables/items/records?filter=count=5")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    assert_eq!(status(&service).await["activeVersion"], json!(2));

    let restored = post(&service, "/api/admin/schema/versions/1/restore", json!({})).await;
    assert_eq!(restored.status.as_u16(), 200, "{:?}", restored.body);
    assert_eq!(restored.body["activeVersion"], json!(3));
    assert_eq!(restored.body["version"]["restoredFromVersion"], json!(1));
    assert_eq!(restored.body["version"]["checksum"], v1_checksum);
    let back = get(&service, "/api/tables/items/records/1").await;
    assert_eq!(
        back.body["fields"]["count"],
        json!(5),
        "the kept data is back"
    );
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    let after = status(&service).await;
    assert_eq!(after["activeVersion"], json!(3));
    assert_eq!(after["activeChecksum"], v1_checksum);
    assert_eq!(after["driftStatus"], json!("in-sync"));
    let v3 = get(&service, "/api/admin/schema/versions/3").await;
    assert_eq!(
        v3.body["version"]["snapshot"],
        v1.body["version"]["snapshot"]
    );
    let versions = get(&service, "/api/admin/schema/versions").await;
    let numbers: Vec<&Json> = versions.body["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|version| &version["versionNumber"])
        .collect();
    assert_eq!(numbers, vec![&json!(3), &json!(2), &json!(1)]);
    assert_eq!(versions.body["activeVersion"], json!(3));
    get(&service, "/api/admin/schema/versions/9")
        .await
        .assert_error(404, "NOT_FOUND");
    post(&service, "/api/admin/schema/versions/9/restore", json!({}))
        .await
        .assert_error(404, "NOT_FOUND");
}

#[actix_web::test]
async fn a_destructive_publish_erases_the_removed_values() {
    let app = items_app();
    let service = service!(app);
    post(
        &service,
        "/api/tables/items/records",
        json!({"title": "a", "count": 5}),
    )
    .await;
    put_draft(&service, |snapshot| {
        fields_mut(snapshot, "items").retain(|field| field["name"] != json!("count"));
    })
    .await;
    let reply = post(
        &service,
        "/api/admin/schema/draft/publish",
        json!({"baseVersion": 1, "allowDestructive": true}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let restored = post(&service, "/api/admin/schema/versions/1/restore", json!({})).await;
    assert_eq!(restored.status.as_u16(), 200);
    let record = get(&service, "/api/tables/items/records/1").await;
    assert!(
        record.body["fields"].get("count").is_none(),
        "{:?}",
        record.body
    );
    assert_eq!(record.body["fields"]["title"], json!("a"));
}

#[actix_web::test]
async fn export_as_yaml_json_and_toml() {
    let app = items_app();
    let service = service!(app);
    let json_export = get(&service, "/api/admin/schema/export?format=json").await;
    assert_eq!(json_export.status.as_u16(), 200);
    assert_eq!(json_export.body["tables"][0]["name"], json!("items"));
    let yaml = get(&service, "/api/admin/schema/export").await;
    assert_eq!(yaml.status.as_u16(), 200);
    assert!(yaml
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/yaml"));
    let from_yaml: Json = serde_norway::from_slice(&yaml.raw).expect("valid YAML");
    assert_eq!(from_yaml, json_export.body);
    let toml_export = get(&service, "/api/admin/schema/export?format=toml").await;
    assert_eq!(toml_export.status.as_u16(), 200);
    let text = String::from_utf8(toml_export.raw.clone()).expect("utf-8");
    let from_toml: tabula_storage::Schema = toml::from_str(&text).expect("valid TOML");
    let from_json: tabula_storage::Schema =
        serde_json::from_value(json_export.body.clone()).expect("the JSON export is a schema");
    assert_eq!(from_toml, from_json);
    get(&service, "/api/admin/schema/export?format=xml")
        .await
        .assert_error(400, "VALIDATION_ERROR");
}

#[actix_web::test]
async fn prune_never_drops_the_active_version() {
    let app = items_app();
    let service = service!(app);
    for version in 1..=3 {
        put_draft(&service, |snapshot| {
            field_mut(snapshot, "items", "title")["maxLength"] = json!(100 + version);
        })
        .await;
        assert_eq!(publish(&service, version).await.status.as_u16(), 200);
    }
    let pruned = post(&service, "/api/admin/schema/prune", json!({"keep": 2})).await;
    assert_eq!(pruned.body, json!({"deleted": 2}));
    let zero = post(&service, "/api/admin/schema/prune", json!({"keep": 0})).await;
    assert_eq!(zero.body, json!({"deleted": 1}), "all but the active one");
    let versions = get(&service, "/api/admin/schema/versions").await;
    assert_eq!(versions.body["versions"].as_array().map(Vec::len), Some(1));
    assert_eq!(versions.body["versions"][0]["versionNumber"], json!(4));
    post(&service, "/api/admin/schema/prune", json!({"keep": -1}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // Numbering goes on after a prune, and restarts keep it.
    put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "title")["maxLength"] = json!(50);
    })
    .await;
    assert_eq!(publish(&service, 4).await.body["activeVersion"], json!(5));
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    assert_eq!(status(&service).await["activeVersion"], json!(5));
}

#[actix_web::test]
async fn per_table_draft_edits_and_rebase() {
    let app = items_app();
    let service = service!(app);
    let added = post(
        &service,
        "/api/admin/schema/draft/tables",
        json!({"table": {"name": "notes", "fields": [{"name": "body", "type": "long-text"}]}}),
    )
    .await;
    assert_eq!(added.status.as_u16(), 200, "{:?}", added.body);
    assert_eq!(added.body["changed"], json!(true));
    assert_eq!(added.body["draft"]["dirty"], json!(true));
    let notes = &added.body["draft"]["snapshot"]["tables"][1];
    assert_eq!(notes["id"], json!(2), "ids are assigned at once");
    post(
        &service,
        "/api/admin/schema/draft/tables",
        json!({"table": {"name": "notes", "fields": [{"name": "x", "type": "integer"}]}}),
    )
    .await
    .assert_error(409, "CONFLICT");
    let patched = patch(
        &service,
        "/api/admin/schema/draft/tables/notes",
        json!({"patch": {"permissions": {"read": "all"}, "search": ["body"]}}),
    )
    .await;
    assert_eq!(patched.status.as_u16(), 200, "{:?}", patched.body);
    assert_eq!(
        patched.body["draft"]["snapshot"]["tables"][1]["permissions"]["read"],
        json!("all")
    );
    let unchanged = patch(
        &service,
        "/api/admin/schema/draft/tables/notes",
        json!({"patch": {"search": ["body"]}}),
    )
    .await;
    assert_eq!(unchanged.body["changed"], json!(false));
    let bad_patch = patch(
        &service,
        "/api/admin/schema/draft/tables/notes",
        json!({"patch": {"colour": "red"}}),
    )
    .await;
    bad_patch.assert_error(400, "VALIDATION_ERROR");
    patch(
        &service,
        "/api/admin/schema/draft/tables/nope",
        json!({"patch": {}}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Meanwhile a runtime operation publishes version 2: the draft is stale.
    let column = post(
        &service,
        "/api/admin/tables/items/fields",
        json!({"field": {"name": "extra", "type": "checkbox"}}),
    )
    .await;
    assert_eq!(column.status.as_u16(), 201, "{:?}", column.body);
    let stale = status(&service).await;
    assert_eq!(stale["draftStale"], json!(true));
    assert_eq!(stale["draftBaseVersion"], json!(1));
    publish(&service, 2).await.assert_error(409, "CONFLICT");
    let rebased = post(&service, "/api/admin/schema/draft/rebase", json!({})).await;
    assert_eq!(rebased.status.as_u16(), 200, "{:?}", rebased.body);
    assert_eq!(rebased.body["draft"]["baseVersion"], json!(2));
    let tables = rebased.body["draft"]["snapshot"]["tables"]
        .as_array()
        .expect("tables");
    assert!(tables[0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .any(|field| field["name"] == json!("extra")));
    assert!(tables.iter().any(|table| table["name"] == json!("notes")));
    let published = publish(&service, 2).await;
    assert_eq!(published.status.as_u16(), 200, "{:?}", published.body);
    let anonymous = anonymous_service!(app);
    assert_eq!(
        get(&anonymous, "/api/tables/notes/records")
            .await
            .status
            .as_u16(),
        200
    );

    // Both sides changing the same table: the rebase names it.
    put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "title")["maxLength"] = json!(10);
    })
    .await;
    post(
        &service,
        "/api/admin/tables/items/fields",
        json!({"field": {"name": "other", "type": "integer"}}),
    )
    .await;
    let clash = post(&service, "/api/admin/schema/draft/rebase", json!({})).await;
    clash.assert_error(409, "CONFLICT");
    assert_eq!(
        clash.body["details"]["conflicts"][0]["table"],
        json!("items")
    );
    // Removing a table from the draft, then discarding.
    let removed = delete(&service, "/api/admin/schema/draft/tables/notes").await;
    assert_eq!(removed.body["changed"], json!(true));
    let discarded = post(&service, "/api/admin/schema/draft/discard", json!({})).await;
    assert_eq!(discarded.body["draft"]["dirty"], json!(false));
    assert_eq!(discarded.body["draft"]["baseVersion"], json!(4));
}

#[actix_web::test]
async fn runtime_table_operations() {
    let app = TestApp::demo();
    let service = service!(app);
    let created = post(
        &service,
        "/api/admin/tables",
        json!({"name": "books", "fields": [
            {"name": "title", "type": "single-line-text", "required": true},
            {"name": "pages", "type": "integer"}
        ], "permissions": {"read": "authenticated"}}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(created.body["table"]["name"], json!("books"));
    assert_eq!(created.body["table"]["fields"][1]["id"], json!(2));
    assert_eq!(created.body["version"]["versionNumber"], json!(2));
    let book_table_id = created.body["table"]["id"].clone();
    for (title, pages) in [("Dune", 412), ("Emma", 474)] {
        let reply = post(
            &service,
            "/api/tables/books/records",
            json!({"title": title, "pages": pages}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    post(
        &service,
        "/api/admin/tables",
        json!({"name": "books", "fields": [{"name": "a", "type": "integer"}]}),
    )
    .await
    .assert_error(409, "CONFLICT");
    let invalid = post(
        &service,
        "/api/admin/tables",
        json!({"name": "Bad Name", "fields": []}),
    )
    .await;
    invalid.assert_error(400, "VALIDATION_ERROR");

    // Add a column: existing records get its default.
    let column = post(
        &service,
        "/api/admin/tables/books/fields",
        json!({"field": {"name": "read", "type": "checkbox", "default": true}}),
    )
    .await;
    assert_eq!(column.status.as_u16(), 201, "{:?}", column.body);
    assert_eq!(column.body["field"]["name"], json!("read"));
    assert_eq!(column.body["version"]["versionNumber"], json!(3));
    let records = all_records(&service, "books").await;
    assert_eq!(records[0]["fields"]["read"], json!(true));
    post(
        &service,
        "/api/admin/tables/books/fields",
        json!({"field": {"name": "read", "type": "integer"}}),
    )
    .await
    .assert_error(409, "CONFLICT");
    post(
        &service,
        "/api/admin/tables/nope/fields",
        json!({"field": {"name": "x", "type": "integer"}}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Clone with and without data.
    let clone = post(
        &service,
        "/api/admin/tables/books/clone",
        json!({"name": "books_copy", "copyData": true}),
    )
    .await;
    assert_eq!(clone.status.as_u16(), 201, "{:?}", clone.body);
    assert_eq!(clone.body["copiedRecords"], json!(2));
    assert_eq!(clone.body["table"]["recordCount"], json!(2));
    let copies = all_records(&service, "books_copy").await;
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[1]["fields"]["title"], json!("Emma"));
    let by_pages = get(&service, "/api/tables/books_copy/records?search=dune").await;
    assert_eq!(
        by_pages.body["pagination"]["total"],
        json!(1),
        "{:?}",
        by_pages.body
    );
    let next = post(
        &service,
        "/api/tables/books_copy/records",
        json!({"title": "Ulysses"}),
    )
    .await;
    assert_eq!(next.body["id"], json!("3"), "the id sequence is copied");
    let empty = post(
        &service,
        "/api/admin/tables/books/clone",
        json!({"name": "books_empty"}),
    )
    .await;
    assert_eq!(empty.status.as_u16(), 201);
    assert_eq!(empty.body["copiedRecords"], json!(0));
    assert_eq!(all_records(&service, "books_empty").await.len(), 0);
    post(
        &service,
        "/api/admin/tables/books/clone",
        json!({"name": "books_copy"}),
    )
    .await
    .assert_error(409, "CONFLICT");
    // The original is untouched by writes to the copy.
    assert_eq!(all_records(&service, "books").await.len(), 2);

    // Delete: 404 afterwards, also after a restart.
    let deleted = delete(&service, "/api/admin/tables/books").await;
    assert_eq!(deleted.status.as_u16(), 200, "{:?}", deleted.body);
    assert_eq!(deleted.body["deleted"], json!(true));
    get(&service, "/api/tables/books/records")
        .await
        .assert_error(404, "NOT_FOUND");
    delete(&service, "/api/admin/tables/books")
        .await
        .assert_error(404, "NOT_FOUND");
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    get(&service, "/api/tables/books")
        .await
        .assert_error(404, "NOT_FOUND");
    get(&service, &format!("/api/tables/{book_table_id}"))
        .await
        .assert_error(404, "NOT_FOUND");
    assert_eq!(all_records(&service, "books_copy").await.len(), 3);
    // A new table never takes the removed table's id.
    let again = post(
        &service,
        "/api/admin/tables",
        json!({"name": "books", "fields": [{"name": "title", "type": "single-line-text"}]}),
    )
    .await;
    assert_eq!(again.status.as_u16(), 201, "{:?}", again.body);
    assert_ne!(again.body["table"]["id"], book_table_id);
    assert_eq!(all_records(&service, "books").await.len(), 0);
    // A table another table points at cannot be deleted: the relationship would dangle.
    let refused = delete(&service, "/api/admin/tables/tasks").await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert!(refused.body["errors"][0]["path"]
        .as_str()
        .unwrap_or_default()
        .ends_with("/relatedTable"));
    assert_eq!(
        get(&service, "/api/tables/tasks").await.status.as_u16(),
        200
    );
}

#[actix_web::test]
async fn publishing_under_write_load_loses_nothing() {
    let app = items_app();
    let service = service!(app);
    for index in 0..20 {
        let reply = post(
            &service,
            "/api/tables/items/records",
            json!({"title": format!("seed {index}"), "count": index}),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201);
    }
    let writer = async {
        // (record id, its label) of every acknowledged create.
        let mut acknowledged: Vec<(String, String)> = Vec::new();
        let mut name_field = "title";
        let mut written_before_rename = 0usize;
        for index in 0..300 {
            let label = format!("w{index}");
            let mut reply = post(
                &service,
                "/api/tables/items/records",
                json!({name_field: label, "status": "new"}),
            )
            .await;
            if reply.status.as_u16() == 400 && name_field == "title" {
                // The rename went live between two writes: write under the new name.
                name_field = "label";
                reply = post(
                    &service,
                    "/api/tables/items/records",
                    json!({name_field: label, "status": "new"}),
                )
                .await;
            }
            assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
            if name_field == "title" {
                written_before_rename += 1;
            }
            acknowledged.push((
                reply.body["id"].as_str().unwrap_or_default().to_owned(),
                label,
            ));
            actix_web::rt::task::yield_now().await;
        }
        (acknowledged, written_before_rename)
    };
    let publisher = async {
        type Step = Box<dyn Fn(&mut Json)>;
        let steps: Vec<Step> = vec![
            Box::new(|snapshot: &mut Json| {
                fields_mut(snapshot, "items").push(
                    json!({"name": "flag", "type": "checkbox", "default": true, "indexed": true}),
                );
            }),
            Box::new(|snapshot: &mut Json| {
                field_mut(snapshot, "items", "title")["name"] = json!("label");
            }),
            Box::new(|snapshot: &mut Json| {
                field_mut(snapshot, "items", "count")["type"] = json!("single-line-text");
            }),
        ];
        for (base, step) in (1u64..).zip(steps) {
            let reply = put_draft(&service, |snapshot| step(snapshot)).await;
            assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
            let published = publish(&service, base).await;
            assert_eq!(published.status.as_u16(), 200, "{:?}", published.body);
            actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let ((acknowledged, written_before_rename), ()) = futures_util::join!(writer, publisher);
    assert!(
        written_before_rename > 0 && written_before_rename < acknowledged.len(),
        "the writes straddle the rename ({written_before_rename} of {} before it)",
        acknowledged.len()
    );
    let records = all_records(&service, "items").await;
    let labels: std::collections::HashMap<String, Json> = records
        .iter()
        .map(|record| {
            (
                record["id"].as_str().unwrap_or_default().to_owned(),
                record["fields"]["label"].clone(),
            )
        })
        .collect();
    for (id, label) in &acknowledged {
        assert_eq!(
            labels.get(id),
            Some(&json!(label)),
            "acknowledged record {id} is missing or changed"
        );
    }
    assert_eq!(records.len(), 20 + acknowledged.len());
    let table = get(&service, "/api/tables/items").await;
    let names: Vec<&str> = table.body["table"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|field| field["name"].as_str())
        .collect();
    assert_eq!(names, vec!["label", "count", "status", "flag"]);
    for record in &records {
        let fields = record["fields"].as_object().expect("fields");
        for name in fields.keys() {
            assert!(
                names.contains(&name.as_str()),
                "{name} is not live: {record:?}"
            );
        }
        assert_eq!(fields.get("flag"), Some(&json!(true)), "{record:?}");
        if let Some(count) = fields.get("count") {
            assert!(count.is_string(), "count is text now: {record:?}");
        }
    }
    assert_eq!(records[3]["fields"]["label"], json!("seed 3"));
    assert_eq!(records[3]["fields"]["count"], json!("3"));
    let flagged = get(
        &service,
        "/api/tables/items/records?filter=flag=true&limit=1",
    )
    .await;
    assert_eq!(
        flagged.body["pagination"]["total"],
        json!(records.len()),
        "the new index covers every record"
    );
    drop(service);
    let app = app.restart().await;
    let service = service!(app);
    assert_eq!(all_records(&service, "items").await.len(), records.len());
    assert_eq!(status(&service).await["activeVersion"], json!(4));
}

#[actix_web::test]
async fn a_snapshot_without_ids_edits_the_tables_it_names() {
    let app = items_app();
    let service = service!(app);
    post(
        &service,
        "/api/tables/items/records",
        json!({"title": "kept", "count": 3}),
    )
    .await;
    let reply = put(
        &service,
        "/api/admin/schema/draft",
        json!({"baseVersion": 1, "snapshot": {"tables": [{
            "name": "items",
            "fields": [
                {"name": "title", "type": "single-line-text"},
                {"name": "count", "type": "integer"},
                {"name": "due", "type": "date"}
            ],
            "permissions": {"read": "authenticated"}
        }]}}),
    )
    .await;
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let table = &reply.body["snapshot"]["tables"][0];
    assert_eq!(table["id"], json!(1), "matched by name");
    assert_eq!(table["fields"][1]["id"], json!(2));
    assert_eq!(
        table["fields"][2]["id"],
        json!(4),
        "a new field gets a fresh id"
    );
    assert_eq!(publish(&service, 1).await.status.as_u16(), 200);
    let record = get(&service, "/api/tables/items/records/1").await;
    assert_eq!(record.body["fields"]["title"], json!("kept"));
    assert_eq!(record.body["fields"]["count"], json!(3));
}

#[actix_web::test]
async fn a_publish_interrupted_by_a_crash_leaves_the_old_version_live() {
    let app = items_app();
    let service = service!(app);
    for (title, count) in [("a", 22), ("b", 5)] {
        post(
            &service,
            "/api/tables/items/records",
            json!({"title": title, "count": count}),
        )
        .await;
    }
    drop(service);
    let config = (*app.state.config).clone();
    let data_dir = config.server.data_dir.clone();
    let directory = app.directory;
    app.state.shutdown();
    drop(app.state);
    // What a crash mid-publish leaves: the publish marked pending, and the table already
    // migrated to the new schema (count retyped to text), but no new version in the ledger.
    let mut store = None;
    for _ in 0..100 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Ok(opened) = tabula_storage::Store::open(&data_dir) {
            store = Some(opened);
            break;
        }
    }
    let store = store.expect("the store reopens");
    let old = config.tables[0].clone();
    let mut new = old.clone();
    new.fields[1].field_type = tabula_storage::FieldType::SingleLineText;
    let ledger = tabula_actors::schema_ledger::Ledger::open(&store).expect("the ledger");
    ledger
        .set_pending(&tabula_storage::Schema {
            tables: vec![new.clone()],
        })
        .expect("mark the publish");
    let table_store = store.table(1).expect("the table's tree");
    let migration = tabula_actors::schema_migration::migrate(
        &table_store,
        &old,
        &new,
        Default::default(),
        true,
    )
    .expect("no storage error")
    .expect("the values convert");
    table_store
        .apply(migration.batch.expect("a batch"))
        .expect("applied");
    let stored = table_store.get_record(1).expect("read").expect("record 1");
    assert_eq!(stored.value(2), &tabula_storage::Value::Text("22".into()));
    store.close().expect("flushed");
    drop((table_store, ledger, store));
    for _ in 0..100 {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
        if tabula_storage::Store::open(&data_dir).is_ok() {
            break;
        }
    }
    let app = TestApp::with_config(config, directory);
    let service = service!(app);
    assert_eq!(status(&service).await["activeVersion"], json!(1));
    let record = get(&service, "/api/tables/items/records/1").await;
    assert_eq!(record.body["fields"]["count"], json!(22), "converted back");
    let filtered = get(&service, "/api/tables/items/records?filter=count%3E10").await;
    assert_eq!(
        filtered.body["pagination"]["total"],
        json!(1),
        "{:?}",
        filtered.body
    );
    // The next publish goes through normally.
    put_draft(&service, |snapshot| {
        field_mut(snapshot, "items", "title")["maxLength"] = json!(90);
    })
    .await;
    assert_eq!(publish(&service, 1).await.body["activeVersion"], json!(2));
}

#[actix_web::test]
async fn a_cloned_self_relationship_points_at_the_clone() {
    let app = TestApp::demo();
    let service = service!(app);
    let created = post(
        &service,
        "/api/admin/tables",
        json!({"name": "staff", "fields": [
            {"name": "name", "type": "single-line-text", "required": true},
            {"name": "manager", "type": "relationship", "relatedTable": "staff", "onDelete": "set-null"}
        ], "permissions": {"read": "authenticated"}}),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let boss = post(
        &service,
        "/api/tables/staff/records",
        json!({"name": "Boss"}),
    )
    .await;
    assert_eq!(boss.status.as_u16(), 201, "{:?}", boss.body);
    let boss_id = boss.body["id"].clone();
    let worker = post(
        &service,
        "/api/tables/staff/records",
        json!({"name": "Worker", "manager": boss_id}),
    )
    .await;
    assert_eq!(worker.status.as_u16(), 201, "{:?}", worker.body);

    let clone = post(
        &service,
        "/api/admin/tables/staff/clone",
        json!({"name": "staff_copy", "copyData": true}),
    )
    .await;
    assert_eq!(clone.status.as_u16(), 201, "{:?}", clone.body);
    let manager = clone.body["table"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == json!("manager"))
        .cloned()
        .expect("the manager field");
    assert_eq!(manager["relatedTable"], json!("staff_copy"), "{manager:?}");
    // The original keeps pointing at itself.
    let original = get(&service, "/api/tables/staff").await;
    let original_table = if original.body["table"].is_object() {
        &original.body["table"]
    } else {
        &original.body
    };
    let original_manager = original_table["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|field| field["name"] == json!("manager"))
        .cloned()
        .expect("the manager field");
    assert_eq!(original_manager["relatedTable"], json!("staff"));

    // A record only the clone has can be linked inside the clone (and not in the original).
    let newcomer = post(
        &service,
        "/api/tables/staff_copy/records",
        json!({"name": "Newcomer"}),
    )
    .await;
    assert_eq!(newcomer.status.as_u16(), 201, "{:?}", newcomer.body);
    let newcomer_id = newcomer.body["id"].clone();
    let linked = post(
        &service,
        "/api/tables/staff_copy/records",
        json!({"name": "Intern", "manager": newcomer_id}),
    )
    .await;
    assert_eq!(linked.status.as_u16(), 201, "{:?}", linked.body);
    let outside = post(
        &service,
        "/api/tables/staff/records",
        json!({"name": "Intern", "manager": newcomer_id}),
    )
    .await;
    assert_eq!(outside.status.as_u16(), 400, "{:?}", outside.body);
    // Deleting the copied boss clears the copy's link, not the original's.
    let copies = all_records(&service, "staff_copy").await;
    assert_eq!(copies[1]["fields"]["manager"], boss_id);
    let removed = delete(
        &service,
        &format!(
            "/api/tables/staff_copy/records/{}",
            boss_id.as_str().unwrap()
        ),
    )
    .await;
    assert!(removed.status.is_success(), "{:?}", removed.body);
    let copies = all_records(&service, "staff_copy").await;
    assert_eq!(
        copies[0]["fields"]["manager"],
        Json::Null,
        "{:?}",
        copies[0]
    );
    let originals = all_records(&service, "staff").await;
    assert_eq!(originals[1]["fields"]["manager"], boss_id);
}

/// An added field on a table of tens of thousands of records migrates online: writes that arrive
/// meanwhile (a create, an update and a permanent delete of already-migrated records) complete
/// in a fraction of the migration time, on the old schema, and are caught up: once live, every
/// record has the new field and its index answers for exactly the live records.
#[actix_web::test]
async fn writes_complete_while_a_large_migration_runs() {
    use std::time::{Duration, Instant};
    use tabula_actors::schema_publisher::{ChangeSchema, IdAllocator, PublishMeta};
    use tabula_actors::table::{CreateRecord, CreateRecords, DeleteRecords, UpdateRecord};
    use tabula_storage::{FieldDef, FieldType, Schema, Value};

    const RECORDS: usize = 30_000;
    let app = items_app();
    let table = app.state.registry.resolve("items").expect("the table");
    let mut written = 0;
    while written < RECORDS {
        let batch = (0..1000)
            .map(|index| {
                vec![(
                    "title".to_owned(),
                    Value::Text(format!("r{}", written + index)),
                )]
            })
            .collect();
        table
            .addr
            .send(CreateRecords {
                records: batch,
                user_id: None,
            })
            .await
            .expect("the actor answers")
            .expect("the batch is written");
        written += 1000;
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publish = {
        let publisher = app.state.schema.addr.clone();
        let done = std::sync::Arc::clone(&done);
        async move {
            let started = Instant::now();
            let edit = Box::new(|snapshot: &mut Schema, ids: &mut IdAllocator| {
                let mut field = FieldDef::new(ids.next_field_id(1), "flag", FieldType::Checkbox);
                field.default = Some(Value::Bool(true));
                field.indexed = true;
                snapshot.tables[0].fields.push(field);
                Ok(())
            });
            publisher
                .send(ChangeSchema {
                    edit,
                    meta: PublishMeta::default(),
                })
                .await
                .expect("the publisher answers")
                .expect("the publish succeeds");
            done.store(true, std::sync::atomic::Ordering::Release);
            started.elapsed()
        }
    };
    let writes = {
        let addr = table.addr.clone();
        let done = std::sync::Arc::clone(&done);
        async move {
            // Let the publisher's dry run finish, so the writes meet the migration itself.
            let mut latencies: Vec<(Duration, bool)> = Vec::new();
            let mut round = 0u64;
            while !done.load(std::sync::atomic::Ordering::Acquire) && round < 10_000 {
                round += 1;
                let started = Instant::now();
                match round % 3 {
                    0 => {
                        addr.send(CreateRecord {
                            fields: vec![("title".to_owned(), Value::Text(format!("new {round}")))],
                            user_id: None,
                        })
                        .await
                        .expect("the actor answers")
                        .expect("the create succeeds");
                    }
                    1 => {
                        addr.send(UpdateRecord {
                            record_id: round,
                            fields: vec![("count".to_owned(), Value::Int(round as i64))],
                            expected_updated_at: None,
                            user_id: None,
                        })
                        .await
                        .expect("the actor answers")
                        .expect("the update succeeds");
                    }
                    _ => {
                        addr.send(DeleteRecords {
                            record_ids: vec![round],
                            permanent: true,
                            skip_trashed: true,
                            cascaded: Vec::new(),
                            cleared: Vec::new(),
                            user_id: None,
                        })
                        .await
                        .expect("the actor answers")
                        .expect("the delete succeeds");
                    }
                }
                let finished_during = !done.load(std::sync::atomic::Ordering::Acquire);
                latencies.push((started.elapsed(), finished_during));
                actix_web::rt::time::sleep(Duration::from_millis(2)).await;
            }
            latencies
        }
    };
    let (until_live, latencies) = futures_util::join!(publish, writes);
    let during: Vec<Duration> = latencies
        .iter()
        .filter(|(_, during)| *during)
        .map(|(latency, _)| *latency)
        .collect();
    assert!(
        during.len() >= 3,
        "writes completed while the migration ran: {} (live after {until_live:?})",
        during.len()
    );
    let mut sorted = during.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median * 4 < until_live,
        "a write waits {median:?} (median) while the publish takes {until_live:?}"
    );

    // Once live: every live record has the field, and its index finds exactly them.
    let service = service!(app);
    let all = get(&service, "/api/tables/items/records?limit=1").await;
    let total = all.body["pagination"]["total"].clone();
    let flagged = get(
        &service,
        "/api/tables/items/records?limit=1&filter=flag=true",
    )
    .await;
    assert_eq!(
        flagged.body["pagination"]["total"], total,
        "{:?}",
        flagged.body
    );
    let unflagged = get(&service, "/api/tables/items/records?filter=flag=false").await;
    assert_eq!(unflagged.body["pagination"]["total"], json!(0));
    let newest = get(&service, "/api/tables/items/records?limit=1&sort=-id").await;
    assert_eq!(newest.body["records"][0]["fields"]["flag"], json!(true));
    let updated = get(&service, "/api/tables/items/records/1").await;
    assert_eq!(
        updated.body["fields"]["flag"],
        json!(true),
        "{:?}",
        updated.body
    );
}
