//! OCSP: the responder key of each CA (its own key or a delegated OCSP
//! signing certificate, issued and rotated here), pre-signing answers when a
//! certificate is issued or revoked, and the periodic refresh.

use super::*;

/// The key that signs OCSP answers for one CA, with its certificate when delegated.
pub struct OcspResponder {
    /// Any `Signer`: a software key today, an HSM key tomorrow.
    pub key: Arc<dyn Signer>,
    pub cert: Option<Arc<x509_cert::Certificate>>,
    pub not_after: Option<OffsetDateTime>,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder")
            .field("delegated", &self.cert.is_some())
            .finish_non_exhaustive()
    }
}

impl OcspResponder {
    /// Whether it may sign now: a delegated certificate past its notAfter
    /// signs nothing (a keyless responder then answers as one without key).
    pub fn usable_now(&self) -> bool {
        self.not_after.is_none_or(|t| t > OffsetDateTime::now_utc())
    }

    pub fn as_key(&self) -> ocsp::ResponderKey<'_> {
        ocsp::ResponderKey {
            signer: self.key.as_ref(),
            delegated_cert: self.cert.as_deref(),
        }
    }
}

/// Which CertID hashes are pre-signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Presign {
    /// A leaf's: SHA-256 is signed on demand.
    Sha1,
    /// A CA certificate's.
    Sha1AndSha256,
}

impl Pki {
    /// Signs the OCSP answers for one certificate of `issuer` (see
    /// [`Pki::presign_many`]).
    pub(super) fn presign(
        &self,
        issuer: &ParsedCert,
        key: &OcspResponder,
        serial: &[u8],
        status: ocsp::Status,
        with: Presign,
        now: OffsetDateTime,
    ) -> Result<Presigned> {
        self.presign_many(issuer, key, &[serial], status, with, now)?
            .pop()
            .ok_or_else(|| corrupt("no OCSP answer signed"))
    }

