//! Export and import (SPEC §9) through the real app: CSV and JSON exports honouring filter,
//! sort, fields and permissions, streamed page by page; imports that are atomic up to 1000 rows
//! and chunked above, with CSV values converted by field type; an export → import round trip
//! over generated values of every writable type; and the `tabula export` / `tabula import`
//! commands on a stopped data directory.

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::Method;
use actix_web::test as actix_test;
use proptest::prelude::*;
use serde_json::{json, Value as Json};

use crate::common::{post, send_as, send_request, Reply, TestApp};
use crate::{anonymous_service, service};

const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "items"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "qty"
  type = "integer"
  indexed = true

  [[tables.fields]]
  id = 3
  name = "price"
  type = "decimal"

  [[tables.fields]]
  id = 4
  name = "done"
  type = "checkbox"

  [[tables.fields]]
  id = 5
  name = "tags"
  type = "multi-select"
  options = ["red", "green", "blue"]

  [[tables.fields]]
  id = 6
  name = "meta"
  type = "json"

  [[tables.fields]]
  id = 7
  name = "note"
  type = "long-text"

  [[tables.fields]]
  id = 8
  name = "owner"
  type = "user"
  autofill = "current"

  [[tables.fields]]
  id = 9
  name = "secret"
  type = "single-line-text"

  [[tables.fields]]
  id = 10
  name = "code"
  type = "single-line-text"
  unique = true

  [tables.permissions]
  read = "authenticated"
  create = ["admin", "member"]
  update = ["admin", "member"]
  rowFilter = "owner = @user.id"
  fields = [
    { field = "secret", read = ["admin"], write = ["admin"] },
    { field = "price", read = "authenticated", write = ["admin"] },
  ]
"#;

fn app() -> TestApp {
    TestApp::from_toml(SCHEMA)
}

/// A request with a raw body and content type.
fn raw_post(path: &str, content_type: &str, body: &str) -> actix_test::TestRequest {
    actix_test::TestRequest::post()
        .uri(path)
        .insert_header(("Content-Type", content_type.to_owned()))
        .set_payload(body.to_owned())
}

/// The path with the characters a URI may not hold percent-encoded (quotes, spaces, `<`, `>`).
fn uri(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            ' ' | '\'' | '<' | '>' | '"' | '{' | '}' | '|' | '\\' | '^' | '`' => {
                let mut buffer = [0u8; 4];
                for byte in character.encode_utf8(&mut buffer).bytes() {
                    encoded.push_str(&format!("%{byte:02X}"));
                }
            }
            other => encoded.push(other),
        }
    }
    encoded
}

async fn get<S, B>(service: &S, path: &str) -> Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody,
{
    crate::common::get(service, &uri(path)).await
}

fn text(reply: &Reply) -> String {
    String::from_utf8(reply.raw.clone()).expect("utf-8")
}

/// The records of the table in id order, as `GET /records` shows them (fields only).
async fn stored_fields<S, B>(service: &S, table: &str) -> Vec<Json>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody,
{
    let mut all = Vec::new();
    let mut after = 0u64;
    loop {
        let reply = get(
            service,
            &format!("/api/tables/{table}/records?limit=1000&after={after}&skipTotal=true"),
        )
        .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let records = reply.body["records"].as_array().expect("records").clone();
        if records.is_empty() {
            return all;
        }
        after = records.last().expect("a record")["id"]
            .as_str()
            .expect("id")
            .parse()
            .expect("numeric id");
        all.extend(records.into_iter().map(|record| record["fields"].clone()));
    }
}

async fn count<S, B>(service: &S, table: &str) -> u64
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody,
{
    get(service, &format!("/api/tables/{table}/records?limit=1"))
        .await
        .body["pagination"]["total"]
        .as_u64()
        .expect("a total")
}

async fn seed<S, B>(service: &S)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody,
{
    let reply = post(
        service,
        "/api/tables/items/records/batch",
        json!({"records": [
            {"name": "apple", "qty": 3, "price": 1.5, "done": true, "tags": ["red"], "note": "line one\nline \"two\""},
            {"name": "pear, green", "qty": 7, "price": 2.25, "tags": ["green", "blue"], "meta": {"a": [1, 2]}},
            {"name": "plum", "qty": 1, "secret": "s3"},
            {"name": "fig", "qty": 5, "price": 10},
        ]}),
    )
    .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);
}

