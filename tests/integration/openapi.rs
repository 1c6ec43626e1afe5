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
}
