//! What a caller cannot read stays out of every read surface (SPEC §2.2, §3): fields it may not
//! read are missing from records, expansions, views, history, activity, search matches and
//! aggregates (naming one is the "unknown field" 400), and records outside its row rule are
//! missing from expansions and the activity log too.

use std::collections::BTreeSet;

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::anonymous_service;
use crate::common::{send_as, Reply, TestApp};

const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "people"
search = ["name", "secret"]

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "secret"
  type = "single-line-text"

  [[tables.fields]]
  id = 3
  name = "salary"
  type = "integer"

  [[tables.fields]]
  id = 4
  name = "owner"
  type = "user"
  autofill = "current"

  [tables.permissions]
  read = "authenticated"
  create = ["member"]
  update = ["member"]
  delete = ["member"]
  rowFilter = "owner = @user.id"
  fields = [
    { field = "secret", read = ["admin"], write = ["admin"] },
    { field = "salary", read = ["admin"], write = ["admin"] },
  ]

  [[tables.views]]
  id = "everyone"
  name = "Everyone"
  fields = ["name", "secret", "salary"]

[[tables]]
id = 2
name = "projects"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "lead"
  type = "relationship"
  relatedTable = "people"
  onDelete = "set-null"

  [tables.permissions]
  read = "authenticated"
  create = ["member"]
"#;

const HIDDEN: [&str; 2] = ["secret", "salary"];

