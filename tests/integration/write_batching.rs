//! Single creates and updates that reach a table together share one sled batch (the table
//! actor's pending commit). Each write still behaves as if alone: it sees the writes staged
//! before it (unique values, the record it updates), a failing write takes nothing else with it,
//! nothing is answered before the batch is stored, and the whole batch survives a restart.

use futures_util::future::join_all;
use serde_json::{json, Value as Json};
use tabula_actors::table::ArmStorageFault;

use crate::common::{get, patch, post, TestApp};
use crate::service;

fn ids(list: &Json) -> Vec<String> {
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["id"].as_str().unwrap_or("").to_string())
        .collect()
}

#[actix_web::test]
async fn writes_arriving_together_share_a_batch_and_still_check_each_other() {
    let app = TestApp::demo();
    let service = service!(app);
    let contacts = app.state.registry.resolve("contacts").expect("contacts");
    let commits_before = contacts.shared.commits();

    // 30 distinct emails, each sent twice, plus 5 invalid creates (no name), all at once.
    let mut bodies = Vec::new();
    for i in 0..30 {
        bodies.push(json!({"name": format!("first {i}"), "email": format!("p{i}@example.com")}));
    }
    for i in 0..30 {
        bodies.push(json!({"name": format!("second {i}"), "email": format!("p{i}@example.com")}));
    }
    for i in 0..5 {
        bodies.push(json!({"email": format!("invalid{i}@example.com")}));
    }
    let replies = join_all(
        bodies
            .iter()
            .map(|body| post(&service, "/api/tables/contacts/records", body.clone())),
    )
    .await;
    let commits = contacts.shared.commits() - commits_before;
    assert!(
        commits < 10,
        "65 writes sent together were applied in {commits} batches"
    );

    let mut created = Vec::new();
    for (index, reply) in replies.iter().enumerate() {
        match index {
            0..=29 => {
                assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
                created.push(reply.body["id"].as_str().expect("id").to_string());
            }
            30..=59 => {
                reply.assert_error(409, "CONFLICT");
                assert!(reply.body["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("email")));
            }
            _ => {
                reply.assert_error(400, "VALIDATION_ERROR");
                assert_eq!(reply.error_fields(), vec!["name".to_string()]);
            }
        }
    }
    let expected: Vec<String> = (1..=30).map(|id| id.to_string()).collect();
    assert_eq!(
        created, expected,
        "ids in arrival order, none taken by failures"
    );

    // Four updates of one record, each to another field, at once: none is lost.
    let task = post(&service, "/api/tables/tasks/records", json!({"title": "t"})).await;
    let task_id = task.body["id"].as_str().expect("id").to_string();
    let path = format!("/api/tables/tasks/records/{task_id}");
    let patches = [
        json!({"title": "renamed"}),
        json!({"status": "doing"}),
        json!({"priority": 4}),
        json!({"notes": "written together"}),
    ];
    let updated = join_all(
        patches
            .iter()
            .map(|body| patch(&service, &path, body.clone())),
    )
    .await;
    for reply in &updated {
        assert_eq!(reply.status.as_u16(), 200, "{:?}", reply.body);
    }
    let history = get(&service, &format!("{path}/history")).await;
    assert_eq!(
        history.body["history"].as_array().expect("history").len(),
        5
    );

    drop((service, contacts));
    let app = app.restart().await;
    let service = service!(app);
    let list = get(&service, "/api/tables/contacts/records?sort=id&limit=100").await;
    assert_eq!(
        ids(&list.body),
        expected,
        "every acknowledged create survives"
    );
    assert_eq!(list.body["pagination"]["total"], json!(30));
    let emails: Vec<&str> = list.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["fields"]["email"].as_str().unwrap_or(""))
        .collect();
    let wanted: Vec<String> = (0..30).map(|i| format!("p{i}@example.com")).collect();
    assert_eq!(emails, wanted, "the first of each pair holds the email");
    let task = get(&service, &path).await;
    assert_eq!(
        (
            &task.body["fields"]["title"],
            &task.body["fields"]["status"],
            &task.body["fields"]["priority"],
            &task.body["fields"]["notes"],
        ),
        (
            &json!("renamed"),
            &json!("doing"),
            &json!(4),
            &json!("written together")
        )
    );
    // The full-text index took every stored create (their words share posting blocks) and
    // none of the refused ones.
    let found = get(
        &service,
        "/api/tables/contacts/records?search=first&limit=100",
    )
    .await;
    assert_eq!(found.body["pagination"]["total"], json!(30));
    let mut found_ids = ids(&found.body);
    found_ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(0));
    assert_eq!(found_ids, expected);
    let refused = get(&service, "/api/tables/contacts/records?search=second").await;
    assert_eq!(refused.body["pagination"]["total"], json!(0));
    let one = get(
        &service,
        "/api/tables/contacts/records?search=%22first%2017%22",
    )
    .await;
    assert_eq!(ids(&one.body), vec!["18".to_string()]);

    // One journal group for the whole batch, and still one entry per write, newest first.
    let activity = get(&service, "/api/activity?tableName=contacts&pageSize=100").await;
    let logged: Vec<String> = activity.body["activities"]
        .as_array()
        .expect("activities")
        .iter()
        .map(|item| {
            format!(
                "{}:{}",
                item["action"].as_str().unwrap_or(""),
                item["recordId"].as_str().unwrap_or("")
            )
        })
        .collect();
    let wanted_log: Vec<String> = (1..=30).rev().map(|id| format!("create:{id}")).collect();
    assert_eq!(logged, wanted_log);
    let history = get(&service, &format!("{path}/history")).await;
    let actions: Vec<&str> = history.body["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|entry| entry["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        actions,
        vec!["update", "update", "update", "update", "create"],
        "the task's history survives the restart"
    );
    // The unique index holds exactly the stored emails: a new holder of one is refused.
    let again = post(
        &service,
        "/api/tables/contacts/records",
        json!({"name": "late", "email": "p7@example.com"}),
    )
    .await;
    again.assert_error(409, "CONFLICT");
}

