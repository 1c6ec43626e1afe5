//! What the OpenAPI document says about every operation beyond its own annotation: the error
//! responses any route of its kind can answer (from the shared middleware and extractors: the
//! credential, the rate limits, the body limit, the query string, the path), each with the
//! error envelope's schema, and the credentials it takes. The annotations list what is
//! particular to a route (its success, its 409, …); this fills in the rest from one set of
//! rules, so a route cannot forget the 401 its extractor answers.

use actix_web::http::Method;
use serde_json::{json, Map, Value as Json};

use crate::rate_limit;

/// Operations anyone may call without a credential, which never answer 401 for lack of one.
const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/scalar"),
    ("GET", "/api/analytics/script.js"),
    ("POST", "/api/analytics/collect"),
    ("POST", "/api/auth/sign-up/email"),
    ("POST", "/api/auth/sign-out"),
];

/// Operations that take no credential at all (no `security`): a credential sent along is
/// ignored (collect) or is the operation's own subject (sign-in, the bootstrap token).
const NO_CREDENTIAL: &[(&str, &str)] = &[
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/scalar"),
    ("GET", "/api/analytics/script.js"),
    ("POST", "/api/analytics/collect"),
    ("POST", "/api/auth/sign-up/email"),
    ("POST", "/api/auth/sign-in/email"),
    ("POST", "/api/admin/bootstrap/claim"),
];

/// Operations that serve a fixed page or text and touch no store: no 503.
const STATIC: &[(&str, &str)] = &[("GET", "/api/scalar"), ("GET", "/api/analytics/script.js")];

