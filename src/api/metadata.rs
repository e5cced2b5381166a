//! `GET /beta/$metadata`: the OData CSDL (XML) document every
//! `@odata.context` points at.
//!
//! It is generated from the OpenAPI document ([`super::openapi::document`]),
//! itself generated from the route table and the Rust types, so the two
//! descriptions cannot disagree: entity types and their properties from the
//! entity schemas, complex and enum types from what those reference, the
//! `deviceManagement` navigation properties from the route paths, and the
//! bound actions from the POST routes with their request and answer schemas.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::openapi::{AUDIT_SCHEMA, CA_SCHEMA, LEAF_SCHEMA, TOKEN_SCHEMA};
use super::routes::{Route, ROUTES};
use super::BASE;

const NS: &str = "microsoft.graph";
/// The singleton every route hangs from (`/beta/deviceManagement/…`).
const ROOT: &str = "deviceManagement";

/// Path segments naming an entity set, and the entity type of its members.
const SETS: &[(&str, &str)] = &[
    ("cloudCertificationAuthority", CA_SCHEMA),
    ("cloudCertificationAuthorityLeafCertificate", LEAF_SCHEMA),
    ("auditEvents", AUDIT_SCHEMA),
    ("cloudPkiApiTokens", TOKEN_SCHEMA),
];

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// What the document declares, gathered before it is written.
struct Model<'a> {
    schemas: &'a serde_json::Map<String, Value>,
    complex: BTreeSet<String>,
    enums: BTreeSet<String>,
}

/// A type as CSDL names it, and whether null is allowed.
struct Edm {
    name: String,
    nullable: bool,
}

