//! Object schemas: which sObjects exist, their fields, field types and parent relationships.
//!
//! Queries are checked against a [`Schema`] before they run, so a misspelt field is an
//! `INVALID_FIELD` error as on the platform instead of a silent column of nulls. The
//! standard objects come from [`Schema::standard`]; custom objects and `__c` fields are
//! added at runtime, typically from the org's `CustomField` records
//! ([`Schema::add_custom_field_records`]).

use std::collections::BTreeMap;
use voxbridge_core::Record;

/// Field types, as the platform's describe calls name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    Id,
    String,
    TextArea,
    Phone,
    Email,
    Url,
    Picklist,
    Boolean,
    Int,
    Double,
    Date,
    DateTime,
    /// A lookup to one or more objects (see [`FieldDef::reference_to`]).
    Reference,
}

impl FieldType {
    /// Text-like types: compared case-insensitively, usable with `LIKE`, searched by SOSL.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::TextArea
                | FieldType::Phone
                | FieldType::Email
                | FieldType::Url
                | FieldType::Picklist
        )
    }

    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }

    /// The name used in the platform's type errors (`must be of type dateTime`).
    pub fn soap_name(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "id",
            FieldType::Boolean => "boolean",
            FieldType::Int => "integer",
            FieldType::Double => "double",
            FieldType::Date => "date",
            FieldType::DateTime => "dateTime",
            _ => "string",
        }
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// The API name, in its canonical case; results use this spelling.
    pub name: String,
    pub ty: FieldType,
    /// For references: the object types the id may point to (more than one when the
    /// lookup is polymorphic, like `OwnerId` → User or Group).
    pub reference_to: Vec<String>,
    /// For references: the name used to traverse to the parent (`Owner` for `OwnerId`).
    pub relationship_name: Option<String>,
    /// Searched by SOSL's `IN NAME FIELDS`.
    pub name_field: bool,
    /// A second spelling of another field of the same object: the value is read from that
    /// field but reported under this name. Used for the names the implementation guide's
    /// examples use (`CreateDate` for `CreatedDate`), so the documented queries run.
    pub alias_of: Option<String>,
}

impl FieldDef {
    pub fn new(name: impl Into<String>, ty: FieldType) -> FieldDef {
        FieldDef {
            name: name.into(),
            ty,
            reference_to: Vec::new(),
            relationship_name: None,
            name_field: false,
            alias_of: None,
        }
    }

    /// A lookup field `name` to `targets`, traversed as `relationship`.
    pub fn reference(name: impl Into<String>, targets: &[&str], relationship: impl Into<String>) -> FieldDef {
        FieldDef {
            reference_to: targets.iter().map(|t| t.to_string()).collect(),
            relationship_name: Some(relationship.into()),
            ..FieldDef::new(name, FieldType::Reference)
        }
    }

    fn named(mut self) -> FieldDef {
        self.name_field = true;
        self
    }

    fn alias(name: &str, of: &str, ty: FieldType) -> FieldDef {
        FieldDef { alias_of: Some(of.to_string()), ..FieldDef::new(name, ty) }
    }
}

/// One object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectDef {
    pub name: String,
    pub fields: Vec<FieldDef>,
    /// The field whose value the store keeps as the record's indexed `key`, if any
    /// (`VendorCallKey` for VoiceCall). Equality on it can be answered by a key lookup.
    pub key_field: Option<String>,
    /// Included when a SOSL search has no `RETURNING` clause.
    pub searchable: bool,
}

impl ObjectDef {
    /// A new object with the fields every object has: `Id`, `IsDeleted`, `CreatedDate`,
    /// `CreatedById`, `LastModifiedDate`, `LastModifiedById` and `SystemModstamp`.
    pub fn new(name: impl Into<String>) -> ObjectDef {
        ObjectDef {
            name: name.into(),
            fields: vec![
                FieldDef::new("Id", FieldType::Id),
                FieldDef::new("IsDeleted", FieldType::Boolean),
                FieldDef::new("CreatedDate", FieldType::DateTime),
                FieldDef::reference("CreatedById", &["User"], "CreatedBy"),
                FieldDef::new("LastModifiedDate", FieldType::DateTime),
                FieldDef::reference("LastModifiedById", &["User"], "LastModifiedBy"),
                FieldDef::new("SystemModstamp", FieldType::DateTime),
            ],
            key_field: None,
            searchable: false,
        }
    }

