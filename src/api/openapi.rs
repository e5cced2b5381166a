//! `GET /openapi.json`: an OpenAPI 3.1 document generated from the code.
//!
//! Paths and methods come from the route table ([`super::routes::ROUTES`]),
//! entity and request-body schemas from the Rust types themselves
//! (`schemars`, following their serde attributes), so the document describes
//! what the server actually parses and sends.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::Schema;
use serde_json::{json, Map, Value};

use super::bodies::{
    CreateCaBody, IssueBody, PatchCaBody, PatchLeafBody, ReasonBody, RevokeLeafBody, SerialBody, StatusBody,
    UploadBody, VersionBody,
};
use super::routes::{Op, Route, ROUTES};
use super::tenant::ApiToken;
use super::{BASE, MAX_BODY};
use crate::api::dto::{CertificationAuthority, LeafCertificate};

pub(crate) const CA_SCHEMA: &str = "cloudCertificationAuthority";
pub(crate) const LEAF_SCHEMA: &str = "cloudCertificationAuthorityLeafCertificate";
pub(crate) const AUDIT_SCHEMA: &str = "auditEvent";
pub(crate) const TOKEN_SCHEMA: &str = "cloudPkiApiToken";

fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn generator(serialize: bool) -> SchemaGenerator {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let settings = if serialize {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    SchemaGenerator::new(settings)
}

/// The request body an operation reads, if any.
fn request_schema(op: Op, g: &mut SchemaGenerator) -> Option<Schema> {
    Some(match op {
        Op::CreateCa => g.subschema_for::<CreateCaBody>(),
        Op::PatchCa => g.subschema_for::<PatchCaBody>(),
        Op::ChangeStatus => g.subschema_for::<StatusBody>(),
        Op::RevokeCa => g.subschema_for::<VersionBody>(),
        Op::UploadSigned => g.subschema_for::<UploadBody>(),
        Op::RevokeLeaf => g.subschema_for::<RevokeLeafBody>(),
        Op::RevokeLeafBySerial | Op::SearchBySerial => g.subschema_for::<SerialBody>(),
        Op::IssueLeaf => g.subschema_for::<IssueBody>(),
        Op::RevokeAllLeaves => g.subschema_for::<ReasonBody>(),
        Op::PatchCaLeaf | Op::PatchLeaf => g.subschema_for::<PatchLeafBody>(),
        Op::CreateProfile => g.subschema_for::<super::enrolment::ProfileBody>(),
        Op::CreateChallenge => g.subschema_for::<super::enrolment::ChallengeBody>(),
        Op::ApproveEnrolmentRequest | Op::RejectEnrolmentRequest => g.subschema_for::<super::enrolment::DecisionBody>(),
        _ => return None,
    })
}

/// The success status and its JSON body schema (`None`: no JSON body).
fn success(op: Op) -> (u16, Option<Value>) {
    let value_of = |inner: Value| json!({"type": "object", "required": ["value"], "properties": {"value": inner}});
    match op {
        Op::ListCas => (200, Some(component("cloudCertificationAuthorityCollection"))),
        Op::CreateCa => (201, Some(component(CA_SCHEMA))),
        Op::GetCa => (200, Some(component(&selected(CA_SCHEMA)))),
        Op::PatchCa => (200, Some(component(CA_SCHEMA))),
        Op::DeleteCa => (204, None),
        Op::ChangeStatus | Op::RevokeCa | Op::UploadSigned => (200, Some(value_of(component(CA_SCHEMA)))),
        Op::RevokeLeaf | Op::RevokeLeafBySerial | Op::SearchBySerial => (200, Some(value_of(component(LEAF_SCHEMA)))),
        Op::GetAllLeaves => (
            200,
            Some(value_of(json!({"type": "array", "items": component(LEAF_SCHEMA)}))),
        ),
        Op::IssueLeaf => (
            201,
            Some(value_of(json!({"allOf": [component(LEAF_SCHEMA), {
                "type": "object",
                "required": ["certificate"],
                "properties": {"certificate": {"type": "string", "contentEncoding": "base64",
                    "description": "The issued certificate, DER, base64"}}
            }]}))),
        ),
        Op::RevokeAllLeaves => (200, Some(value_of(json!({"type": "integer", "minimum": 0})))),
        Op::ListLeaves => (
            200,
            Some(component("cloudCertificationAuthorityLeafCertificateCollection")),
        ),
        Op::CountLeaves => (200, None),
        Op::GetCaLeaf | Op::GetLeaf => (200, Some(component(&selected(LEAF_SCHEMA)))),
        Op::PatchCaLeaf | Op::PatchLeaf => (200, Some(component(LEAF_SCHEMA))),
        Op::AuditEvents => (200, Some(component("auditEventCollection"))),
        Op::ListTokens => (200, Some(component("cloudPkiApiTokenCollection"))),
        Op::RevokeToken => (204, None),
        Op::ListProfiles => (
            200,
            Some(value_of(
                json!({"type": "array", "items": component("cloudPkiEnrolmentProfile")}),
            )),
        ),
        Op::CreateProfile => (201, Some(component("cloudPkiEnrolmentProfile"))),
        Op::DeleteProfile => (204, None),
        Op::CreateChallenge => (201, Some(component("cloudPkiEnrolmentChallenge"))),
        Op::ListEnrolmentRequests => (
            200,
            Some(value_of(
                json!({"type": "array", "items": component("cloudPkiEnrolmentRequest")}),
            )),
        ),
        Op::ApproveEnrolmentRequest | Op::RejectEnrolmentRequest => (200, Some(component("cloudPkiEnrolmentRequest"))),
    }
}

/// The schema of a single-entity GET: the entity, or with `$select` only
/// the selected properties (plus `id` and `@odata.type`).
fn selected(entity: &str) -> String {
    format!("{entity}Selected")
}

/// Query options an operation accepts; anything else is a 400.
fn query_parameters(op: Op) -> Vec<Value> {
    let p = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    let filter = |props: &str| {
        p(
            "$filter",
            json!({"type": "string"}),
            &format!("eq/ne/and/or/parentheses over {props}"),
        )
    };
    let top = p(
        "$top",
        json!({"type": "integer", "minimum": 1, "maximum": 999}),
        "page size",
    );
    let skiptoken = p(
        "$skiptoken",
        json!({"type": "string"}),
        "opaque; copy from @odata.nextLink",
    );
    let collection = |props: &str| {
        vec![
            filter(props),
            p(
                "$orderby",
                json!({"type": "string"}),
                "property [asc|desc], comma-separated",
            ),
            p("$select", json!({"type": "string"}), "comma-separated properties"),
            top.clone(),
            p("$skip", json!({"type": "integer", "minimum": 0}), "items to skip"),
            p("$count", json!({"type": "boolean"}), "include @odata.count"),
            skiptoken.clone(),
        ]
    };
    let select = || {
        vec![p(
            "$select",
            json!({"type": "string"}),
            "comma-separated properties (the collection's $select set)",
        )]
    };
    match op {
        Op::GetCa | Op::GetCaLeaf | Op::GetLeaf => select(),
        Op::ListCas => collection("certificationAuthorityStatus, cloudCertificationAuthorityType"),
        Op::ListLeaves => collection("certificateStatus"),
        Op::CountLeaves => vec![filter("certificateStatus")],
        Op::AuditEvents => vec![
            p(
                "$filter",
                json!({"type": "string"}),
                "activityType eq '<activity>' only",
            ),
            top,
            skiptoken,
        ],
        _ => Vec::new(),
    }
}

fn path_parameters(route: &Route) -> Vec<Value> {
    route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn operation(route: &Route, requests: &mut SchemaGenerator) -> Value {
    let error = |description: &str| {
        json!({"description": description, "headers": {
            "request-id": {"$ref": "#/components/headers/request-id"},
            "client-request-id": {"$ref": "#/components/headers/client-request-id"}},
            "content": {"application/json": {"schema": component("graphError")}}})
    };
    let (status, schema) = success(route.op);
    let mut ok = json!({"description": "success", "headers": {
        "request-id": {"$ref": "#/components/headers/request-id"},
        "client-request-id": {"$ref": "#/components/headers/client-request-id"}}});
    match (route.op, schema) {
        (Op::CountLeaves, _) => {
            ok["content"] = json!({"text/plain": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}})
        }
        (_, Some(s)) => ok["content"] = json!({"application/json": {"schema": s}}),
        (_, None) => {}
    }
    let mut responses = Map::new();
    responses.insert(status.to_string(), ok);
    for (code, what) in [
        ("400", "invalid request, body or query option"),
        ("401", "missing, expired or invalid bearer token"),
        (
            "403",
            "the token's Graph permission, the principal's role or its scope tags do not allow this",
        ),
        ("404", "no such CA or leaf certificate"),
        ("429", "too many requests from this principal; see Retry-After"),
        ("503", "the store is unavailable; nothing was changed"),
    ] {
        responses.insert(code.into(), error(what));
    }
    if route.writes {
        responses.insert(
            "409".into(),
            error("a lifecycle rule forbids this; the message says which"),
        );
    }
    let mut op = json!({
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [match route.op {
            Op::AuditEvents => "auditEvents",
            Op::ListTokens | Op::RevokeToken => "cloudPkiApiTokens",
            Op::ListProfiles
            | Op::CreateProfile
            | Op::DeleteProfile
            | Op::CreateChallenge
            | Op::ListEnrolmentRequests
            | Op::ApproveEnrolmentRequest
            | Op::RejectEnrolmentRequest => "enrolment",
            _ => "cloudCertificationAuthority",
        }],
        "parameters": path_parameters(route).into_iter().chain(query_parameters(route.op)).collect::<Vec<_>>(),
        "security": [{"bearer": []}],
        "x-cloudpki-extension": route.extension,
        "x-required-graph-permission": if route.writes { "DeviceManagementCloudCA.ReadWrite.All" } else { "DeviceManagementCloudCA.Read.All" },
    });
    if let Some(schema) = request_schema(route.op, requests) {
        // Every body field is optional; a missing body is `{}`.
        op["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": schema}}});
        responses.insert("413".into(), error(&format!("the body exceeds {MAX_BODY} bytes")));
        responses.insert("415".into(), error("the body is not application/json"));
    }
    if matches!(route.op, Op::PatchCa | Op::DeleteCa) {
        if let Some(ps) = op["parameters"].as_array_mut() {
            ps.push(
                json!({"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"},
                "description": "the CA's eTag (or *): refused with 412 when the CA changed since"}),
            );
        }
        responses.insert("412".into(), error("If-Match does not match the CA's eTag"));
    }
    op["responses"] = Value::Object(responses);
    op
}

