//! Builds snapshots and keeps them current.
//!
//! One thread owns this work: it loads everything once, then follows the
//! store's change log (woken at once by commits in this process, and every
//! `poll` interval for commits made by other processes), applies each change
//! to a copy of the snapshot, swaps it in, then re-signs the CRLs the batch
//! touched and swaps again. Revocations that arrive while a CRL is being
//! signed are folded into the next CRL: a storm coalesces instead of queueing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use der::{Decode, Encode};
use time::OffsetDateTime;

use super::{CaParts, CaState, CertState, CrlDocument, CrlScopeKey, Published, SerialKey, Snapshot};
use crate::crl::{CrlBook, Scope, Served};
use crate::domain::engine::{hex_bytes, EdgeKey};
use crate::domain::{Pki, PkiError};
use crate::observability::Metrics;
use crate::store::{CaRow, ChangeKind, LeafStatusRow, StoreError, TxMode};
use crate::x509::ocsp::Status;
use crate::x509::X509Error;

/// Wakes the maintainer.
#[derive(Debug, Default)]
pub struct Wake {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    pub fn notify(&self) {
        *self.flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_one();
    }

    fn wait(&self, timeout: Duration) {
        let guard = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |woken| !*woken)
            .unwrap_or_else(|p| p.into_inner());
        *guard = false;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    X509(#[from] X509Error),
    #[error("encoding partitions.json: {0}")]
    Json(String),
}

type Result<T> = std::result::Result<T, MaintainError>;

/// How often due OCSP answers are looked for, and how many are re-signed
/// per round (20k a minute: 1M due answers are refreshed in under an hour,
/// while they stay valid for days).
const REFRESH_EVERY: Duration = Duration::from_secs(60);
const REFRESH_PER_ROUND: u32 = 20_000;
const REFRESH_BATCH: u32 = 500;

/// A round that applies this many changes starts (or prolongs by a second)
/// a storm, during which each CRL is re-signed at most every
/// `crl::STORM_INTERVAL`.
const STORM_CHANGES: usize = 16;

/// How often the signing leader looks for responder certificates to issue
/// or renew (approval takes effect within this; renewal windows are hours).
const EDGE_RENEW_EVERY: Duration = Duration::from_secs(2);

/// How often a responder with a key of its own tells the store it is alive
/// (its certificates stop being renewed after a lifetime of silence).
const SEEN_EVERY: Duration = Duration::from_secs(3600);

/// How often the disk copy is told the snapshot is still current when
/// nothing changed: after a restart from disk, its age counts from there.
const DISK_MARK_EVERY: Duration = Duration::from_secs(10);

pub struct Maintainer {
    pki: Arc<Pki>,
    published: Published,
    sync: Arc<super::SyncState>,
    metrics: Arc<Metrics>,
    wake: Arc<Wake>,
    crls: CrlBook,
    snapshot: Snapshot,
    /// How often to look for changes made by other processes.
    pub poll: Duration,
    last_refresh: Instant,
    /// Whether this node led the signing work in the last round.
    leading: bool,
    /// Until when the current storm of changes lasts.
    storm_until: Instant,
    /// A keyless responder's own OCSP key (see `domain::engine::edge`).
    edge: Option<Arc<EdgeKey>>,
    last_edge_renewal: Instant,
    /// A responder's copy of its snapshot on local disk, and what changed
    /// since the last round written there.
    disk: Option<super::disk::DiskWriter>,
    dirty: super::disk::Dirty,
    /// When the disk copy last heard the snapshot was current.
    last_disk_mark: Instant,
    /// When this responder last told the store it is alive.
    last_seen_mark: Instant,
}

fn ts(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// The served state of pre-signed answers. Their nextUpdate is the signed
/// one; `validity` (this node's setting) only dates rows signed before it
/// was stored.
fn cert_state(status: Status, ocsp: crate::store::Presigned, validity: time::Duration) -> CertState {
    let next_update = ocsp.next_update.unwrap_or(ocsp.this_update + validity.whole_seconds());
    CertState::new(
        status,
        ocsp.this_update,
        next_update,
        &ocsp.sha1,
        ocsp.sha256.map(Bytes::from),
    )
}

fn leaf_status(row: &LeafStatusRow) -> Result<Status> {
    Ok(Status::from_revocation(row.revoked_at, row.revocation_reason)?)
}

impl Maintainer {
    pub fn new(
        pki: Arc<Pki>,
        published: Published,
        sync: Arc<super::SyncState>,
        metrics: Arc<Metrics>,
        wake: Arc<Wake>,
    ) -> Self {
        Maintainer {
            crls: CrlBook::new(pki.clone()),
            pki,
            published,
            sync,
            metrics,
            wake,
            snapshot: Snapshot::empty(),
            poll: Duration::from_millis(100),
            // Refresh on the first round: answers missing or stale since the last run.
            leading: false,
            storm_until: Instant::now(),
            edge: None,
            disk: None,
            dirty: super::disk::Dirty::default(),
            last_disk_mark: Instant::now(),
            // The start's key request counted as the first sign of life.
            last_seen_mark: Instant::now(),
            last_edge_renewal: Instant::now()
                .checked_sub(EDGE_RENEW_EVERY)
                .unwrap_or_else(Instant::now),
            last_refresh: Instant::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or_else(Instant::now),
        }
    }

    fn ca_state(&self, row: &CaRow, old: Option<&CaState>) -> Result<Option<CaState>> {
        let Some(cert) = &row.cert else {
            return Ok(None);
        };
        let entity = self.pki.ca_record(row, self.pki.now())?;
        let parsed = x509_cert::Certificate::from_der(cert).map_err(X509Error::from)?;
        let mut chain = vec![parsed.clone()];
        for c in self.pki.ca_chain(&row.id)? {
            chain.push(x509_cert::Certificate::from_der(&c).map_err(X509Error::from)?);
        }
        let p7c = cms::content_info::ContentInfo::try_from(chain)
            .and_then(|ci| ci.to_der())
            .map_err(X509Error::from)?;
        // A keyless node signs nothing: it serves what signers stored, and
        // never asks for a key (which opens a write transaction: on
        // PostgreSQL the fleet-wide writer lock).
        let responder = if let Some(edge) = &self.edge {
            // A keyless responder signs with its own key once a CA certified it.
            match self.pki.edge_responder(edge, row) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(ca = %row.id, error = %e, "responder certificate unusable: on-demand answers unavailable");
                    None
                }
            }
        } else if !self.pki.holds_keys() {
            None
        } else {
            match self.pki.ocsp_responder(&row.id) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(ca = %row.id, error = %e, "no OCSP signing key: on-demand answers unavailable");
                    None
                }
            }
        };
        let parts = CaParts {
            id: row.id.as_str().into(),
            version: i32::try_from(entity.version.number).unwrap_or(i32::MAX),
            status: entity.status,
            cert_der: Bytes::from(cert.clone()),
            chain_p7c: Bytes::from(p7c),
            partitions_json: Bytes::from(
                serde_json::to_vec(&entity.crl_urls()).map_err(|e| MaintainError::Json(e.to_string()))?,
            ),
            crl_partitions: entity.crl_partitions,
            delta_crls: entity.delta_crls,
        };
        Ok(Some(CaState::assemble(
            parts,
            old.map(|o| o.crls.clone()).unwrap_or_default(),
            old.map(|o| o.certs.clone()).unwrap_or_default(),
            responder,
        )?))
    }

    fn reindex(&mut self) {
        let mut issuers = super::Issuers::default();
        for (id, ca) in self.snapshot.cas.iter() {
            for h in &ca.hashes {
                issuers.insert(h.key_hash.clone(), id.clone());
            }
        }
        self.snapshot.issuers = Arc::new(issuers);
    }

    /// Changes one CA's state in place. Between two swaps the working
    /// snapshot's copy is uniquely owned, so its map is changed in place: a
    /// mass revocation copies each tree node once per snapshot, not once per
    /// certificate (the garbage of a copy per certificate is what the
    /// allocator then keeps).
    /// Returns the CA's id, None if it is not in the snapshot.
    fn change_ca(&mut self, ca_id: &str, change: impl FnOnce(&mut CaState)) -> Option<Arc<str>> {
        let ca = self.snapshot.cas.remove(ca_id)?;
        let mut ca = Arc::try_unwrap(ca).unwrap_or_else(|shared| CaState::clone(&shared));
        change(&mut ca);
        let id = ca.id.clone();
        self.snapshot.cas.insert(id.clone(), Arc::new(ca));
        Some(id)
    }

    fn upsert_cert(&mut self, ca_id: &str, serial: &[u8], state: CertState) {
        let Some(key) = SerialKey::new(serial) else {
            return;
        };
        let changed = self.change_ca(ca_id, |ca| ca.certs.insert(key, state));
        if let (Some(id), true) = (changed, self.disk.is_some()) {
            self.dirty.certs.insert((id, key));
        }
    }

    fn apply_leaf(&mut self, row: &LeafStatusRow) -> Result<()> {
        let serial = hex_bytes(&row.serial)?;
        let status = leaf_status(row)?;
        if let Some(at) = row.revoked_at {
            let scope = Scope::new(&row.ca_id, row.crl_partition);
            self.crls
                .add(&scope, &serial, at, row.revocation_reason, row.not_after)?;
        }
        if let Some(ocsp) = &row.ocsp {
            let validity = self.pki.settings().timings.ocsp_validity;
            self.upsert_cert(&row.ca_id, &serial, cert_state(status, ocsp.clone(), validity));
        }
        Ok(())
    }

    /// An issuing CA's certificate as its parent sees it: OCSP answers and CRL entry.
    fn apply_child(&mut self, row: &CaRow) -> Result<()> {
        let (Some(parent), Some(cert)) = (&row.issuer_id, &row.cert) else {
            return Ok(());
        };
        let parsed = x509_cert::Certificate::from_der(cert).map_err(X509Error::from)?;
        let serial = parsed.tbs_certificate.serial_number.as_bytes().to_vec();
        if let Some(at) = row.revoked_at {
            let not_after = parsed.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64;
            // A root's one CRL lists its revoked issuing CAs.
            self.crls
                .add(&Scope::new(parent, 0), &serial, at, row.revocation_reason, not_after)?;
        }
        if let Some(ocsp) = &row.ocsp {
            let status = Status::from_revocation(row.revoked_at, row.revocation_reason)?;
            let validity = self.pki.settings().timings.ocsp_validity;
            self.upsert_cert(parent, &serial, cert_state(status, ocsp.clone(), validity));
        }
        Ok(())
    }

    fn reload_ca(&mut self, id: &str) -> Result<()> {
        let row = self.pki.store().begin(TxMode::Read)?.ca(id)?;
        let Some(row) = row else {
            self.remove_ca(id);
            return Ok(());
        };
        let old = self.snapshot.cas.get(id).cloned();
        if let Some(state) = self.ca_state(&row, old.as_deref())? {
            let is_new = old.is_none();
            if self.disk.is_some() {
                self.dirty.cas.insert(state.id.clone());
            }
            self.snapshot.cas.insert(state.id.clone(), Arc::new(state));
            // A new CA (or new partitions) has CRLs to sign: mark_stale_crls finds them.
            if is_new {
                self.reindex();
            }
        }
        self.apply_child(&row)
    }

    fn remove_ca(&mut self, id: &str) {
        if self.disk.is_some() {
            self.dirty.removed.insert(id.into());
        }
        if self.snapshot.cas.remove(id).is_some() {
            self.reindex();
        }
        self.snapshot.deleted.insert(id.into());
        self.crls.remove_ca(id);
    }

    /// Signs on-demand answers with this responder key once CAs certify it
    /// (keyless responders only; set before `load`).
    pub fn with_edge(mut self, edge: Arc<EdgeKey>) -> Self {
        self.edge = Some(edge);
        self
    }

    /// Keeps a copy of every snapshot in `dir`, to start from when the store
    /// is unreachable (see `snapshot::disk`).
    pub fn with_disk(mut self, dir: std::path::PathBuf) -> std::io::Result<Self> {
        self.disk = Some(super::disk::DiskWriter::start(dir)?);
        Ok(self)
    }

    /// Loads everything from the store.
    pub fn load(&mut self) -> Result<()> {
        let started = Instant::now();
        let store = self.pki.store().clone();
        let mut tx = store.begin(TxMode::Read)?;
        // Read the sequence first: anything committed during the load is
        // replayed afterwards (every apply is an idempotent upsert).
        let seq = tx.last_change_seq()?;
        let rows = tx.cas()?;
        drop(tx);
        self.snapshot = Snapshot::empty();
        self.crls.clear();
        for row in &rows {
            if let Some(state) = self.ca_state(row, None)? {
                self.snapshot.cas.insert(state.id.clone(), Arc::new(state));
            }
        }
        self.reindex();
        for row in &rows {
            let mut after = 0;
            let mut certs = Vec::new();
            loop {
                let page = store.begin(TxMode::Read)?.leaf_status_page(&row.id, after, 20_000)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                self.load_page(&row.id, page, &mut certs)?;
            }
            self.add_certs(&row.id, certs);
            // Revoked children, deleted or not, stay on this CA's CRL and OCSP.
            for child in store.begin(TxMode::Read)?.revoked_children(&row.id)? {
                self.apply_child(&child)?;
            }
            for child in rows.iter().filter(|c| c.issuer_id.as_deref() == Some(row.id.as_str())) {
                self.apply_child(child)?;
            }
        }
        self.snapshot.change_seq = seq;
        // What the last published CRLs were: their entries that expired
        // before them have been on a CRL issued after notAfter.
        let ids: Vec<String> = self.snapshot.cas.keys().map(|k| k.to_string()).collect();
        for id in &ids {
            let mut tx = store.begin(TxMode::Read)?;
            for (key, _) in tx.crl_numbers(id)? {
                if key.delta {
                    continue;
                }
                if let Some(crl) = tx.crl(id, key)? {
                    self.crls.published_at(&Scope::new(id, key.partition), crl.this_update);
                }
            }
        }
        // Every CRL is signed afresh at start: entries may have changed while
        // no server ran (CLI revocations), and numbers only move forward.
        if self.signs()? {
            self.crls.unmark_all();
            for (id, ca) in self.snapshot.cas.iter() {
                for partition in 0..=ca.crl_partitions {
                    self.crls.mark_complete(Scope::new(id, partition));
                }
            }
            let signed = self.publish_crls(false);
            self.crls.store(signed, false);
        } else {
            for id in ids {
                self.adopt_stored_crl(&id)?;
            }
        }
        self.snapshot.ready = true;
        self.sync.synced();
        // Everything is new: the disk copy gets a whole base, not a journal.
        self.dirty = super::disk::Dirty::default();
        self.swap(started);
        if let Some(disk) = &self.disk {
            disk.whole(&self.snapshot, self.sync.synced_ms());
        }
        tracing::info!(
            cas = self.snapshot.cas.len(),
            certificates = self.snapshot.cas.values().map(|c| c.certs.len()).sum::<usize>(),
            seconds = started.elapsed().as_secs_f64(),
            "snapshot loaded"
        );
        Ok(())
    }

    /// One page of a CA's leaves: CRL entries noted, states appended to
    /// `certs` (the map is built once from all of them, packed).
    fn load_page(
        &mut self,
        ca_id: &str,
        page: Vec<LeafStatusRow>,
        certs: &mut Vec<(SerialKey, CertState)>,
    ) -> Result<()> {
        let validity = self.pki.settings().timings.ocsp_validity;
        for row in page {
            let serial = hex_bytes(&row.serial)?;
            if let Some(at) = row.revoked_at {
                let scope = Scope::new(ca_id, row.crl_partition);
                self.crls
                    .add(&scope, &serial, at, row.revocation_reason, row.not_after)?;
            }
            let status = leaf_status(&row)?;
            if let (Some(ocsp), Some(key)) = (row.ocsp, SerialKey::new(&serial)) {
                certs.push((key, cert_state(status, ocsp, validity)));
            }
        }
        Ok(())
    }

    /// Adds a CA's loaded certificates to its map in one build.
    fn add_certs(&mut self, ca_id: &str, certs: Vec<(SerialKey, CertState)>) {
        self.change_ca(ca_id, |ca| ca.certs.extend(certs));
    }

    /// Applies committed changes; returns how many.
    fn follow(&mut self) -> Result<usize> {
        let mut applied = 0;
        loop {
            let changes = self
                .pki
                .store()
                .begin(TxMode::Read)?
                .changes_since(self.snapshot.change_seq, 5_000)?;
            if changes.is_empty() {
                return Ok(applied);
            }
            // One read transaction for the leaves of a page of changes: a
            // mass revocation is hundreds of thousands of them.
            let store = self.pki.store().clone();
            let mut reader = store.begin(TxMode::Read)?;
            for change in &changes {
                match change.kind {
                    ChangeKind::LeafIssued | ChangeKind::LeafRevoked => {
                        let Some(id) = &change.leaf_id else { continue };
                        if let Some(row) = reader.leaf_status(id)? {
                            self.apply_leaf(&row)?;
                        }
                    }
                    ChangeKind::LeafUpdated => {}
                    ChangeKind::OcspRefreshed => {
                        let rows = self
                            .pki
                            .store()
                            .begin(TxMode::Read)?
                            .leaves_signed_at_seq(&change.ca_id, change.seq)?;
                        for row in &rows {
                            self.apply_leaf(row)?;
                        }
                    }
                    ChangeKind::CaCreated | ChangeKind::CaUpdated => self.reload_ca(&change.ca_id)?,
                    ChangeKind::CaDeleted => self.remove_ca(&change.ca_id),
                    ChangeKind::CrlPublished => self.adopt_stored_crl(&change.ca_id)?,
                    // Only a node with a responder key of its own cares.
                    ChangeKind::ResponderCertIssued if self.edge.is_some() => self.reload_ca(&change.ca_id)?,
                    ChangeKind::ResponderCertIssued => {}
                }
                self.snapshot.change_seq = change.seq;
                applied += 1;
            }
        }
    }

    /// Serves the CRLs another process published, where newer than ours.
    fn adopt_stored_crl(&mut self, ca_id: &str) -> Result<()> {
        let Some(ca) = self.snapshot.cas.get(ca_id) else {
            return Ok(());
        };
        // Usually our own publication: compare numbers before reading bytes.
        let numbers = self.pki.store().begin(TxMode::Read)?.crl_numbers(ca_id)?;
        let newer: Vec<CrlScopeKey> = numbers
            .into_iter()
            .filter(|(k, n)| *n > ca.crls.get(k).map_or(0, |c| c.number))
            .map(|(k, _)| k)
            .collect();
        for key in newer {
            let Some(row) = self.pki.store().begin(TxMode::Read)?.crl(ca_id, key)? else {
                continue;
            };
            // A keyless node keeps the entries too (from the change log).
            let entries = if key.delta {
                0
            } else {
                self.crls.entries(&Scope::new(ca_id, key.partition))
            };
            self.set_crl(row, entries);
        }
        Ok(())
    }

    fn set_crl(&mut self, row: crate::store::CrlRow, entries: usize) {
        let Some(ca) = self.snapshot.cas.get(row.ca_id.as_str()) else {
            return;
        };
        if ca.crls.get(&row.scope).is_some_and(|c| c.number >= row.number) {
            return;
        }
        let mut ca = CaState::clone(ca);
        if self.disk.is_some() {
            self.dirty.crls.insert((ca.id.clone(), row.scope));
        }
        let partition = row.scope.label();
        let labels = [row.ca_id.as_str(), partition.as_str()];
        let m = &self.metrics;
        m.crl_bytes.with_label_values(&labels).set(row.der.len() as i64);
        m.crl_entries.with_label_values(&labels).set(entries as i64);
        m.crl_number.with_label_values(&labels).set(row.number);
        m.crl_this_update.with_label_values(&labels).set(row.this_update);
        m.crl_next_update.with_label_values(&labels).set(row.next_update);
        Arc::make_mut(&mut ca.crls).insert(
            row.scope,
            Arc::new(CrlDocument::new(
                Bytes::from(row.der),
                row.this_update,
                row.next_update,
                row.number,
                entries,
            )),
        );
        self.snapshot.cas.insert(ca.id.clone(), Arc::new(ca));
    }

    /// Signs a new CRL for every scope due one and serves it; returns the
    /// CRLs still to be stored (after the swap, off the visibility path).
    fn publish_crls(&mut self, storm: bool) -> Vec<crate::store::CrlRow> {
        let cas = &self.snapshot.cas;
        let served = |s: &Scope| match cas.get(s.ca_id.as_str()) {
            Some(ca) if s.partition <= ca.crl_partitions && ca.delta_crls => Served::WithDeltas,
            Some(ca) if s.partition <= ca.crl_partitions => Served::Complete,
            _ => Served::No,
        };
        let (published, failed) = self.crls.publish(served, storm, Some(self.snapshot.change_seq));
        for f in failed {
            if matches!(f.error, PkiError::CrlCheck(_)) {
                self.metrics
                    .crl_check_failures
                    .with_label_values(&[&f.scope.ca_id])
                    .inc();
            }
            tracing::error!(ca = %f.scope.ca_id, partition = f.scope.partition, error = %f.error, "CRL publication failed");
        }
        let mut rows = Vec::with_capacity(published.len());
        for p in published {
            self.metrics.signatures.with_label_values(&["crl"]).inc();
            self.metrics.crl_build_seconds.observe(p.took.as_secs_f64());
            self.set_crl(p.row.clone(), p.entries);
            rows.push(p.row);
        }
        rows
    }

    /// Scopes whose CRL is missing (a new CA or partition) or due for its
    /// periodic re-publication.
    fn mark_stale_crls(&mut self) {
        let republish = self.pki.settings().timings.crl_republish_after.whole_seconds();
        let now = ts(self.pki.now());
        let stale =
            |ca: &CaState, key: CrlScopeKey| ca.crls.get(&key).is_none_or(|c| now - c.doc.this_update >= republish);
        for (id, ca) in self.snapshot.cas.iter() {
            for partition in 0..=ca.crl_partitions {
                if stale(ca, CrlScopeKey::complete(partition)) {
                    self.crls.mark_complete(Scope::new(id, partition));
                } else if ca.delta_crls && stale(ca, CrlScopeKey::delta(partition)) {
                    self.crls.mark(Scope::new(id, partition));
                }
            }
        }
    }

    /// Makes the working snapshot the published one.
    fn publish(&mut self) {
        self.snapshot.generation += 1;
        self.snapshot.built_at = SystemTime::now();
        self.published.store(Arc::new(self.snapshot.clone()));
        self.metrics.snapshot_generation.set(self.snapshot.generation as i64);
    }

    fn swap(&mut self, started: Instant) {
        self.publish();
        self.metrics.snapshot_seq.set(self.snapshot.change_seq);
        self.metrics.rebuild_seconds.observe(started.elapsed().as_secs_f64());
        if let (Some(disk), false) = (&self.disk, self.dirty.is_empty() || !self.snapshot.ready) {
            disk.changed(&self.snapshot, std::mem::take(&mut self.dirty), self.sync.synced_ms());
            self.last_disk_mark = Instant::now();
        }
        self.fold_due_maps();
    }

    /// Folds each CA map whose tree of changes outgrew its array (O(n), see
    /// `snapshot::certs`): after the change that made it so was published,
    /// so that change does not wait, and published at once (same content;
    /// the old array and tree are then freed on the reaper thread).
    fn fold_due_maps(&mut self) {
        let due: Vec<Arc<str>> = self
            .snapshot
            .cas
            .iter()
            .filter(|(_, ca)| ca.certs.fold_due())
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            self.change_ca(&id, |ca| {
                let started = Instant::now();
                ca.certs.fold();
                tracing::debug!(ca = %id, certificates = ca.certs.len(), seconds = started.elapsed().as_secs_f64(), "certificate map folded");
            });
        }
        self.publish();
    }

    /// Whether this node signs CRLs and refreshes OCSP answers: it holds the
    /// keys and, where several signers share a store, holds the lead.
    fn signs(&mut self) -> Result<bool> {
        if !self.pki.holds_keys() {
            return Ok(false);
        }
        let leads = self.pki.store().try_lead()?;
        if leads != self.leading {
            self.leading = leads;
            tracing::info!(leading = leads, "signing lead changed");
            if leads {
                self.crls.lead_gained();
            }
        }
        Ok(leads)
    }

    /// One round: follow changes, publish OCSP at once, then CRLs.
    pub fn step(&mut self) -> Result<()> {
        let started = Instant::now();
        let applied = self.follow()?;
        if applied > 0 {
            self.swap(started);
        }
        if applied >= STORM_CHANGES {
            self.storm_until = started + Duration::from_secs(1);
        }
        self.sync.synced();
        if let (Some(disk), true) = (&self.disk, self.last_disk_mark.elapsed() >= DISK_MARK_EVERY) {
            disk.changed(&self.snapshot, super::disk::Dirty::default(), self.sync.synced_ms());
            self.last_disk_mark = Instant::now();
        }
        if let (Some(edge), true) = (&self.edge, self.last_seen_mark.elapsed() >= SEEN_EVERY) {
            self.last_seen_mark = Instant::now();
            if let Err(e) = self.pki.mark_responder_seen(edge) {
                tracing::warn!(error = %e, "could not tell the store this responder is alive; retrying in an hour");
            }
        }
        if !self.signs()? {
            return Ok(());
        }
        self.mark_stale_crls();
        let storm = Instant::now() < self.storm_until;
        let mut signed = Vec::new();
        if self.crls.has_work() {
            let started = Instant::now();
            signed = self.publish_crls(storm);
            if !signed.is_empty() {
                self.swap(started);
            }
        }
        self.crls.store(signed, storm);
        if self.last_edge_renewal.elapsed() >= EDGE_RENEW_EVERY {
            self.last_edge_renewal = Instant::now();
            if let Err(e) = self.pki.renew_responder_certs() {
                tracing::error!(error = %e, "renewing responder certificates failed");
            }
        }
        if self.last_refresh.elapsed() >= REFRESH_EVERY {
            self.last_refresh = Instant::now();
            // Small transactions, so API writes interleave with re-signing;
            // a bounded number per round, so a million answers falling due
            // together are spread over the hours before they expire (they
            // fall due at ocsp_refresh_hours and stay valid for days).
            let mut done = 0;
            while done < REFRESH_PER_ROUND {
                match self.pki.refresh_ocsp(REFRESH_BATCH) {
                    Ok(n) => {
                        done += n as u32;
                        if n < REFRESH_BATCH as usize {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "OCSP refresh failed");
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs until `stop` is set.
    pub fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.step() {
                self.sync.failed();
                tracing::error!(error = %e, "snapshot maintenance failed; serving the last snapshot, retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            self.wake.wait(self.poll);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Regression: a node whose own validity setting is longer than its
    /// signer's served pre-signed answers past the nextUpdate they carry.
    #[test]
    fn regression_presigned_next_update_is_the_signed_one_not_this_nodes_setting() {
        let signed = crate::store::Presigned {
            sha1: vec![1],
            sha256: None,
            this_update: 1_000,
            next_update: Some(1_000 + 3_600),
        };
        let week = time::Duration::days(7);
        let state = cert_state(Status::Good, signed.clone(), week);
        assert_eq!((state.this_update(), state.next_update()), (1_000, 4_600));
        assert!(
            state.answer(crate::x509::ocsp::CertIdHash::Sha256, 0).is_none(),
            "signed on demand"
        );
        // Rows signed before the nextUpdate was stored: dated by the setting.
        let old = crate::store::Presigned {
            next_update: None,
            sha256: Some(vec![2]),
            ..signed
        };
        let state = cert_state(Status::Good, old, week);
        assert_eq!(state.next_update(), 1_000 + 7 * 86_400);
        assert_eq!(
            state
                .answer(crate::x509::ocsp::CertIdHash::Sha256, 0)
                .map(|(b, n)| (b.to_vec(), n)),
            Some((vec![2], state.next_update()))
        );
    }
    use crate::config::{open, OpenOptions};
    use crate::domain::CaType;
    use crate::store::{SqliteStore, Store, Tx};

    /// Counts the write transactions begun through it.
    struct CountingStore {
        inner: SqliteStore,
        writes: AtomicUsize,
    }

    impl Store for CountingStore {
        fn begin(&self, mode: TxMode) -> crate::store::Result<Box<dyn Tx + '_>> {
            if mode == TxMode::Write {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            self.inner.begin(mode)
        }
    }

    #[test]
    fn keyless_responders_never_open_a_write_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions {
            public_url: Some("http://127.0.0.1:1".into()),
            ..OpenOptions::new(dir.path().to_path_buf())
        };
        let signer = open(&opts).unwrap();
        let ca = crate::domain::engine::tests::new_ca;
        let root = signer
            .create_ca(ca(CaType::RootCertificationAuthority, "R", None))
            .unwrap();
        signer
            .create_ca(ca(CaType::IssuingCertificationAuthority, "I", Some(root.id.clone())))
            .unwrap();
        let store = Arc::new(CountingStore {
            inner: SqliteStore::open(&dir.path().join("cloudpki.db")).unwrap(),
            writes: AtomicUsize::new(0),
        });
        let keyless = Arc::new(Pki::new(
            store.clone(),
            None,
            Arc::new(crate::clock::SystemClock),
            signer.settings().clone(),
        ));
        let published: Published = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::empty()));
        let mut m = Maintainer::new(
            keyless,
            published.clone(),
            Arc::new(super::super::SyncState::default()),
            Arc::new(Metrics::new().unwrap()),
            Arc::new(Wake::default()),
        );
        m.load().unwrap();
        assert_eq!(published.load().cas.len(), 2, "both CAs are served");
        assert_eq!(store.writes.load(Ordering::SeqCst), 0, "a keyless load wrote");
    }
}
