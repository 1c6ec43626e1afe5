//! Read-only SQL (`POST /api/query`, SPEC §9) through the real app: each clause, aggregates and
//! GROUP BY, what is refused and how, and who may ask.

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::common::{post, send_as, Reply, TestApp};
use crate::{anonymous_service, service};

const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "deals"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "stage"
  type = "single-select"
  options = ["lead", "won", "lost"]
  indexed = true

  [[tables.fields]]
  id = 3
  name = "amount"
  type = "integer"

  [[tables.fields]]
  id = 4
  name = "score"
  type = "decimal"

  [[tables.fields]]
  id = 5
  name = "hot"
  type = "checkbox"

  [tables.permissions]
  read = "authenticated"
"#;

async fn setup() -> (TestApp, Vec<Json>) {
    let app = TestApp::from_toml(SCHEMA);
    let rows = vec![
        json!({"title": "Acme", "stage": "won", "amount": 100, "score": 1.5, "hot": true}),
        json!({"title": "Beta", "stage": "lead", "amount": 40}),
        json!({"title": "Corp", "stage": "won", "amount": 60, "score": 2.5}),
        json!({"title": "Delta", "stage": "lost", "amount": 10, "score": 0.5}),
        json!({"title": "acme two", "stage": "lead", "hot": true}),
    ];
    (app, rows)
}

macro_rules! sql_service {
    ($app:expr, $rows:expr) => {{
        let service = service!($app);
        let reply = post(
            &service,
            "/api/tables/deals/records/batch",
            json!({ "records": $rows }),
        )
        .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        service
    }};
}

fn column(reply: &Reply, name: &str) -> Vec<Json> {
    reply.body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("rows in {:?}", reply.body))
        .iter()
        .map(|row| row[name].clone())
        .collect()
}

#[actix_web::test]
async fn select_columns_where_order_limit_offset() {
    let (app, rows) = setup().await;
    let service = sql_service!(app, rows);
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT id, title, amount FROM deals WHERE amount >= 40 ORDER BY amount DESC LIMIT 2"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["rows"],
        json!([{"id": "1", "title": "Acme", "amount": 100}, {"id": "3", "title": "Corp", "amount": 60}])
    );
    assert_eq!(
        reply.body["fields"],
        json!([{"name": "id", "type": "id"}, {"name": "title", "type": "single-line-text"}, {"name": "amount", "type": "integer"}])
    );
    assert_eq!(reply.body["rowCount"], 2);
    assert!(reply.body["duration"].as_f64().is_some_and(|ms| ms >= 0.0));

    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "select title from deals order by title limit 2 offset 1;"}),
    )
    .await;
    assert_eq!(column(&reply, "title"), [json!("Beta"), json!("Corp")]);

    // `*`: id, every field, the system attributes; a missing value is null.
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT * FROM deals WHERE id = 2"}),
    )
    .await;
    let row = &reply.body["rows"][0];
    assert_eq!(row["title"], "Beta");
    assert_eq!(row["score"], Json::Null);
    assert!(row["createdAt"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    let names: Vec<&str> = reply.body["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| field["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "title",
            "stage",
            "amount",
            "score",
            "hot",
            "createdAt",
            "updatedAt",
            "createdBy",
            "updatedBy"
        ]
    );

    // Aliases, qualified names, the table by id.
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT d.title AS name FROM deals d WHERE d.stage = 'lost'"}),
    )
    .await;
    assert_eq!(reply.body["rows"], json!([{"name": "Delta"}]));
}

#[actix_web::test]
async fn where_supports_every_listed_operator() {
    let (app, rows) = setup().await;
    let service = sql_service!(app, rows);
    let cases = [
        ("stage = 'won'", vec!["Acme", "Corp"]),
        ("stage != 'won'", vec!["Beta", "Delta", "acme two"]),
        ("stage <> 'won'", vec!["Beta", "Delta", "acme two"]),
        ("amount < 40", vec!["Delta"]),
        ("amount <= 40", vec!["Beta", "Delta"]),
        ("amount > 60", vec!["Acme"]),
        ("60 <= amount", vec!["Acme", "Corp"]),
        ("stage = 'won' AND amount > 60", vec!["Acme"]),
        ("stage = 'lost' OR amount = 40", vec!["Beta", "Delta"]),
        (
            "NOT (stage = 'won' OR stage = 'lost')",
            vec!["Beta", "acme two"],
        ),
        (
            "stage IN ('lost', 'lead')",
            vec!["Beta", "Delta", "acme two"],
        ),
        ("stage NOT IN ('lost', 'lead')", vec!["Acme", "Corp"]),
        ("score IS NULL", vec!["Beta", "acme two"]),
        ("score IS NOT NULL", vec!["Acme", "Corp", "Delta"]),
        ("title LIKE 'acme%'", vec!["Acme", "acme two"]),
        ("title LIKE '_eta'", vec!["Beta"]),
        ("title NOT LIKE '%a'", vec!["Acme", "Corp", "acme two"]),
        ("hot = true", vec!["Acme", "acme two"]),
        ("amount BETWEEN 40 AND 60", vec!["Beta", "Corp"]),
        ("score > 1", vec!["Acme", "Corp"]),
        ("amount = '60'", vec!["Corp"]),
    ];
    for (condition, expected) in cases {
        let reply = post(
            &service,
            "/api/query",
            json!({"sql": format!("SELECT title FROM deals WHERE {condition} ORDER BY id")}),
        )
        .await;
        assert_eq!(reply.status, 200, "{condition}: {:?}", reply.body);
        let titles: Vec<Json> = expected.iter().map(|title| json!(title)).collect();
        assert_eq!(column(&reply, "title"), titles, "{condition}");
    }
}