/// An entity as `$select` may shape it: nothing inside is required.
fn partial(item: &Value) -> Value {
    let mut partial = item.clone();
    if let Some(o) = partial.as_object_mut() {
        o.remove("required");
    }
    partial
}

/// A collection schema: items may be partial (`$select`).
fn collection(item: &Value) -> Value {
    let partial = partial(item);
    json!({
        "type": "object",
        "required": ["@odata.context", "value"],
        "properties": {
            "@odata.context": {"type": "string"},
            "@odata.count": {"type": "integer", "minimum": 0},
            "@odata.nextLink": {"type": "string", "format": "uri"},
            "value": {"type": "array", "items": partial}
        }
    })
}

/// Builds the document. `public_url` is the server the API is reached at.
pub fn document(public_url: &str) -> Value {
    let mut responses = generator(true);
    let mut requests = generator(false);
    // The entities carry Graph's names (`#[schemars(rename)]`): CA_SCHEMA, LEAF_SCHEMA.
    responses.subschema_for::<CertificationAuthority>();
    responses.subschema_for::<LeafCertificate>();
    responses.subschema_for::<ApiToken>();
    responses.subschema_for::<super::enrolment::EnrolmentProfile>();
    responses.subschema_for::<super::enrolment::EnrolmentChallenge>();
    responses.subschema_for::<super::enrolment::EnrolmentRequest>();
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(format!("{BASE}{}", route.path))
            .or_insert_with(|| json!({}));
        item[route.method.to_ascii_lowercase()] = operation(route, &mut requests);
    }
    let mut schemas = responses.take_definitions(true);
    for (k, v) in requests.take_definitions(true) {
        schemas.entry(k).or_insert(v);
    }
    let ca_item = schemas.get(CA_SCHEMA).cloned().unwrap_or(Value::Null);
    let leaf_item = schemas.get(LEAF_SCHEMA).cloned().unwrap_or(Value::Null);
    schemas.insert(selected(CA_SCHEMA), partial(&ca_item));
    schemas.insert(selected(LEAF_SCHEMA), partial(&leaf_item));
    schemas.insert("cloudCertificationAuthorityCollection".into(), collection(&ca_item));
    schemas.insert(
        "cloudCertificationAuthorityLeafCertificateCollection".into(),
        collection(&leaf_item),
    );
    schemas.insert("auditActor".into(), audit_actor());
    schemas.insert("auditResource".into(), audit_resource());
    schemas.insert(AUDIT_SCHEMA.into(), audit_event());
    schemas.insert("auditEventCollection".into(), collection(&audit_event()));
    let token_item = schemas.get(TOKEN_SCHEMA).cloned().unwrap_or(Value::Null);
    schemas.insert("cloudPkiApiTokenCollection".into(), collection(&token_item));
    schemas.insert("graphError".into(), graph_error());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cloudpki management API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Microsoft Graph beta's cloudCertificationAuthority API as cloudpki serves it. \
                Operations marked x-cloudpki-extension are not in Graph. The responder routes \
                (/ocsp, /crls, /cacerts) are public and not described here: they speak RFC 6960/5019 and RFC 5280."
        },
        "servers": [{"url": public_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "headers": {
                "request-id": {"schema": {"type": "string"}, "description": "this request's id"},
                "client-request-id": {"schema": {"type": "string"}, "description": "the caller's id, echoed"}
            }
        }
    })
}

