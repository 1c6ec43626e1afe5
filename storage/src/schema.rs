//! The schema model: tables, fields, permissions and views, in the camelCase form of SPEC §3.
//!
//! These types are read from `config.toml`, exchanged as JSON snapshots and stored with bincode.
//! They hold no behaviour beyond lookups; the rules that make a schema valid live in
//! `tabula_actors::schema_rules`.
//!
//! Serialization is written by hand (see [`StructWriter`]): the human-readable forms leave absent
//! options and empty lists out, while the binary form writes every field, because bincode is not
//! self-describing and a skipped field would shift every field after it.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

use crate::value::Value;

/// A whole schema: the list of tables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    #[serde(default)]
    pub tables: Vec<TableSchema>,
}

impl Schema {
    pub fn table(&self, key: &str) -> Option<&TableSchema> {
        match key.parse::<u32>() {
            Ok(id) => self.tables.iter().find(|table| table.id == id),
            Err(_) => self.tables.iter().find(|table| table.name == key),
        }
    }
}

/// One table. `id` 0 means "assign one" (config files may omit it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableSchema {
    #[serde(default)]
    pub id: u32,
    pub name: String,
    #[serde(default)]
    pub fields: Vec<FieldDef>,
    #[serde(default)]
    pub permissions: Permissions,
    #[serde(default)]
    pub views: Vec<ViewDef>,
    /// Field names included in full-text search; `None` means every text field.
    #[serde(default)]
    pub search: Option<Vec<String>>,
    #[serde(default)]
    pub webhooks: Vec<WebhookDef>,
}

impl TableSchema {
    pub fn field_by_name(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.name == name)
    }

    pub fn field_by_id(&self, id: u32) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.id == id)
    }

    /// The fields that carry a secondary or unique index: `indexed`, `unique`, and every
    /// relationship field (so that deleting a record finds the records pointing at it without a
    /// scan, SPEC §4.1 `onDelete`).
    pub fn indexed_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|field| {
            field.indexed || field.unique || field.field_type == FieldType::Relationship
        })
    }
}

/// One field of a table. `id` 0 means "assign max+1".
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldDef {
    #[serde(default)]
    pub id: u32,
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub indexed: bool,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub precision: Option<u32>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub related_table: Option<String>,
    #[serde(default)]
    pub on_delete: Option<OnDelete>,
    #[serde(default)]
    pub autofill: Option<String>,
}

impl FieldDef {
    /// A field with only a name and a type, everything else at its default.
    pub fn new(id: u32, name: &str, field_type: FieldType) -> Self {
        FieldDef {
            id,
            name: name.to_owned(),
            field_type,
            required: false,
            unique: false,
            indexed: false,
            default: None,
            max_length: None,
            min: None,
            max: None,
            precision: None,
            currency: None,
            options: None,
            related_table: None,
            on_delete: None,
            autofill: None,
        }
    }
}

/// What happens to referencing records when a related record is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnDelete {
    #[default]
    Restrict,
    SetNull,
    Cascade,
}

macro_rules! field_types {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The field types of SPEC §3. `Unknown` keeps an unrecognised name so that validation
        /// can report it with the table and field it belongs to.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum FieldType {
            $($variant,)*
            Unknown(String),
        }

        impl FieldType {
            pub const ALL: &'static [FieldType] = &[$(FieldType::$variant,)*];

            pub fn name(&self) -> &str {
                match self {
                    $(FieldType::$variant => $name,)*
                    FieldType::Unknown(name) => name,
                }
            }

            pub fn parse(name: &str) -> FieldType {
                match name {
                    $($name => FieldType::$variant,)*
                    other => FieldType::Unknown(other.to_owned()),
                }
            }
        }
    };
}

field_types! {
    SingleLineText => "single-line-text",
    LongText => "long-text",
    RichText => "rich-text",
    Email => "email",
    Url => "url",
    PhoneNumber => "phone-number",
    Integer => "integer",
    Decimal => "decimal",
    Currency => "currency",
    Percentage => "percentage",
    Rating => "rating",
    Checkbox => "checkbox",
    Date => "date",
    Datetime => "datetime",
    SingleSelect => "single-select",
    MultiSelect => "multi-select",
    Relationship => "relationship",
    User => "user",
    Json => "json",
    Autonumber => "autonumber",
    CreatedAt => "created-at",
    UpdatedAt => "updated-at",
    CreatedBy => "created-by",
    UpdatedBy => "updated-by",
}

