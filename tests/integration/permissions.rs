//! The permission matrix (SPEC §2.2, §3, §8): six callers — admin, member, viewer, anonymous, a
//! member's read API key and a member's write API key — × every operation on a table with mixed
//! field permissions and a row rule. The expected status and the exact set of visible fields
//! are computed from the policy table below by a small model of the rules, not listed by hand.

use std::collections::BTreeSet;

use actix_web::http::Method;
use serde_json::{json, Value as Json};

use crate::anonymous_service;
use crate::common::{send, send_as, TestApp};

const SCHEMA: &str = r#"
[[tables]]
id = 1
name = "notes"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"
  required = true

  [[tables.fields]]
  id = 2
  name = "owner"
  type = "user"
  autofill = "current"

  [[tables.fields]]
  id = 3
  name = "rating"
  type = "integer"

  [[tables.fields]]
  id = 4
  name = "secret"
  type = "single-line-text"

  [tables.permissions]
  read = "authenticated"
  comment = "authenticated"
  create = ["member"]
  update = ["member"]
  delete = ["member"]
  restore = ["member"]
  rowFilter = "owner = @user.id"
  fields = [
    { field = "rating", read = "authenticated", write = ["admin"] },
    { field = "secret", read = ["admin"], write = ["admin"] },
  ]

[[tables]]
id = 2
name = "vault"

  [[tables.fields]]
  id = 1
  name = "title"
  type = "single-line-text"

  [tables.permissions]
  read = ["admin"]
"#;

/// Who may do what: the policy of `notes` as the model reads it (a copy of the TOML above).
#[derive(Clone, Copy)]
enum Who {
    Authenticated,
    Roles(&'static [&'static str]),
    AdminOnly,
}

const READ: Who = Who::Authenticated;
const COMMENT: Who = Who::Authenticated;
const CREATE: Who = Who::Roles(&["member"]);
const UPDATE: Who = Who::Roles(&["member"]);
const DELETE: Who = Who::Roles(&["member"]);
const RESTORE: Who = Who::Roles(&["member"]);
const PERMANENT_DELETE: Who = Who::AdminOnly;
/// Field → (read, write); fields not listed follow the table.
const FIELD_RULES: &[(&str, Who, Who)] = &[
    ("rating", Who::Authenticated, Who::AdminOnly),
    ("secret", Who::AdminOnly, Who::AdminOnly),
];
const FIELDS: &[&str] = &["title", "owner", "rating", "secret"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    Session,
    ReadKey,
    WriteKey,
}

#[derive(Clone, Debug)]
struct Role {
    label: &'static str,
    /// `None`: anonymous.
    role: Option<&'static str>,
    scope: Scope,
}

impl Role {
    fn allowed(&self, who: Who) -> bool {
        match (self.role, who) {
            (None, _) => false,
            (Some("admin"), _) => true,
            (Some(_), Who::Authenticated) => true,
            (Some(role), Who::Roles(roles)) => roles.contains(&role),
            (Some(_), Who::AdminOnly) => false,
        }
    }

    fn is_admin(&self) -> bool {
        self.role == Some("admin")
    }

    fn reads_field(&self, field: &str) -> bool {
        FIELD_RULES
            .iter()
            .find(|(name, _, _)| *name == field)
            .is_none_or(|(_, read, _)| self.allowed(*read))
    }

    fn writes_field(&self, field: &str) -> bool {
        self.reads_field(field)
            && FIELD_RULES
                .iter()
                .find(|(name, _, _)| *name == field)
                .is_none_or(|(_, _, write)| self.allowed(*write))
    }

    fn visible_fields(&self) -> BTreeSet<String> {
        FIELDS
            .iter()
            .filter(|field| self.reads_field(field))
            .map(|field| field.to_string())
            .collect()
    }
}

/// One operation on a record of `notes` owned by the member.
#[derive(Clone, Copy, Debug)]
enum Op {
    List,
    Get,
    GetTable,
    Permissions,
    FilterOnSecret,
    SortOnRating,
    Create,
    UpdateTitle,
    UpdateRating,
    UpdateSecret,
    Delete,
    PermanentDelete,
    Restore,
    History,
    ListComments,
    Comment,
    BatchCreate,
    BatchDelete,
}

