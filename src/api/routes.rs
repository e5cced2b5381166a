//! The API's route table: one row per operation.
//!
//! The router matches requests against this table and the OpenAPI document
//! ([`super::openapi`]) is generated from it, so the two cannot drift apart.

/// Every operation the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListCas,
    CreateCa,
    GetCa,
    PatchCa,
    DeleteCa,
    ChangeStatus,
    RevokeCa,
    UploadSigned,
    RevokeLeaf,
    RevokeLeafBySerial,
    SearchBySerial,
    GetAllLeaves,
    IssueLeaf,
    RevokeAllLeaves,
    ListLeaves,
    CountLeaves,
    GetCaLeaf,
    PatchCaLeaf,
    GetLeaf,
    PatchLeaf,
    AuditEvents,
    ListTokens,
    RevokeToken,
    ListProfiles,
    CreateProfile,
    DeleteProfile,
    CreateChallenge,
    ListEnrolmentRequests,
    ApproveEnrolmentRequest,
    RejectEnrolmentRequest,
}

/// One row of the table.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub op: Op,
    pub method: &'static str,
    /// Below [`super::BASE`]; `{name}` matches one path segment.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub summary: &'static str,
    /// Needs a ReadWrite Graph permission (everything but reads).
    pub writes: bool,
    /// Not in Graph: a cloudpki extension in Graph's style.
    pub extension: bool,
}

const fn r(
    op: Op,
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    summary: &'static str,
    writes: bool,
    extension: bool,
) -> Route {
    Route {
        op,
        method,
        path,
        operation_id,
        summary,
        writes,
        extension,
    }
}

const CA: &str = "/cloudCertificationAuthority";