    /// Pre-signs the answers of many certificates of one issuer at once, on
    /// every core: in a mass revocation the signatures are the cost. The
    /// issuer's hashes are computed once. A leaf gets its SHA-1 CertID answer
    /// only (RFC 5019's hash, what clients send): one signature per change
    /// instead of two, and half the memory per certificate at the responder,
    /// which signs a SHA-256 one on demand and keeps it (ARCHITECTURE.md).
    pub(super) fn presign_many(
        &self,
        issuer: &ParsedCert,
        key: &OcspResponder,
        serials: &[impl AsRef<[u8]> + Sync],
        status: ocsp::Status,
        with: Presign,
        now: OffsetDateTime,
    ) -> Result<Vec<Presigned>> {
        let t = &self.settings.timings;
        let sha1 = ocsp::IssuerHashes::of(&issuer.cert, ocsp::CertIdHash::Sha1)?;
        let sha256 = match with {
            Presign::Sha1AndSha256 => Some(ocsp::IssuerHashes::of(&issuer.cert, ocsp::CertIdHash::Sha256)?),
            Presign::Sha1 => None,
        };
        // Never valid past the delegated certificate that signs it.
        let next_update = key
            .not_after
            .map_or(now + t.ocsp_validity, |end| (now + t.ocsp_validity).min(end));
        let sign = |serial: &[u8]| -> Result<Presigned> {
            let responder = key.as_key();
            let one = |h: &ocsp::IssuerHashes| -> Result<Vec<u8>> {
                let answer = ocsp::SingleAnswer {
                    cert_id: h.cert_id(serial)?,
                    status,
                    this_update: now,
                    next_update,
                };
                Ok(ocsp::sign_response(&responder, &[answer], None, now)?)
            };
            Ok(Presigned {
                sha1: one(&sha1)?,
                sha256: sha256.as_ref().map(one).transpose()?,
                this_update: ts(now),
                next_update: Some(ts(next_update)),
            })
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
        if threads < 2 || serials.len() < 64 {
            return serials.iter().map(|s| sign(s.as_ref())).collect();
        }
        let chunk = serials.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = serials
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|s| sign(s.as_ref())).collect::<Result<Vec<_>>>()))
                .collect();
            let mut out = Vec::with_capacity(serials.len());
            for w in workers {
                out.extend(w.join().map_err(|_| corrupt("an OCSP signing thread panicked"))??);
            }
            Ok(out)
        })
    }

    /// The OCSP answers about an issuing CA's own certificate, signed by its root.
    pub(super) fn presign_ca_cert(
        &self,
        tx: &mut dyn Tx,
        ca: &CaRow,
        now: OffsetDateTime,
    ) -> Result<Option<Presigned>> {
        let (Some(parent_id), Some(cert)) = (&ca.issuer_id, &ca.cert) else {
            return Ok(None);
        };
        let parent = self.load_ca(tx, parent_id, now)?;
        let key = self.responder(tx, &parent, now)?;
        let serial = ParsedCert::from_der(cert)?.tbs().serial_number.as_bytes().to_vec();
        let status = ocsp::Status::from_revocation(ca.revoked_at, ca.revocation_reason)?;
        // Few and asked for by every chain check: both hashes pre-signed.
        Ok(Some(self.presign(
            &parent.cert()?,
            key.as_ref(),
            &serial,
            status,
            Presign::Sha1AndSha256,
            now,
        )?))
    }

    /// The key (and, when delegated, certificate) that signs OCSP answers
    /// about `ca_id`'s certificates, for answers made on demand (nonces,
    /// unknown serials). Issues or rotates the delegated certificate if due.
    pub fn ocsp_responder(&self, ca_id: &str) -> Result<Arc<OcspResponder>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
        let r = self.responder(tx.as_mut(), &ca, now)?;
        self.commit(tx)?;
        Ok(r)
    }

    /// The OCSP responder key of a CA: the CA key itself, or a delegated
    /// OCSP signing certificate the CA issues and rotates (per the data
    /// directory's `ocsp_signer` setting).
    pub(super) fn responder(&self, tx: &mut dyn Tx, ca: &LoadedCa, now: OffsetDateTime) -> Result<Arc<OcspResponder>> {
        if self.settings.ocsp_signing == OcspSigning::CaKey {
            return Ok(Arc::new(OcspResponder {
                key: self.signer(tx, ca)?,
                cert: None,
                not_after: None,
            }));
        }
        let id = &ca.row.id;
        let rotate_before = now + DELEGATE_ROTATE_BEFORE;
        let cached = self
            .delegates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(r) = cached.filter(|r| r.not_after.is_some_and(|t| t > rotate_before)) {
            return Ok(r);
        }
        let stored = tx.ocsp_delegate(id)?;
        let fresh = match stored {
            Some(DelegateRow {
                cert,
                sealed_key: sealed,
                not_after,
            }) if from_ts(not_after)? > rotate_before => {
                let pkcs8 = self.unseal(SealedKind::OcspDelegateKey, id, &sealed)?;
                let key = SoftwareKey::from_pkcs8(ca.entity.key_algorithm, ca.entity.hash_algorithm, &pkcs8)?;
                let cert = ParsedCert::from_der(&cert)?;
                OcspResponder {
                    key: Arc::new(key),
                    cert: Some(Arc::new(cert.cert)),
                    not_after: Some(from_ts(not_after)?),
                }
            }
            _ => {
                let ca_key = self.signer(tx, ca)?;
                let ca_end = ca
                    .entity
                    .version
                    .not_after
                    .ok_or_else(|| corrupt("CA without validity"))?;
                let not_after = (now + DELEGATE_VALIDITY).min(ca_end);
                if not_after <= now + self.settings.timings.ocsp_validity {
                    // Too close to the CA's end for a useful delegate: sign with the CA key.
                    return Ok(Arc::new(OcspResponder {
                        key: ca_key,
                        cert: None,
                        not_after: None,
                    }));
                }
                let (key, pkcs8) = SoftwareKey::generate(ca.entity.key_algorithm, ca.entity.hash_algorithm)?;
                let cn = format!("{} OCSP Responder", ca.entity.subject.common_name);
                let der =
                    self.delegated_ocsp_cert(ca, ca_key.as_ref(), key.public_key().clone(), &cn, now, not_after)?;
                let sealed = self.seal_in(tx, SealedKind::OcspDelegateKey, id, &pkcs8)?;
                tx.put_ocsp_delegate(id, &der, &sealed, ts(not_after))?;
                let cert = ParsedCert::from_der(&der)?;
                OcspResponder {
                    key: Arc::new(key),
                    cert: Some(Arc::new(cert.cert)),
                    not_after: Some(not_after),
                }
            }
        };
        let fresh = Arc::new(fresh);
        self.delegates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), fresh.clone());
        Ok(fresh)
    }

    /// A delegated OCSP responder certificate (id-kp-OCSPSigning,
    /// id-pkix-ocsp-nocheck) for `public_key`, issued by `ca`: the CA's
    /// subject with `common_name` as its CN.
    pub(super) fn delegated_ocsp_cert(
        &self,
        ca: &LoadedCa,
        ca_key: &dyn Signer,
        public_key: spki::SubjectPublicKeyInfoOwned,
        common_name: &str,
        now: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Vec<u8>> {
        let ca_cert = ca.cert()?;
        let mut subject = ca_cert.tbs().subject.clone();
        subject.0.retain(|rdn| !rdn.0.iter().any(|a| a.oid == oids::CN));
        subject.0.extend(
            SubjectParts {
                common_name: common_name.to_owned(),
                ..Default::default()
            }
            .to_name()?
            .0,
        );
        Ok(cert::issue(
            &CertRequest {
                serial: cert::random_serial()?,
                subject,
                issuer: ca_cert.tbs().subject.clone(),
                issuer_key_id: cert::key_identifier(ca_key.public_key()),
                public_key,
                not_before: now - BACKDATE,
                not_after,
                role: CertRole::OcspResponder,
                key_usage: x509_cert::ext::pkix::KeyUsage(x509_cert::ext::pkix::KeyUsages::DigitalSignature.into()),
                ekus: vec![oids::KP_OCSP_SIGNING],
                pointers: None,
                subject_alt_name: None,
            },
            ca_key,
        )?)
    }

    /// Re-signs pre-signed OCSP answers older than the refresh age: up to
    /// `limit` leaves, plus CA certificates' own answers. Returns how many
    /// answers were refreshed. Each CA's batch is one change-log entry.
    pub fn refresh_ocsp(&self, limit: u32) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = ts(now - self.settings.timings.ocsp_refresh_after);
        let mut tx = self.store.begin(TxMode::Write)?;
        let due = tx.leaves_due_for_ocsp(cutoff, limit)?;
        let mut by_ca: HashMap<String, Vec<LeafStatusRow>> = HashMap::new();
        for row in due {
            by_ca.entry(row.ca_id.clone()).or_default().push(row);
        }
        let mut refreshed = 0;
        for (ca_id, rows) in by_ca {
            let Some(ca_row) = tx.ca(&ca_id)? else {
                continue;
            };
            let ca = LoadedCa {
                entity: self.ca_record(&ca_row, now)?,
                row: ca_row,
            };
            let key = self.responder(tx.as_mut(), &ca, now)?;
            let cert = ca.cert()?;
            let seq = tx.append_change(ts(now), ChangeKind::OcspRefreshed, &ca_id, None)?;
            for row in rows {
                let serial = hex_bytes(&row.serial)?;
                let status = ocsp::Status::from_revocation(row.revoked_at, row.revocation_reason)?;
                let p = self.presign(&cert, key.as_ref(), &serial, status, Presign::Sha1, now)?;
                tx.set_leaf_ocsp(&row.id, &p, seq)?;
                refreshed += 1;
            }
        }
        for ca_row in tx.cas()? {
            let stale = ca_row
                .ocsp
                .as_ref()
                .map_or(ca_row.issuer_id.is_some(), |o| o.this_update < cutoff);
            if !stale || ca_row.cert.is_none() {
                continue;
            }
            let Some(fresh) = self.presign_ca_cert(tx.as_mut(), &ca_row, now)? else {
                continue;
            };
            let mut ca = LoadedCa {
                entity: self.ca_record(&ca_row, now)?,
                row: ca_row,
            };
            ca.row.ocsp = Some(fresh);
            let id = ca.row.id.clone();
            self.save_ca(tx.as_mut(), &mut ca, now)?;
            tx.append_change(ts(now), ChangeKind::CaUpdated, &id, None)?;
            refreshed += 1;
        }
        if refreshed > 0 {
            self.commit(tx)?;
        }
        Ok(refreshed)
    }
}
