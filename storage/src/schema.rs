//! The schema model: tables, fields, permissions and views, in the camelCase form of SPEC §3.
//!
//! These types are read from `config.toml`, exchanged as JSON snapshots and stored with bincode.
//! They hold no behaviour beyond lookups; the rules that make a schema valid live in
//! `tabula_actors::schema_rules`.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookDef>,
}

impl TableSchema {
    pub fn field_by_name(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.name == name)
    }

    pub fn field_by_id(&self, id: u32) -> Option<&FieldDef> {
        self.fields.iter().find(|field| field.id == id)
    }

    /// The fields that carry a secondary or unique index.
    pub fn indexed_fields(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields
            .iter()
            .filter(|field| field.indexed || field.unique)
    }
}

/// One field of a table. `id` 0 means "assign max+1".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_table: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<OnDelete>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permanent_delete: Option<Access>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldPermission>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_filter: Option<String>,
}

/// A per-field narrowing of read and write access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldPermission {
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Access>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Access>,
}

/// A saved view: a named filter, sort and projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewDef {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_default: bool,
    /// An expression string (SPEC §4.2) or the structured JSON form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<ViewPermissions>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewPermissions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Access>,
}

/// A webhook subscription (SPEC §11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookDef {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
