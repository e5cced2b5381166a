//! CRL numbering and signing, for the CRL owner (`crate::crl`), which keeps
//! each scope's entries: the keys stay here. A CA's partitions share its
//! number sequence (reserved durably in blocks), so every scope's numbers
//! grow; each signed CRL is checked before anyone sees it.

use super::*;

impl Pki {
    /// Hands out the next CRL number of a CA, above `above` (the newest
    /// stored). Numbers are reserved durably in blocks, so signing a CRL
    /// waits for no disk write; a restart skips the rest of a block (RFC 5280
    /// requires increasing numbers, not consecutive ones). A block that fell
    /// behind what another signer published (a lead lost and regained on
    /// PostgreSQL) is dropped, and the next one starts past it.
    pub(super) fn next_crl_number(&self, ca_id: &str, above: i64) -> Result<i64> {
        let mut blocks = self.crl_numbers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((next, high)) = blocks.get_mut(ca_id) {
            if *next <= *high && *next > above {
                *next += 1;
                return Ok(*next - 1);
            }
        }
        let mut tx = self.store.begin(TxMode::Write)?;
        let mut high = tx.reserve_crl_numbers(ca_id, CRL_NUMBER_BLOCK)?;
        let mut first = high - CRL_NUMBER_BLOCK + 1;
        if first <= above {
            let behind = above - first + 1;
            high = tx.reserve_crl_numbers(ca_id, behind)?;
            first += behind;
        }
        tx.commit()?;
        blocks.insert(ca_id.to_owned(), (first + 1, high));
        Ok(first)
    }

    /// Signs a new CRL of one scope of `ca_id` listing `entries`, without
    /// storing it: the caller serves it at once and stores it with
    /// [`Pki::store_crl`]. A delta CRL (`scope.delta`) names the complete
    /// CRL `delta_base` it lists the changes since, and the same
    /// distribution point; a complete CRL of a CA with deltas names its delta.
    ///
    /// `basis`: for a complete CRL, the change-log position `entries`
    /// reflect and the digest of the scope they were built from (listed and
    /// expired off). When the store holds no revocation after that position,
    /// the digest must equal the store's for the scope before the CRL is
    /// handed back; a store ahead of it (a storm of revocations) is compared
    /// at the next CRL that catches up.
    pub fn sign_crl(
        &self,
        ca_id: &str,
        scope: CrlScopeKey,
        delta_base: Option<i64>,
        entries: &crl::CrlEntries,
        basis: Option<CrlBasis>,
    ) -> Result<CrlRow> {
        let partition = scope.partition;
        let now = self.clock.now();
        let (ca, key, numbers, mut in_store) = {
            let mut tx = self.store.begin(TxMode::Read)?;
            let ca = self.load_ca(tx.as_mut(), ca_id, now)?;
            let key = self.signer(tx.as_mut(), &ca)?;
            let numbers = tx.crl_numbers(ca_id)?;
            let in_store = match basis {
                Some(b) if !scope.delta && tx.revocation_changes_after(b.known_seq)? == 0 => {
                    Some(scope_digest(tx.as_mut(), &ca, partition)?)
                }
                _ => None,
            };
            (ca, key, numbers, in_store)
        };
        if let (Some(None), Some(b)) = (&in_store, basis) {
            in_store = Some(self.first_scope_digest(ca_id, partition, b.known_seq)?);
        }
        if partition > ca.entity.crl_partitions || (scope.delta && !ca.entity.delta_crls) {
            return Err(PkiError::NotFound {
                what: "CRL",
                id: format!("{ca_id}/{partition}{}", if scope.delta { "-delta" } else { "" }),
            });
        }
        if scope.delta != delta_base.is_some() {
            return Err(PkiError::Invalid("a delta CRL, and only one, names its base".into()));
        }
        let newest = numbers.iter().find(|(s, _)| *s == scope).map(|(_, n)| *n);
        let cert = ca.cert()?;
        // Above every partition's: the sequence is the CA's.
        let above = numbers.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let number = self.next_crl_number(ca_id, above)?;
        let next_update = now + self.settings.timings.crl_validity;
        let dp = ca.entity.urls.crl_partition(partition);
        let delta_url = (ca.entity.delta_crls && !scope.delta).then(|| ca.entity.urls.delta_crl(partition));
        let key_id = cert::key_identifier(key.public_key());
        let as_number = |n: i64| u64::try_from(n).map_err(|_| corrupt("negative CRL number"));
        let params = crl::CrlParams {
            issuer: &cert.tbs().subject,
            issuer_key_id: &key_id,
            number: as_number(number)?,
            this_update: now,
            next_update,
            distribution_point: &dp,
            only_ca_certs: ca.entity.ca_type == CaType::RootCertificationAuthority,
            delta_base: delta_base.map(as_number).transpose()?,
            freshest_crl: delta_url.as_deref(),
        };
        let der = crl::sign_crl(&params, entries, key.as_ref())?;
        // Checked as a relying party would before anyone sees it.
        crl::check_crl(
            &der,
            &crl::CrlExpectation {
                params: &params,
                issuer_key: key.public_key(),
                entries,
                newest_published: newest.and_then(|n| u64::try_from(n).ok()),
            },
        )?;
        if let (Some(Some(in_store)), Some(b)) = (in_store, basis) {
            if crl::check_against_store(b.digest, in_store).is_err() && !scope_is_root(&ca) {
                // The kept digest may itself be off (a revocation by a node of
                // the previous release, during a rolling upgrade): the leaves
                // decide. Computed again from them; a CRL that differs from
                // that is refused.
                if let Some(recomputed) = self.first_scope_digest(ca_id, partition, b.known_seq)? {
                    crl::check_against_store(b.digest, recomputed)?;
                }
            } else {
                crl::check_against_store(b.digest, in_store)?;
            }
        }
        Ok(CrlRow {
            ca_id: ca_id.to_owned(),
            scope,
            number,
            this_update: ts(now),
            next_update: ts(next_update),
            der,
        })
    }