#[actix_web::test]
async fn aggregates_and_group_by() {
    let (app, rows) = setup().await;
    let service = sql_service!(app, rows);
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT COUNT(*), SUM(amount), AVG(amount), MIN(amount), MAX(score) FROM deals"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["rows"],
        json!([{"count": 5, "sum_amount": 210, "avg_amount": 52.5, "min_amount": 10, "max_score": 2.5}])
    );
    assert_eq!(
        reply.body["fields"][0],
        json!({"name": "count", "type": "integer"})
    );
    assert_eq!(
        reply.body["fields"][2],
        json!({"name": "avg_amount", "type": "decimal"})
    );

    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT COUNT(*) AS n FROM deals WHERE stage = 'won'"}),
    )
    .await;
    assert_eq!(reply.body["rows"], json!([{"n": 2}]));

    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT stage, COUNT(*) AS n, SUM(amount) AS total FROM deals GROUP BY stage ORDER BY total DESC"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body["rows"],
        json!([
            {"stage": "won", "n": 2, "total": 160},
            {"stage": "lead", "n": 2, "total": 40},
            {"stage": "lost", "n": 1, "total": 10},
        ])
    );
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT stage, COUNT(*) FROM deals WHERE amount > 20 GROUP BY stage ORDER BY stage LIMIT 1 OFFSET 1"}),
    )
    .await;
    assert_eq!(reply.body["rows"], json!([{"stage": "won", "count": 2}]));
    assert_eq!(reply.body["rowCount"], 1);
}

#[actix_web::test]
async fn anything_else_is_a_400_naming_it() {
    let (app, rows) = setup().await;
    let service = sql_service!(app, rows);
    let refused = [
        ("INSERT INTO deals (title) VALUES ('x')", "INSERT"),
        ("UPDATE deals SET title = 'x'", "UPDATE"),
        ("DELETE FROM deals", "DELETE"),
        ("DROP TABLE deals", "DROP"),
        (
            "SELECT * FROM deals; SELECT * FROM deals",
            "multiple statements",
        ),
        ("SELECT * FROM deals a JOIN deals b ON a.id = b.id", "JOIN"),
        ("SELECT * FROM deals, deals", "joins"),
        ("SELECT * FROM (SELECT * FROM deals) AS sub", "subqueries"),
        (
            "SELECT * FROM deals WHERE id IN (SELECT id FROM deals)",
            "subqueries",
        ),
        ("SELECT UPPER(title) FROM deals", "UPPER"),
        ("SELECT title FROM deals WHERE LOWER(title) = 'x'", "LOWER"),
        ("SELECT COUNT(title) FROM deals", "COUNT(column)"),
        ("SELECT DISTINCT stage FROM deals", "DISTINCT"),
        (
            "SELECT stage, COUNT(*) FROM deals GROUP BY stage HAVING COUNT(*) > 1",
            "HAVING",
        ),
        ("SELECT * FROM deals UNION SELECT * FROM deals", "UNION"),
        ("SELECT title, amount + 1 FROM deals", "amount + 1"),
        ("WITH x AS (SELECT * FROM deals) SELECT * FROM x", "WITH"),
    ];
    for (sql, named) in refused {
        let reply = post(&service, "/api/query", json!({ "sql": sql })).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{sql}: {message}");
    }
    let errors = [
        ("SELECT * FROM nosuch", "unknown table: nosuch"),
        ("SELECT nosuch FROM deals", "unknown column: nosuch"),
        (
            "SELECT title FROM deals WHERE nosuch = 1",
            "unknown column: nosuch",
        ),
        (
            "SELECT title FROM deals ORDER BY nosuch",
            "unknown column: nosuch",
        ),
        ("SELECT title, COUNT(*) FROM deals", "GROUP BY"),
        ("SELECT SUM(title) FROM deals", "number column"),
        ("SELECT title FROM deals WHERE amount = 'many'", "amount"),
        ("SELEC title FROM deals", "syntax"),
        ("SELECT title FROM deals LIMIT -1", "LIMIT"),
        ("SELECT title FROM deals WHERE score = NULL", "IS NULL"),
    ];
    for (sql, part) in errors {
        let reply = post(&service, "/api/query", json!({ "sql": sql })).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(part), "{sql}: {message}");
    }
    for body in [
        json!({}),
        json!({"sql": 3}),
        json!({"sql": "   "}),
        json!([1]),
    ] {
        post(&service, "/api/query", body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // Nothing was changed by any of it.
    let reply = post(
        &service,
        "/api/query",
        json!({"sql": "SELECT COUNT(*) FROM deals"}),
    )
    .await;
    assert_eq!(reply.body["rows"], json!([{"count": 5}]));
}

#[actix_web::test]
async fn only_admins_may_query() {
    let (app, rows) = setup().await;
    let service = sql_service!(app, rows);
    let member = app.token_for("member@example.com", "member").await;
    send_as(
        &service,
        &member,
        Method::POST,
        "/api/query",
        Some(json!({"sql": "SELECT * FROM deals"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let anonymous = anonymous_service!(app);
    post(
        &anonymous,
        "/api/query",
        json!({"sql": "SELECT * FROM deals"}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    // Wrong method: 405 with Allow.
    let reply = crate::common::get(&service, "/api/query").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow").as_deref(), Some("POST"));
}
