//! CA lifecycle: create (root, issuing, external root), read, pause,
//! resume, revoke, delete, PATCH, and the external-root upload.

use super::*;

/// Scope tag ids (Intune's are numbers): none empty or longer than 64.
fn check_scope_tags(tags: &[String]) -> Result<()> {
    match tags.iter().find(|t| t.trim().is_empty() || t.len() > 64) {
        Some(bad) => Err(PkiError::Invalid(format!(
            "roleScopeTagIds: {bad:?} is not a scope tag id (1 to 64 characters)"
        ))),
        None => Ok(()),
    }
}

/// A CA's partition count: at most [`MAX_CRL_PARTITIONS`], and never fewer
/// than it has (its leaves' CRL URLs must keep answering).
fn check_crl_partitions(n: u32, current: u32) -> Result<()> {
    if n > MAX_CRL_PARTITIONS {
        return Err(PkiError::Invalid(format!(
            "crlPartitionCount must be 0 to {MAX_CRL_PARTITIONS}"
        )));
    }
    if n < current {
        return Err(PkiError::Invalid(format!(
            "crlPartitionCount can only grow ({current} now): leaves keep the partition their certificate names"
        )));
    }
    Ok(())
}

impl Pki {
    /// The stored form of a record; certificate, chain, CSR and pre-signed
    /// answers are the engine's to set on the row.
    pub(super) fn ca_row(entity: &Ca) -> CaRow {
        CaRow {
            id: entity.id.clone(),
            ca_type: entity.ca_type.name().to_owned(),
            display_name: entity.display_name.clone(),
            description: entity.description.clone(),
            issuer_id: entity.issuer_id.clone(),
            // Expired is derived, never stored: store what the CA was before.
            status: match entity.status {
                CaStatus::Expired => entity.stored_status,
                s => s,
            }
            .name()
            .to_owned(),
            common_name: entity.subject.common_name.clone(),
            organization_name: entity.subject.organization_name.clone(),
            organization_unit: entity.subject.organization_unit.clone(),
            country_name: entity.subject.country_name.clone(),
            state_name: entity.subject.state_name.clone(),
            locality_name: entity.subject.locality_name.clone(),
            subject_name: entity.subject_name.clone(),
            key_algorithm: entity.key_algorithm.name().to_owned(),
            hash_algorithm: entity.hash_algorithm.name().to_owned(),
            key_platform: entity.key_platform.name().to_owned(),
            validity_years: i64::from(entity.validity_years),
            ekus: entity.ekus.clone(),
            scope_tags: entity.scope_tags.clone(),
            created_at: ts(entity.created_at),
            modified_at: ts(entity.modified_at),
            version: i64::from(entity.version.number),
            issuer_common_name: entity.issuer_common_name.clone(),
            root_common_name: entity.root_common_name.clone(),
            issuer_cert_url: entity.issuer_cert_url.clone(),
            cert: None,
            chain: Vec::new(),
            csr: entity.version.csr.clone(),
            revoked_at: entity.revoked_at.map(ts),
            revocation_reason: entity.revocation_reason,
            row_version: entity.row_version,
            crl_number: 0,
            ocsp: None,
            crl_partitions: i64::from(entity.crl_partitions),
            delta_crls: entity.delta_crls,
        }
    }

    /// Writes `ca.entity` back (with a bumped row version); the row's
    /// certificate, chain and pre-signed answers go as the caller left them.
    pub(super) fn save_ca(&self, tx: &mut dyn Tx, ca: &mut LoadedCa, now: OffsetDateTime) -> Result<()> {
        ca.entity.modified_at = now;
        ca.entity.row_version += 1;
        let fresh = Self::ca_row(&ca.entity);
        ca.row = CaRow {
            cert: ca.row.cert.take(),
            chain: std::mem::take(&mut ca.row.chain),
            ocsp: ca.row.ocsp.take(),
            crl_number: ca.row.crl_number,
            ..fresh
        };
        tx.update_ca(&ca.row)?;
        // What the record derives from the certificate follows it.
        ca.entity = self.ca_record(&ca.row, now)?;
        Ok(())
    }

    // ---------------------------------------------------------------- CAs