#[actix_web::test]
async fn csv_export_honours_filter_sort_and_fields() {
    let app = app();
    let service = service!(app);
    seed(&service).await;
    let reply = get(
        &service,
        "/api/tables/items/export?format=csv&filter=qty>=3&sort=-qty&fields=name,qty,note",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/csv; charset=utf-8")
    );
    assert!(reply
        .header("content-disposition")
        .is_some_and(|value| value.contains("items.csv")));
    assert_eq!(
        text(&reply),
        "id,name,qty,note\n2,\"pear, green\",7,\n4,fig,5,\n1,apple,3,\"line one\nline \"\"two\"\"\"\n"
    );

    // Every field, every type's spelling: numbers, booleans, arrays and objects as JSON text.
    let reply = get(
        &service,
        "/api/tables/items/export?format=CSV&filter=name='pear, green'",
    )
    .await;
    let mut reader = csv::Reader::from_reader(reply.raw.as_slice());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        ["id", "name", "qty", "price", "done", "tags", "meta", "note", "owner", "secret", "code"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|row| row.expect("a row")).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], "2");
    assert_eq!(&rows[0][3], "2.25");
    assert_eq!(&rows[0][4], "false");
    assert_eq!(&rows[0][5], r#"["green","blue"]"#);
    assert_eq!(&rows[0][6], r#"{"a":[1,2]}"#);
}

#[actix_web::test]
async fn json_export_is_an_array_of_records_in_the_api_shape() {
    let app = app();
    let service = service!(app);
    seed(&service).await;
    let reply = get(
        &service,
        "/api/tables/items/export?sort=name&fields=name,tags",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );
    let records = reply.body.as_array().expect("an array");
    let names: Vec<&str> = records
        .iter()
        .map(|record| record["fields"]["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["apple", "fig", "pear, green", "plum"]);
    let pear = &records[2];
    assert_eq!(pear["id"], "2");
    assert_eq!(
        pear["fields"],
        json!({"name": "pear, green", "tags": ["green", "blue"]})
    );
    for attribute in ["createdAt", "updatedAt", "createdBy", "updatedBy"] {
        assert!(pear.get(attribute).is_some(), "{attribute} in {pear}");
    }
    // The same record as the records endpoint renders it (less its comment count).
    let single = get(&service, "/api/tables/items/records/2").await;
    assert_eq!(single.body["createdAt"], pear["createdAt"]);

    // An explicit limit caps the export; an empty result is an empty array.
    let reply = get(&service, "/api/tables/items/export?sort=-qty&limit=2").await;
    assert_eq!(reply.body.as_array().map(Vec::len), Some(2));
    let reply = get(&service, "/api/tables/items/export?filter=qty>100").await;
    assert_eq!(reply.body, json!([]));
    let reply = get(
        &service,
        "/api/tables/items/export?format=csv&filter=qty>100",
    )
    .await;
    assert_eq!(
        text(&reply),
        "id,name,qty,price,done,tags,meta,note,owner,secret,code\n"
    );
}

#[actix_web::test]
async fn export_errors_are_envelopes() {
    let app = app();
    let service = service!(app);
    get(&service, "/api/tables/items/export?format=xml")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/items/export?sort=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/items/export?fields=nosuch")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/items/export?filter=qty>'x'")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/items/export?limit=-1")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    get(&service, "/api/tables/nosuch/export")
        .await
        .assert_error(404, "NOT_FOUND");
    let anonymous = anonymous_service!(app);
    get(&anonymous, "/api/tables/items/export")
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn export_strips_unreadable_fields_and_applies_the_row_rule() {
    let app = app();
    let service = service!(app);
    let member = app.token_for("member@example.com", "member").await;
    let other = app.token_for("other@example.com", "member").await;
    for (token, name) in [(&member, "mine-1"), (&member, "mine-2"), (&other, "theirs")] {
        let reply = send_as(
            &service,
            token,
            Method::POST,
            "/api/tables/items/records",
            Some(json!({"name": name, "qty": 1})),
        )
        .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
    }
    let reply = send_as(
        &service,
        &member,
        Method::GET,
        &uri("/api/tables/items/export?format=csv"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200);
    let body = text(&reply);
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("id,name,qty,price,done,tags,meta,note,owner,code")
    );
    let names: Vec<String> = lines
        .map(|line| line.split(',').nth(1).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["mine-1", "mine-2"]);
    // A hidden field is unknown to the caller, in projections and filters alike.
    send_as(
        &service,
        &member,
        Method::GET,
        "/api/tables/items/export?fields=secret",
        None,
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // The admin sees every row and field.
    let reply = get(&service, "/api/tables/items/export").await;
    assert_eq!(reply.body.as_array().map(Vec::len), Some(3));
}

#[actix_web::test]
async fn export_streams_thousands_of_records_in_pages() {
    let app = app();
    let service = service!(app);
    let total = 3500usize;
    let mut csv_body = String::from("name,qty,price\n");
    for index in 0..total {
        // qty repeats (ties break by id), price is unindexed.
        csv_body.push_str(&format!(
            "n{index},{},{}\n",
            index % 37,
            (index * 7919) % 1000
        ));
    }
    let reply = send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", &csv_body),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["imported"], json!(total));

    // The body is a stream, not a buffer of known size.
    let request = actix_test::TestRequest::get()
        .uri("/api/tables/items/export?format=csv")
        .to_request();
    let response = actix_test::call_service(&service, request).await;
    assert!(matches!(
        response.response().body().size(),
        BodySize::Stream
    ));
    let raw = actix_test::read_body(response).await;
    let ids: Vec<u64> = csv::Reader::from_reader(raw.as_ref())
        .records()
        .map(|row| row.expect("a row")[0].parse().expect("an id"))
        .collect();
    assert_eq!(ids, (1..=total as u64).collect::<Vec<_>>());

    // Sorted by an indexed field, descending, and by an unindexed one: every record once, in
    // order, ties by id.
    for (sort, key) in [("-qty", "qty"), ("price", "price"), ("qty,-price", "qty")] {
        let reply = get(&service, &format!("/api/tables/items/export?sort={sort}")).await;
        let records = reply.body.as_array().expect("an array");
        assert_eq!(records.len(), total, "sort={sort}");
        let mut expected = records.clone();
        expected.sort_by(|left, right| {
            let value = |record: &Json, name: &str| record["fields"][name].as_f64().unwrap_or(-1.0);
            let id = |record: &Json| {
                record["id"]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            };
            let mut ordering = match sort {
                "-qty" => value(right, "qty").total_cmp(&value(left, "qty")),
                "price" => value(left, "price").total_cmp(&value(right, "price")),
                _ => value(left, "qty")
                    .total_cmp(&value(right, "qty"))
                    .then(value(right, "price").total_cmp(&value(left, "price"))),
            };
            if ordering == std::cmp::Ordering::Equal {
                ordering = id(left).cmp(&id(right));
            }
            ordering
        });
        assert!(records == &expected, "order of sort={sort} ({key})");
    }
    // A filter narrows a paged scan too.
    let reply = get(
        &service,
        "/api/tables/items/export?filter=qty=3&sort=-price",
    )
    .await;
    let expected = (0..total).filter(|index| index % 37 == 3).count();
    assert_eq!(reply.body.as_array().map(Vec::len), Some(expected));
}

#[actix_web::test]
async fn a_small_import_is_all_or_nothing_with_row_numbers() {
    let app = app();
    let service = service!(app);
    let body = "name,qty,done\nok,1,true\nbad,lots,false\n,3,maybe\n";
    let reply = send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", body),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    let errors = reply.body["errors"].as_array().expect("errors");
    let rows: Vec<(u64, &str)> = errors
        .iter()
        .map(|error| {
            assert!(error["message"].is_string());
            (
                error["row"].as_u64().expect("a row"),
                error["field"].as_str().expect("a field"),
            )
        })
        .collect();
    assert!(rows.contains(&(2, "qty")), "{rows:?}");
    assert!(rows.contains(&(3, "done")), "{rows:?}");
    assert!(rows.contains(&(3, "name")), "{rows:?}");
    assert!(!rows.iter().any(|(row, _)| *row == 1), "{rows:?}");
    assert_eq!(count(&service, "items").await, 0);

    // JSON: the same rule, rows numbered from 1.
    let reply = post(
        &service,
        "/api/tables/items/import",
        json!([{"name": "a"}, {"fields": {"name": "b", "qty": "x"}}]),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["errors"][0]["row"], 2);
    assert_eq!(reply.body["errors"][0]["field"], "qty");
    assert_eq!(count(&service, "items").await, 0);

    // A unique clash inside the import: 409, nothing written.
    let reply = post(
        &service,
        "/api/tables/items/import",
        json!([{"name": "a", "code": "X"}, {"name": "b", "code": "X"}]),
    )
    .await;
    reply.assert_error(409, "CONFLICT");
    assert_eq!(count(&service, "items").await, 0);

    // Unknown columns are refused as row 0 (the header); an empty import is a 400.
    let reply = send_request(
        &service,
        raw_post(
            "/api/tables/items/import",
            "text/csv",
            "name,colour\na,red\n",
        ),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(
        reply.body["errors"][0],
        json!({"row": 0, "field": "colour", "message": "Unknown field 'colour'"})
    );
    post(&service, "/api/tables/items/import", json!([]))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    send_request(
        &service,
        raw_post("/api/tables/items/import", "application/json", "{not json"),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    post(&service, "/api/tables/items/import?format=xml", json!([]))
        .await
        .assert_error(400, "VALIDATION_ERROR");

    // A good import: 200 with the counts.
    let reply = post(
        &service,
        "/api/tables/items/import",
        json!([{"name": "a", "qty": 1}, {"fields": {"name": "b"}}]),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({"imported": 2, "failed": 0, "errors": []})
    );
    assert_eq!(count(&service, "items").await, 2);
}

#[actix_web::test]
async fn a_large_import_commits_in_chunks_and_a_bad_row_fails_only_its_chunk() {
    let app = app();
    let service = service!(app);
    let rows: Vec<Json> = (1..=2500)
        .map(|row| {
            if row == 1500 {
                json!({"name": "bad", "qty": "not a number"})
            } else {
                json!({"name": format!("r{row}"), "qty": row})
            }
        })
        .collect();
    let reply = post(&service, "/api/tables/items/import", Json::Array(rows)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["imported"], 1500);
    assert_eq!(reply.body["failed"], 1000);
    assert_eq!(
        reply.body["errors"],
        json!([{"row": 1500, "field": "qty", "message": reply.body["errors"][0]["message"]}])
    );
    let stored = stored_fields(&service, "items").await;
    assert_eq!(stored.len(), 1500);
    let quantities: Vec<i64> = stored
        .iter()
        .map(|fields| fields["qty"].as_i64().expect("qty"))
        .collect();
    let expected: Vec<i64> = (1..=1000).chain(2001..=2500).collect();
    assert_eq!(quantities, expected);
}

#[actix_web::test]
async fn csv_values_are_converted_by_field_type() {
    let app = app();
    let service = service!(app);
    let body = concat!(
        "\u{feff}id,name,qty,price,done,tags,meta,note,createdAt\n",
        "99,a,-4,3.75,yes,red;blue,\"{\"\"k\"\":1}\",,2020-01-01T00:00:00.000Z\n",
        "98,b,7,2,FALSE,\"[\"\"green\"\"]\",\"[1,2]\",\" spaced \",\n",
        "97,c,,,0,,plain text,\"multi\nline\",\n",
    );
    let reply = send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", body),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["imported"], 3);
    let stored = stored_fields(&service, "items").await;
    assert_eq!(
        stored[0],
        json!({"name": "a", "qty": -4, "price": 3.75, "done": true, "tags": ["red", "blue"], "meta": {"k": 1}, "owner": app.user_id(crate::common::ADMIN_EMAIL)})
    );
    assert_eq!(stored[1]["price"], json!(2));
    assert_eq!(stored[1]["done"], json!(false));
    assert_eq!(stored[1]["tags"], json!(["green"]));
    assert_eq!(stored[1]["meta"], json!([1, 2]));
    assert_eq!(stored[1]["note"], json!(" spaced "));
    assert_eq!(stored[2]["done"], json!(false));
    assert_eq!(stored[2]["meta"], json!("plain text"));
    assert_eq!(stored[2]["note"], json!("multi\nline"));
    assert!(stored[2].get("qty").is_none());
    // Ids and system attributes in the file are ignored: the new records get their own.
    let first = get(&service, "/api/tables/items/records/1").await;
    assert_eq!(first.status, 200);
    assert_ne!(first.body["createdAt"], "2020-01-01T00:00:00.000Z");
    assert_eq!(
        get(&service, "/api/tables/items/records/99").await.status,
        404
    );

    // Format by query parameter when the content type says nothing useful.
    let reply = send_request(
        &service,
        raw_post(
            "/api/tables/items/import?format=csv",
            "application/octet-stream",
            "name\nz\n",
        ),
    )
    .await;
    assert_eq!(reply.body["imported"], 1, "{:?}", reply.body);
    // A ragged row is that row's error.
    let reply = send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", "name,qty\nx,1\ny\n"),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["errors"][0]["row"], 2);
}

/// Values a spreadsheet would run as a formula (a leading `=`, `+`, `-`, `@`, tab or carriage
/// return), values that start with `'` themselves, and numbers of numeric fields.
fn formula_like_records() -> Json {
    json!({"records": [
        {"name": "=1+1", "qty": -5, "price": -2.5, "meta": -3, "note": "\r=cmd|' /C calc'!A0"},
        {"name": "+SUM(A1:A9)", "meta": "=json string", "note": "\t=1"},
        {"name": "-2+3", "tags": ["red"]},
        {"name": "@HYPERLINK(\"http://x\")"},
        {"name": "'quoted"},
        {"name": "''=twice"},
        {"name": "plain = text"},
    ]})
}

/// The fields of a stored record that [`formula_like_records`] sets.
fn formula_fields(fields: &Json) -> Json {
    let mut fields = fields.clone();
    if let Some(object) = fields.as_object_mut() {
        object.retain(|name, _| ["name", "qty", "price", "meta", "note"].contains(&name.as_str()));
    }
    fields
}

#[actix_web::test]
async fn csv_cells_a_spreadsheet_would_run_are_escaped_and_read_back() {
    let app = app();
    let service = service!(app);
    let created = post(
        &service,
        "/api/tables/items/records/batch",
        formula_like_records(),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let original = stored_fields(&service, "items").await;

    let exported = get(
        &service,
        "/api/tables/items/export?format=csv&fields=name,qty,price,meta,note",
    )
    .await;
    assert_eq!(exported.status, 200);
    let mut reader = csv::Reader::from_reader(exported.raw.as_slice());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|row| row.expect("a row").iter().map(str::to_owned).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|row| row[1].as_str()).collect();
    assert_eq!(
        names,
        [
            "'=1+1",
            "'+SUM(A1:A9)",
            "'-2+3",
            "'@HYPERLINK(\"http://x\")",
            "''quoted",
            "'''=twice",
            "plain = text",
        ]
    );
    // Numbers of numeric fields are numbers to a spreadsheet, never formulas: written as is.
    assert_eq!(rows[0][2], "-5");
    assert_eq!(rows[0][3], "-2.5");
    assert_eq!(rows[0][4], "-3", "a json number is JSON text");
    assert_eq!(rows[1][4], "\"=json string\"", "a json string is JSON text");
    assert_eq!(rows[0][5], "'\r=cmd|' /C calc'!A0");
    assert_eq!(rows[1][5], "'\t=1");

    // The escaped export imports back to the same values.
    let imported = send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", &text(&exported)),
    )
    .await;
    assert_eq!(imported.status, 200, "{:?}", imported.body);
    let stored = stored_fields(&service, "items").await;
    let copies: Vec<Json> = stored[original.len()..]
        .iter()
        .map(formula_fields)
        .collect();
    let originals: Vec<Json> = original.iter().map(formula_fields).collect();
    assert_eq!(copies, originals);
}

#[actix_web::test]
async fn csv_formulas_raw_writes_and_reads_cells_as_they_are() {
    let app = app();
    let service = service!(app);
    let created = post(
        &service,
        "/api/tables/items/records/batch",
        formula_like_records(),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let exported = get(
        &service,
        "/api/tables/items/export?format=csv&fields=name&csvFormulas=raw",
    )
    .await;
    assert_eq!(exported.status, 200, "{:?}", exported.body);
    assert_eq!(
        text(&exported),
        "id,name\n1,=1+1\n2,+SUM(A1:A9)\n3,-2+3\n4,\"@HYPERLINK(\"\"http://x\"\")\"\n\
         5,'quoted\n6,''=twice\n7,plain = text\n"
    );
    // A raw import keeps every cell as it is, so a raw export reads back unchanged.
    let imported = send_request(
        &service,
        raw_post(
            "/api/tables/items/import?csvFormulas=raw",
            "text/csv",
            &text(&exported),
        ),
    )
    .await;
    assert_eq!(imported.status, 200, "{:?}", imported.body);
    let names: Vec<Json> = stored_fields(&service, "items")
        .await
        .iter()
        .map(|fields| fields["name"].clone())
        .collect();
    assert_eq!(names[..7], names[7..]);

    // An escaping import (the default) strips one `'` only before a formula character or a `'`.
    let imported = send_request(
        &service,
        raw_post(
            "/api/tables/items/import",
            "text/csv",
            "name,qty\n'=A1,'-5\n'hello,-6\n''x,7\n",
        ),
    )
    .await;
    assert_eq!(imported.status, 200, "{:?}", imported.body);
    let stored = stored_fields(&service, "items").await;
    let last: Vec<(Json, Json)> = stored[14..]
        .iter()
        .map(|fields| (fields["name"].clone(), fields["qty"].clone()))
        .collect();
    assert_eq!(
        last,
        [
            (json!("=A1"), json!(-5)),
            (json!("'hello"), json!(-6)),
            (json!("'x"), json!(7)),
        ]
    );

    // The parameter takes `escape` or `raw`, nothing else.
    for path in [
        "/api/tables/items/export?format=csv&csvFormulas=off",
        "/api/tables/items/export?format=csv&csvFormulas=",
    ] {
        let reply = get(&service, path).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert!(
            reply.error_fields().contains(&"csvFormulas".to_owned()),
            "{:?}",
            reply.body
        );
    }
    let reply = send_request(
        &service,
        raw_post(
            "/api/tables/items/import?csvFormulas=no",
            "text/csv",
            "name\nx\n",
        ),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    let escaped = get(
        &service,
        "/api/tables/items/export?format=csv&fields=name&csvFormulas=escape&limit=1",
    )
    .await;
    assert_eq!(text(&escaped), "id,name\n1,'=1+1\n");
}

#[actix_web::test]
async fn import_needs_create_and_write_permissions() {
    let app = app();
    let service = service!(app);
    let viewer = app.token_for("viewer@example.com", "viewer").await;
    let member = app.token_for("member@example.com", "member").await;
    let rows = json!([{"name": "a"}]);
    send_as(
        &service,
        &viewer,
        Method::POST,
        "/api/tables/items/import",
        Some(rows.clone()),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A field the member may read but not write: 403, nothing written.
    send_as(
        &service,
        &member,
        Method::POST,
        "/api/tables/items/import",
        Some(json!([{"name": "a"}, {"name": "b", "price": 3}])),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // A field it may not even read is unknown.
    let reply = send_as(
        &service,
        &member,
        Method::POST,
        "/api/tables/items/import",
        Some(json!([{"name": "a", "secret": "x"}])),
    )
    .await;
    reply.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(reply.body["errors"][0]["row"], 1);
    assert_eq!(reply.body["errors"][0]["field"], "secret");
    assert_eq!(count(&service, "items").await, 0);
    let reply = send_as(
        &service,
        &member,
        Method::POST,
        "/api/tables/items/import",
        Some(rows),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let anonymous = anonymous_service!(app);
    post(
        &anonymous,
        "/api/tables/items/import",
        json!([{"name": "a"}]),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn an_import_over_the_body_limit_is_413() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let mut config = crate::common::config_from_toml(directory.path(), SCHEMA);
    config.server.max_body_bytes = 4096;
    let app = TestApp::with_config(config, directory);
    let service = service!(app);
    let body = format!("name\n{}", "x\n".repeat(4000));
    send_request(
        &service,
        raw_post("/api/tables/items/import", "text/csv", &body),
    )
    .await
    .assert_error(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(count(&service, "items").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Round trip: export → import into an empty copy gives the same table.

const ROUND_TRIP_SCHEMA: &str = r#"
[[tables]]
id = 1
name = "source"
fields = [
  { id = 1, name = "text", type = "single-line-text" },
  { id = 2, name = "long", type = "long-text" },
  { id = 3, name = "email", type = "email" },
  { id = 4, name = "url", type = "url" },
  { id = 5, name = "count", type = "integer" },
  { id = 6, name = "amount", type = "decimal", precision = 2 },
  { id = 7, name = "share", type = "percentage" },
  { id = 8, name = "stars", type = "rating" },
  { id = 9, name = "flag", type = "checkbox" },
  { id = 10, name = "day", type = "date" },
  { id = 11, name = "moment", type = "datetime" },
  { id = 12, name = "choice", type = "single-select", options = ["a", "b; c", "d,e"] },
  { id = 13, name = "choices", type = "multi-select", options = ["x", "y", "z w"] },
  { id = 14, name = "doc", type = "json" },
  { id = 15, name = "phone", type = "phone-number" },
]

[[tables]]
id = 2
name = "copy"
fields = [
  { id = 1, name = "text", type = "single-line-text" },
  { id = 2, name = "long", type = "long-text" },
  { id = 3, name = "email", type = "email" },
  { id = 4, name = "url", type = "url" },
  { id = 5, name = "count", type = "integer" },
  { id = 6, name = "amount", type = "decimal", precision = 2 },
  { id = 7, name = "share", type = "percentage" },
  { id = 8, name = "stars", type = "rating" },
  { id = 9, name = "flag", type = "checkbox" },
  { id = 10, name = "day", type = "date" },
  { id = 11, name = "moment", type = "datetime" },
  { id = 12, name = "choice", type = "single-select", options = ["a", "b; c", "d,e"] },
  { id = 13, name = "choices", type = "multi-select", options = ["x", "y", "z w"] },
  { id = 14, name = "doc", type = "json" },
  { id = 15, name = "phone", type = "phone-number" },
]
"#;

/// Text without control characters other than newlines in long text; never empty (an empty
/// cell means "no value").
/// Some start with what a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) or with `'`.
fn line_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["", "", "=", "+", "-", "@", "'", "''", "'=", "-1"]),
        "[a-zA-Z0-9 ,;\"'=+@é€-]{1,20}",
    )
        .prop_map(|(start, rest)| format!("{start}{rest}"))
        .prop_filter("not blank", |text| !text.trim().is_empty())
}

fn json_document() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Json::from),
        (-1000i64..1000).prop_map(Json::from),
        "[a-z ,\"]{0,8}".prop_map(Json::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Json::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|map| Json::Object(map.into_iter().collect())),
        ]
    })
}

/// One record: each field present or not, with a value of its type.
fn record() -> impl Strategy<Value = Json> {
    (
        (
            prop::option::of(line_text()),
            prop::option::of("[=+@\t\r'-]?[a-z]{1,5}\n[a-z ,\"]{1,10}"),
            prop::option::of("[a-z]{1,6}@[a-z]{1,6}\\.(com|org)"),
            prop::option::of(
                "[a-z]{1,8}".prop_map(|host| format!("https://{host}.example/p?q=1,2")),
            ),
            prop::option::of(any::<i64>()),
            prop::option::of((-1_000_000i64..1_000_000).prop_map(|cents| cents as f64 / 100.0)),
            prop::option::of(0u8..=100),
            prop::option::of(1u8..=5),
        ),
        (
            any::<bool>(),
            prop::option::of((2000u32..2030, 1u32..=12, 1u32..=28)),
            prop::option::of((0u32..24, 0u32..60, 0u32..1000)),
            prop::option::of(prop::sample::select(vec!["a", "b; c", "d,e"])),
            prop::option::of(prop::sample::subsequence(vec!["x", "y", "z w"], 1..=3)),
            prop::option::of(json_document()),
            prop::option::of("\\+[1-9][0-9]{7,12}"),
        ),
    )
        .prop_map(
            |(
                (text, long, email, url, count, amount, share, stars),
                (flag, day, moment, choice, choices, doc, phone),
            )| {
                let mut fields = serde_json::Map::new();
                let mut put = |name: &str, value: Option<Json>| {
                    if let Some(value) = value {
                        fields.insert(name.to_owned(), value);
                    }
                };
                put("text", text.map(Json::from));
                put("long", long.map(Json::from));
                put("email", email.map(Json::from));
                put("url", url.map(Json::from));
                put("count", count.map(Json::from));
                put("amount", amount.map(Json::from));
                put("share", share.map(Json::from));
                put("stars", stars.map(Json::from));
                put("flag", Some(Json::from(flag)));
                put(
                    "day",
                    day.map(|(year, month, day)| json!(format!("{year}-{month:02}-{day:02}"))),
                );
                put(
                    "moment",
                    moment.map(|(hour, minute, millis)| {
                        json!(format!("2024-02-29T{hour:02}:{minute:02}:07.{millis:03}Z"))
                    }),
                );
                put("choice", choice.map(Json::from));
                put("choices", choices.map(|items| json!(items)));
                put("doc", doc);
                put("phone", phone.map(Json::from));
                Json::Object(fields)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn export_then_import_reproduces_the_table(
        records in prop::collection::vec(record(), 1..25),
        use_csv in any::<bool>(),
    ) {
        let (source, copy) = actix_web::rt::System::new().block_on(async move {
            let app = TestApp::from_toml(ROUND_TRIP_SCHEMA);
            let service = service!(app);
            let created = post(
                &service,
                "/api/tables/source/records/batch",
                json!({"records": records}),
            )
            .await;
            assert_eq!(created.status, 201, "{:?}", created.body);
            let format = if use_csv { "csv" } else { "json" };
            let exported = get(&service, &format!("/api/tables/source/export?format={format}")).await;
            assert_eq!(exported.status, 200);
            let content_type = if use_csv { "text/csv" } else { "application/json" };
            let imported = send_request(
                &service,
                raw_post("/api/tables/copy/import", content_type, &text(&exported)),
            )
            .await;
            assert_eq!(imported.status, 200, "{:?} from {}", imported.body, text(&exported));
            (
                stored_fields(&service, "source").await,
                stored_fields(&service, "copy").await,
            )
        });
        prop_assert_eq!(source, copy);
    }
}

// ---------------------------------------------------------------------------------------------
// The commands, on a stopped data directory.

fn tabula(args: &[&str], directory: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(directory)
        .args(args)
        .env_remove("TABULA_CONFIG")
        .env_remove("TABULA_DATA_DIR")
        .output()
        .expect("the binary runs")
}

#[test]
fn the_commands_export_and_import_a_stopped_data_directory() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let data = root.join("data");
    let data_arg = data.to_str().expect("a utf-8 path");
    let mut rows = String::from("title,status,priority\n");
    for index in 1..=1200 {
        rows.push_str(&format!(
            "\"task {index}, urgent\",doing,{}\n",
            index % 5 + 1
        ));
    }
    rows.push_str("bad one,nope,9\n");
    std::fs::write(root.join("in.csv"), &rows).expect("write the input");

    // The last chunk (rows 1001–1201) holds a bad row: it fails alone, the exit status says so.
    let output = tabula(
        &[
            "import",
            "--table",
            "tasks",
            "--input",
            "in.csv",
            "--data-dir",
            data_arg,
        ],
        root,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported 1000 records into 'tasks', 201 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("row 1201: status:"), "{stderr}");

    let output = tabula(
        &[
            "export",
            "--table",
            "tasks",
            "--data-dir",
            data_arg,
            "--output",
            "out.csv",
            "--filter",
            "priority>=4",
            "--sort=-priority",
            "--fields",
            "title,priority",
        ],
        root,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exported = std::fs::read_to_string(root.join("out.csv")).expect("the export");
    let mut lines = exported.lines();
    assert_eq!(lines.next(), Some("id,title,priority"));
    assert_eq!(lines.next(), Some("4,\"task 4, urgent\",5"));
    assert_eq!(exported.lines().count(), 1 + 400);

    // JSON to stdout, then back in: the table doubles.
    let output = tabula(
        &["export", "--table", "tasks", "--data-dir", data_arg],
        root,
    );
    assert!(output.status.success());
    let records: Json = serde_json::from_slice(&output.stdout).expect("a JSON export");
    assert_eq!(records.as_array().map(Vec::len), Some(1000));
    std::fs::write(root.join("all.json"), &output.stdout).expect("write");
    let output = tabula(
        &[
            "import",
            "--table",
            "tasks",
            "--input",
            "all.json",
            "--data-dir",
            data_arg,
        ],
        root,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = tabula(
        &[
            "export",
            "--table",
            "tasks",
            "--data-dir",
            data_arg,
            "--format",
            "csv",
        ],
        root,
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        1 + 2000
    );

    // Unknown table, unknown format: clear errors.
    let output = tabula(
        &["export", "--table", "nosuch", "--data-dir", data_arg],
        root,
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no table 'nosuch'"));
    let output = tabula(
        &[
            "export",
            "--table",
            "tasks",
            "--data-dir",
            data_arg,
            "--format",
            "xml",
        ],
        root,
    );
    assert!(!output.status.success());

    // With the server running on the directory, the commands refuse and say why.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_tabula"))
        .current_dir(root)
        .args(["serve", "--data-dir", data_arg, "--port", &port.to_string()])
        .env_remove("TABULA_CONFIG")
        .env("TABULA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server starts");
    let client = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while client
        .get(format!("http://127.0.0.1:{port}/api/health"))
        .send()
        .map_or(true, |response| response.status() != 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = tabula(
        &["export", "--table", "tasks", "--data-dir", data_arg],
        root,
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is in use by another process"), "{stderr}");
}

#[test]
fn the_export_command_escapes_formulas_unless_told_not_to() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let root = directory.path();
    let data = root.join("data");
    let data_arg = data.to_str().expect("a utf-8 path");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", data_arg]);
        let output = tabula(&all, root);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    };
    std::fs::write(root.join("in.csv"), "title,status\n=1+1,doing\n'@x,todo\n").expect("write");
    run(&["import", "--table", "tasks", "--input", "in.csv"]);

    let escaped = run(&[
        "export", "--table", "tasks", "--format", "csv", "--fields", "title",
    ]);
    assert_eq!(escaped, "id,title\n1,'=1+1\n2,'@x\n");
    let raw = run(&[
        "export",
        "--table",
        "tasks",
        "--format",
        "csv",
        "--fields",
        "title",
        "--csv-formulas",
        "raw",
    ]);
    assert_eq!(raw, "id,title\n1,=1+1\n2,@x\n");

    // The escaped export imports back to the same titles; so does the raw one, read raw.
    std::fs::write(root.join("escaped.csv"), &escaped).expect("write");
    run(&["import", "--table", "tasks", "--input", "escaped.csv"]);
    std::fs::write(root.join("raw.csv"), &raw).expect("write");
    run(&[
        "import",
        "--table",
        "tasks",
        "--input",
        "raw.csv",
        "--csv-formulas",
        "raw",
    ]);
    let records: Json = serde_json::from_str(&run(&["export", "--table", "tasks"])).expect("JSON");
    let titles: Vec<&str> = records
        .as_array()
        .expect("an array")
        .iter()
        .map(|record| record["fields"]["title"].as_str().expect("a title"))
        .collect();
    assert_eq!(titles, ["=1+1", "@x", "=1+1", "@x", "=1+1", "@x"]);

    let output = tabula(
        &[
            "export",
            "--table",
            "tasks",
            "--csv-formulas",
            "maybe",
            "--data-dir",
            data_arg,
        ],
        root,
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("csvFormulas"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