impl FieldType {
    /// Types whose value the system maintains; writing them is a validation error.
    pub fn is_readonly(&self) -> bool {
        matches!(
            self,
            FieldType::Autonumber
                | FieldType::CreatedAt
                | FieldType::UpdatedAt
                | FieldType::CreatedBy
                | FieldType::UpdatedBy
        )
    }

    /// Types whose values are strings of free text (default full-text search fields).
    pub fn is_text(&self) -> bool {
        matches!(
            self,
            FieldType::SingleLineText
                | FieldType::LongText
                | FieldType::RichText
                | FieldType::Email
                | FieldType::Url
        )
    }

    /// Types whose stored value is a number.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            FieldType::Integer
                | FieldType::Decimal
                | FieldType::Currency
                | FieldType::Percentage
                | FieldType::Rating
                | FieldType::Autonumber
        )
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl Serialize for FieldType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for FieldType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(FieldType::parse(&name))
    }
}

/// Who may perform an action: anyone, any signed-in caller, or callers with one of the roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    Authenticated,
    Roles(Vec<String>),
}

/// The binary form of [`Access`].
#[derive(Serialize, Deserialize)]
enum TaggedAccess {
    All,
    Authenticated,
    Roles(Vec<String>),
}

impl Serialize for Access {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            match self {
                Access::All => serializer.serialize_str("all"),
                Access::Authenticated => serializer.serialize_str("authenticated"),
                Access::Roles(roles) => {
                    let mut sequence = serializer.serialize_seq(Some(roles.len()))?;
                    for role in roles {
                        sequence.serialize_element(role)?;
                    }
                    sequence.end()
                }
            }
        } else {
            match self {
                Access::All => TaggedAccess::All,
                Access::Authenticated => TaggedAccess::Authenticated,
                Access::Roles(roles) => TaggedAccess::Roles(roles.clone()),
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(AccessVisitor)
        } else {
            Ok(match TaggedAccess::deserialize(deserializer)? {
                TaggedAccess::All => Access::All,
                TaggedAccess::Authenticated => Access::Authenticated,
                TaggedAccess::Roles(roles) => Access::Roles(roles),
            })
        }
    }
}

struct AccessVisitor;

impl<'de> Visitor<'de> for AccessVisitor {
    type Value = Access;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("\"all\", \"authenticated\" or a list of role names")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Access, E> {
        match text {
            "all" => Ok(Access::All),
            "authenticated" => Ok(Access::Authenticated),
            other => Err(E::custom(format!(
                "unknown access '{other}': expected \"all\", \"authenticated\" or a list of roles"
            ))),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Access, A::Error> {
        let mut roles = Vec::new();
        while let Some(role) = sequence.next_element::<String>()? {
            roles.push(role);
        }
        Ok(Access::Roles(roles))
    }
}

/// Per-table permissions; an omitted action is admin-only.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    #[serde(default)]
    pub read: Option<Access>,
    #[serde(default)]
    pub comment: Option<Access>,
    #[serde(default)]
    pub create: Option<Access>,
    #[serde(default)]
    pub update: Option<Access>,
    #[serde(default)]
    pub delete: Option<Access>,
    #[serde(default)]
    pub restore: Option<Access>,
    #[serde(default)]
    pub permanent_delete: Option<Access>,
    #[serde(default)]
    pub fields: Vec<FieldPermission>,
    #[serde(default)]
    pub row_filter: Option<String>,
}

/// A per-field narrowing of read and write access.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldPermission {
    pub field: String,
    #[serde(default)]
    pub read: Option<Access>,
    #[serde(default)]
    pub write: Option<Access>,
}

/// A saved view: a named filter, sort and projection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewDef {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_default: bool,
    /// An expression string (SPEC §4.2) or the structured JSON form.
    #[serde(default)]
    pub filter: Option<Value>,
    #[serde(default)]
    pub sort: Option<String>,
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub permissions: Option<ViewPermissions>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewPermissions {
    #[serde(default)]
    pub read: Option<Access>,
}

/// A webhook subscription (SPEC §11).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDef {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub secret: Option<String>,
}