    /// A field by name, ignoring case.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// A reference field by its relationship name (`Owner`), ignoring case.
    pub fn relationship(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.relationship_name.as_deref().is_some_and(|r| r.eq_ignore_ascii_case(name)))
    }

    /// Adds or replaces a field (matched ignoring case).
    pub fn put_field(&mut self, field: FieldDef) {
        match self.fields.iter_mut().find(|f| f.name.eq_ignore_ascii_case(&field.name)) {
            Some(existing) => *existing = field,
            None => self.fields.push(field),
        }
    }

    fn with(mut self, fields: Vec<FieldDef>) -> ObjectDef {
        for f in fields {
            self.put_field(f);
        }
        self
    }

    fn keyed(mut self, key: &str) -> ObjectDef {
        self.key_field = Some(key.to_string());
        self
    }

    fn searchable(mut self) -> ObjectDef {
        self.searchable = true;
        self
    }
}

/// Why a custom field or object could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("custom field names end in __c: '{0}'")]
    NotCustomField(String),
    #[error("custom object names end in __c: '{0}'")]
    NotCustomObject(String),
    #[error("unknown field type '{0}'")]
    UnknownType(String),
    #[error("a CustomField record needs Object, Name and Type")]
    Incomplete,
}

/// The set of objects queries may name. Object names are matched ignoring case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    objects: BTreeMap<String, ObjectDef>,
}

impl Schema {
    pub fn empty() -> Schema {
        Schema::default()
    }

    /// The standard objects Voxbridge stores, with the fields the platform documents for
    /// them that Voxbridge can fill.
    pub fn standard() -> Schema {
        let mut s = Schema::empty();
        for o in crate::standard::objects() {
            s.put_object(o);
        }
        s
    }

    /// Adds or replaces an object.
    pub fn put_object(&mut self, object: ObjectDef) {
        self.objects.insert(object.name.to_ascii_lowercase(), object);
    }

    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.objects.get(&name.to_ascii_lowercase())
    }

    pub fn objects(&self) -> impl Iterator<Item = &ObjectDef> {
        self.objects.values()
    }

    /// Adds a custom object `Foo__c` with the standard fields plus `Name` and `OwnerId`.
    /// Adding an existing object keeps it as is.
    pub fn add_custom_object(&mut self, name: &str) -> Result<&mut ObjectDef, SchemaError> {
        if !is_custom(name) {
            return Err(SchemaError::NotCustomObject(name.to_string()));
        }
        let entry = self.objects.entry(name.to_ascii_lowercase()).or_insert_with(|| {
            ObjectDef::new(name).with(vec![
                FieldDef::new("Name", FieldType::String).named(),
                FieldDef::reference("OwnerId", &["User", "Group"], "Owner"),
            ])
        });
        Ok(entry)
    }

    /// Adds a custom field `Foo__c` to `object`, creating the object if it is a custom one
    /// not seen yet. A custom reference field `Foo__c` is traversed as `Foo__r`.
    pub fn add_custom_field(&mut self, object: &str, mut field: FieldDef) -> Result<(), SchemaError> {
        if !is_custom(&field.name) {
            return Err(SchemaError::NotCustomField(field.name));
        }
        if field.ty == FieldType::Reference && field.relationship_name.is_none() {
            let base = &field.name[..field.name.len() - 3];
            field.relationship_name = Some(format!("{base}__r"));
        }
        let obj = match self.objects.get_mut(&object.to_ascii_lowercase()) {
            Some(o) => o,
            None => self.add_custom_object(object)?,
        };
        obj.put_field(field);
        Ok(())
    }

    /// Adds the fields described by `CustomField` records (`Object`, `Name`, `Type`, and
    /// `ReferenceTo` for lookups). Returns the records that could not be used, with why;
    /// the rest are added.
    pub fn add_custom_field_records<'r>(
        &mut self,
        records: impl IntoIterator<Item = &'r Record>,
    ) -> Vec<(&'r Record, SchemaError)> {
        let mut skipped = Vec::new();
        for r in records {
            if let Err(e) = self.add_custom_field_record(r) {
                skipped.push((r, e));
            }
        }
        skipped
    }

    fn add_custom_field_record(&mut self, r: &Record) -> Result<(), SchemaError> {
        let (Some(object), Some(name), Some(ty)) = (r.str("Object"), r.str("Name"), r.str("Type")) else {
            return Err(SchemaError::Incomplete);
        };
        let ty_lower = ty.to_ascii_lowercase();
        let field_type = match ty_lower.as_str() {
            "text" | "string" | "encryptedtext" => FieldType::String,
            "textarea" | "longtextarea" | "richtextarea" => FieldType::TextArea,
            "phone" => FieldType::Phone,
            "email" => FieldType::Email,
            "url" => FieldType::Url,
            "picklist" => FieldType::Picklist,
            "checkbox" | "boolean" => FieldType::Boolean,
            "int" | "integer" => FieldType::Int,
            "number" | "double" | "currency" | "percent" => FieldType::Double,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            "lookup" | "reference" | "masterdetail" => FieldType::Reference,
            _ => return Err(SchemaError::UnknownType(ty.to_string())),
        };
        let mut field = FieldDef::new(name, field_type);
        if field_type == FieldType::Reference {
            field.reference_to = match r.fields.get("ReferenceTo") {
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Array(a)) => {
                    a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
                }
                _ => Vec::new(),
            };
        }
        self.add_custom_field(object, field)
    }
}

