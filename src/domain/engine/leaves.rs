//! Leaf certificates: issuance (one or in bulk), reads and paging,
//! revocation (one, by serial, many, all of a CA).

use super::*;

fn leaf_filter(status: Option<LeafStatus>, now: OffsetDateTime) -> LeafFilter {
    match status {
        None => LeafFilter::All,
        Some(LeafStatus::Active) => LeafFilter::Active { now: ts(now) },
        Some(LeafStatus::Revoked) => LeafFilter::Revoked,
        Some(LeafStatus::Expired) => LeafFilter::Expired { now: ts(now) },
    }
}

impl Pki {
    /// Checks a CSR and the CA's permission to issue for it; returns what the
    /// certificate will be built from.
    pub(super) fn prepare_leaf(
        &self,
        ca: &LoadedCa,
        request: &NewLeaf,
    ) -> Result<(csr::VerifiedCsr, Vec<ObjectIdentifier>, String)> {
        let csr = csr::verify(&request.csr, MIN_LEAF_STRENGTH)
            .map_err(|e| PkiError::Rejected(format!("certificate signing request: {e}")))?;
        if csr.subject.0.is_empty() && csr.subject_alt_name.is_none() {
            return Err(PkiError::Rejected(
                "the request has neither a subject nor a subjectAltName".into(),
            ));
        }
        let ca_ekus = ca.ekus()?;
        let ekus = if csr.requested_ekus.is_empty() {
            ca_ekus
        } else {
            if let Some(missing) = csr.requested_ekus.iter().find(|e| !ca_ekus.contains(e)) {
                return Err(PkiError::Rejected(format!(
                    "the CA does not have the requested EKU {missing}"
                )));
            }
            csr.requested_ekus.clone()
        };
        let platform = match &request.device_platform {
            None => "Unknown",
            Some(p) => device_platform(p).ok_or_else(|| PkiError::Invalid(format!("unknown devicePlatform {p:?}")))?,
        };
        Ok((csr, ekus, platform.to_owned()))
    }