/// Writes the fields of a schema struct: always in the binary form, and in human-readable forms
/// (JSON, TOML) only when they carry something. Field names are the camelCase names that the
/// derived `Deserialize` impls expect.
struct StructWriter<S: SerializeStruct> {
    state: S,
    human_readable: bool,
}

impl<S: SerializeStruct> StructWriter<S> {
    fn start<Outer>(
        serializer: Outer,
        name: &'static str,
        field_count: usize,
    ) -> Result<Self, S::Error>
    where
        Outer: Serializer<SerializeStruct = S, Error = S::Error>,
    {
        let human_readable = serializer.is_human_readable();
        Ok(StructWriter {
            state: serializer.serialize_struct(name, field_count)?,
            human_readable,
        })
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.state.serialize_field(key, value)
    }

    fn optional<T: Serialize>(
        &mut self,
        key: &'static str,
        value: &Option<T>,
    ) -> Result<(), S::Error> {
        if self.human_readable && value.is_none() {
            self.state.skip_field(key)
        } else {
            self.state.serialize_field(key, value)
        }
    }

    fn list<T: Serialize>(&mut self, key: &'static str, value: &[T]) -> Result<(), S::Error> {
        if self.human_readable && value.is_empty() {
            self.state.skip_field(key)
        } else {
            self.state.serialize_field(key, value)
        }
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.state.end()
    }
}

impl Serialize for TableSchema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "TableSchema", 7)?;
        writer.field("id", &self.id)?;
        writer.field("name", &self.name)?;
        writer.field("fields", &self.fields)?;
        writer.field("permissions", &self.permissions)?;
        writer.field("views", &self.views)?;
        writer.optional("search", &self.search)?;
        writer.list("webhooks", &self.webhooks)?;
        writer.end()
    }
}

impl Serialize for FieldDef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "FieldDef", 16)?;
        writer.field("id", &self.id)?;
        writer.field("name", &self.name)?;
        writer.field("type", &self.field_type)?;
        writer.field("required", &self.required)?;
        writer.field("unique", &self.unique)?;
        writer.field("indexed", &self.indexed)?;
        writer.optional("default", &self.default)?;
        writer.optional("maxLength", &self.max_length)?;
        writer.optional("min", &self.min)?;
        writer.optional("max", &self.max)?;
        writer.optional("precision", &self.precision)?;
        writer.optional("currency", &self.currency)?;
        writer.optional("options", &self.options)?;
        writer.optional("relatedTable", &self.related_table)?;
        writer.optional("onDelete", &self.on_delete)?;
        writer.optional("autofill", &self.autofill)?;
        writer.end()
    }
}

impl Serialize for Permissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "Permissions", 9)?;
        writer.optional("read", &self.read)?;
        writer.optional("comment", &self.comment)?;
        writer.optional("create", &self.create)?;
        writer.optional("update", &self.update)?;
        writer.optional("delete", &self.delete)?;
        writer.optional("restore", &self.restore)?;
        writer.optional("permanentDelete", &self.permanent_delete)?;
        writer.list("fields", &self.fields)?;
        writer.optional("rowFilter", &self.row_filter)?;
        writer.end()
    }
}

impl Serialize for FieldPermission {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "FieldPermission", 3)?;
        writer.field("field", &self.field)?;
        writer.optional("read", &self.read)?;
        writer.optional("write", &self.write)?;
        writer.end()
    }
}

impl Serialize for ViewDef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "ViewDef", 8)?;
        writer.field("id", &self.id)?;
        writer.field("name", &self.name)?;
        writer.field("isDefault", &self.is_default)?;
        writer.optional("filter", &self.filter)?;
        writer.optional("sort", &self.sort)?;
        writer.optional("fields", &self.fields)?;
        writer.optional("groupBy", &self.group_by)?;
        writer.optional("permissions", &self.permissions)?;
        writer.end()
    }
}

impl Serialize for ViewPermissions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "ViewPermissions", 1)?;
        writer.optional("read", &self.read)?;
        writer.end()
    }
}

impl Serialize for WebhookDef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut writer = StructWriter::start(serializer, "WebhookDef", 3)?;
        writer.field("url", &self.url)?;
        writer.field("events", &self.events)?;
        writer.optional("secret", &self.secret)?;
        writer.end()
    }
}