fn audit_event() -> Value {
    json!({
        "type": "object",
        "required": ["id", "activityType", "activityDateTime", "activityResult", "actor", "resources"],
        "properties": {
            "@odata.type": {"type": "string"},
            "id": {"type": "string"},
            "displayName": {"type": "string"},
            "componentName": {"type": "string"},
            "category": {"type": "string"},
            "activityType": {"type": "string"},
            "activityOperationType": {"type": "string", "enum": ["Create", "Patch", "Delete", "Action"]},
            "activityDateTime": {"type": ["string", "null"], "format": "date-time"},
            "activityResult": {"type": "string"},
            "activity": {"type": "string", "description": "the readable name of activityType"},
            "activityResultDetail": {"type": ["string", "null"],
                "description": "extension: why the change failed (activityResult failure), or notes on a system change such as a KEK rotation"},
            "actor": component("auditActor"),
            "resources": {"type": "array", "items": component("auditResource")}
        }
    })
}

fn audit_actor() -> Value {
    json!({"type": "object", "properties": {
        "@odata.type": {"type": "string"},
        "userPrincipalName": {"type": "string"},
        "type": {"type": "string"}}})
}

fn audit_resource() -> Value {
    json!({"type": "object", "properties": {
        "@odata.type": {"type": "string"},
        "resourceId": {"type": "string"},
        "type": {"type": "string"},
        "displayName": {"type": "string"}}})
}

