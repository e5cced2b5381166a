//! The CA's bound actions (`…/cloudCertificationAuthority/{id}/{action}`):
//! change status, revoke the CA, upload its signed certificate, issue a
//! leaf, revoke one (by id or serial) or all, search by serial, getAll.

use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::bodies::{body, IssueBody, ReasonBody, RevokeLeafBody, SerialBody, StatusBody, UploadBody, VersionBody};
use super::error::ApiError;
use super::routes::Op;
use super::{graph, json_response, Api, ApiRequest, Body, CA_T};
use crate::auth::{Access, CloudPkiPermission as P};
use crate::domain::{audit, CaStatus, NewLeaf, RevocationReason};

impl Api {
    pub(super) async fn action(
        &self,
        req: &ApiRequest<'_>,
        access: &Access,
        id: &str,
        action: Op,
    ) -> Result<Response<Body>, ApiError> {
        let ca_id = id.to_owned();
        let value = match action {
            Op::ChangeStatus => {
                self.visible_ca(access, id, &[P::ReadCas, P::DisableReenableCas])
                    .await?;
                let b: StatusBody = body(req)?;
                let target = b.certification_authority_status.as_deref().unwrap_or("");
                let ca = match CaStatus::parse(target) {
                    Some(CaStatus::Paused) => {
                        self.mutate(access, audit::CHANGE_STATUS, (CA_T, id), (id, &[]), move |p| {
                            p.pause_ca(&ca_id)
                        })
                        .await?
                    }
                    Some(CaStatus::Active) => {
                        self.mutate(access, audit::CHANGE_STATUS, (CA_T, id), (id, &[]), move |p| {
                            p.resume_ca(&ca_id)
                        })
                        .await?
                    }
                    _ => {
                        return Err(ApiError::bad_request(
                            "certificationAuthorityStatus must be paused or active (revoke has its own action)",
                        ))
                    }
                };
                graph(&ca)?
            }
            Op::RevokeCa => {
                self.visible_ca(access, id, &[P::ReadCas, P::DisableReenableCas, P::RevokeLeaves])
                    .await?;
                let _: VersionBody = body(req)?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_CA, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_ca(&ca_id, None)
                        })
                        .await?,
                )?
            }
            Op::UploadSigned => {
                self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
                let b: UploadBody = body(req)?;
                let chain: String = b
                    .trust_chain_certificates
                    .iter()
                    .map(|c| format!("{}\n", c.certificate))
                    .collect();
                let signed = b.signed_certificate.unwrap_or_default();
                graph(
                    &self
                        .mutate(access, audit::UPLOAD, (CA_T, id), (id, &[]), move |p| {
                            p.upload_signed_certificate(&ca_id, signed.as_bytes(), chain.as_bytes())
                        })
                        .await?,
                )?
            }
            Op::RevokeLeaf => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let b: RevokeLeafBody = body(req)?;
                let leaf = b
                    .leaf_certificate_id
                    .ok_or_else(|| ApiError::bad_request("leafCertificateId is required"))?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_leaf(&leaf, Some(&ca_id), RevocationReason::Unspecified)
                        })
                        .await?,
                )?
            }
            Op::RevokeLeafBySerial => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let serial = body::<SerialBody>(req)?.serial()?;
                graph(
                    &self
                        .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                            p.revoke_leaf_by_serial(Some(&ca_id), &serial, RevocationReason::Unspecified)
                        })
                        .await?,
                )?
            }
            Op::SearchBySerial => {
                self.visible_ca(access, id, &[P::ReadCas]).await?;
                let serial = body::<SerialBody>(req)?.serial()?;
                graph(
                    &self
                        .blocking(access, move |p| p.find_leaf_by_serial(Some(&ca_id), &serial))
                        .await?,
                )?
            }
            Op::GetAllLeaves => {
                self.visible_ca(access, id, &[P::ReadCas]).await?;
                return Ok(self.stream_all_leaves(ca_id));
            }
            Op::IssueLeaf => {
                self.visible_ca(access, id, &[P::ReadCas, P::CreateCas]).await?;
                let b: IssueBody = body(req)?;
                let csr_text = b.certificate_signing_request.ok_or_else(|| {
                    ApiError::bad_request("certificateSigningRequest is required (PEM or base64 DER)")
                })?;
                let csr = crate::x509::pem::decode_one(
                    csr_text.as_bytes(),
                    &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
                )
                .map_err(|e| ApiError::bad_request(format!("certificateSigningRequest: {e}")))?;
                let req = NewLeaf {
                    csr,
                    device_name: b.meta.device_name,
                    user_principal_name: b.meta.user_principal_name,
                    device_id: b.meta.device_id,
                    user_id: b.meta.user_id,
                    device_platform: b.meta.device_platform,
                    validity_days: b.validity_in_days,
                    key_usages: Vec::new(),
                };
                let (leaf, der) = self
                    .mutate(access, audit::ISSUE_LEAF, (CA_T, id), (id, &[]), move |p| {
                        p.issue_leaf(&ca_id, &req)
                    })
                    .await?;
                let mut v = graph(&leaf)?;
                v["certificate"] = Value::String(<base64ct::Base64 as base64ct::Encoding>::encode_string(&der));
                return Ok(json_response(StatusCode::CREATED, &json!({ "value": v })));
            }
            Op::RevokeAllLeaves => {
                self.visible_ca(access, id, &[P::ReadCas, P::RevokeLeaves]).await?;
                let b: ReasonBody = body(req)?;
                let reason = match b.reason.as_deref() {
                    None => RevocationReason::CessationOfOperation,
                    Some(r) => RevocationReason::parse(r)
                        .ok_or_else(|| ApiError::bad_request(format!("unknown reason {r}")))?,
                };
                let n = self
                    .mutate(access, audit::REVOKE_LEAF, (CA_T, id), (id, &[]), move |p| {
                        p.revoke_all_leaves(&ca_id, reason, 500, None, &mut |_| {})
                    })
                    .await?;
                return Ok(json_response(StatusCode::OK, &json!({ "value": n })));
            }
            other => return Err(ApiError::internal(format!("{other:?} is not an action"))),
        };
        Ok(json_response(StatusCode::OK, &json!({ "value": value })))
    }
}