impl Model<'_> {
    fn referenced(schema: &Value) -> Option<&str> {
        schema.get("$ref")?.as_str()?.strip_prefix("#/components/schemas/")
    }

    fn is_enum(schema: &Value) -> bool {
        schema.get("enum").is_some()
            || schema
                .get("oneOf")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().all(|m| m.get("const").is_some() || m.get("enum").is_some()))
    }

    fn members(schema: &Value) -> Vec<String> {
        let names = |v: &Value| -> Vec<String> {
            match v {
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        if let Some(e) = schema.get("enum") {
            return names(e);
        }
        schema
            .get("oneOf")
            .and_then(Value::as_array)
            .map(|variants| {
                variants
                    .iter()
                    .flat_map(|m| names(m.get("const").or_else(|| m.get("enum")).unwrap_or(&Value::Null)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The CSDL type of a property schema; referenced enums and objects are
    /// recorded to be declared.
    fn edm(&mut self, schema: &Value) -> Edm {
        if let Some(name) = Self::referenced(schema) {
            let target = self.schemas.get(name).cloned().unwrap_or(Value::Null);
            if SETS.iter().any(|(_, e)| *e == name) {
                // An entity (an action's answer).
            } else if Self::is_enum(&target) {
                self.enums.insert(name.to_owned());
            } else {
                self.complex.insert(name.to_owned());
            }
            return Edm {
                name: format!("{NS}.{name}"),
                nullable: false,
            };
        }
        // `Option<T>`: T or null.
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let (nulls, others): (Vec<&Value>, Vec<&Value>) = options
                    .iter()
                    .partition(|o| o.get("type") == Some(&Value::from("null")));
                if let [only] = others.as_slice() {
                    let mut t = self.edm(only);
                    t.nullable = !nulls.is_empty();
                    return t;
                }
            }
        }
        if let Some(first) = schema.get("allOf").and_then(Value::as_array).and_then(|a| a.first()) {
            return self.edm(first);
        }
        let (kind, nullable) = match schema.get("type") {
            Some(Value::String(t)) => (t.as_str(), false),
            Some(Value::Array(ts)) => (
                ts.iter()
                    .filter_map(Value::as_str)
                    .find(|t| *t != "null")
                    .unwrap_or("null"),
                ts.iter().any(|t| t == "null"),
            ),
            _ => ("", true),
        };
        let name = match kind {
            "string" if schema.get("format") == Some(&Value::from("date-time")) => "Edm.DateTimeOffset".to_owned(),
            "string" => "Edm.String".to_owned(),
            "boolean" => "Edm.Boolean".to_owned(),
            "number" => "Edm.Double".to_owned(),
            "integer" if schema.get("format") == Some(&Value::from("int32")) => "Edm.Int32".to_owned(),
            "integer" => "Edm.Int64".to_owned(),
            "array" => {
                let item = self.edm(schema.get("items").unwrap_or(&Value::Null));
                format!("Collection({})", item.name)
            }
            // Free-form (none of our types has one): CSDL 4.0 has no Untyped.
            _ => "Edm.String".to_owned(),
        };
        Edm { name, nullable }
    }

    /// `<Property>` elements of an object schema (OData annotations such as
    /// `@odata.type` are not properties).
    fn properties(&mut self, schema: &Value, x: &mut String) {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return;
        };
        let required: BTreeSet<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, p) in props.iter().filter(|(n, _)| !n.starts_with('@')) {
            let t = self.edm(p);
            let nullable = t.nullable || (!required.contains(name.as_str()) && !t.name.starts_with("Collection("));
            let _ = writeln!(
                x,
                "        <Property Name=\"{}\" Type=\"{}\"{}/>",
                escape(name),
                escape(&t.name),
                if nullable { "" } else { " Nullable=\"false\"" }
            );
        }
    }
}

/// A bound action: the last segment of a POST route below an entity.
struct Action<'a> {
    name: &'a str,
    bound_to: &'static str,
    route: &'a Route,
}

/// Walks every route path from the singleton: entity-set segments are
/// navigation properties, a POST route's last other segment is an action.
fn navigations_and_actions() -> (
    BTreeMap<&'static str, BTreeMap<&'static str, &'static str>>,
    Vec<Action<'static>>,
) {
    let mut navs: BTreeMap<&'static str, BTreeMap<&'static str, &'static str>> = BTreeMap::new();
    navs.entry(ROOT).or_default();
    let mut actions = Vec::new();
    for route in ROUTES {
        let mut current = ROOT;
        let segments: Vec<&'static str> = route.path.split('/').filter(|s| !s.is_empty()).collect();
        for (i, seg) in segments.iter().enumerate() {
            if seg.starts_with('{') || seg.starts_with('$') {
                continue;
            }
            if let Some((_, entity)) = SETS.iter().find(|(s, _)| s == seg) {
                navs.entry(current).or_default().insert(seg, entity);
                current = entity;
            } else if i + 1 == segments.len() && route.method == "POST" {
                actions.push(Action {
                    name: seg,
                    bound_to: current,
                    route,
                });
            }
        }
    }
    (navs, actions)
}

/// Builds the CSDL document from the OpenAPI document.
pub fn document(openapi: &Value) -> String {
    let empty = serde_json::Map::new();
    let schemas = openapi["components"]["schemas"].as_object().unwrap_or(&empty);
    let mut m = Model {
        schemas,
        complex: BTreeSet::new(),
        enums: BTreeSet::new(),
    };
    let (navs, actions) = navigations_and_actions();
    let mut body = String::new();

    // The singleton's type, then every entity type with its navigations.
    let _ = writeln!(
        body,
        "      <EntityType Name=\"{ROOT}\">\n        <Key><PropertyRef Name=\"id\"/></Key>\n        \
         <Property Name=\"id\" Type=\"Edm.String\" Nullable=\"false\"/>"
    );
    write_navigations(&mut body, navs.get(ROOT));
    body.push_str("      </EntityType>\n");
    for (_, entity) in SETS {
        let _ = writeln!(
            body,
            "      <EntityType Name=\"{}\">\n        <Key><PropertyRef Name=\"id\"/></Key>",
            escape(entity)
        );
        m.properties(schemas.get(*entity).unwrap_or(&Value::Null), &mut body);
        write_navigations(&mut body, navs.get(entity));
        body.push_str("      </EntityType>\n");
    }

    // Bound actions: parameters from the request body, the answer's `value`.
    for a in &actions {
        let op = &openapi["paths"][format!("{BASE}{}", a.route.path)]["post"];
        let _ = writeln!(
            body,
            "      <Action Name=\"{}\" IsBound=\"true\">\n        \
             <Parameter Name=\"bindingParameter\" Type=\"{NS}.{}\" Nullable=\"false\"/>",
            escape(a.name),
            escape(a.bound_to)
        );
        let request = &op["requestBody"]["content"]["application/json"]["schema"];
        let request = Model::referenced(request)
            .and_then(|n| schemas.get(n))
            .unwrap_or(request);
        if let Some(props) = request.get("properties").and_then(Value::as_object) {
            for (name, p) in props {
                let t = m.edm(p);
                let _ = writeln!(
                    body,
                    "        <Parameter Name=\"{}\" Type=\"{}\"/>",
                    escape(name),
                    escape(&t.name)
                );
            }
        }
        let success = op["responses"]
            .as_object()
            .and_then(|r| r.iter().find(|(code, _)| code.starts_with('2')))
            .map_or(&Value::Null, |(_, r)| r);
        let answer = success["content"]["application/json"]["schema"]["properties"]["value"].clone();
        if !answer.is_null() {
            let t = m.edm(&answer);
            let _ = writeln!(body, "        <ReturnType Type=\"{}\"/>", escape(&t.name));
        }
        body.push_str("      </Action>\n");
    }

    // Complex types (which may reference further ones), then enums.
    let mut declared = BTreeSet::new();
    while let Some(name) = m.complex.iter().find(|n| !declared.contains(*n)).cloned() {
        declared.insert(name.clone());
        let _ = writeln!(body, "      <ComplexType Name=\"{}\">", escape(&name));
        let schema = schemas.get(&name).cloned().unwrap_or(Value::Null);
        m.properties(&schema, &mut body);
        body.push_str("      </ComplexType>\n");
    }
    for name in &m.enums {
        let _ = writeln!(body, "      <EnumType Name=\"{}\">", escape(name));
        for member in Model::members(schemas.get(name).unwrap_or(&Value::Null)) {
            let _ = writeln!(body, "        <Member Name=\"{}\"/>", escape(&member));
        }
        body.push_str("      </EnumType>\n");
    }

    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n  \
         <edmx:DataServices>\n    \
         <Schema Namespace=\"{NS}\" Alias=\"graph\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n\
         {body}      \
         <EntityContainer Name=\"GraphService\">\n        \
         <Singleton Name=\"{ROOT}\" Type=\"{NS}.{ROOT}\"/>\n      \
         </EntityContainer>\n    \
         </Schema>\n  \
         </edmx:DataServices>\n\
         </edmx:Edmx>\n"
    )
}