const OPS: &[Op] = &[
    Op::List,
    Op::Get,
    Op::GetTable,
    Op::Permissions,
    Op::FilterOnSecret,
    Op::SortOnRating,
    Op::Create,
    Op::UpdateTitle,
    Op::UpdateRating,
    Op::UpdateSecret,
    Op::Delete,
    Op::PermanentDelete,
    Op::Restore,
    Op::History,
    Op::ListComments,
    Op::Comment,
    Op::BatchCreate,
    Op::BatchDelete,
];

impl Op {
    /// The table action and the status on success.
    fn action(self) -> (Who, bool, u16) {
        match self {
            Op::List | Op::Get | Op::GetTable | Op::Permissions | Op::History => (READ, false, 200),
            Op::FilterOnSecret | Op::SortOnRating | Op::ListComments => (READ, false, 200),
            Op::Create => (CREATE, true, 201),
            Op::BatchCreate => (CREATE, true, 201),
            Op::UpdateTitle | Op::UpdateRating | Op::UpdateSecret => (UPDATE, true, 200),
            Op::Delete => (DELETE, true, 204),
            Op::BatchDelete => (DELETE, true, 200),
            Op::PermanentDelete => (PERMANENT_DELETE, true, 200),
            Op::Restore => (RESTORE, true, 200),
            Op::Comment => (COMMENT, true, 201),
        }
    }

    /// The field the operation writes, filters or sorts on.
    fn field(self) -> Option<(&'static str, bool)> {
        match self {
            Op::UpdateTitle => Some(("title", true)),
            Op::UpdateRating => Some(("rating", true)),
            Op::UpdateSecret => Some(("secret", true)),
            Op::FilterOnSecret => Some(("secret", false)),
            Op::SortOnRating => Some(("rating", false)),
            _ => None,
        }
    }

    /// Whether the operation names one existing record (the member's), so the row rule applies.
    fn names_record(self) -> bool {
        matches!(
            self,
            Op::Get
                | Op::UpdateTitle
                | Op::UpdateRating
                | Op::UpdateSecret
                | Op::Delete
                | Op::PermanentDelete
                | Op::Restore
                | Op::History
                | Op::ListComments
                | Op::Comment
                | Op::BatchDelete
        )
    }
}

/// The model: SPEC §2.2 applied to the policy table.
fn expected_status(role: &Role, op: Op, record_owner_is_member: bool) -> u16 {
    let (who, writes, success) = op.action();
    if role.role.is_none() {
        return 401;
    }
    if !role.allowed(READ) {
        return 404;
    }
    if writes && (!role.allowed(who) || role.scope == Scope::ReadKey) {
        return 403;
    }
    if let Some((field, is_write)) = op.field() {
        if !role.reads_field(field) {
            return 400;
        }
        if is_write && !role.writes_field(field) {
            return 403;
        }
    }
    let sees_member_rows = role.is_admin() || role.role == Some("member");
    if op.names_record() && record_owner_is_member && !sees_member_rows {
        return 404;
    }
    success
}

fn field_names(record: &Json) -> BTreeSet<String> {
    record["fields"]
        .as_object()
        .map(|fields| fields.keys().cloned().collect())
        .unwrap_or_default()
}

struct Callers {
    roles: Vec<(Role, Option<String>)>,
    member_id: String,
}

async fn callers(
    app: &TestApp,
    service: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
    >,
) -> Callers {
    let admin = app.admin_token().await;
    let member = app.token_for("member@matrix.test", "member").await;
    let viewer = app.token_for("viewer@matrix.test", "viewer").await;
    let mut keys = Vec::new();
    for scope in ["read", "write"] {
        let reply = send_as(
            service,
            &member,
            Method::POST,
            "/api/auth/api-keys",
            Some(json!({"name": format!("{scope} key"), "scope": scope})),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 201, "{:?}", reply.body);
        let key = reply.body["key"].as_str().expect("the key").to_owned();
        assert!(key.starts_with("tab_"));
        keys.push(key);
    }
    let write_key = keys.pop().expect("a write key");
    let read_key = keys.pop().expect("a read key");
    let role = |label, role, scope| Role { label, role, scope };
    Callers {
        roles: vec![
            (role("admin", Some("admin"), Scope::Session), Some(admin)),
            (role("member", Some("member"), Scope::Session), Some(member)),
            (role("viewer", Some("viewer"), Scope::Session), Some(viewer)),
            (role("anonymous", None, Scope::Session), None),
            (
                role("read key", Some("member"), Scope::ReadKey),
                Some(read_key),
            ),
            (
                role("write key", Some("member"), Scope::WriteKey),
                Some(write_key),
            ),
        ],
        member_id: app.user_id("member@matrix.test"),
    }
}

