//! `GET /api/openapi.json`: an OpenAPI 3.1 document that covers every mounted route and carries a
//! record schema for every live table.

use serde_json::json;

use crate::common::{get, TestApp};
use crate::service;

#[actix_web::test]
async fn the_document_covers_every_mounted_route_and_every_table() {
    let app = TestApp::demo();
    let service = service!(app);
    let reply = get(&service, "/api/openapi.json").await;
    assert_eq!(reply.status.as_u16(), 200);
    let document = &reply.body;
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|version| version.starts_with("3.1")));
    let paths = document["paths"].as_object().expect("paths");
    let mounted = tabula::routes::mounted_routes();
    assert!(mounted.len() >= 8, "{mounted:?}");
    let mut missing = Vec::new();
    for (method, path) in &mounted {
        let documented = paths
            .get(path)
            .and_then(|item| item.get(method.to_ascii_lowercase()))
            .is_some();
        if !documented {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let schemas = &document["components"]["schemas"];
    for table in ["tasks", "contacts"] {
        assert!(
            schemas[format!("{table}_record")].is_object(),
            "{table} record schema"
        );
    }
    assert_eq!(
        schemas["tasks_fields"]["properties"]["status"]["enum"],
        json!(["todo", "doing", "done"])
    );

    // Every write can be refused by a full write queue.
    for (method, path) in [
        ("post", "/api/tables/{table}/records"),
        ("patch", "/api/tables/{table}/records/{id}"),
        ("delete", "/api/tables/{table}/records/{id}"),
        ("post", "/api/tables/{table}/records/batch"),
        ("post", "/api/tables/{table}/records/upsert"),
        ("post", "/api/tables/{table}/import"),
        ("post", "/api/collections/{table}"),
        ("put", "/v1/{table}/{id}"),
    ] {
        assert!(
            paths[path][method]["responses"]["503"].is_object(),
            "{method} {path} documents its 503"
        );
    }

    // The CSV formula parameter of export and import, with its values.
    for (method, path) in [
        ("get", "/api/tables/{table}/export"),
        ("post", "/api/tables/{table}/import"),
    ] {
        let parameters = paths[path][method]["parameters"]
            .as_array()
            .expect("parameters");
        let formulas = parameters
            .iter()
            .find(|parameter| parameter["name"] == "csvFormulas")
            .unwrap_or_else(|| panic!("{method} {path} documents csvFormulas"));
        assert_eq!(formulas["in"], "query");
        let values = formulas["schema"]["enum"]
            .as_array()
            .or_else(|| {
                formulas["schema"]["oneOf"]
                    .as_array()
                    .and_then(|choices| choices.iter().find_map(|choice| choice["enum"].as_array()))
            })
            .unwrap_or_else(|| panic!("an enum: {formulas}"));
        assert!(
            values.contains(&json!("escape")) && values.contains(&json!("raw")),
            "{formulas}"
        );
    }

    // The collector reads its optional members when they have the expected type and ignores
    // them otherwise: any JSON value is accepted, so none is typed.
    let page_view = &paths["/api/analytics/collect"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(page_view["required"], json!(["p"]));
    for member in ["t", "r", "sw", "sh", "us", "um", "uc", "ux", "ut"] {
        let schema = &page_view["properties"][member];
        assert!(schema.is_object(), "{member} documented: {page_view}");
        assert!(
            schema.get("type").is_none(),
            "{member} takes any value: {schema}"
        );
    }
}

/// Every operation of the document (but the realtime stream, which never ends), with its path
/// parameters filled in.
fn operations(document: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if path == "/api/realtime" {
            continue;
        }
        for (method, operation) in item.as_object().expect("an item") {
            operations.push((method.to_ascii_uppercase(), path.clone(), operation.clone()));
        }
    }
    operations
}

fn filled(path: &str, values: &[(&str, &str)]) -> String {
    let mut filled = path.to_owned();
    for (name, value) in values {
        filled = filled.replace(&format!("{{{name}}}"), value);
    }
    filled
}

/// The demo app with the schema edit API on, no rate limits and one task: every operation of
/// the document can be reached.
async fn probed_app() -> TestApp {
    let directory = tempfile::tempdir().expect("a directory");
    let mut config = crate::common::demo_config(&directory.path().join("data"));
    config.schema.edit_api = true;
    crate::common::without_rate_limits(&mut config);
    let app = TestApp::with_config(config, directory);
    let record = app
        .state
        .registry
        .resolve("tasks")
        .expect("tasks")
        .addr
        .send(tabula_actors::table::CreateRecord {
            fields: vec![("title".into(), tabula_storage::Value::Text("one".into()))],
            user_id: None,
        })
        .await;
    assert!(matches!(record, Ok(Ok(_))), "a task to reach");
    app
}

#[actix_web::test]
async fn every_status_an_operation_answers_is_documented() {
    use actix_web::http::Method;
    use actix_web::test::TestRequest;

    use crate::anonymous_service;
    use crate::common::send_request;

    let app = probed_app().await;
    let admin_service = service!(app);
    let anonymous = anonymous_service!(app);
    let admin = app.admin_token().await;
    let member = app.token_for("member@openapi.test", "member").await;
    let document = get(&admin_service, "/api/openapi.json").await.body;
    let existing = [
        ("table", "tasks"),
        ("id", "1"),
        ("view", "open"),
        ("comment", "1"),
        ("version", "1"),
    ];
    let missing = [
        ("table", "nosuch"),
        ("id", "999"),
        ("view", "nosuch"),
        ("comment", "999"),
        ("version", "999"),
    ];
    let malformed = [
        ("table", "%20"),
        ("id", "abc"),
        ("view", "%20"),
        ("comment", "abc"),
        ("version", "abc"),
    ];
    let mut undocumented = Vec::new();
    for (method, path, operation) in operations(&document) {
        let documented: Vec<String> = operation["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect();
        let query: Vec<String> = operation["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let has_body = operation.get("requestBody").is_some();
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut requests: Vec<(String, TestRequest)> = Vec::new();
        for (label, values) in [
            ("existing", &existing),
            ("missing", &missing),
            ("malformed", &malformed),
        ] {
            let uri = filled(&path, values);
            for (who, token) in [
                ("anonymous", None),
                ("member", Some(&member)),
                ("admin", Some(&admin)),
            ] {
                let mut request = TestRequest::default().method(method.clone()).uri(&uri);
                if let Some(token) = token {
                    request = request.insert_header(("Authorization", format!("Bearer {token}")));
                }
                if has_body {
                    request = request
                        .insert_header(("content-type", "application/json"))
                        .set_payload("{}");
                }
                requests.push((format!("{label} path, {who}, empty object"), request));
            }
            if has_body {
                for (kind, payload) in [("malformed JSON", "{"), ("an array", "[]")] {
                    let request = TestRequest::default()
                        .method(method.clone())
                        .uri(&uri)
                        .insert_header(("Authorization", format!("Bearer {admin}")))
                        .insert_header(("content-type", "application/json"))
                        .set_payload(payload);
                    requests.push((format!("{label} path, admin, {kind}"), request));
                }
            }
            for name in &query {
                for value in ["x", "-1", "99999999999999999999"] {
                    let separator = if uri.contains('?') { '&' } else { '?' };
                    let request = TestRequest::default()
                        .method(method.clone())
                        .uri(&format!(
                            "{uri}{separator}{}={value}",
                            name.replace('[', "%5B")
                                .replace(']', "%5D")
                                .replace('$', "%24")
                        ))
                        .insert_header(("Authorization", format!("Bearer {admin}")));
                    requests.push((format!("{label} path, admin, {name}={value}"), request));
                }
            }
        }
        for (label, request) in requests {
            let reply = send_request(&anonymous, request).await;
            let status = reply.status.as_u16().to_string();
            if !documented.contains(&status) {
                undocumented.push(format!(
                    "{method} {path} ({label}) answered {status}: {}",
                    reply.body
                ));
            }
            if reply.status.as_u16() >= 400 {
                assert_eq!(
                    reply.body["success"],
                    json!(false),
                    "{method} {path} ({label}): the envelope"
                );
            }
        }
    }
    assert!(
        undocumented.is_empty(),
        "{} undocumented answers:\n{}",
        undocumented.len(),
        undocumented.join("\n")
    );
}

/// The names `schema` (an object schema, or a `$ref` to one) requires.
fn required_members(document: &serde_json::Value, schema: &serde_json::Value) -> Vec<String> {
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            &document["components"]["schemas"][name]
        }
        None => schema,
    };
    schema["required"]
        .as_array()
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn what_an_operation_requires_is_marked_required() {
    use actix_web::http::Method;
    use actix_web::test::TestRequest;

    use crate::anonymous_service;
    use crate::common::send_request;

    let app = probed_app().await;
    let admin_service = service!(app);
    let anonymous = anonymous_service!(app);
    let admin = app.admin_token().await;
    let document = get(&admin_service, "/api/openapi.json").await.body;
    let existing = [
        ("table", "tasks"),
        ("id", "1"),
        ("view", "open"),
        ("comment", "1"),
        ("version", "1"),
    ];
    let mut unmarked = Vec::new();
    for (method, path, operation) in operations(&document) {
        // Operations that remove what the others need are left for last by skipping them here.
        if method == "DELETE"
            || path.ends_with("/clone")
            || path.contains("remove-user")
            || path.contains("ban-user")
        {
            continue;
        }
        let uri = filled(&path, &existing);
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let required_query: Vec<String> = parameters
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == json!(true))
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let query_names: Vec<String> = parameters
            .iter()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        let body_schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
        let body_required = required_members(&document, &body_schema);
        let mut request = TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).expect("a method"))
            .uri(&uri)
            .insert_header(("Authorization", format!("Bearer {admin}")));
        let json_body = operation["requestBody"]["content"]
            .get("application/json")
            .is_some();
        if json_body {
            request = request
                .insert_header(("content-type", "application/json"))
                .set_payload("{}");
        }
        let reply = send_request(&anonymous, request).await;
        if reply.status.as_u16() != 400 {
            continue;
        }
        for field in reply.error_fields() {
            let named = field
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned();
            if query_names.contains(&named) {
                if !required_query.contains(&named) {
                    unmarked.push(format!(
                        "{method} {path}: query parameter {named} is required but not marked"
                    ));
                }
            } else if json_body
                && named != "body"
                && !named.is_empty()
                && !body_required.contains(&named)
            {
                unmarked.push(format!(
                    "{method} {path}: body member {named} is required but not marked ({})",
                    reply.body
                ));
            }
        }
    }
    assert!(unmarked.is_empty(), "{}", unmarked.join("\n"));
}