#[actix_web::test]
async fn a_batch_that_cannot_be_stored_fails_every_write_in_it_and_nothing_else() {
    let app = TestApp::demo();
    let service = service!(app);
    let tasks = app.state.registry.resolve("tasks").expect("tasks");
    tasks
        .addr
        .send(ArmStorageFault)
        .await
        .expect("the actor takes the message");
    let replies = join_all((0..20).map(|i| {
        post(
            &service,
            "/api/tables/tasks/records",
            json!({"title": format!("t{i}")}),
        )
    }))
    .await;
    let mut acknowledged = Vec::new();
    let mut failed = 0;
    for reply in &replies {
        match reply.status.as_u16() {
            201 => acknowledged.push(
                reply.body["fields"]["title"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => {
                reply.assert_error(503, "SERVICE_UNAVAILABLE");
                failed += 1;
            }
        }
    }
    assert!(failed >= 1, "the armed fault failed the batch it hit");
    assert_eq!(tasks.shared.restarts(), 1);

    drop((service, tasks));
    let app = app.restart().await;
    let service = service!(app);
    let list = get(&service, "/api/tables/tasks/records?sort=id&limit=100").await;
    let stored: Vec<String> = list.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| record["fields"]["title"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        stored, acknowledged,
        "exactly the acknowledged writes are stored"
    );
    assert_eq!(list.body["pagination"]["total"], json!(acknowledged.len()));
    let next = post(
        &service,
        "/api/tables/tasks/records",
        json!({"title": "next"}),
    )
    .await;
    assert_eq!(
        next.body["id"],
        json!((acknowledged.len() + 1).to_string()),
        "failed writes took no ids"
    );
}