    pub(super) fn build_leaf(
        &self,
        tx: &mut dyn Tx,
        keys: &IssuingKeys<'_>,
        prepared: &(csr::VerifiedCsr, Vec<ObjectIdentifier>, String),
        request: &NewLeaf,
        now: OffsetDateTime,
    ) -> Result<(Leaf, Vec<u8>)> {
        let IssuingKeys {
            ca,
            ca_cert,
            signer,
            responder,
        } = keys;
        let (ca, ca_cert, signer, responder) = (*ca, ca_cert, signer.as_ref(), responder.as_ref());
        let (csr, ekus, platform) = prepared;
        let ca_end = ca
            .entity
            .version
            .not_after
            .ok_or_else(|| corrupt("CA without validity"))?;
        let days = request.validity_days.unwrap_or(365).clamp(1, 3650);
        let not_before = now - BACKDATE;
        let not_after = (now + Duration::days(i64::from(days))).min(ca_end);
        let urls = &ca.entity.urls;
        let key_usage = if request.key_usages.is_empty() {
            cert::leaf_key_usage(&csr.public_key)
        } else {
            cert::leaf_key_usage_named(&request.key_usages, &csr.public_key).map_err(PkiError::Rejected)?
        };
        let mut req = CertRequest {
            serial: Vec::new(),
            subject: csr.subject.clone(),
            issuer: ca_cert.tbs().subject.clone(),
            issuer_key_id: cert::key_identifier(signer.public_key()),
            public_key: csr.public_key.clone(),
            not_before,
            not_after,
            role: CertRole::EndEntity,
            key_usage,
            ekus: ekus.clone(),
            pointers: None,
            subject_alt_name: csr.subject_alt_name.clone(),
        };
        // A 127-bit random serial collides with negligible probability; the
        // unique index turns the impossible case into a retry, not a duplicate.
        for _ in 0..3 {
            req.serial = cert::random_serial()?;
            // The partition is fixed here, named in the certificate and stored.
            let partition = crl_partition_of(&req.serial, ca.entity.crl_partitions);
            req.pointers = Some(RevocationPointers {
                crl_url: urls.crl_partition(partition),
                delta_crl_url: ca.entity.delta_crls.then(|| urls.delta_crl(partition)),
                ca_issuers_url: urls.certificate.clone(),
                ocsp_url: Some(urls.ocsp.clone()),
            });
            let der = cert::issue(&req, signer)?;
            let id = uuid::Uuid::new_v4().to_string();
            let serial = crate::x509::hex_upper(&req.serial);
            let row = LeafRow {
                seq: 0,
                id: id.clone(),
                ca_id: ca.row.id.clone(),
                ca_version: i64::from(ca.entity.version.number),
                serial,
                subject_name: names::graph_subject_name(&csr.subject),
                issuer_name: names::graph_issuer_name(&ca_cert.tbs().subject),
                not_before: ts(not_before),
                not_after: ts(not_after),
                thumbprint: crate::x509::thumbprint(&der),
                revoked_at: None,
                revocation_reason: None,
                device_name: request.device_name.clone(),
                user_principal_name: request.user_principal_name.clone(),
                device_id: request.device_id.clone(),
                user_id: request.user_id.clone(),
                device_platform: platform.clone(),
                key_usages: cert::key_usage_names(&req.key_usage),
                ekus: ekus.iter().map(ToString::to_string).collect(),
                der: der.clone(),
                // A new certificate has its signed answer from the moment it exists.
                ocsp: Some(self.presign(ca_cert, responder, &req.serial, ocsp::Status::Good, Presign::Sha1, now)?),
                crl_partition: i64::from(partition),
            };
            match tx.insert_leaf(&row) {
                Ok(_) => {
                    self.record(
                        tx,
                        now,
                        ChangeKind::LeafIssued,
                        &ca.row.id,
                        Some(&id),
                        audit::ISSUE_LEAF,
                    )?;
                    return Ok((self.leaf_record(&row, now)?, der));
                }
                Err(StoreError::DuplicateSerial) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(PkiError::Store(StoreError::Backend(
            "could not find a free serial number".into(),
        )))
    }

    /// Issues one leaf certificate from a PKCS#10 request.
    pub fn issue_leaf(&self, ca_id: &str, request: &NewLeaf) -> Result<(Leaf, Vec<u8>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        lifecycle::check(Action::IssueLeaf, ca.facts(tx.as_mut(), now, Action::IssueLeaf)?)?;
        let prepared = self.prepare_leaf(&ca, request)?;
        let signer = self.signer(tx.as_mut(), &ca)?;
        let responder = self.responder(tx.as_mut(), &ca, now)?;
        let keys = IssuingKeys {
            ca: &ca,
            ca_cert: ca.cert()?,
            signer,
            responder,
        };
        let out = self.build_leaf(tx.as_mut(), &keys, &prepared, request, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    /// Issues `count` leaves for one request, committing every `batch`
    /// (load-test fixtures and benchmarks). `on_batch` sees each committed batch.
    pub fn issue_leaves_bulk(
        &self,
        ca_id: &str,
        request: &NewLeaf,
        count: u64,
        batch: u64,
        on_batch: &mut dyn FnMut(&[Leaf]),
    ) -> Result<u64> {
        let mut issued = 0;
        while issued < count {
            let now = self.clock.now();
            let mut tx = self.store.begin(TxMode::Write)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            lifecycle::check(Action::IssueLeaf, ca.facts(tx.as_mut(), now, Action::IssueLeaf)?)?;
            let prepared = self.prepare_leaf(&ca, request)?;
            let signer = self.signer(tx.as_mut(), &ca)?;
            let responder = self.responder(tx.as_mut(), &ca, now)?;
            let keys = IssuingKeys {
                ca: &ca,
                ca_cert: ca.cert()?,
                signer,
                responder,
            };
            let n = batch.max(1).min(count - issued);
            let mut done = Vec::with_capacity(n as usize);
            for _ in 0..n {
                done.push(self.build_leaf(tx.as_mut(), &keys, &prepared, request, now)?.0);
            }
            self.commit(tx)?;
            issued += n;
            on_batch(&done);
        }
        Ok(issued)
    }

    pub fn get_leaf(&self, id: &str) -> Result<(Leaf, Vec<u8>)> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        Ok((self.leaf_record(&row, now)?, row.der))
    }

    /// Finds a leaf by serial number (any case, with or without `00`).
    pub fn find_leaf_by_serial(&self, ca_id: Option<&str>, serial: &str) -> Result<Leaf> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let row = self.leaf_row_by_serial(tx.as_mut(), ca_id, serial)?;
        self.leaf_record(&row, now)
    }

    pub(super) fn leaf_row_by_serial(&self, tx: &mut dyn Tx, ca_id: Option<&str>, serial: &str) -> Result<LeafRow> {
        let canonical = crate::x509::normalize_serial(serial)
            .ok_or_else(|| PkiError::Invalid(format!("{serial:?} is not a hexadecimal serial number")))?;
        let mut rows = tx.leaves_by_serial(ca_id, &canonical)?;
        match rows.len() {
            0 => Err(PkiError::NotFound {
                what: "leaf certificate with serial number",
                id: canonical,
            }),
            1 => Ok(rows.remove(0)),
            _ => Err(PkiError::AmbiguousSerial(canonical)),
        }
    }

    /// One page of leaves, in issuance order.
    pub fn list_leaves(&self, q: &LeafListQuery) -> Result<Vec<(i64, Leaf)>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        if let Some(ca) = &q.ca_id {
            self.load_ca(tx.as_mut(), ca, now)?;
        }
        let rows = tx.leaves(&LeafQuery {
            ca_id: q.ca_id.clone(),
            filter: leaf_filter(q.status, now),
            after_seq: q.after_seq,
            limit: q.limit,
        })?;
        rows.iter().map(|r| Ok((r.seq, self.leaf_record(r, now)?))).collect()
    }

    /// One page of a CA's leaves in an index order; each with the cursor to
    /// continue after it, and the instant statuses were judged at.
    pub fn leaf_page(&self, q: &LeafPageRequest) -> Result<(Vec<(Leaf, LeafCursor)>, i64)> {
        let at = match q.at {
            Some(t) => from_ts(t)?,
            None => self.clock.now(),
        };
        let mut tx = self.store.begin(TxMode::Read)?;
        self.load_ca(tx.as_mut(), &q.ca_id, at)?;
        let rows = tx.leaf_page(&LeafPage {
            ca_id: q.ca_id.clone(),
            order: q.order,
            descending: q.descending,
            statuses: LeafStatuses {
                active: q.active,
                expired: q.expired,
                revoked: q.revoked,
                now: ts(at),
            },
            after: q.after.clone(),
            offset: q.skip,
            limit: q.limit,
        })?;
        let leaves = rows
            .into_iter()
            .map(|(r, c)| Ok((self.leaf_record(&r, at)?, c)))
            .collect::<Result<Vec<_>>>()?;
        Ok((leaves, ts(at)))
    }

    /// How many leaves of a CA have one of the admitted statuses at `at`.
    pub fn count_leaves_in(&self, ca_id: &str, active: bool, expired: bool, revoked: bool, at: i64) -> Result<u64> {
        let mut tx = self.store.begin(TxMode::Read)?;
        let mut n = 0;
        for (on, filter) in [
            (active, LeafFilter::Active { now: at }),
            (expired, LeafFilter::Expired { now: at }),
            (revoked, LeafFilter::Revoked),
        ] {
            if on {
                n += tx.count_leaves(Some(ca_id), filter)?;
            }
        }
        Ok(n)
    }

    pub fn count_leaves(&self, ca_id: Option<&str>, status: Option<LeafStatus>) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        Ok(tx.count_leaves(ca_id, leaf_filter(status, now))?)
    }