fn write_navigations(x: &mut String, navs: Option<&BTreeMap<&'static str, &'static str>>) {
    for (name, entity) in navs.into_iter().flatten() {
        let _ = writeln!(
            x,
            "        <NavigationProperty Name=\"{}\" Type=\"Collection({NS}.{})\" ContainsTarget=\"true\"/>",
            escape(name),
            escape(entity)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declares_what_the_openapi_document_describes() {
        let doc = super::super::openapi::document("http://pki.test");
        let xml = document(&doc);
        for needle in [
            "<EntityType Name=\"cloudCertificationAuthority\">",
            "<EntityType Name=\"cloudCertificationAuthorityLeafCertificate\">",
            "<Property Name=\"certificationAuthorityStatus\" Type=\"microsoft.graph.cloudCertificationAuthorityStatus\" Nullable=\"false\"/>",
            "<Property Name=\"revocationDateTime\" Type=\"Edm.DateTimeOffset\"/>",
            "<Property Name=\"extendedKeyUsages\" Type=\"Collection(microsoft.graph.extendedKeyUsage)\" Nullable=\"false\"/>",
            "<ComplexType Name=\"extendedKeyUsage\">",
            "<ComplexType Name=\"trustChainCertificate\">",
            "<EnumType Name=\"cloudCertificationAuthorityKeyPlatformType\">",
            "<Member Name=\"hardwareSecurityModule\"/>",
            "<NavigationProperty Name=\"cloudCertificationAuthorityLeafCertificate\" Type=\"Collection(microsoft.graph.cloudCertificationAuthorityLeafCertificate)\" ContainsTarget=\"true\"/>",
            "<Action Name=\"revokeLeafCertificate\" IsBound=\"true\">",
            "<ReturnType Type=\"microsoft.graph.cloudCertificationAuthorityLeafCertificate\"/>",
            "<Action Name=\"issueLeafCertificate\" IsBound=\"true\">",
            "<Singleton Name=\"deviceManagement\" Type=\"microsoft.graph.deviceManagement\"/>",
        ] {
            assert!(xml.contains(needle), "missing {needle}:\n{xml}");
        }
        // Every type referenced is declared.
        for part in xml.split("Type=\"").skip(1) {
            let t = part.split('"').next().unwrap_or("");
            let t = t.trim_start_matches("Collection(").trim_end_matches(')');
            if let Some(name) = t.strip_prefix("microsoft.graph.") {
                assert!(
                    xml.contains(&format!("Type Name=\"{name}\"")),
                    "{name} is referenced but not declared"
                );
            } else {
                assert!(t.starts_with("Edm."), "{t}");
            }
        }
    }
}