fn field_names(record: &Json) -> BTreeSet<String> {
    record["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

fn assert_nothing_hidden(what: &str, value: &Json) {
    let text = value.to_string();
    for secret in [
        "zebra",
        "walrus",
        "\"salary\"",
        "\"secret\"",
        "4242",
        "9191",
    ] {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

fn ok(reply: Reply) -> Json {
    assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    reply.body
}

#[actix_web::test]
async fn unreadable_fields_and_rows_stay_out_of_every_read_surface() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let mia = app.token_for("mia@example.com", "member").await;
    let otto = app.token_for("otto@example.com", "member").await;
    let mia_id = app.user_id("mia@example.com");
    let otto_id = app.user_id("otto@example.com");
    let mut people = Vec::new();
    for (name, secret, salary, owner) in [
        ("Mia", "zebra", 4242, &mia_id),
        ("Otto", "walrus", 9191, &otto_id),
    ] {
        let created = send_as(
            &service,
            &admin,
            Method::POST,
            "/api/tables/people/records",
            Some(json!({"name": name, "secret": secret, "salary": salary, "owner": owner})),
        )
        .await;
        assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
        people.push(created.body["id"].as_str().expect("id").to_owned());
    }
    let (mia_person, otto_person) = (&people[0], &people[1]);
    for (title, lead) in [("Alpha", mia_person), ("Beta", otto_person)] {
        let created = send_as(
            &service,
            &admin,
            Method::POST,
            "/api/tables/projects/records",
            Some(json!({"title": title, "lead": lead})),
        )
        .await;
        assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    }
    // A change of hidden and visible fields, for history and activity.
    let updated = send_as(
        &service,
        &admin,
        Method::PATCH,
        &format!("/api/tables/people/records/{mia_person}"),
        Some(json!({"name": "Mia K", "salary": 4243})),
    )
    .await;
    assert_eq!(updated.status.as_u16(), 200, "{:?}", updated.body);
    let (service_ref, mia_ref) = (&service, &mia);
    let as_mia =
        |path: String| async move { send_as(service_ref, mia_ref, Method::GET, &path, None).await };

    // Records: only Mia's row, without the hidden fields.
    let list = ok(as_mia("/api/tables/people/records".into()).await);
    assert_eq!(list["records"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(
        field_names(&list["records"][0]),
        BTreeSet::from(["name".to_owned(), "owner".to_owned()])
    );
    assert_nothing_hidden("the list", &list);

    // Expand, forward: the lead outside Mia's row rule is left out like a missing one.
    let projects = ok(as_mia("/api/tables/projects/records?expand=lead&sort=title".into()).await);
    let alpha = &projects["records"][0];
    let beta = &projects["records"][1];
    assert_eq!(alpha["expand"]["lead"]["id"], json!(mia_person), "{alpha}");
    assert_eq!(
        field_names(&alpha["expand"]["lead"]),
        BTreeSet::from(["name".to_owned(), "owner".to_owned()])
    );
    assert!(
        beta.get("expand")
            .is_none_or(|expand| expand.get("lead").is_none()),
        "Otto's row is not Mia's to see: {beta}"
    );
    assert_nothing_hidden("expand", &projects);
    // Expand, reverse, from the one person Mia sees.
    let person = ok(as_mia("/api/tables/people/records?expand=projects_via_lead".into()).await);
    assert_eq!(
        person["records"][0]["expand"]["projects_via_lead"][0]["fields"]["title"],
        json!("Alpha"),
        "{person}"
    );
    assert_nothing_hidden("the record", &person);
    // The admin sees everything, so the checks above can fail.
    let everything = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/tables/projects/records?expand=lead&sort=title",
        None,
    )
    .await;
    assert_eq!(
        everything.body["records"][1]["expand"]["lead"]["fields"]["secret"],
        json!("walrus")
    );

    // Views: the view's hidden columns are gone from the view and from its records.
    let view = ok(as_mia("/api/tables/people/views/everyone".into()).await);
    assert_eq!(view["view"]["fields"], json!(["name"]), "{view}");
    let viewed = ok(as_mia("/api/tables/people/views/everyone/records".into()).await);
    assert_eq!(
        field_names(&viewed["records"][0]),
        BTreeSet::from(["name".to_owned()])
    );
    assert_nothing_hidden("the view's records", &viewed);
    let by_param = ok(as_mia("/api/tables/people/records?view=everyone".into()).await);
    assert_nothing_hidden("view=", &by_param);

    // History: the change of the salary is not shown, the change of the name is.
    let history = ok(as_mia(format!("/api/tables/people/records/{mia_person}/history")).await);
    let update = &history["history"][0];
    assert_eq!(update["action"], json!("update"));
    assert_eq!(
        update["changes"]["after"]["name"],
        json!("Mia K"),
        "{update}"
    );
    assert_nothing_hidden("history", &history);
    let admin_history = send_as(
        &service,
        &admin,
        Method::GET,
        &format!("/api/tables/people/records/{mia_person}/history"),
        None,
    )
    .await;
    assert_eq!(
        admin_history.body["history"][0]["changes"]["after"]["salary"],
        json!(4243)
    );

    // Activity: only entries of rows Mia sees; their changes without hidden fields.
    let activity = ok(as_mia("/api/activity?tableName=people".into()).await);
    let entries = activity["activities"].as_array().expect("activities");
    assert!(!entries.is_empty());
    assert!(
        entries
            .iter()
            .all(|entry| entry["recordId"] == json!(mia_person)),
        "{activity}"
    );
    assert_eq!(
        activity["pagination"]["total"],
        json!(entries.len()),
        "the total counts only what Mia may see"
    );
    for entry in entries {
        let id = entry["id"].as_str().expect("id");
        let detail = ok(as_mia(format!("/api/activity/{id}")).await);
        assert!(detail["changes"].is_object(), "{detail}");
        assert_nothing_hidden("an activity entry", &detail);
    }
    let admin_activity = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/activity?tableName=people",
        None,
    )
    .await;
    assert!(
        admin_activity.body["activities"]
            .as_array()
            .expect("activities")
            .iter()
            .any(|entry| entry["recordId"] == json!(otto_person)),
        "the admin sees Otto's entries"
    );
    let otto_entry = admin_activity.body["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .find(|entry| entry["recordId"] == json!(otto_person))
        .and_then(|entry| entry["id"].as_str())
        .expect("an entry of Otto's row")
        .to_owned();
    as_mia(format!("/api/activity/{otto_entry}"))
        .await
        .assert_error(404, "NOT_FOUND");

    // Search: a word only in a hidden field matches nothing; a visible word matches.
    let hidden_word = ok(as_mia("/api/tables/people/records?search=zebra".into()).await);
    assert_eq!(hidden_word["records"], json!([]), "{hidden_word}");
    assert_eq!(hidden_word["pagination"]["total"], json!(0));
    let visible_word = ok(as_mia("/api/tables/people/records?search=mia".into()).await);
    assert_eq!(visible_word["records"][0]["id"], json!(mia_person));
    let admin_search = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/tables/people/records?search=zebra",
        None,
    )
    .await;
    assert_eq!(admin_search.body["records"][0]["id"], json!(mia_person));

    // Aggregates and groups: a hidden field is an unknown field; counts follow the row rule.
    for query in [
        "aggregate=sum:salary",
        "aggregate=max:secret",
        "groupBy=secret",
        "sort=salary",
        "filter=salary%3E1",
        "fields=name,salary",
    ] {
        let reply = as_mia(format!("/api/tables/people/records?{query}")).await;
        reply.assert_error(400, "VALIDATION_ERROR");
        assert!(
            HIDDEN
                .iter()
                .any(|name| reply.body.to_string().contains(name)),
            "{query}: {:?}",
            reply.body
        );
    }
    let counted =
        ok(as_mia("/api/tables/people/records?aggregate=count&groupBy=name".into()).await);
    assert_eq!(counted["aggregations"]["count"], json!(1), "{counted}");
    assert_eq!(counted["groups"].as_array().map(Vec::len), Some(1));
    // Otto sees his own row only, and it expands for him.
    let for_otto = send_as(
        &service,
        &otto,
        Method::GET,
        "/api/tables/projects/records?expand=lead&sort=title",
        None,
    )
    .await;
    assert!(for_otto.body["records"][0]
        .get("expand")
        .is_none_or(|expand| expand.get("lead").is_none()));
    assert_eq!(
        for_otto.body["records"][1]["expand"]["lead"]["id"],
        json!(otto_person)
    );
}
