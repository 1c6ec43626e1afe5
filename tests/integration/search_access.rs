//! A search sees only the fields its caller may read, on every path that searches: words,
//! phrases, exclusions and `or` alternatives match readable text only, and the relevance order
//! does not depend on hidden text — for a member whose field permission hides a field and for
//! an anonymous caller of a public table alike.

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::anonymous_service;
use crate::common::{send_as, url_encoded, Reply, TestApp};

const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "notes"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "body"
  type = "long-text"

  [tables.permissions]
  read = "all"
  fields = [{ field = "body", read = ["admin"], write = ["admin"] }]

  [[tables.views]]
  id = "everything"
  name = "Everything"
"#;

/// Who asks: a member (the field permission hides `body`), or no one (the table is public,
/// `body` is still hidden).
#[derive(Debug, Clone, Copy)]
enum Reader<'a> {
    Member(&'a str),
    Anonymous,
}

/// Every path that takes `search=`, with where its record ids are in the body.
const SEARCH_PATHS: [(&str, &str); 6] = [
    ("/api/tables/notes/records?", "/records"),
    ("/api/tables/notes/records?view=everything&", "/records"),
    ("/api/tables/notes/views/everything/records?", "/records"),
    ("/api/tables/notes/export?", ""),
    ("/api/collections/notes?", "/items"),
    ("/v1/notes?", "/data"),
];

fn listed_ids(reply: &Reply, pointer: &str) -> Vec<String> {
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    let list = if pointer.is_empty() {
        &reply.body
    } else {
        reply.body.pointer(pointer).unwrap_or(&Json::Null)
    };
    list.as_array()
        .unwrap_or_else(|| panic!("a list at {pointer:?}: {:?}", reply.body))
        .iter()
        .map(|record| record["id"].as_str().expect("an id").to_owned())
        .collect()
}

async fn search_as<S, B>(service: &S, reader: Reader<'_>, path: &str, search: &str) -> Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let encoded = url_encoded(search);
    let uri = format!("{path}search={encoded}");
    match reader {
        Reader::Member(token) => send_as(service, token, Method::GET, &uri, None).await,
        Reader::Anonymous => crate::common::get(service, &uri).await,
    }
}

async fn create_note<S, B>(service: &S, admin: &str, title: &str, body: &str) -> String
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let created = send_as(
        service,
        admin,
        Method::POST,
        "/api/tables/notes/records",
        Some(json!({"title": title, "body": body})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    created.body["id"].as_str().expect("id").to_owned()
}

/// The ids each ranked path lists for a few searches, in order.
async fn orders<S, B>(
    service: &S,
    reader: Reader<'_>,
    paths: &[(&str, &str)],
) -> Vec<(String, Vec<String>)>
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let mut orders = Vec::new();
    for (path, pointer) in paths {
        for search in ["gamma", "gamma or delta", "delta -epsilon or gamma"] {
            let found = search_as(service, reader, path, search).await;
            orders.push((
                format!("{path} search={search}"),
                listed_ids(&found, pointer),
            ));
        }
    }
    orders
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[actix_web::test]
async fn exclusions_phrases_and_alternatives_see_only_readable_fields() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let member = app.token_for("mia@example.com", "member").await;
    let planned = create_note(&service, &admin, "Alpha report", "secret plan").await;
    let plain = create_note(&service, &admin, "Alpha summary", "nothing here").await;

    // The admin reads `body`: its words count, exclusions included.
    for (path, pointer) in SEARCH_PATHS {
        let excluded = search_as(&service, Reader::Member(&admin), path, "alpha -secret").await;
        assert_eq!(
            listed_ids(&excluded, pointer),
            vec![plain.clone()],
            "{path}"
        );
    }

    for reader in [Reader::Member(&member), Reader::Anonymous] {
        for (path, pointer) in SEARCH_PATHS {
            let what = format!("{reader:?} {path}");
            // An exclusion of a word that is only in the hidden field excludes nothing.
            for search in ["alpha -secret", "alpha -nothing", "alpha -\"secret plan\""] {
                let found = search_as(&service, reader, path, search).await;
                assert_eq!(
                    sorted(listed_ids(&found, pointer)),
                    sorted(vec![planned.clone(), plain.clone()]),
                    "{what} search={search}"
                );
            }
            // Words, phrases and alternatives in the hidden field match nothing.
            for search in ["secret", "\"secret plan\"", "zzz or secret", "alpha secret"] {
                let found = search_as(&service, reader, path, search).await;
                assert_eq!(
                    listed_ids(&found, pointer),
                    Vec::<String>::new(),
                    "{what} search={search}"
                );
            }
            // A readable word with a readable exclusion still works.
            let found = search_as(&service, reader, path, "alpha -report").await;
            assert_eq!(
                listed_ids(&found, pointer),
                vec![plain.clone()],
                "{what} search=alpha -report"
            );
        }
    }
}

#[actix_web::test]
async fn the_relevance_order_does_not_depend_on_hidden_text() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let member = app.token_for("mia@example.com", "member").await;
    create_note(&service, &admin, "Alpha report", "secret plan").await;
    create_note(&service, &admin, "Alpha summary", "nothing here").await;
    let dense = create_note(&service, &admin, "gamma gamma delta", "").await;
    let sparse = create_note(&service, &admin, "gamma delta epsilon zeta", "").await;
    // Relevance order (no sort) of every path but the export, which lists in id order.
    let ranked_paths = &SEARCH_PATHS[..3]
        .iter()
        .chain(&SEARCH_PATHS[4..])
        .copied()
        .collect::<Vec<_>>();
    let member_before = orders(&service, Reader::Member(&member), ranked_paths).await;
    let anonymous_before = orders(&service, Reader::Anonymous, ranked_paths).await;
    let admin_before = orders(&service, Reader::Member(&admin), ranked_paths).await;
    assert_eq!(
        member_before[0].1,
        vec![dense.clone(), sparse.clone()],
        "the denser title ranks first"
    );

    // Only the hidden field of the sparse note changes: its word now dominates the full text.
    let patched = send_as(
        &service,
        &admin,
        Method::PATCH,
        &format!("/api/tables/notes/records/{sparse}"),
        Some(json!({"body": "gamma ".repeat(12)})),
    )
    .await;
    assert_eq!(patched.status.as_u16(), 200, "{:?}", patched.body);

    let admin_after = orders(&service, Reader::Member(&admin), ranked_paths).await;
    assert_ne!(
        admin_before, admin_after,
        "for a reader of the field the hidden text does change the order"
    );
    assert_eq!(admin_after[0].1, vec![sparse.clone(), dense.clone()]);
    assert_eq!(
        orders(&service, Reader::Member(&member), ranked_paths).await,
        member_before,
        "a member's order is computed from readable text only"
    );
    assert_eq!(
        orders(&service, Reader::Anonymous, ranked_paths).await,
        anonymous_before,
        "an anonymous caller's order is computed from readable text only"
    );
}