pub const ROUTES: &[Route] = &[
    r(
        Op::ListEnrolmentRequests,
        "GET",
        "/cloudCertificationAuthority/{id}/enrolmentRequests",
        "cloudCertificationAuthority_ListEnrolmentRequests",
        "Extension: device requests under profiles that require approval, newest first",
        false,
        true,
    ),
    r(
        Op::ApproveEnrolmentRequest,
        "POST",
        "/cloudCertificationAuthority/{id}/enrolmentRequests/{requestId}/approve",
        "cloudCertificationAuthority_ApproveEnrolmentRequest",
        "Extension: approve a pending request (the certificate is issued now; the device gets it when it polls)",
        true,
        true,
    ),
    r(
        Op::RejectEnrolmentRequest,
        "POST",
        "/cloudCertificationAuthority/{id}/enrolmentRequests/{requestId}/reject",
        "cloudCertificationAuthority_RejectEnrolmentRequest",
        "Extension: reject a pending request (the device's next poll is refused)",
        true,
        true,
    ),
    r(
        Op::ListProfiles,
        "GET",
        "/cloudCertificationAuthority/{id}/enrolmentProfiles",
        "cloudCertificationAuthority_ListEnrolmentProfiles",
        "Extension: the SCEP enrolment profiles of an issuing CA",
        false,
        true,
    ),
    r(
        Op::CreateProfile,
        "POST",
        "/cloudCertificationAuthority/{id}/enrolmentProfiles",
        "cloudCertificationAuthority_CreateEnrolmentProfile",
        "Extension: create an enrolment profile (key types, name rules, EKUs, validity) under an issuing CA",
        true,
        true,
    ),
    r(
        Op::DeleteProfile,
        "DELETE",
        "/cloudCertificationAuthority/{id}/enrolmentProfiles/{profileId}",
        "cloudCertificationAuthority_DeleteEnrolmentProfile",
        "Extension: delete an enrolment profile (its challenges stop working)",
        true,
        true,
    ),
    r(
        Op::CreateChallenge,
        "POST",
        "/cloudCertificationAuthority/{id}/enrolmentProfiles/{profileId}/createChallenge",
        "cloudCertificationAuthority_CreateEnrolmentChallenge",
        "Extension: create a challenge for a profile (shown once; only its hash is stored)",
        true,
        true,
    ),
    r(
        Op::ListCas,
        "GET",
        CA,
        "cloudCertificationAuthority_List",
        "List certification authorities",
        false,
        false,
    ),
    r(
        Op::CreateCa,
        "POST",
        CA,
        "cloudCertificationAuthority_Create",
        "Create a root or issuing CA (read-only properties in the body are ignored)",
        true,
        false,
    ),
    r(
        Op::GetCa,
        "GET",
        "/cloudCertificationAuthority/{id}",
        "cloudCertificationAuthority_Get",
        "Get a certification authority",
        false,
        false,
    ),
    r(
        Op::PatchCa,
        "PATCH",
        "/cloudCertificationAuthority/{id}",
        "cloudCertificationAuthority_Update",
        "Update displayName, description or roleScopeTagIds (If-Match: the eTag)",
        true,
        false,
    ),
    r(
        Op::DeleteCa,
        "DELETE",
        "/cloudCertificationAuthority/{id}",
        "cloudCertificationAuthority_Delete",
        "Delete a CA (irreversible; lifecycle rules apply; If-Match: the eTag)",
        true,
        false,
    ),
    r(
        Op::ChangeStatus,
        "POST",
        "/cloudCertificationAuthority/{id}/changeCloudCertificationAuthorityStatus",
        "cloudCertificationAuthority_ChangeStatus",
        "Pause or resume a CA",
        true,
        false,
    ),
    r(
        Op::RevokeCa,
        "POST",
        "/cloudCertificationAuthority/{id}/revokeCloudCertificationAuthorityCertificate",
        "cloudCertificationAuthority_RevokeCertificate",
        "Revoke a CA's certificate (irreversible)",
        true,
        false,
    ),
    r(
        Op::UploadSigned,
        "POST",
        "/cloudCertificationAuthority/{id}/uploadExternallySignedCertificationAuthorityCertificate",
        "cloudCertificationAuthority_UploadExternallySignedCertificate",
        "Upload the certificate an external root signed for a signingPending CA",
        true,
        false,
    ),
    r(
        Op::RevokeLeaf,
        "POST",
        "/cloudCertificationAuthority/{id}/revokeLeafCertificate",
        "cloudCertificationAuthority_RevokeLeafCertificate",
        "Revoke a leaf certificate by id",
        true,
        false,
    ),
    r(
        Op::RevokeLeafBySerial,
        "POST",
        "/cloudCertificationAuthority/{id}/revokeLeafCertificateBySerialNumber",
        "cloudCertificationAuthority_RevokeLeafCertificateBySerialNumber",
        "Revoke a leaf certificate by serial number (hex, any case, leading 00 optional)",
        true,
        false,
    ),
    r(
        Op::SearchBySerial,
        "POST",
        "/cloudCertificationAuthority/{id}/searchCloudCertificationAuthorityLeafCertificateBySerialNumber",
        "cloudCertificationAuthority_SearchLeafCertificateBySerialNumber",
        "Find a leaf certificate by serial number",
        false,
        false,
    ),
    r(
        Op::GetAllLeaves,
        "POST",
        "/cloudCertificationAuthority/{id}/getAllCloudCertificationAuthorityLeafCertificates",
        "cloudCertificationAuthority_GetAllLeafCertificates",
        "All leaf certificates of a CA in one answer",
        false,
        false,
    ),
    r(
        Op::IssueLeaf,
        "POST",
        "/cloudCertificationAuthority/{id}/issueLeafCertificate",
        "cloudCertificationAuthority_IssueLeafCertificate",
        "Extension: issue a leaf certificate from a PKCS#10 request",
        true,
        true,
    ),
    r(
        Op::RevokeAllLeaves,
        "POST",
        "/cloudCertificationAuthority/{id}/revokeAllLeafCertificates",
        "cloudCertificationAuthority_RevokeAllLeafCertificates",
        "Extension: revoke every leaf certificate of a CA; answers the count",
        true,
        true,
    ),
    r(
        Op::ListLeaves,
        "GET",
        "/cloudCertificationAuthority/{id}/cloudCertificationAuthorityLeafCertificate",
        "cloudCertificationAuthority_ListLeafCertificates",
        "List a CA's leaf certificates (keyset paging by default)",
        false,
        false,
    ),
    r(
        Op::CountLeaves,
        "GET",
        "/cloudCertificationAuthority/{id}/cloudCertificationAuthorityLeafCertificate/$count",
        "cloudCertificationAuthority_CountLeafCertificates",
        "Count a CA's leaf certificates",
        false,
        false,
    ),
    r(
        Op::GetCaLeaf,
        "GET",
        "/cloudCertificationAuthority/{id}/cloudCertificationAuthorityLeafCertificate/{leafId}",
        "cloudCertificationAuthority_GetLeafCertificate",
        "Get one of a CA's leaf certificates",
        false,
        false,
    ),
    r(
        Op::PatchCaLeaf,
        "PATCH",
        "/cloudCertificationAuthority/{id}/cloudCertificationAuthorityLeafCertificate/{leafId}",
        "cloudCertificationAuthority_UpdateLeafCertificate",
        "Accepted for Graph clients: every leaf property is read-only, so nothing changes (audited)",
        true,
        false,
    ),
    r(
        Op::GetLeaf,
        "GET",
        "/cloudCertificationAuthorityLeafCertificate/{leafId}",
        "cloudCertificationAuthorityLeafCertificate_Get",
        "Get a leaf certificate",
        false,
        false,
    ),
    r(
        Op::PatchLeaf,
        "PATCH",
        "/cloudCertificationAuthorityLeafCertificate/{leafId}",
        "cloudCertificationAuthorityLeafCertificate_Update",
        "Accepted for Graph clients: every leaf property is read-only, so nothing changes (audited)",
        true,
        false,
    ),
    r(
        Op::AuditEvents,
        "GET",
        "/auditEvents",
        "auditEvents_List",
        "Audit log of every change, append-only",
        false,
        false,
    ),
    r(
        Op::ListTokens,
        "GET",
        "/cloudPkiApiTokens",
        "cloudPkiApiTokens_List",
        "API tokens minted by cloudpki that have not expired, and revoked token ids (Intune Administrator)",
        false,
        true,
    ),
    r(
        Op::RevokeToken,
        "POST",
        "/cloudPkiApiTokens/{id}/revoke",
        "cloudPkiApiTokens_Revoke",
        "Revoke an API token by id (jti): every node refuses it from its next request (Intune Administrator)",
        true,
        true,
    ),
];