/// Operations that read a table's records for callers that may be anonymous (a table whose
/// `read` is `"all"`): a credential is optional.
fn optional_credential(path: &str) -> bool {
    [
        "/api/tables",
        "/api/collections/",
        "/v1/",
        "/api/schema",
        "/api/realtime",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// Whether a caller can be refused with 403 here: admin surfaces, account management, and
/// every write (permission denied, a read-only key).
fn may_forbid(method: &str, path: &str) -> bool {
    let admin = path.starts_with("/api/admin/")
        || path.starts_with("/api/auth/admin/")
        || path == "/api/query";
    let account = path.starts_with("/api/auth/api-keys") || path == "/api/auth/change-password";
    let never = [
        "/api/auth/sign-out",
        "/api/analytics/collect",
        "/api/admin/bootstrap/claim",
    ];
    !never.contains(&path) && (admin || account || method != "GET")
}

/// Whether the path's own resources can be missing: a parameter in the path, a surface that
/// may be switched off (`/api/admin/schema/*` without `schema.edit_api`), or a report a caller
/// is told does not exist (analytics and activity for roles without them, the bootstrap claim
/// once an admin exists).
fn may_be_missing(path: &str) -> bool {
    path.contains('{')
        || path.starts_with("/api/admin/schema/")
        || path.starts_with("/api/analytics/")
            && !matches!(path, "/api/analytics/collect" | "/api/analytics/script.js")
        || path.starts_with("/api/activity")
        || path == "/api/admin/bootstrap/claim"
}

fn error_response(description: &str) -> Json {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

/// Adds `status` with `description` unless the annotation documents it already.
fn ensure(responses: &mut Map<String, Json>, status: u16, description: &str) {
    responses
        .entry(status.to_string())
        .or_insert_with(|| error_response(description));
}

/// Gives every error response the envelope as its body (annotations only describe them).
fn envelope_bodies(responses: &mut Map<String, Json>) {
    for (status, response) in responses.iter_mut() {
        let is_error = status.parse::<u16>().is_ok_and(|status| status >= 400);
        if let Some(response) = response.as_object_mut().filter(|_| is_error) {
            response.entry("content").or_insert_with(
                || json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
            );
        }
    }
}

/// What every parameter of a kind takes, whichever route it is on: a count (`limit`,
/// `offset`, `page`, …) is an `int64` from 0 unless its route says more; `from` and `to` are a
/// date or an RFC 3339 time (SPEC §2); an activity id is digits.
fn normalise_parameters(path: &str, operation: &mut Map<String, Json>) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Json::as_array_mut) else {
        return;
    };
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let location = parameter["in"].as_str().unwrap_or_default().to_owned();
        let Some(schema) = parameter.get_mut("schema").and_then(Json::as_object_mut) else {
            continue;
        };
        let is_integer = match schema.get("type") {
            Some(Json::String(kind)) => kind == "integer",
            Some(Json::Array(kinds)) => kinds.iter().any(|kind| kind == "integer"),
            _ => false,
        };
        if is_integer {
            schema.insert("format".into(), json!("int64"));
            schema.entry("minimum").or_insert(json!(0));
            schema
                .entry("maximum")
                .or_insert(json!(tabula_actors::query::MAX_COUNT_PARAMETER));
        }
        if location == "query" && matches!(name.as_str(), "from" | "to") {
            *schema = json!({"anyOf": [
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        }
        if location == "path" && name == "id" && path.starts_with("/api/activity/") {
            schema.insert("pattern".into(), json!("^[0-9]{1,19}$"));
        }
    }
}

/// Completes one operation (see the module documentation).
pub fn complete_operation(method: &str, path: &str, operation: &mut Map<String, Json>) {
    let key = (method, path);
    let has_body = operation.contains_key("requestBody");
    let has_query = operation
        .get("parameters")
        .and_then(Json::as_array)
        .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
    let http_method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let rate_limited = rate_limit::group_of(&http_method, path).is_some();
    normalise_parameters(path, operation);
    if !NO_CREDENTIAL.contains(&key) {
        let mut schemes = vec![json!({"bearerAuth": []}), json!({"sessionCookie": []})];
        if optional_credential(path) || PUBLIC.contains(&key) {
            schemes.push(json!({}));
        }
        operation.insert("security".into(), Json::Array(schemes));
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    if has_body || has_query || path.contains('{') {
        ensure(
            responses,
            400,
            "Invalid request: the envelope names each problem in `errors`",
        );
    }
    if !PUBLIC.contains(&key) {
        ensure(
            responses,
            401,
            "Authentication required (no, an expired or a revoked credential)",
        );
    }
    if may_forbid(method, path) {
        ensure(responses, 403, "The caller may not do this");
    }
    if may_be_missing(path) {
        ensure(responses, 404, "Not found (or not visible to the caller)");
    }
    if has_body {
        ensure(responses, 413, "The request body is larger than the limit");
    }
    if rate_limited {
        ensure(
            responses,
            429,
            "Too many requests: `Retry-After` says when to retry",
        );
    }
    ensure(
        responses,
        500,
        "An internal error; the body carries only `details.requestId`",
    );
    if !STATIC.contains(&key) {
        ensure(responses, 503, "The store or a table is unavailable: retry");
    }
    envelope_bodies(responses);
}

/// The error envelope (SPEC §2.1) and the credentials, for `components`.
pub fn components(components: &mut Map<String, Json>) {
    let schemas = components
        .entry("schemas")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    if let Some(schemas) = schemas {
        schemas.insert(
            "Error".into(),
            json!({
                "type": "object",
                "required": ["success", "message", "code"],
                "properties": {
                    "success": {"const": false},
                    "message": {"type": "string"},
                    "code": {"type": "string", "enum": [
                        "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "VALIDATION_ERROR", "CONFLICT",
                        "PAYLOAD_TOO_LARGE", "RATE_LIMITED", "INTERNAL_ERROR", "SERVICE_UNAVAILABLE"
                    ]},
                    "errors": {"type": "array", "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "row": {"type": "integer"},
                            "path": {"type": "string"},
                        },
                    }},
                    "details": {"type": "object"},
                },
            }),
        );
    }
    components.insert(
        "securitySchemes".into(),
        json!({
            "bearerAuth": {"type": "http", "scheme": "bearer",
                           "description": "A session token or an API key (`tab_…`)"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "tabula_session"},
        }),
    );
}

/// Completes every operation of `document` and its components.
pub fn complete_document(document: &mut Json) {
    if let Some(paths) = document.get_mut("paths").and_then(Json::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if let Some(operation) = operation.as_object_mut() {
                    complete_operation(&method.to_ascii_uppercase(), path, operation);
                }
            }
        }
    }
    if let Some(object) = document.as_object_mut() {
        let components = object
            .entry("components")
            .or_insert_with(|| json!({}))
            .as_object_mut();
        if let Some(components) = components {
            self::components(components);
        }
    }
}
