//! The access policy (SPEC §2.2, §3, §8), pure and below HTTP: who a caller is ([`Principal`]),
//! what it may do with a table ([`authorize`] → [`TableAccess`]), which fields it may read and
//! write, and which rows it may see (`permissions.rowFilter`).
//!
//! The rules, in the order they are applied:
//! 1. An anonymous caller gets 401 for anything that is not open to everyone (`"all"`) — before
//!    the table is even looked up, so a missing table is a 401 too.
//! 2. An authenticated caller that may not read a table (or whose API key is limited to other
//!    tables) gets the 404 of a missing table; a record outside its row rule, the 404 of a
//!    missing record; a field it may not read does not exist for it (the narrowed
//!    [`TableAccess::schema`] leaves it out, so filtering, sorting, projecting, aggregating on
//!    it or writing it is the "unknown field" 400).
//! 3. A caller that may read but not act gets 403: the action, a field it may read but not
//!    write, a read-only API key writing.
//!
//! `admin` may do everything (no field or row narrowing); `auth.enabled = false` serves every
//! table as if every permission were `"all"`.

use std::sync::Arc;

use tabula_storage::{Access, FieldDef, FieldType, StoredRecord, TableSchema, Value, ViewDef};

use crate::accounts::{ApiKeyRecord, KeyScope, User};
use crate::error::{DomainError, DomainResult, FieldError};
use crate::history::NamedChange;
use crate::query::expand::ReadAccess;
use crate::query::filter::Filter;
use crate::query::search::SearchScope;
use crate::query::{self, parse_expression_with, JsonParser, ListRequest, PageLimits, Variables};
use crate::registry::{Registry, TableHandle};
use crate::table::{missing_target_message, record_not_found};
use crate::validate::{validate_write, WriteMode};

/// The role that may do everything.
pub const ADMIN_ROLE: &str = "admin";
/// The roles that may read the activity log (SPEC §6); others get its 404.
pub const ACTIVITY_ROLES: &[&str] = &[ADMIN_ROLE, "member"];

/// Who is asking: an account (directly, or through one of its API keys), or no one.
#[derive(Debug, Clone, Default)]
pub struct Principal {
    /// The account (for an API key, its creator). `None`: anonymous.
    pub user: Option<Arc<User>>,
    /// The API key the request came with, which narrows what the account may do.
    pub key: Option<Arc<ApiKeyRecord>>,
    /// `auth.enabled = false`: every permission is `"all"`.
    pub open: bool,
}

/// A table action (SPEC §3 permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Comment,
    Create,
    Update,
    Delete,
    Restore,
    PermanentDelete,
}

impl Action {
    /// Every action, in the order of the permissions object.
    pub const ALL: [Action; 7] = [
        Action::Read,
        Action::Comment,
        Action::Create,
        Action::Update,
        Action::Delete,
        Action::Restore,
        Action::PermanentDelete,
    ];

    /// The name in the permissions object.
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Comment => "comment",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::PermanentDelete => "permanentDelete",
        }
    }

    fn access(self, schema: &TableSchema) -> Option<&Access> {
        let permissions = &schema.permissions;
        match self {
            Action::Read => permissions.read.as_ref(),
            Action::Comment => permissions.comment.as_ref(),
            Action::Create => permissions.create.as_ref(),
            Action::Update => permissions.update.as_ref(),
            Action::Delete => permissions.delete.as_ref(),
            Action::Restore => permissions.restore.as_ref(),
            Action::PermanentDelete => permissions.permanent_delete.as_ref(),
        }
    }

    fn denied_message(self, table: &str) -> String {
        let verb = match self {
            Action::Read => "read",
            Action::Comment => "comment on",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Restore => "restore",
            Action::PermanentDelete => "permanently delete",
        };
        format!("You do not have permission to {verb} records of table '{table}'")
    }
}

/// The 401 of SPEC §2.1.
pub fn authentication_required() -> DomainError {
    DomainError::Unauthorized("Authentication required".into())
}

/// The 404 of a table that does not exist (or that the caller may not know exists).
pub fn table_not_found(key: &str) -> DomainError {
    DomainError::NotFound(format!("Table '{key}' not found"))
}