    /// Creates a root, an issuing CA under a root, or an issuing CA awaiting
    /// an external signature.
    pub fn create_ca(&self, req: NewCa) -> Result<Ca> {
        req.subject.validate()?;
        check_scope_tags(&req.role_scope_tag_ids)?;
        if req.validity_years == 0 || req.validity_years > MAX_VALIDITY_YEARS {
            return Err(PkiError::Invalid(format!(
                "validityPeriodInYears must be 1 to {MAX_VALIDITY_YEARS}"
            )));
        }
        let mut ekus = req.ekus.iter().map(|s| parse_oid(s)).collect::<Result<Vec<_>>>()?;
        if ekus.contains(&oids::ANY_EKU) {
            return Err(PkiError::Invalid(
                "the Any Purpose EKU (2.5.29.37.0) is not allowed".into(),
            ));
        }
        ekus.dedup();
        if let Some(n) = req.crl_partitions {
            check_crl_partitions(n, 0)?;
            if n > 0 && req.ca_type == CaType::RootCertificationAuthority {
                return Err(PkiError::Invalid(
                    "a root CA has one CRL (of its issuing CAs): crlPartitionCount does not apply".into(),
                ));
            }
        }
        if req.delta_crls && req.ca_type == CaType::RootCertificationAuthority {
            return Err(PkiError::Invalid(
                "a root CA publishes no delta CRLs (its CRL of issuing CAs changes rarely)".into(),
            ));
        }
        match (req.ca_type, &req.issuer_id) {
            (CaType::IssuingCertificationAuthority, None) => {
                return Err(PkiError::Invalid(
                    "an issuing CA needs certificationAuthorityIssuerId (its root)".into(),
                ))
            }
            (CaType::RootCertificationAuthority | CaType::IssuingCertificationAuthorityWithExternalRoot, Some(_)) => {
                return Err(PkiError::Invalid(
                    "only an issuing CA anchored to a cloudpki root takes certificationAuthorityIssuerId".into(),
                ))
            }
            _ => {}
        }
        // Key generation is the slow part (RSA-4096: up to seconds); do it
        // before taking the write lock.
        let (key, pkcs8) = SoftwareKey::generate(req.key_size, req.hash)?;
        let id = uuid::Uuid::new_v4().to_string();
        let now = self.clock.now();
        let subject = req.subject.to_name()?;

        let mut tx = self.store.begin(TxMode::Write)?;
        let sealed = self.seal_in(tx.as_mut(), SealedKind::CaKey, &id, &pkcs8)?;
        if let Some(max) = self.settings.max_cas {
            if tx.cas()?.len() as u64 >= u64::from(max) {
                return Err(PkiError::CaLimitReached(max));
            }
        }
        let not_before = now - BACKDATE;
        let not_after = add_years(now, req.validity_years)?;
        let version = 1;
        let mut entity = Ca {
            id: id.clone(),
            ca_type: req.ca_type,
            display_name: req
                .display_name
                .clone()
                .unwrap_or_else(|| req.subject.common_name.clone()),
            description: req.description.clone(),
            status: CaStatus::Active,
            stored_status: CaStatus::Active,
            subject: SubjectParts {
                country_name: req.subject.country_name.as_ref().map(|c| c.to_ascii_uppercase()),
                ..req.subject.clone()
            },
            subject_name: names::graph_subject_name(&subject),
            issuer_id: req.issuer_id.clone(),
            issuer_common_name: None,
            root_common_name: None,
            issuer_cert_url: None,
            key_algorithm: req.key_size,
            hash_algorithm: req.hash,
            key_platform: KeyPlatform::Software,
            validity_years: req.validity_years,
            ekus: Vec::new(),
            scope_tags: if req.role_scope_tag_ids.is_empty() {
                vec!["0".into()]
            } else {
                req.role_scope_tag_ids.clone()
            },
            created_at: now,
            modified_at: now,
            version: CaVersion {
                number: version,
                not_before: None,
                not_after: None,
                thumbprint: None,
                serial: None,
                csr: None,
            },
            revoked_at: None,
            revocation_reason: None,
            row_version: 1,
            urls: self.urls(&id, version),
            crl_partitions: match req.ca_type {
                CaType::RootCertificationAuthority => 0,
                _ => req.crl_partitions.unwrap_or(DEFAULT_CRL_PARTITIONS),
            },
            delta_crls: req.delta_crls,
        };

        let (cert_der, csr_der) = match req.ca_type {
            CaType::RootCertificationAuthority => {
                if ekus.is_empty() {
                    ekus = vec![oids::KP_SERVER_AUTH, oids::KP_CLIENT_AUTH];
                }
                let ski = cert::key_identifier(key.public_key());
                let der = cert::issue(
                    &CertRequest {
                        serial: cert::random_serial()?,
                        subject: subject.clone(),
                        issuer: subject.clone(),
                        issuer_key_id: ski,
                        public_key: key.public_key().clone(),
                        not_before,
                        not_after,
                        // root -> issuing -> leaf: one CA below the root.
                        role: CertRole::Ca { path_len: Some(1) },
                        key_usage: cert::ca_key_usage(),
                        ekus: ekus.clone(),
                        pointers: None,
                        subject_alt_name: None,
                    },
                    &key,
                )?;
                entity.root_common_name = Some(req.subject.common_name.clone());
                (Some(der), None)
            }
            CaType::IssuingCertificationAuthority => {
                let root_id = req.issuer_id.as_deref().unwrap_or_default();
                let root = self.load_ca(tx.as_mut(), root_id, now)?;
                lifecycle::check(
                    Action::AnchorIssuingCa,
                    root.facts(tx.as_mut(), now, Action::AnchorIssuingCa)?,
                )?;
                let root_ekus = root.ekus()?;
                if ekus.is_empty() {
                    ekus = root_ekus.clone();
                } else if let Some(extra) = ekus.iter().find(|e| !root_ekus.contains(e)) {
                    return Err(PkiError::Invalid(format!("EKU {extra} is not defined on the root CA")));
                }
                let root_end = root
                    .entity
                    .version
                    .not_after
                    .ok_or_else(|| corrupt("root without validity"))?;
                if not_after > root_end {
                    return Err(PkiError::Invalid(format!(
                        "an issuing CA cannot outlive its root: {} years ends after the root's notAfter {root_end}",
                        req.validity_years
                    )));
                }
                let root_cert = root.cert()?;
                let root_key = self.signer(tx.as_mut(), &root)?;
                let der = cert::issue(
                    &CertRequest {
                        serial: cert::random_serial()?,
                        subject: subject.clone(),
                        issuer: root_cert.tbs().subject.clone(),
                        issuer_key_id: cert::key_identifier(root_key.public_key()),
                        public_key: key.public_key().clone(),
                        not_before,
                        not_after,
                        role: CertRole::Ca { path_len: Some(0) },
                        key_usage: cert::ca_key_usage(),
                        ekus: ekus.clone(),
                        pointers: Some(RevocationPointers {
                            crl_url: root.entity.urls.crl.clone(),
                            delta_crl_url: None,
                            ca_issuers_url: root.entity.urls.certificate.clone(),
                            ocsp_url: Some(root.entity.urls.ocsp.clone()),
                        }),
                        subject_alt_name: None,
                    },
                    root_key.as_ref(),
                )?;
                entity.issuer_common_name = Some(root.entity.subject.common_name.clone());
                entity.root_common_name = Some(root.entity.subject.common_name.clone());
                entity.issuer_cert_url = Some(root.entity.urls.certificate.clone());
                (Some(der), None)
            }
            CaType::IssuingCertificationAuthorityWithExternalRoot => {
                if ekus.is_empty() {
                    ekus = vec![oids::KP_SERVER_AUTH, oids::KP_CLIENT_AUTH];
                }
                let csr_der = csr::build_ca_request(&subject, &key, &ekus)?;
                entity.status = CaStatus::SigningPending;
                entity.stored_status = CaStatus::SigningPending;
                (None, Some(csr_der))
            }
        };
        entity.ekus = ekus.iter().map(ToString::to_string).collect();
        let mut row = Self::ca_row(&entity);
        row.cert = cert_der;
        row.csr = csr_der;
        row.ocsp = self.presign_ca_cert(tx.as_mut(), &row, now)?;
        tx.insert_ca(&row, Some(&sealed))?;
        self.record(tx.as_mut(), now, ChangeKind::CaCreated, &id, None, audit::CREATE_CA)?;
        self.commit(tx)?;
        self.signers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(key));
        self.ca_record(&row, now)
    }

    pub fn get_ca(&self, id: &str) -> Result<Ca> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        Ok(self.load_ca(tx.as_mut(), id, now)?.entity)
    }

    pub fn list_cas(&self) -> Result<Vec<Ca>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        tx.cas()?.iter().map(|r| self.ca_record(r, now)).collect()
    }

    /// The CA certificate (DER), if it has one yet.
    pub fn ca_certificate(&self, id: &str) -> Result<Vec<u8>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        row.cert
            .ok_or_else(|| PkiError::Invalid("the CA has no certificate yet: signing is pending".into()))
    }

    /// The CSR of a CA awaiting its external signature (DER).
    pub fn ca_csr(&self, id: &str) -> Result<Vec<u8>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        row.csr.ok_or_else(|| {
            PkiError::Invalid("the CA has no certificate signing request (only a CA with an external root does)".into())
        })
    }

    /// Applies a status-changing action (pause, resume, revoke) to a CA.
    pub(super) fn transition(&self, id: &str, action: Action, reason: Option<RevocationReason>) -> Result<Ca> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        let facts = ca.facts(tx.as_mut(), now, action)?;
        match lifecycle::check(action, facts)? {
            Effect::Become(status) => {
                ca.entity.status = status;
                ca.entity.stored_status = status;
            }
            Effect::Stay | Effect::Remove => return Err(corrupt("unexpected lifecycle effect")),
        }
        if action == Action::Revoke {
            let reason = reason.unwrap_or(RevocationReason::CessationOfOperation);
            ca.row.revoked_at = Some(ts(now));
            ca.row.revocation_reason = Some(reason);
            ca.entity.revoked_at = Some(from_ts(ts(now))?);
            ca.entity.revocation_reason = Some(reason);
            // The root's answer about this CA's certificate becomes "revoked".
            ca.row.ocsp = self.presign_ca_cert(tx.as_mut(), &ca.row, now)?;
        }
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(
            tx.as_mut(),
            now,
            ChangeKind::CaUpdated,
            id,
            None,
            if action == Action::Revoke {
                audit::REVOKE_CA
            } else {
                audit::CHANGE_STATUS
            },
        )?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    pub fn pause_ca(&self, id: &str) -> Result<Ca> {
        self.transition(id, Action::Pause, None)
    }

    pub fn resume_ca(&self, id: &str) -> Result<Ca> {
        self.transition(id, Action::Resume, None)
    }

    /// Revokes an issuing CA's certificate (it then appears on its root's CRL).
    pub fn revoke_ca(&self, id: &str, reason: Option<RevocationReason>) -> Result<Ca> {
        self.transition(id, Action::Revoke, reason)
    }

    /// Deletes a CA (irreversible), checking the eTag when given, as PATCH does.
    pub fn delete_ca(&self, id: &str, if_match: Option<&str>) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), id, now)?;
        check_if_match(if_match, Some(&ca.entity.etag()))?;
        let facts = ca.facts(tx.as_mut(), now, Action::Delete)?;
        lifecycle::check(Action::Delete, facts)?;
        // Recorded first: the audit event takes the scope tags of the CA it deletes.
        self.record(tx.as_mut(), now, ChangeKind::CaDeleted, id, None, audit::DELETE_CA)?;
        tx.delete_ca(id, ts(now))?;
        self.commit(tx)?;
        self.forget_signer(id);
        Ok(())
    }

    /// Updates the writable properties (Graph PATCH), checking the eTag when given.
    pub fn update_ca(&self, id: &str, if_match: Option<&str>, patch: CaPatch) -> Result<Ca> {
        let CaPatch {
            display_name,
            description,
            role_scope_tag_ids,
            crl_partitions,
            delta_crls,
        } = patch;
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        check_if_match(if_match, Some(&ca.entity.etag()))?;
        if let Some(n) = crl_partitions {
            if ca.entity.ca_type == CaType::RootCertificationAuthority && n > 0 {
                return Err(PkiError::Invalid(
                    "a root CA has one CRL (of its issuing CAs): crlPartitionCount does not apply".into(),
                ));
            }
            check_crl_partitions(n, ca.entity.crl_partitions)?;
            ca.entity.crl_partitions = n;
        }
        if let Some(on) = delta_crls {
            if ca.entity.delta_crls && !on {
                return Err(PkiError::Invalid(
                    "delta CRLs cannot be turned off: certificates name them in their Freshest CRL extension".into(),
                ));
            }
            if on && ca.entity.ca_type == CaType::RootCertificationAuthority {
                return Err(PkiError::Invalid("a root CA publishes no delta CRLs".into()));
            }
            ca.entity.delta_crls = on;
        }
        if let Some(name) = display_name {
            if name.trim().is_empty() {
                return Err(PkiError::Invalid("displayName must not be empty".into()));
            }
            ca.entity.display_name = name;
        }
        if let Some(d) = description {
            ca.entity.description = d;
        }
        if let Some(tags) = role_scope_tag_ids {
            check_scope_tags(&tags)?;
            ca.entity.scope_tags = if tags.is_empty() { vec!["0".into()] } else { tags };
        }
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(tx.as_mut(), now, ChangeKind::CaUpdated, id, None, audit::PATCH_CA)?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    /// Completes an external-root CA: `signed` must be a CA certificate for
    /// this CA's key, signed by the first certificate of `chain`, and the
    /// chain must verify up to a self-signed root.
    pub fn upload_signed_certificate(&self, id: &str, signed: &[u8], chain: &[u8]) -> Result<Ca> {
        let cert_der = pem::decode_one(signed, &["CERTIFICATE"])
            .map_err(|e| PkiError::Rejected(format!("signed certificate: {e}")))?;
        let leaf =
            ParsedCert::from_der(&cert_der).map_err(|e| PkiError::Rejected(format!("signed certificate: {e}")))?;
        leaf.check_serial()
            .map_err(|e| PkiError::Rejected(format!("signed certificate: {e}")))?;
        let mut chain_certs = Vec::new();
        let chain_ders =
            pem::decode_all(chain, &["CERTIFICATE"]).map_err(|e| PkiError::Rejected(format!("trust chain: {e}")))?;
        for der in chain_ders {
            chain_certs
                .push(ParsedCert::from_der(&der).map_err(|e| PkiError::Rejected(format!("chain certificate: {e}")))?);
        }
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut ca = self.load_ca(tx.as_mut(), id, now)?;
        lifecycle::check(
            Action::UploadSignedCertificate,
            ca.facts(tx.as_mut(), now, Action::UploadSignedCertificate)?,
        )?;
        let key = self.signer(tx.as_mut(), &ca)?;

        if leaf.tbs().subject_public_key_info != *key.public_key() {
            return Err(PkiError::Rejected("the certificate is not for this CA's key".into()));
        }
        if !leaf.is_ca()? {
            return Err(PkiError::Rejected(
                "the certificate is not a CA certificate (basicConstraints cA / keyCertSign)".into(),
            ));
        }
        let in_validity = |c: &ParsedCert| -> Result<bool> { Ok(c.not_before()? <= now && now < c.not_after()?) };
        if !in_validity(&leaf)? {
            return Err(PkiError::Rejected(
                "the certificate is not within its validity period".into(),
            ));
        }
        let ordered =
            crate::x509::chain::build_path(&leaf, &chain_certs, now).map_err(|e| PkiError::Rejected(e.to_string()))?;
        let signer_cert = &ordered[0];
        let anchor = &ordered[ordered.len() - 1];
        let cert_ekus = leaf.ekus()?;
        if cert_ekus.contains(&oids::ANY_EKU) {
            return Err(PkiError::Rejected("the certificate carries the Any Purpose EKU".into()));
        }
        if !cert_ekus.is_empty() {
            ca.entity.ekus = cert_ekus.iter().map(ToString::to_string).collect();
        }
        ca.entity.status = CaStatus::Active;
        ca.entity.stored_status = CaStatus::Active;
        ca.entity.subject_name = names::graph_subject_name(&leaf.tbs().subject);
        ca.entity.issuer_common_name = names::common_name(&signer_cert.tbs().subject);
        ca.entity.root_common_name = names::common_name(&anchor.tbs().subject);
        ca.entity.issuer_cert_url = leaf.ca_issuers_uri()?;
        ca.entity.version.csr = None;
        ca.row.cert = Some(cert_der);
        ca.row.chain = ordered.into_iter().map(|c| c.der).collect();
        self.save_ca(tx.as_mut(), &mut ca, now)?;
        self.record(tx.as_mut(), now, ChangeKind::CaUpdated, id, None, audit::UPLOAD)?;
        self.commit(tx)?;
        Ok(ca.entity)
    }

    /// The certificates above a CA, issuer first (for chain downloads).
    pub fn ca_chain(&self, id: &str) -> Result<Vec<Vec<u8>>> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.ca(id)?.ok_or_else(|| PkiError::NotFound {
            what: "certification authority",
            id: id.into(),
        })?;
        if !row.chain.is_empty() {
            return Ok(row.chain);
        }
        let mut out = Vec::new();
        let mut parent = row.issuer_id;
        while let Some(pid) = parent {
            let Some(p) = tx.ca(&pid)? else { break };
            if let Some(c) = p.cert {
                out.push(c);
            }
            parent = p.issuer_id;
        }
        Ok(out)
    }

    // ------------------------------------------------------------- leaves
}