    /// Stores a signed CRL (for other responders and restarts) and logs the change.
    pub fn store_crl(&self, row: &CrlRow) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Write)?;
        tx.put_crl(row)?;
        tx.append_change(ts(now), ChangeKind::CrlPublished, &row.ca_id, None)?;
        self.commit(tx)
    }

    /// Signs and stores a CRL in one call.
    pub fn publish_crl(&self, ca_id: &str, partition: u32, entries: &crl::CrlEntries) -> Result<CrlRow> {
        let row = self.sign_crl(ca_id, CrlScopeKey::complete(partition), None, entries, None)?;
        self.store_crl(&row)?;
        Ok(row)
    }
}

/// What a complete CRL was built from, for the comparison with the store.
#[derive(Debug, Clone, Copy)]
pub struct CrlBasis {
    /// The change-log position its entries reflect.
    pub known_seq: i64,
    /// Its scope's revocations: listed, and expired off it.
    pub digest: crl::SerialDigest,
}

/// The store's digest of one CRL scope: a root's revoked issuing CAs,
/// computed (a handful); an issuing CA's partition, kept with each
/// revocation (None: not kept yet).
fn scope_is_root(ca: &LoadedCa) -> bool {
    ca.entity.ca_type == CaType::RootCertificationAuthority
}

fn scope_digest(tx: &mut dyn Tx, ca: &LoadedCa, partition: u32) -> Result<Option<crl::SerialDigest>> {
    if !scope_is_root(ca) {
        return Ok(tx
            .crl_scope_digest(&ca.row.id, partition)?
            .map(|(entries, sum)| crl::SerialDigest { entries, sum }));
    }
    let mut d = crl::SerialDigest::default();
    for child in tx.revoked_children(&ca.row.id)? {
        if let Some(cert) = child.cert {
            d.add(ParsedCert::from_der(&cert)?.tbs().serial_number.as_bytes());
        }
    }
    Ok(Some(d))
}

impl Pki {
    /// Computes a partition's digest from its leaves and keeps it, so that
    /// revocations count themselves in from now on (once per scope: a scan
    /// of the CA's revoked leaves). In one write transaction, serialised
    /// with revocations; None when a revocation came after `known_seq`.
    fn first_scope_digest(&self, ca_id: &str, partition: u32, known_seq: i64) -> Result<Option<crl::SerialDigest>> {
        let mut tx = self.store.begin(TxMode::Write)?;
        if tx.revocation_changes_after(known_seq)? != 0 {
            return Ok(None);
        }
        let mut d = crl::SerialDigest::default();
        for (serial, _, _) in tx.revoked_in_partition(ca_id, partition)? {
            d.add(&hex_bytes(&serial)?);
        }
        tx.set_crl_scope_digest(ca_id, partition, d.entries, d.sum)?;
        self.commit(tx)?;
        Ok(Some(d))
    }
}