/// What the table says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a> {
    /// The route and its `{…}` parameters, in path order.
    Found(&'static Route, Vec<&'a str>),
    /// The path exists, not with this method.
    WrongMethod,
    NotFound,
}

fn params<'a>(template: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut t = template.split('/').filter(|s| !s.is_empty());
    let mut p = path.split('/').filter(|s| !s.is_empty());
    let mut out = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(out),
            (Some(ts), Some(ps)) if ts.starts_with('{') => out.push(ps),
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

/// Matches `method` and `path` (below [`super::BASE`]). A literal segment
/// wins over a parameter (`…/$count` is not a leaf id).
pub fn resolve<'a>(method: &str, path: &'a str) -> Match<'a> {
    let literal_count = |route: &Route| route.path.split('/').filter(|s| !s.starts_with('{')).count();
    let mut best: Option<(&'static Route, Vec<&'a str>)> = None;
    let mut path_known = false;
    for route in ROUTES {
        let Some(ps) = params(route.path, path) else { continue };
        path_known = true;
        if route.method != method {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|(b, _)| literal_count(route) > literal_count(b))
        {
            best = Some((route, ps));
        }
    }
    match best {
        Some((route, ps)) => Match::Found(route, ps),
        None if path_known => Match::WrongMethod,
        None => Match::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(m: Match<'_>) -> Option<(Op, Vec<&str>)> {
        match m {
            Match::Found(r, p) => Some((r.op, p)),
            _ => None,
        }
    }

    #[test]
    fn resolves_every_route_to_itself() {
        for route in ROUTES {
            let path = route.path.replace("{id}", "ca1").replace("{leafId}", "leaf1");
            let (found, _) = op(resolve(route.method, &path)).unwrap();
            assert_eq!(found, route.op, "{} {}", route.method, route.path);
        }
    }

    #[test]
    fn literals_beat_parameters_and_methods_are_checked() {
        let count = "/cloudCertificationAuthority/a/cloudCertificationAuthorityLeafCertificate/$count";
        assert_eq!(op(resolve("GET", count)), Some((Op::CountLeaves, vec!["a"])));
        let leaf = "/cloudCertificationAuthority/a/cloudCertificationAuthorityLeafCertificate/b";
        assert_eq!(op(resolve("GET", leaf)), Some((Op::GetCaLeaf, vec!["a", "b"])));
        assert_eq!(resolve("DELETE", leaf), Match::WrongMethod);
        assert_eq!(
            resolve("POST", "/cloudCertificationAuthority/a/noSuchAction"),
            Match::NotFound
        );
        assert_eq!(
            resolve("GET", "/cloudCertificationAuthority/a/revokeLeafCertificate"),
            Match::WrongMethod
        );
        assert_eq!(resolve("GET", "/nothing"), Match::NotFound);
        assert_eq!(
            op(resolve("GET", "/cloudCertificationAuthority/")),
            Some((Op::ListCas, vec![]))
        );
    }

    #[test]
    fn operation_ids_are_unique() {
        let mut ids: Vec<_> = ROUTES.iter().map(|r| r.operation_id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ROUTES.len());
    }
}