fn graph_error() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message", "innerError"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "innerError": {"type": "object", "required": ["date", "request-id", "client-request-id"], "properties": {
                    "date": {"type": "string", "format": "date-time"},
                    "request-id": {"type": "string"},
                    "client-request-id": {"type": "string"}
                }}
            }
        }}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_schemas() {
        let doc = document("http://pki.test");
        for route in ROUTES {
            let op = &doc["paths"][format!("{BASE}{}", route.path)][route.method.to_ascii_lowercase()];
            assert_eq!(op["operationId"], route.operation_id);
            assert!(op["responses"].as_object().is_some_and(|r| r.contains_key("401")));
        }
        let schemas = &doc["components"]["schemas"];
        let ca = &schemas[CA_SCHEMA];
        assert_eq!(
            ca["properties"]["certificationAuthorityStatus"]["$ref"]
                .as_str()
                .map(|s| s.starts_with("#/components/schemas/")),
            Some(true)
        );
        assert_eq!(ca["properties"]["validityEndDateTime"]["format"], "date-time");
        assert!(ca["required"].as_array().is_some_and(|r| r.iter().any(|x| x == "id")));
        assert!(schemas["CreateCaBody"]["properties"]["certificateKeySize"].is_object());
        assert_eq!(schemas["SerialBody"]["required"], json!(["certificateSerialNumber"]));
        // Every $ref resolves.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap_or("");
            assert!(schemas.get(name).is_some(), "dangling $ref {name}");
        }
    }
}