fn is_custom(name: &str) -> bool {
    name.len() > 3
        && name.get(name.len() - 3..).is_some_and(|s| s.eq_ignore_ascii_case("__c"))
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Helpers for the standard object table in `standard.rs`.
pub(crate) mod build {
    pub use super::{FieldDef, FieldType, ObjectDef};

    pub fn f(name: &str, ty: FieldType) -> FieldDef {
        FieldDef::new(name, ty)
    }

    pub fn name_field(name: &str) -> FieldDef {
        FieldDef::new(name, FieldType::String).named()
    }

    pub fn r(name: &str, targets: &[&str], relationship: &str) -> FieldDef {
        FieldDef::reference(name, targets, relationship)
    }

    pub fn alias(name: &str, of: &str, ty: FieldType) -> FieldDef {
        FieldDef::alias(name, of, ty)
    }

    pub fn object(name: &str, fields: Vec<FieldDef>) -> ObjectDef {
        ObjectDef::new(name).with(fields)
    }

    pub fn keyed(o: ObjectDef, key: &str) -> ObjectDef {
        o.keyed(key)
    }

    pub fn searchable(o: ObjectDef) -> ObjectDef {
        o.searchable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxbridge_core::{KeyPrefix, SfId};

    #[test]
    fn custom_fields_from_records() {
        let mut s = Schema::standard();
        let org = SfId::parse("00DVX0000000001").unwrap();
        let mk = |fields: &[(&str, &str)]| {
            let mut r =
                Record::new(SfId::parse("00NVX0000000001").unwrap(), org.clone(), "CustomField", None, 0);
            for (k, v) in fields {
                r.set(k, *v);
            }
            r
        };
        let good = mk(&[("Object", "VoiceCall"), ("Name", "Tier__c"), ("Type", "Picklist")]);
        let lookup = mk(&[
            ("Object", "Project__c"),
            ("Name", "Account__c"),
            ("Type", "Lookup"),
            ("ReferenceTo", "Account"),
        ]);
        let bad = mk(&[("Object", "VoiceCall"), ("Name", "Tier"), ("Type", "Text")]);
        let odd = mk(&[("Object", "VoiceCall"), ("Name", "X__c"), ("Type", "Hologram")]);
        let skipped = s.add_custom_field_records([&good, &lookup, &bad, &odd]);
        assert_eq!(skipped.len(), 2);
        assert_eq!(s.object("voicecall").unwrap().field("TIER__C").unwrap().ty, FieldType::Picklist);
        let project = s.object("Project__c").unwrap();
        assert_eq!(project.relationship("Account__r").unwrap().reference_to, vec!["Account".to_string()]);
        assert!(project.field("Name").is_some());
        assert!(s.add_custom_object("Account").is_err());
        let _ = KeyPrefix::CustomField;
    }
}