impl Principal {
    /// No credentials.
    pub fn anonymous() -> Self {
        Principal::default()
    }

    /// Everyone when `auth.enabled = false`.
    pub fn open_access() -> Self {
        Principal {
            open: true,
            ..Principal::default()
        }
    }

    /// A signed-in account.
    pub fn user(user: Arc<User>) -> Self {
        Principal {
            user: Some(user),
            ..Principal::default()
        }
    }

    /// An account acting through one of its API keys.
    pub fn with_key(user: Arc<User>, key: Arc<ApiKeyRecord>) -> Self {
        Principal {
            user: Some(user),
            key: Some(key),
            open: false,
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.user.is_some()
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user.as_deref().map(|user| user.id.as_str())
    }

    /// The account's role (`None` when anonymous).
    pub fn role(&self) -> Option<&str> {
        self.user.as_deref().map(|user| user.role.as_str())
    }

    /// Whether the account is an admin (whatever its key's scope: a read key of an admin reads
    /// everything an admin reads).
    pub fn is_admin(&self) -> bool {
        self.role() == Some(ADMIN_ROLE)
    }

    /// Whether field and row narrowing is off for this caller.
    pub fn unrestricted(&self) -> bool {
        self.open || self.is_admin()
    }

    /// Whether `access` lets this caller in (`None` = admin only).
    pub fn allows(&self, access: Option<&Access>) -> bool {
        if self.unrestricted() {
            return true;
        }
        match access {
            None => false,
            Some(Access::All) => true,
            Some(Access::Authenticated) => self.is_authenticated(),
            Some(Access::Roles(roles)) => self
                .role()
                .is_some_and(|role| roles.iter().any(|allowed| allowed == role)),
        }
    }

    /// Whether the request's API key (if any) lets it do more than read.
    fn key_may_write(&self) -> bool {
        self.key
            .as_deref()
            .is_none_or(|key| key.scope != KeyScope::Read)
    }

    /// Whether the request's API key (if any) may reach `schema`'s table.
    pub fn key_reaches(&self, schema: &TableSchema) -> bool {
        let Some(tables) = self.key.as_deref().and_then(|key| key.tables.as_ref()) else {
            return true;
        };
        let id = schema.id.to_string();
        tables
            .iter()
            .any(|table| *table == schema.name || *table == id)
    }

    /// Whether the request's API key is limited to some tables (`tables` on the key).
    pub fn key_is_table_limited(&self) -> bool {
        self.key.as_deref().is_some_and(|key| key.tables.is_some())
    }

    /// The account, or a 401.
    pub fn require_user(&self) -> DomainResult<&Arc<User>> {
        self.user.as_ref().ok_or_else(authentication_required)
    }

    /// The account for managing itself (password, API keys): signed in with a session, or with
    /// an API key of scope `all` that reaches every table (else 403: a key limited to some
    /// tables could otherwise make itself a key without the limit).
    pub fn require_account_access(&self) -> DomainResult<&Arc<User>> {
        let user = self.require_user()?;
        match self.key.as_deref() {
            Some(key) if key.scope != KeyScope::All || key.tables.is_some() => Err(
                DomainError::Forbidden("This API key may not manage the account".into()),
            ),
            _ => Ok(user),
        }
    }

    /// An admin for what spans every table (`/api/admin/schema/*`, creating or cloning a table,
    /// `/api/auth/admin/*`, the analytics reports): 401 when anonymous, 403 for anyone else —
    /// for an admin's API key whose scope is not `all`, and for one limited to some tables
    /// (whose other tables do not exist for it). With auth off, everyone.
    pub fn require_admin(&self) -> DomainResult<()> {
        self.require_table_admin()?;
        if self.key_is_table_limited() {
            return Err(DomainError::Forbidden(
                "This API key is limited to some tables; this needs a credential for every table"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An admin for what is done table by table (`DELETE /api/admin/tables/{t}`, adding a
    /// field, `/api/query`, the webhook delivery log): like [`Principal::require_admin`], but a
    /// key limited to some tables passes — the route then treats every other table as missing
    /// ([`Principal::key_reaches`]).
    pub fn require_table_admin(&self) -> DomainResult<()> {
        if self.open {
            return Ok(());
        }
        self.require_user()?;
        let scope_allows = self
            .key
            .as_deref()
            .is_none_or(|key| key.scope == KeyScope::All);
        if self.is_admin() && scope_allows {
            Ok(())
        } else {
            Err(DomainError::Forbidden("Admin access required".into()))
        }
    }

    /// The activity log (SPEC §6): admin and member; other roles get its 404; anonymous 401.
    pub fn require_activity_reader(&self) -> DomainResult<()> {
        if self.open {
            return Ok(());
        }
        let user = self.require_user()?;
        if ACTIVITY_ROLES.contains(&user.role.as_str()) {
            Ok(())
        } else {
            Err(DomainError::NotFound("Route not found".into()))
        }
    }

    /// The analytics reports (SPEC §7): admin only; anonymous 401; anyone else their 404.
    pub fn require_analytics_reader(&self) -> DomainResult<()> {
        match self.require_admin() {
            Err(DomainError::Forbidden(_)) => Err(DomainError::NotFound("Route not found".into())),
            other => other,
        }
    }

    /// The comment author rule's caller (`None` with auth off, where everyone may).
    pub fn comment_caller(&self) -> Option<crate::table::Caller> {
        if self.open {
            return None;
        }
        Some(crate::table::Caller {
            user_id: self.user_id().unwrap_or_default().to_owned(),
            is_admin: self.is_admin(),
        })
    }

    /// The `@user.*` values of a row rule (null when anonymous).
    pub fn variables(&self) -> Variables {
        let text =
            |value: Option<&str>| value.map_or(Value::Null, |text| Value::Text(text.to_owned()));
        let user = self.user.as_deref();
        Variables::from([
            (
                "user.id".to_owned(),
                text(user.map(|user| user.id.as_str())),
            ),
            (
                "user.email".to_owned(),
                text(user.map(|user| user.email.as_str())),
            ),
            (
                "user.role".to_owned(),
                text(user.map(|user| user.role.as_str())),
            ),
        ])
    }

    /// Whether this caller may read `field` of a table it may read.
    pub fn reads_field(&self, schema: &TableSchema, field: &FieldDef) -> bool {
        self.unrestricted()
            || field_rule(schema, &field.name)
                .and_then(|rule| rule.read.as_ref())
                .is_none_or(|access| self.allows(Some(access)))
    }

    /// Whether this caller may write `field` (it must also be able to read it).
    fn writes_field(&self, schema: &TableSchema, field: &FieldDef) -> bool {
        self.reads_field(schema, field)
            && (self.unrestricted()
                || field_rule(schema, &field.name)
                    .and_then(|rule| rule.write.as_ref())
                    .is_none_or(|access| self.allows(Some(access))))
    }

    /// Whether this caller may see a table at all (listed by `GET /api/tables`).
    pub fn reads_table(&self, schema: &TableSchema) -> bool {
        self.key_reaches(schema) && self.allows(schema.permissions.read.as_ref())
    }

    fn reads_view(&self, view: &ViewDef) -> bool {
        self.unrestricted()
            || view
                .permissions
                .as_ref()
                .and_then(|permissions| permissions.read.as_ref())
                .is_none_or(|access| self.allows(Some(access)))
    }
}

fn field_rule<'s>(
    schema: &'s TableSchema,
    name: &str,
) -> Option<&'s tabula_storage::schema::FieldPermission> {
    schema
        .permissions
        .fields
        .iter()
        .find(|rule| rule.field == name)
}

impl ReadAccess for Principal {
    fn can_read_table(&self, table: &TableSchema) -> bool {
        self.reads_table(table)
    }

    fn can_read_field(&self, table: &TableSchema, field: &FieldDef) -> bool {
        self.reads_field(table, field)
    }

    /// A rule that does not compile (a schema changed since start-up) shows no record.
    fn row_rule(&self, table: &TableSchema) -> Option<Filter> {
        if self.unrestricted() {
            return None;
        }
        let text = table
            .permissions
            .row_filter
            .as_deref()
            .filter(|text| !text.trim().is_empty())?;
        Some(compile_row_filter(table, text, self).unwrap_or_else(|_| Filter::Or(Vec::new())))
    }
}

/// What one caller may do with one table, computed once per request.
#[derive(Clone)]
pub struct TableAccess {
    pub handle: TableHandle,
    /// The table as this caller sees it: only the fields and views it may read (the same `Arc`
    /// as the live schema when nothing is hidden).
    pub schema: Arc<TableSchema>,
    /// The live schema the access was computed from.
    pub full_schema: Arc<TableSchema>,
    principal: Principal,
    /// The row rule with `@user.*` filled in (`None` for admins, or without a rule).
    row_filter: Option<Filter>,
}

/// Checks that `principal` may perform `action` on the table `table_key` (id or name) and
/// returns what it may see of it; the errors are SPEC §2.2's 401, 404 and 403.
pub fn authorize(
    principal: &Principal,
    registry: &Registry,
    table_key: &str,
    action: Action,
) -> DomainResult<TableAccess> {
    let handle = registry.resolve(table_key);
    if !principal.is_authenticated() && !principal.open {
        let open_to_anyone = handle.as_ref().is_some_and(|handle| {
            let schema = handle.shared.schema();
            matches!(Action::Read.access(&schema), Some(Access::All))
                && matches!(action.access(&schema), Some(Access::All))
        });
        if !open_to_anyone {
            return Err(authentication_required());
        }
    }
    let handle = handle.ok_or_else(|| table_not_found(table_key))?;
    let access = table_access(principal, handle)?.ok_or_else(|| table_not_found(table_key))?;
    if action != Action::Read {
        let schema = &access.full_schema;
        if !principal.allows(action.access(schema)) {
            return Err(DomainError::Forbidden(action.denied_message(&schema.name)));
        }
        if !principal.key_may_write() {
            return Err(DomainError::Forbidden("This API key may only read".into()));
        }
    }
    Ok(access)
}

/// What `principal` sees of a table, or `None` when it may not read it (or its key does not
/// reach it).
pub fn table_access(
    principal: &Principal,
    handle: TableHandle,
) -> DomainResult<Option<TableAccess>> {
    let full_schema = handle.shared.schema();
    if !principal.reads_table(&full_schema) {
        return Ok(None);
    }
    if principal.unrestricted() {
        return Ok(Some(TableAccess {
            handle,
            schema: Arc::clone(&full_schema),
            full_schema,
            principal: principal.clone(),
            row_filter: None,
        }));
    }
    let schema = narrowed_schema(principal, &full_schema);
    let row_filter = match &full_schema.permissions.row_filter {
        Some(text) if !text.trim().is_empty() => {
            Some(compile_row_filter(&full_schema, text, principal)?)
        }
        _ => None,
    };
    Ok(Some(TableAccess {
        handle,
        schema,
        full_schema,
        principal: principal.clone(),
        row_filter,
    }))
}

/// Compiles a row rule for a caller; an invalid rule is refused (it is checked at start-up, so
/// this only happens with a schema changed since).
pub fn compile_row_filter(
    schema: &TableSchema,
    text: &str,
    principal: &Principal,
) -> DomainResult<Filter> {
    parse_expression_with(schema, text, Some(&principal.variables())).map_err(|error| {
        tracing::error!(table = %schema.name, %error, "invalid permissions.rowFilter");
        DomainError::Unavailable(format!(
            "The row rule of table '{}' is invalid",
            schema.name
        ))
    })
}

/// Checks every table's row rule with a sample caller: the problems, one message per table.
pub fn check_row_filters<'s>(tables: impl IntoIterator<Item = &'s TableSchema>) -> Vec<String> {
    let sample = Principal::user(Arc::new(User {
        id: "u".into(),
        email: "u@example.com".into(),
        name: String::new(),
        role: "member".into(),
        banned: false,
        created_at: 0,
        updated_at: 0,
    }));
    tables
        .into_iter()
        .filter_map(|schema| {
            let text = schema.permissions.row_filter.as_deref()?;
            parse_expression_with(schema, text, Some(&sample.variables()))
                .err()
                .map(|error| format!("table '{}': permissions.rowFilter: {error}", schema.name))
        })
        .collect()
}

/// The schema without the fields and views `principal` may not read, field rules about hidden
/// fields, nor the row rule's text. The live `Arc` itself when nothing is hidden.
fn narrowed_schema(principal: &Principal, schema: &Arc<TableSchema>) -> Arc<TableSchema> {
    let hidden_field = schema
        .fields
        .iter()
        .any(|field| !principal.reads_field(schema, field));
    let hidden_view = schema.views.iter().any(|view| !principal.reads_view(view));
    if !hidden_field && !hidden_view && schema.permissions.row_filter.is_none() {
        return Arc::clone(schema);
    }
    let mut narrowed = TableSchema::clone(schema);
    narrowed
        .fields
        .retain(|field| principal.reads_field(schema, field));
    let readable = |name: &str| narrowed_has(schema, principal, name);
    narrowed.views.retain(|view| principal.reads_view(view));
    let fields_only = TableSchema {
        views: Vec::new(),
        ..narrowed.clone()
    };
    for view in &mut narrowed.views {
        if let Some(fields) = &mut view.fields {
            fields.retain(|name| readable(name));
        }
        redact_hidden_references(&fields_only, view);
    }
    narrowed
        .permissions
        .fields
        .retain(|rule| readable(&rule.field));
    narrowed.permissions.row_filter = None;
    if let Some(search) = &mut narrowed.search {
        search.retain(|name| readable(name));
    }
    Arc::new(narrowed)
}

/// Leaves out of a view's description the filter, sort or grouping that names a field the
/// caller may not read (they still apply when the caller uses the view: the view is applied from
/// the live schema). `readable` is the table with only the caller's fields.
fn redact_hidden_references(readable: &TableSchema, view: &mut ViewDef) {
    let names_hidden = |probe: ViewDef| !query::views::check_view(readable, &probe).is_empty();
    let bare = ViewDef {
        filter: None,
        sort: None,
        fields: None,
        group_by: None,
        ..view.clone()
    };
    if view.filter.is_some()
        && names_hidden(ViewDef {
            filter: view.filter.clone(),
            ..bare.clone()
        })
    {
        view.filter = None;
    }
    if view.sort.is_some()
        && names_hidden(ViewDef {
            sort: view.sort.clone(),
            ..bare.clone()
        })
    {
        view.sort = None;
    }
    if view.group_by.is_some()
        && names_hidden(ViewDef {
            group_by: view.group_by.clone(),
            ..bare
        })
    {
        view.group_by = None;
    }
}

fn narrowed_has(schema: &TableSchema, principal: &Principal, name: &str) -> bool {
    schema
        .field_by_name(name)
        .is_some_and(|field| principal.reads_field(schema, field))
}

/// One field as the permissions endpoint shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldGrant {
    pub name: String,
    pub read: bool,
    pub write: bool,
}

impl TableAccess {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the caller may perform `action` (the permissions endpoint).
    pub fn can(&self, action: Action) -> bool {
        self.principal.allows(action.access(&self.full_schema))
            && (action == Action::Read || self.principal.key_may_write())
    }

    /// A 403 unless the caller may also perform `action` (a batch delete that turns out to be
    /// permanent, an upsert that may update).
    pub fn require(&self, action: Action) -> DomainResult<()> {
        if !self.principal.allows(action.access(&self.full_schema)) {
            return Err(DomainError::Forbidden(
                action.denied_message(&self.full_schema.name),
            ));
        }
        Ok(())
    }

    /// Upsert matches records inside the table actor, where the row rule is not applied; a
    /// caller under a row rule may not upsert (403) rather than update rows it cannot see.
    pub fn check_upsert_allowed(&self) -> DomainResult<()> {
        if self.row_filter.is_some() {
            return Err(DomainError::Forbidden(
                "Upsert is not available under a row rule; create or update records instead".into(),
            ));
        }
        Ok(())
    }

    /// The readable fields with whether each may be written.
    pub fn field_grants(&self) -> Vec<FieldGrant> {
        let may_write = self.can(Action::Create) || self.can(Action::Update);
        self.full_schema
            .fields
            .iter()
            .filter(|field| self.principal.reads_field(&self.full_schema, field))
            .map(|field| FieldGrant {
                name: field.name.clone(),
                read: true,
                write: may_write
                    && !field.field_type.is_readonly()
                    && self.principal.writes_field(&self.full_schema, field),
            })
            .collect()
    }

    /// Whether a row rule narrows what this caller sees of the table.
    pub fn has_row_rule(&self) -> bool {
        self.row_filter.is_some()
    }

    /// The row rule with `@user.*` filled in, if one narrows what this caller sees.
    pub fn row_rule(&self) -> Option<&Filter> {
        self.row_filter.as_ref()
    }

    /// Whether the row rule lets the caller see `record`.
    pub fn sees(&self, record: &StoredRecord) -> bool {
        self.row_filter
            .as_ref()
            .is_none_or(|filter| filter.matches(record))
    }

    /// `record` if the row rule lets the caller see it, else the 404 of a missing record.
    pub fn visible(
        &self,
        record: Option<StoredRecord>,
        record_id: u64,
    ) -> DomainResult<StoredRecord> {
        record
            .filter(|record| self.sees(record))
            .ok_or_else(|| record_not_found(record_id))
    }

    /// Checks that every record of `record_ids` that exists is one the caller may see (a missing
    /// one is left for the write itself to report). Used before updates, deletes, restores,
    /// comments and history.
    pub fn check_rows(&self, record_ids: &[u64]) -> DomainResult<()> {
        if self.row_filter.is_none() {
            return Ok(());
        }
        for record_id in record_ids {
            if let Some(record) = self.handle.shared.store.get_record(*record_id)? {
                if !self.sees(&record) {
                    return Err(record_not_found(*record_id));
                }
            }
        }
        Ok(())
    }

    /// Checks what a write names: a field the caller cannot read is the "unknown field" 400
    /// (with every other problem, exactly as if it did not exist); a readable field it may not
    /// write is a 403 naming it; a relationship to a record the caller may not read is the 400
    /// of a missing record ([`TableAccess::check_links`]).
    pub fn check_write(
        &self,
        registry: &Registry,
        fields: &[(String, Value)],
        mode: WriteMode,
    ) -> DomainResult<()> {
        self.check_fields(fields, mode, None)?;
        self.check_links(registry, &[fields], mode, false)
    }

    /// The field part of [`TableAccess::check_write`] (hidden fields, fields it may not write);
    /// `item` prefixes batch errors (`records[i].name`).
    pub fn check_fields(
        &self,
        fields: &[(String, Value)],
        mode: WriteMode,
        item: Option<usize>,
    ) -> DomainResult<()> {
        if self.principal.unrestricted() {
            return Ok(());
        }
        let hidden = fields.iter().any(|(name, _)| {
            self.full_schema.field_by_name(name).is_some()
                && self.schema.field_by_name(name).is_none()
        });
        if hidden {
            let errors = validate_write(&self.schema, fields, mode)
                .err()
                .unwrap_or_default();
            let errors = errors
                .into_iter()
                .map(|error| match item {
                    Some(index) => {
                        FieldError::new(format!("records[{index}].{}", error.field), error.message)
                    }
                    None => error,
                })
                .collect();
            return Err(DomainError::Validation(errors));
        }
        for (name, _) in fields {
            if let Some(field) = self.schema.field_by_name(name) {
                if !field.field_type.is_readonly()
                    && !self.principal.writes_field(&self.full_schema, field)
                {
                    return Err(DomainError::Forbidden(format!(
                        "You do not have permission to write field '{name}'"
                    )));
                }
            }
        }
        Ok(())
    }

    /// [`TableAccess::check_write`] for every item of a batch (errors named `records[i].x`).
    pub fn check_writes(
        &self,
        registry: &Registry,
        items: &[Vec<(String, Value)>],
        mode: WriteMode,
    ) -> DomainResult<()> {
        let mut errors = Vec::new();
        for (index, fields) in items.iter().enumerate() {
            match self.check_fields(fields, mode, Some(index)) {
                Ok(()) => {}
                Err(DomainError::Validation(item_errors)) => errors.extend(item_errors),
                Err(other) => return Err(other),
            }
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let items: Vec<&[(String, Value)]> = items.iter().map(Vec::as_slice).collect();
        self.check_links(registry, &items, mode, true)
    }

    /// A caller under permissions may link only to records it may read: a relationship value
    /// naming a record of a table it may not read, outside its row rule there, trashed or
    /// missing is the 400 the table actor gives a missing record — the same message, the same
    /// place among the other errors — so a hidden record cannot be told from a missing one,
    /// nor pinned by a `restrict` link. Checked only when every item passes validation (with
    /// its other problems, the write reports those alone, as the actor does); a batch reports
    /// every item's links, named `records[i].x`, as the actor does.
    fn check_links(
        &self,
        registry: &Registry,
        items: &[&[(String, Value)]],
        mode: WriteMode,
        prefixed: bool,
    ) -> DomainResult<()> {
        if self.principal.unrestricted() {
            return Ok(());
        }
        let schema = &self.full_schema;
        let has_links = schema
            .fields
            .iter()
            .any(|field| field.field_type == FieldType::Relationship);
        if !has_links {
            return Ok(());
        }
        let mut validated = Vec::with_capacity(items.len());
        for fields in items {
            match validate_write(schema, fields, mode) {
                Ok(values) => validated.push(values),
                Err(_) => return Ok(()),
            }
        }
        let mut errors = Vec::new();
        for (index, values) in validated.iter().enumerate() {
            for field in &schema.fields {
                if field.field_type != FieldType::Relationship {
                    continue;
                }
                let Some(value) = values
                    .get(&field.id)
                    .filter(|value| !value.is_empty_value())
                else {
                    continue;
                };
                if !self.reads_target(registry, field, value)? {
                    let name = if prefixed {
                        format!("records[{index}].{}", field.name)
                    } else {
                        field.name.clone()
                    };
                    errors.push(FieldError::new(name, missing_target_message(value)));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(errors))
        }
    }

    /// Whether the record a relationship value names is a live record the caller may read.
    fn reads_target(
        &self,
        registry: &Registry,
        field: &FieldDef,
        value: &Value,
    ) -> DomainResult<bool> {
        let Some(target) = field
            .related_table
            .as_deref()
            .and_then(|related| registry.resolve(related))
        else {
            return Ok(false);
        };
        let Some(access) = table_access(&self.principal, target)? else {
            return Ok(false);
        };
        let Some(record_id) = value.as_str().and_then(|text| text.parse::<u64>().ok()) else {
            return Ok(false);
        };
        Ok(access
            .handle
            .shared
            .store
            .get_record(record_id)?
            .is_some_and(|record| !record.is_deleted() && access.sees(&record)))
    }

    /// Merge fields of an upsert must be readable (matching on a hidden value would reveal it).
    pub fn check_merge_fields(&self, names: &[String]) -> DomainResult<()> {
        for name in names {
            if self.full_schema.field_by_name(name).is_some()
                && self.schema.field_by_name(name).is_none()
            {
                return Err(DomainError::bad_request(
                    "fieldsToMergeOn",
                    format!("Unknown merge field '{name}'"),
                ));
            }
        }
        Ok(())
    }

    /// Parses a list request as this caller may make it: parameters against the narrowed
    /// schema (hidden fields are unknown), `view=` among the views it may read (applied with
    /// the live schema), the row rule AND-ed in, search limited to readable fields.
    pub fn list_request(
        &self,
        pairs: &[(String, String)],
        limits: PageLimits,
        parse_json: JsonParser,
    ) -> DomainResult<ListRequest> {
        let view = pairs
            .iter()
            .find(|(key, _)| key == "view")
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty());
        let own: Vec<(String, String)> = pairs
            .iter()
            .filter(|(key, _)| key != "view")
            .cloned()
            .collect();
        let mut request = query::parse_list_query(&self.schema, &own, limits, parse_json)?;
        if let Some(view_key) = view {
            self.apply_view(view_key, &mut request, parse_json)?;
        }
        self.restrict(&mut request)?;
        Ok(request)
    }

    /// `/views/{view}/records`: [`TableAccess::list_request`] with the view applied.
    pub fn view_request(
        &self,
        view_key: &str,
        pairs: &[(String, String)],
        limits: PageLimits,
        parse_json: JsonParser,
    ) -> DomainResult<ListRequest> {
        let own: Vec<(String, String)> = pairs
            .iter()
            .filter(|(key, _)| key != "view")
            .cloned()
            .collect();
        let mut request = query::parse_list_query(&self.schema, &own, limits, parse_json)?;
        self.apply_view(view_key, &mut request, parse_json)?;
        self.restrict(&mut request)?;
        Ok(request)
    }

    fn apply_view(
        &self,
        view_key: &str,
        request: &mut ListRequest,
        parse_json: JsonParser,
    ) -> DomainResult<()> {
        let view_id = query::find_view(&self.schema, view_key)?.id.clone();
        let view = query::find_view(&self.full_schema, &view_id)?;
        query::apply_view(&self.full_schema, view, request, parse_json)
    }

    /// ANDs the row rule into a request and keeps its search (matches and ranking) to the
    /// fields and rows the caller reads.
    pub fn restrict(&self, request: &mut ListRequest) -> DomainResult<()> {
        if self.principal.unrestricted() {
            return Ok(());
        }
        if let Some(projection) = &mut request.projection {
            projection.retain(|id| self.schema.field_by_id(*id).is_some());
        }
        if request.search.is_some() {
            let full: Vec<u32> = query::search::search_fields(&self.full_schema)
                .iter()
                .map(|field| field.id)
                .collect();
            let readable: Vec<u32> = query::search::search_fields(&self.schema)
                .iter()
                .map(|field| field.id)
                .collect();
            if full != readable || self.row_filter.is_some() {
                // The index covers every field and row; the search (and its ranking) must see
                // only what this caller reads.
                request.search_scope = Some(SearchScope {
                    fields: readable,
                    rows: self.row_filter.clone(),
                });
            }
        }
        if let Some(row_filter) = &self.row_filter {
            request.filter = Some(Filter::and_into(request.filter.take(), row_filter.clone()));
        }
        Ok(())
    }

    /// Drops the values of fields the caller may not read from a history or activity change.
    pub fn strip_change(&self, change: &mut NamedChange) {
        if self.principal.unrestricted() {
            return;
        }
        let readable = |(name, _): &(String, Value)| self.schema.field_by_name(name).is_some();
        if let Some(before) = &mut change.before {
            before.retain(readable);
        }
        if let Some(after) = &mut change.after {
            after.retain(readable);
        }
    }
}

/// The tables a new API key of `principal` is limited to, checked and stored by id (ids are
/// never reused, so a table removed and another created under its name stays out of reach; a
/// renamed table stays in reach). An entry that is not a table `principal` may read is the 400
/// of a missing one, whether or not it exists.
pub fn key_tables(
    principal: &Principal,
    registry: &Registry,
    entries: &[String],
) -> DomainResult<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    let mut errors = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let readable = registry
            .resolve(entry)
            .filter(|handle| principal.reads_table(&handle.shared.schema()));
        match readable {
            Some(handle) => {
                let id = handle.shared.id.to_string();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            None => errors.push(FieldError::new(
                format!("tables[{index}]"),
                format!("Table '{entry}' not found"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(ids)
    } else {
        Err(DomainError::Validation(errors))
    }
}

/// The tables `principal` may read, by id (the activity log shows only theirs).
pub fn readable_tables(principal: &Principal, registry: &Registry) -> Vec<TableHandle> {
    registry
        .all()
        .into_iter()
        .filter(|handle| principal.reads_table(&handle.shared.schema()))
        .collect()
}