#[actix_web::test]
async fn the_permission_matrix_follows_the_policy() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let Callers { roles, member_id } = callers(&app, &service).await;
    let admin = roles[0].1.clone().expect("the admin token");
    let mut checked = 0;
    for (role, token) in &roles {
        for op in OPS {
            // A fresh record of the member for every operation (admin writes it).
            let created = send_as(
                &service,
                &admin,
                Method::POST,
                "/api/tables/notes/records",
                Some(json!({"title": "note", "owner": member_id, "rating": 3, "secret": "s"})),
            )
            .await;
            assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
            let id = created.body["id"].as_str().expect("an id").to_owned();
            if matches!(op, Op::Restore) {
                let deleted = send_as(
                    &service,
                    &admin,
                    Method::DELETE,
                    &format!("/api/tables/notes/records/{id}"),
                    None,
                )
                .await;
                assert_eq!(deleted.status.as_u16(), 204);
            }
            let records = "/api/tables/notes/records".to_owned();
            let record = format!("{records}/{id}");
            let (method, path, body) = match op {
                Op::List => (Method::GET, records.clone(), None),
                Op::Get => (Method::GET, record.clone(), None),
                Op::GetTable => (Method::GET, "/api/tables/notes".to_owned(), None),
                Op::Permissions => (
                    Method::GET,
                    "/api/tables/notes/permissions".to_owned(),
                    None,
                ),
                Op::FilterOnSecret => (
                    Method::GET,
                    format!("{records}?filter=secret%3D%27s%27"),
                    None,
                ),
                Op::SortOnRating => (Method::GET, format!("{records}?sort=-rating"), None),
                Op::Create => (
                    Method::POST,
                    records.clone(),
                    Some(json!({"title": "mine"})),
                ),
                Op::UpdateTitle => (
                    Method::PATCH,
                    record.clone(),
                    Some(json!({"title": "renamed"})),
                ),
                Op::UpdateRating => (Method::PATCH, record.clone(), Some(json!({"rating": 5}))),
                Op::UpdateSecret => (Method::PATCH, record.clone(), Some(json!({"secret": "x"}))),
                Op::Delete => (Method::DELETE, record.clone(), None),
                Op::PermanentDelete => (Method::DELETE, format!("{record}?permanent=true"), None),
                Op::Restore => (Method::POST, format!("{record}/restore"), None),
                Op::History => (Method::GET, format!("{record}/history"), None),
                Op::ListComments => (Method::GET, format!("{record}/comments"), None),
                Op::Comment => (
                    Method::POST,
                    format!("{record}/comments"),
                    Some(json!({"content": "hi"})),
                ),
                Op::BatchCreate => (
                    Method::POST,
                    format!("{records}/batch"),
                    Some(json!({"records": [{"title": "b"}], "returnRecords": true})),
                ),
                Op::BatchDelete => (
                    Method::DELETE,
                    format!("{records}/batch"),
                    Some(json!({"ids": [id]})),
                ),
            };
            let reply = match token {
                Some(token) => send_as(&service, token, method, &path, body).await,
                None => send(&service, method, &path, body).await,
            };
            let expected = expected_status(role, *op, true);
            assert_eq!(
                reply.status.as_u16(),
                expected,
                "{} {:?}: {:?}",
                role.label,
                op,
                reply.body
            );
            if expected >= 400 {
                let code = match expected {
                    400 => "VALIDATION_ERROR",
                    401 => "UNAUTHORIZED",
                    403 => "FORBIDDEN",
                    _ => "NOT_FOUND",
                };
                reply.assert_error(expected, code);
                if expected == 400 {
                    let (field, _) = op.field().expect("a field");
                    let text = reply.body.to_string();
                    assert!(
                        text.contains(&format!("unknown field: {field}"))
                            || text.contains(&format!("Unknown field '{field}'")),
                        "{} {:?}: {text}",
                        role.label,
                        op
                    );
                }
            } else {
                // The exact set of visible fields, wherever records come back.
                let visible = role.visible_fields();
                let returned: Vec<Json> = match op {
                    Op::List | Op::SortOnRating => reply.body["records"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    Op::Get
                    | Op::Create
                    | Op::UpdateTitle
                    | Op::UpdateRating
                    | Op::UpdateSecret => vec![reply.body.clone()],
                    Op::Restore => vec![reply.body["record"].clone()],
                    Op::BatchCreate => reply.body["records"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                for record in &returned {
                    let fields = field_names(record);
                    let expected_fields: BTreeSet<String> = match op {
                        // A record the caller made has no rating or secret.
                        Op::Create | Op::BatchCreate => visible
                            .iter()
                            .filter(|f| *f == "title" || *f == "owner")
                            .cloned()
                            .collect(),
                        _ => visible.clone(),
                    };
                    assert_eq!(fields, expected_fields, "{} {:?}: {record}", role.label, op);
                }
                if let Op::List = op {
                    // The row rule: the member (and its keys) sees its own rows, the admin all.
                    let owners: BTreeSet<String> = returned
                        .iter()
                        .filter_map(|r| r["fields"]["owner"].as_str().map(str::to_owned))
                        .collect();
                    if !role.is_admin() {
                        assert!(
                            owners.iter().all(|owner| *owner == member_id),
                            "{}: {owners:?}",
                            role.label
                        );
                    }
                }
                if let Op::GetTable = op {
                    let listed: BTreeSet<String> = reply.body["table"]["fields"]
                        .as_array()
                        .expect("fields")
                        .iter()
                        .filter_map(|f| f["name"].as_str().map(str::to_owned))
                        .collect();
                    assert_eq!(listed, visible, "{}", role.label);
                }
                if let Op::Permissions = op {
                    let body = &reply.body;
                    for (name, who) in [
                        ("read", READ),
                        ("comment", COMMENT),
                        ("create", CREATE),
                        ("update", UPDATE),
                        ("delete", DELETE),
                        ("restore", RESTORE),
                        ("permanentDelete", PERMANENT_DELETE),
                    ] {
                        let allowed =
                            role.allowed(who) && (name == "read" || role.scope != Scope::ReadKey);
                        assert_eq!(body["table"][name], json!(allowed), "{} {name}", role.label);
                    }
                    let fields: BTreeSet<String> = body["fields"]
                        .as_object()
                        .expect("fields")
                        .keys()
                        .cloned()
                        .collect();
                    assert_eq!(fields, visible, "{}", role.label);
                    for field in &visible {
                        let may_write = (role.allowed(CREATE) || role.allowed(UPDATE))
                            && role.scope != Scope::ReadKey
                            && role.writes_field(field);
                        assert_eq!(
                            body["fields"][field]["write"],
                            json!(may_write),
                            "{} {field}",
                            role.label
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, roles.len() * OPS.len());
}

#[actix_web::test]
async fn unreadable_tables_look_missing_and_anonymous_callers_get_401_first() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let viewer = app.token_for("viewer@matrix.test", "viewer").await;
    let hidden = send_as(
        &service,
        &viewer,
        Method::GET,
        "/api/tables/vault/records",
        None,
    )
    .await;
    let missing = send_as(
        &service,
        &viewer,
        Method::GET,
        "/api/tables/nosuch/records",
        None,
    )
    .await;
    hidden.assert_error(404, "NOT_FOUND");
    let same_shape =
        |reply: &crate::common::Reply, name: &str| reply.body.to_string().replace(name, "<table>");
    assert_eq!(same_shape(&hidden, "vault"), same_shape(&missing, "nosuch"));
    for path in [
        "/api/tables/vault/records",
        "/api/tables/nosuch/records",
        "/api/tables/notes/records",
    ] {
        send(&service, Method::GET, path, None)
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let listed = send_as(&service, &viewer, Method::GET, "/api/tables", None).await;
    let names: Vec<&str> = listed.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["notes"], "only readable tables are listed");
    // No table is open to everyone: the list is a protected route like any other.
    send(&service, Method::GET, "/api/tables", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    // Non-admins on the admin surfaces.
    send_as(
        &service,
        &viewer,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
    send(&service, Method::GET, "/api/auth/admin/list-users", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn a_key_limited_to_some_tables_sees_no_other_and_revocation_is_immediate() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let created = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "vault only", "scope": "all", "tables": ["vault"]})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    let key = created.body["key"].as_str().expect("key").to_owned();
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        send_as(
            &service,
            &key,
            Method::GET,
            "/api/tables/vault/records",
            None
        )
        .await
        .status
        .as_u16(),
        200
    );
    send_as(
        &service,
        &key,
        Method::GET,
        "/api/tables/notes/records",
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let listed = send_as(&service, &admin, Method::GET, "/api/auth/api-keys", None).await;
    assert!(
        !listed.body.to_string().contains(&key),
        "no secret in the list"
    );
    assert_eq!(
        listed.body["apiKeys"][0]["prefix"]
            .as_str()
            .map(|p| key.starts_with(p)),
        Some(true)
    );
    let deleted = send_as(
        &service,
        &admin,
        Method::DELETE,
        &format!("/api/auth/api-keys/{id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status.as_u16(), 200);
    send_as(
        &service,
        &key,
        Method::GET,
        "/api/tables/vault/records",
        None,
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn writes_carry_the_acting_user() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let member = app.token_for("member@matrix.test", "member").await;
    let member_id = app.user_id("member@matrix.test");
    let created = send_as(
        &service,
        &member,
        Method::POST,
        "/api/tables/notes/records",
        Some(json!({"title": "auto"})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(
        created.body["fields"]["owner"],
        json!(member_id),
        "autofill = current"
    );
    assert_eq!(created.body["createdBy"], json!(member_id));
    let id = created.body["id"].as_str().expect("id");
    let history = send_as(
        &service,
        &member,
        Method::GET,
        &format!("/api/tables/notes/records/{id}/history"),
        None,
    )
    .await;
    assert_eq!(history.body["history"][0]["userId"], json!(member_id));
    let activity = send_as(&service, &member, Method::GET, "/api/activity", None).await;
    assert_eq!(activity.status.as_u16(), 200, "{:?}", activity.body);
    assert_eq!(activity.body["activities"][0]["userId"], json!(member_id));
    assert_eq!(
        activity.body["activities"][0]["user"],
        json!({"id": member_id, "name": "member", "email": "member@matrix.test"})
    );
    let viewer = app.token_for("viewer@matrix.test", "viewer").await;
    send_as(&service, &viewer, Method::GET, "/api/activity", None)
        .await
        .assert_error(404, "NOT_FOUND");
    send(&service, Method::GET, "/api/activity", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
}

#[actix_web::test]
async fn an_admin_key_limited_to_some_tables_cannot_leave_them_on_admin_routes() {
    let app = TestApp::from_toml(&format!("[schema]\nedit_api = true\n{SCHEMA}"));
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let created = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "vault admin", "scope": "all", "tables": ["vault"]})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(created.body["tables"], json!(["vault"]));
    let key = created.body["key"].as_str().expect("key").to_owned();

    // Its own table: the table-by-table admin operations work.
    let added = send_as(
        &service,
        &key,
        Method::POST,
        "/api/admin/tables/vault/fields",
        Some(json!({"field": {"name": "note", "type": "long-text"}})),
    )
    .await;
    assert_eq!(added.status.as_u16(), 201, "{:?}", added.body);
    let sql = send_as(
        &service,
        &key,
        Method::POST,
        "/api/query",
        Some(json!({"sql": "SELECT COUNT(*) FROM vault"})),
    )
    .await;
    assert_eq!(sql.status.as_u16(), 200, "{:?}", sql.body);

    // Another table is missing for it, exactly as a table that does not exist.
    for table in ["notes", "nosuch"] {
        let field = send_as(
            &service,
            &key,
            Method::POST,
            &format!("/api/admin/tables/{table}/fields"),
            Some(json!({"field": {"name": "leak", "type": "long-text"}})),
        )
        .await;
        field.assert_error(404, "NOT_FOUND");
        assert_eq!(field.body["message"], format!("Table '{table}' not found"));
        send_as(
            &service,
            &key,
            Method::DELETE,
            &format!("/api/admin/tables/{table}"),
            None,
        )
        .await
        .assert_error(404, "NOT_FOUND");
        let sql = send_as(
            &service,
            &key,
            Method::POST,
            "/api/query",
            Some(json!({"sql": format!("SELECT * FROM {table}")})),
        )
        .await;
        sql.assert_error(400, "VALIDATION_ERROR");
        assert!(
            sql.body
                .to_string()
                .contains(&format!("unknown table: {table}")),
            "{:?}",
            sql.body
        );
    }

    // What spans every table, accounts and keys need an unlimited credential.
    let refused: &[(Method, &str, Option<Json>)] = &[
        (
            Method::POST,
            "/api/admin/tables",
            Some(json!({"name": "escape", "fields": [{"name": "a", "type": "integer"}]})),
        ),
        (
            Method::POST,
            "/api/admin/tables/vault/clone",
            Some(json!({"name": "vault_copy", "copyData": true})),
        ),
        (
            Method::POST,
            "/api/admin/tables/notes/clone",
            Some(json!({"name": "notes_copy", "copyData": true})),
        ),
        (Method::GET, "/api/admin/schema/export?format=json", None),
        (Method::GET, "/api/admin/schema/draft", None),
        (Method::GET, "/api/admin/schema/versions", None),
        (Method::GET, "/api/auth/admin/list-users", None),
        (
            Method::POST,
            "/api/auth/admin/create-user",
            Some(
                json!({"email": "x@escape.test", "password": "a long password", "name": "X", "role": "admin"}),
            ),
        ),
        (
            Method::POST,
            "/api/auth/api-keys",
            Some(json!({"name": "wider", "scope": "all"})),
        ),
        (Method::GET, "/api/auth/api-keys", None),
    ];
    for (method, path, body) in refused {
        let reply = send_as(&service, &key, method.clone(), path, body.clone()).await;
        reply.assert_error(403, "FORBIDDEN");
    }
    let tables = send_as(&service, &admin, Method::GET, "/api/tables", None).await;
    let names: Vec<&str> = tables.body["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .filter_map(|table| table["name"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["notes", "vault"],
        "nothing was created or cloned"
    );
    let users = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/auth/admin/list-users",
        None,
    )
    .await;
    assert!(!users.body.to_string().contains("x@escape.test"));
    let notes = send_as(&service, &admin, Method::GET, "/api/tables/notes", None).await;
    assert!(
        !notes.body.to_string().contains("leak"),
        "no field was added to notes"
    );
}

#[actix_web::test]
async fn a_new_key_names_only_tables_its_creator_may_read() {
    let app = TestApp::from_toml(SCHEMA);
    let service = anonymous_service!(app);
    let member = app.token_for("keys@matrix.test", "member").await;
    let mut answers = Vec::new();
    for table in ["vault", "nosuch"] {
        let reply = send_as(
            &service,
            &member,
            Method::POST,
            "/api/auth/api-keys",
            Some(json!({"name": "k", "scope": "read", "tables": ["notes", table]})),
        )
        .await;
        reply.assert_error(400, "VALIDATION_ERROR");
        answers.push(reply.body.to_string().replace(table, "TABLE"));
    }
    assert_eq!(
        answers[0], answers[1],
        "a hidden table reads as a missing one"
    );
    // By id or name, stored by id: a rename keeps the key's reach, and the list shows names.
    let admin = app.admin_token().await;
    let created = send_as(
        &service,
        &admin,
        Method::POST,
        "/api/auth/api-keys",
        Some(json!({"name": "both", "scope": "read", "tables": [2, "vault", "notes"]})),
    )
    .await;
    assert_eq!(created.status.as_u16(), 201, "{:?}", created.body);
    assert_eq!(created.body["tables"], json!(["vault", "notes"]));
}

const LINKS_SCHEMA: &str = r#"
[[tables]]
id = 1
name = "people"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"

  [[tables.fields]]
  id = 2
  name = "owner"
  type = "user"
  autofill = "current"

  [tables.permissions]
  read = "authenticated"
  create = ["member"]
  delete = ["member"]
  rowFilter = "owner = @user.id"

[[tables]]
id = 2
name = "classified"

  [[tables.fields]]
  id = 1
  name = "name"
  type = "single-line-text"

  [tables.permissions]
  read = ["admin"]

[[tables]]
id = 3
name = "links"

  [[tables.fields]]
  id = 1
  name = "person"
  type = "relationship"
  relatedTable = "people"
  onDelete = "restrict"

  [[tables.fields]]
  id = 2
  name = "hidden"
  type = "relationship"
  relatedTable = "classified"

  [tables.permissions]
  read = "authenticated"
  create = ["member"]
  update = ["member"]
"#;

#[actix_web::test]
async fn a_link_can_only_name_a_record_the_caller_may_read() {
    let app = TestApp::from_toml(LINKS_SCHEMA);
    let service = anonymous_service!(app);
    let admin = app.admin_token().await;
    let alice = app.token_for("alice@links.test", "member").await;
    let bob = app.token_for("bob@links.test", "member").await;
    let create = |token: &str, table: &str, body: Json| {
        let (token, path) = (token.to_owned(), format!("/api/tables/{table}/records"));
        let service = &service;
        async move { send_as(service, &token, Method::POST, &path, Some(body)).await }
    };
    let alices = create(&alice, "people", json!({"name": "Alice's"})).await;
    assert_eq!(alices.status.as_u16(), 201, "{:?}", alices.body);
    let alices_id = alices.body["id"].as_str().expect("id").to_owned();
    let bobs = create(&bob, "people", json!({"name": "Bob's"})).await;
    let bobs_id = bobs.body["id"].as_str().expect("id").to_owned();
    let classified = create(&admin, "classified", json!({"name": "top"})).await;
    assert_eq!(classified.status.as_u16(), 201, "{:?}", classified.body);
    let classified_id = classified.body["id"].as_str().expect("id").to_owned();

    // Bob links to what he may not read: answered exactly as a record that does not exist.
    let missing_id = "999";
    for (field, hidden_id) in [("person", &alices_id), ("hidden", &classified_id)] {
        let hidden = create(&bob, "links", json!({ field: hidden_id })).await;
        let missing = create(&bob, "links", json!({ field: missing_id })).await;
        hidden.assert_error(400, "VALIDATION_ERROR");
        missing.assert_error(400, "VALIDATION_ERROR");
        assert_eq!(
            hidden.body.to_string().replace(hidden_id.as_str(), "ID"),
            missing.body.to_string().replace(missing_id, "ID"),
            "{field}: a hidden target reads as a missing one"
        );
        for body in [&hidden.body, &missing.body] {
            let text = body.to_string();
            assert!(
                !text.contains("people") && !text.contains("classified"),
                "no table name: {text}"
            );
        }
        // The same through a batch, a PATCH, the AYB batch and an import.
        let batch = send_as(
            &service,
            &bob,
            Method::POST,
            "/api/tables/links/records/batch",
            Some(json!({"records": [{"fields": {field: hidden_id}}]})),
        )
        .await;
        batch.assert_error(400, "VALIDATION_ERROR");
        let own = create(&bob, "links", json!({})).await;
        let own_id = own.body["id"].as_str().expect("id").to_owned();
        let patched = send_as(
            &service,
            &bob,
            Method::PATCH,
            &format!("/api/tables/links/records/{own_id}"),
            Some(json!({ field: hidden_id })),
        )
        .await;
        patched.assert_error(400, "VALIDATION_ERROR");
        let operations = send_as(
            &service,
            &bob,
            Method::POST,
            "/api/collections/links/batch",
            Some(json!({"operations": [{"method": "create", "body": { field: hidden_id }}]})),
        )
        .await;
        operations.assert_error(400, "VALIDATION_ERROR");
        let import = send_as(
            &service,
            &bob,
            Method::POST,
            "/api/tables/links/import",
            Some(json!([{ field: hidden_id }])),
        )
        .await;
        import.assert_error(400, "VALIDATION_ERROR");
    }

    // What he may read, he may link to; the admin links to anything.
    let linked = create(&bob, "links", json!({"person": bobs_id})).await;
    assert_eq!(linked.status.as_u16(), 201, "{:?}", linked.body);
    let by_admin = create(&admin, "links", json!({"hidden": classified_id})).await;
    assert_eq!(by_admin.status.as_u16(), 201, "{:?}", by_admin.body);

    // Nothing pins Alice's record: she deletes it.
    let deleted = send_as(
        &service,
        &alice,
        Method::DELETE,
        &format!("/api/tables/people/records/{alices_id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status.as_u16(), 204, "{:?}", deleted.body);
    let links = send_as(
        &service,
        &admin,
        Method::GET,
        "/api/tables/links/records?filter=person!=null",
        None,
    )
    .await;
    assert_eq!(
        links.body["pagination"]["total"],
        json!(1),
        "only Bob's own link was made"
    );
}