/// What one CRL must say, from the store: where it is published, who
/// signs it, its scope and which serials it must list.
#[derive(Debug, Clone)]
pub struct CrlScope {
    pub ca_id: String,
    /// 0: the CA's `current.crl`; 1..: its partitions.
    pub partition: u32,
    pub url: String,
    /// The CA certificate (DER): its subject and key sign the CRL.
    pub ca_cert: Vec<u8>,
    /// A root's CRL lists revoked issuing CAs only (`onlyContainsCACerts`).
    pub only_ca_certs: bool,
    /// The number of the newest CRL stored for this scope.
    pub stored_number: Option<i64>,
    /// Where its delta CRL is, when the CA publishes deltas: the complete
    /// CRL and the delta together must list what the store says.
    pub delta_url: Option<String>,
    /// Every revoked certificate in scope: serial (INTEGER contents) ->
    /// its notAfter (unix seconds).
    pub revoked: std::collections::BTreeMap<Vec<u8>, i64>,
    /// Seconds an entry stays past notAfter beyond the one CRL RFC 5280
    /// requires: an entry may be absent once its notAfter plus this is
    /// before the CRL's thisUpdate.
    pub keep_expired: i64,
}

impl Pki {
    /// Every CRL scope (each CA's `current.crl` and partitions) of every CA
    /// with a certificate (of one CA when `ca_id` is given).
    pub fn crl_scopes(&self, ca_id: Option<&str>) -> Result<Vec<CrlScope>> {
        let now = self.clock.now();
        let mut tx = self.store.begin(TxMode::Read)?;
        let rows = match ca_id {
            Some(id) => vec![self.load_ca(tx.as_mut(), id, now)?.row],
            None => tx.cas()?,
        };
        let mut out = Vec::new();
        for row in rows {
            let Some(cert) = row.cert.clone() else { continue };
            let ca = self.ca_record(&row, now)?;
            let mut revoked = vec![std::collections::BTreeMap::new(); ca.crl_partitions as usize + 1];
            if ca.ca_type == CaType::RootCertificationAuthority {
                for child in tx.revoked_children(&row.id)? {
                    if let Some(c) = child.cert {
                        let c = ParsedCert::from_der(&c)?;
                        revoked[0].insert(c.tbs().serial_number.as_bytes().to_vec(), ts(c.not_after()?));
                    }
                }
            } else {
                let mut after = 0;
                loop {
                    let page = tx.leaves(&LeafQuery {
                        ca_id: Some(row.id.clone()),
                        filter: LeafFilter::Revoked,
                        after_seq: after,
                        limit: 5000,
                    })?;
                    let Some(last) = page.last() else { break };
                    after = last.seq;
                    for leaf in &page {
                        let scope = usize::try_from(leaf.crl_partition)
                            .ok()
                            .and_then(|p| revoked.get_mut(p))
                            .ok_or_else(|| {
                                corrupt(format!("leaf {}: CRL partition {}", leaf.id, leaf.crl_partition))
                            })?;
                        scope.insert(hex_bytes(&leaf.serial)?, leaf.not_after);
                    }
                }
            }
            let numbers = tx.crl_numbers(&row.id)?;
            for (partition, revoked) in (0u32..).zip(revoked) {
                out.push(CrlScope {
                    stored_number: numbers
                        .iter()
                        .find(|(s, _)| *s == CrlScopeKey::complete(partition))
                        .map(|(_, n)| *n),
                    delta_url: ca.delta_crls.then(|| ca.urls.delta_crl(partition)),
                    ca_id: row.id.clone(),
                    partition,
                    url: ca.urls.crl_partition(partition),
                    ca_cert: cert.clone(),
                    only_ca_certs: ca.ca_type == CaType::RootCertificationAuthority,
                    revoked,
                    keep_expired: self.settings.timings.crl_keep_expired.whole_seconds(),
                });
            }
        }
        Ok(out)
    }
}