    pub(super) fn revoke_row(
        &self,
        tx: &mut dyn Tx,
        row: &LeafRow,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<Leaf> {
        let ca = self.load_ca(tx, &row.ca_id, now)?;
        lifecycle::check(Action::RevokeLeaf, ca.facts(tx, now, Action::RevokeLeaf)?)?;
        self.revoke_rows(tx, &ca, std::slice::from_ref(row), reason, now)?
            .pop()
            .ok_or_else(|| corrupt("a revocation returned no leaf"))
    }

    /// Revokes unrevoked leaves of one CA, already checked against the
    /// lifecycle rules in `tx`: the CA's OCSP key is read once and the
    /// answers are signed on every core.
    fn revoke_rows(
        &self,
        tx: &mut dyn Tx,
        ca: &LoadedCa,
        rows: &[LeafRow],
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<Vec<Leaf>> {
        if let Some(row) = rows.iter().find(|r| r.ca_id != ca.row.id) {
            return Err(corrupt(format!("leaf {} is not of CA {}", row.id, ca.row.id)));
        }
        if let Some(row) = rows.iter().find(|r| r.revoked_at.is_some()) {
            return Err(PkiError::AlreadyRevoked(row.id.clone()));
        }
        let key = self.responder(tx, ca, now)?;
        let serials = rows.iter().map(|r| hex_bytes(&r.serial)).collect::<Result<Vec<_>>>()?;
        let status = ocsp::Status::Revoked { at: now, reason };
        let presigned = self.presign_many(&ca.cert()?, key.as_ref(), &serials, status, Presign::Sha1, now)?;
        let mut out = Vec::with_capacity(rows.len());
        for (row, answers) in rows.iter().zip(presigned) {
            // Revoked meanwhile (the row was read in this transaction: only
            // the same transaction could have).
            if !tx.revoke_leaf(&row.id, ts(now), reason, &answers)? {
                return Err(PkiError::AlreadyRevoked(row.id.clone()));
            }
            // Counted into its CRL scope's digest, which each CRL is
            // compared with before it is served.
            let partition = u32::try_from(row.crl_partition).map_err(|_| corrupt("negative CRL partition"))?;
            tx.add_to_crl_scope_digest(
                &row.ca_id,
                partition,
                crl::SerialDigest::of_serial(&hex_bytes(&row.serial)?),
            )?;
            // The audit row carries the CA's scope tags as stored.
            self.record_tagged(
                tx,
                now,
                ChangeKind::LeafRevoked,
                (&row.ca_id, &ca.row.scope_tags),
                Some(&row.id),
                audit::REVOKE_LEAF,
            )?;
            let mut revoked = row.clone();
            revoked.revoked_at = Some(ts(now));
            revoked.revocation_reason = Some(reason);
            out.push(self.leaf_record(&revoked, now)?);
        }
        Ok(out)
    }

    /// Revokes one leaf by id. Revoking twice is an error, not a second entry.
    pub fn revoke_leaf(&self, id: &str, ca_id: Option<&str>, reason: RevocationReason) -> Result<Leaf> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        if ca_id.is_some_and(|c| c != row.ca_id) {
            return Err(PkiError::NotFound {
                what: "leaf certificate of this CA",
                id: id.into(),
            });
        }
        let out = self.revoke_row(tx.as_mut(), &row, reason, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    pub fn revoke_leaf_by_serial(&self, ca_id: Option<&str>, serial: &str, reason: RevocationReason) -> Result<Leaf> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = self.leaf_row_by_serial(tx.as_mut(), ca_id, serial)?;
        let out = self.revoke_row(tx.as_mut(), &row, reason, now)?;
        self.commit(tx)?;
        Ok(out)
    }

    /// Revokes the given leaves in one transaction: all or none.
    pub fn revoke_leaves(&self, ids: &[String], reason: RevocationReason) -> Result<Vec<Leaf>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
                what: "leaf certificate",
                id: id.clone(),
            })?;
            out.push(self.revoke_row(tx.as_mut(), &row, reason, now)?);
        }
        self.commit(tx)?;
        Ok(out)
    }

    /// Revokes every active leaf of a CA (at most `limit`, oldest first),
    /// committing every `batch` leaves; `on_batch` is called after each
    /// commit with what it made durable.
    pub fn revoke_all_leaves(
        &self,
        ca_id: &str,
        reason: RevocationReason,
        batch: u32,
        limit: Option<u64>,
        on_batch: &mut dyn FnMut(&[Leaf]),
    ) -> Result<u64> {
        let mut total = 0;
        loop {
            let left = limit.map_or(u64::MAX, |l| l.saturating_sub(total));
            if left == 0 {
                return Ok(total);
            }
            let batch = u32::try_from(left).map_or(batch, |left| batch.min(left));
            let now = self.clock.now();
            let mut tx = self.store.begin(TxMode::Write)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            lifecycle::check(Action::RevokeLeaf, ca.facts(tx.as_mut(), now, Action::RevokeLeaf)?)?;
            let rows = tx.leaves(&LeafQuery {
                ca_id: Some(ca_id.to_owned()),
                filter: LeafFilter::Active { now: ts(now) },
                after_seq: 0,
                limit: batch.max(1),
            })?;
            if rows.is_empty() {
                return Ok(total);
            }
            let done = self.revoke_rows(tx.as_mut(), &ca, &rows, reason, now)?;
            self.commit(tx)?;
            total += done.len() as u64;
            on_batch(&done);
        }
    }

    /// Graph PATCH on a leaf. Every leaf property is read-only in Graph
    /// (device and user are what issuance recorded), so nothing changes: the
    /// request is audited, as PATCH on a CA is, and the leaf returned as is.
    pub fn update_leaf(&self, id: &str) -> Result<Leaf> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let row = tx.leaf(id)?.ok_or_else(|| PkiError::NotFound {
            what: "leaf certificate",
            id: id.into(),
        })?;
        let e = self.leaf_record(&row, now)?;
        let tags = stored_scope_tags(tx.as_mut(), &row.ca_id)?;
        tx.append_audit(&audit_row(
            now,
            audit::PATCH_LEAF,
            ("CloudCertificationAuthorityLeafCertificate", id),
            "success",
            "",
            &tags,
        ))?;
        self.commit(tx)?;
        Ok(e)
    }

    // ------------------------------------------------- revocation data
}
