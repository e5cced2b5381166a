//! The CRL owner: what every CRL scope lists, when a scope must be
//! re-signed, which expired entries may leave, and storing what was
//! published.
//!
//! A scope is one CRL URL: a CA's `current.crl` (partition 0: a root's CRL
//! of its issuing CAs, and the leaves issued before the CA was partitioned)
//! or one of its partitions `1.crl`, `2.crl`, … Where the CA publishes delta
//! CRLs, each scope also has `N-delta.crl`: a revocation then re-signs only
//! the delta, and a new complete CRL is cut on a schedule, when the delta
//! grows past a threshold, or when the complete CRL falls due. A leaf's partition is fixed
//! at issuance and stored with it, so the entries of every scope are rebuilt
//! from the store on start ([`CrlBook::add`] while loading) and kept current
//! from the change log. Signing and numbering go through the domain
//! ([`Pki::sign_crl`]: the keys never leave it), which checks every CRL as a
//! relying party would before it is handed back; the snapshot serves the
//! bytes, a background thread stores them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::domain::{CrlBasis, Pki, PkiError};
use crate::store::{CrlRow, CrlScopeKey};
use crate::x509::crl::{CrlEntries, EntriesMark, SerialDigest};
use crate::x509::{RevocationReason, X509Error};

/// One CRL: a CA and a partition of it (0: `current.crl`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub ca_id: String,
    pub partition: u32,
}

impl Scope {
    pub fn new(ca_id: &str, partition: u32) -> Self {
        Scope {
            ca_id: ca_id.to_owned(),
            partition,
        }
    }
}

/// A listed certificate's entry: revoked at, reason, its notAfter.
type Listed = (i64, Option<RevocationReason>, i64);

/// One scope's entries, encoded once, and what each is made of, so
/// expired ones can leave.
#[derive(Default)]
pub(crate) struct ScopeState {
    pub(crate) entries: CrlEntries,
    /// serial -> (revoked at, reason, the certificate's notAfter).
    listed: HashMap<Vec<u8>, Listed>,
    /// The earliest notAfter listed (i64::MAX when none): pruning costs
    /// nothing until it is passed.
    earliest_not_after: i64,
    /// thisUpdate of the last CRL published from this state (0: none yet).
    pub(crate) last_this_update: i64,
    /// Where `entries` stood at the last complete CRL: the entries after it
    /// are a delta CRL's list (entries are only appended between two
    /// complete CRLs; pruning happens when one is cut).
    base_mark: EntriesMark,
    /// The number of the last complete CRL this process signed (None: none
    /// yet, so the next publication cuts one).
    base_number: Option<i64>,
    /// The listed serials' digest, and that of the ones expired off the
    /// list since it was loaded: together, what the store holds for the
    /// scope (compared before each complete CRL is served).
    listed_digest: SerialDigest,
    dropped_digest: SerialDigest,
    /// The serials expired off the list: a later sighting of one (the daily
    /// OCSP refresh re-reads revoked rows, a CA update re-reads its revoked
    /// children) must not list it again, nor count it twice.
    dropped: HashSet<Vec<u8>>,
}

impl ScopeState {
    pub(crate) fn add(
        &mut self,
        serial: &[u8],
        at: i64,
        reason: Option<RevocationReason>,
        not_after: i64,
    ) -> Result<bool, X509Error> {
        if self.listed.contains_key(serial) || self.dropped.contains(serial) {
            return Ok(false);
        }
        if self.listed.is_empty() {
            self.earliest_not_after = i64::MAX;
        }
        self.listed.insert(serial.to_vec(), (at, reason, not_after));
        self.listed_digest.add(serial);
        self.earliest_not_after = self.earliest_not_after.min(not_after);
        let at = OffsetDateTime::from_unix_timestamp(at).map_err(|e| X509Error::Time(e.to_string()))?;
        let reason = reason.unwrap_or(RevocationReason::Unspecified);
        self.entries.push(serial, at, reason)?;
        Ok(true)
    }

    /// Everything this scope was built from: listed, and expired off it.
    pub(crate) fn digest(&self) -> SerialDigest {
        self.listed_digest.plus(self.dropped_digest)
    }

    /// Drops the entries that already appeared on a CRL issued after their
    /// certificate's notAfter (plus `keep`): RFC 5280 §3.3 allows removal
    /// then, and a CRL that only grows is one nobody can download. An entry
    /// was on the previous CRL when it was revoked before its thisUpdate.
    /// The store keeps every revocation; OCSP keeps answering `revoked`.
    pub(crate) fn prune(&mut self, keep: i64) -> Result<bool, X509Error> {
        let before = self.last_this_update;
        if self.listed.is_empty() || self.earliest_not_after.saturating_add(keep) >= before {
            return Ok(false);
        }
        let gone = |(at, _, not_after): &Listed| not_after.saturating_add(keep) < before && *at < before;
        if !self.listed.values().any(gone) {
            return Ok(false);
        }
        let mut dropped_digest = self.dropped_digest;
        let mut dropped = std::mem::take(&mut self.dropped);
        let mut kept = Vec::with_capacity(self.listed.len());
        for (serial, entry) in self.listed.drain() {
            if gone(&entry) {
                dropped_digest.add(&serial);
                dropped.insert(serial);
            } else {
                kept.push((serial, entry));
            }
        }
        // Oldest revocation first, as the entries were added.
        kept.sort_by(|a, b| (a.1 .0, &a.0).cmp(&(b.1 .0, &b.0)));
        let mut fresh = ScopeState {
            last_this_update: before,
            base_number: self.base_number,
            dropped_digest,
            dropped,
            ..ScopeState::default()
        };
        for (serial, (at, reason, not_after)) in kept {
            fresh.add(&serial, at, reason, not_after)?;
        }
        *self = fresh;
        Ok(true)
    }
}

/// A CRL just signed and checked (`row.scope` says which: complete or
/// delta): serve it, then hand it to [`CrlBook::store`].
#[derive(Debug)]
pub struct Published {
    pub row: CrlRow,
    pub entries: usize,
    pub took: Duration,
}

/// What the snapshot says of a scope when it is due: whether it is served,
/// and whether its CA publishes deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    No,
    Complete,
    WithDeltas,
}

/// A scope whose CRL could not be published (the previous one stays served).
#[derive(Debug)]
pub struct Failed {
    pub scope: Scope,
    pub error: PkiError,
}

/// Every CRL scope's state. One owner: the maintainer thread.
pub struct CrlBook {
    pki: Arc<Pki>,
    scopes: BTreeMap<Scope, ScopeState>,
    /// Scopes with new entries.
    dirty: HashSet<Scope>,
    /// Scopes whose complete CRL is due (new, stale, or at start).
    complete_due: HashSet<Scope>,
    /// When each scope was last signed: during a storm a scope is re-signed
    /// at most every [`STORM_INTERVAL`].
    last_signed: HashMap<Scope, Instant>,
    /// Signed CRLs not yet handed to the storer (held during a storm).
    unstored: HashMap<(String, CrlScopeKey), CrlRow>,
    last_stored: Instant,
    storer: Option<Sender<CrlRow>>,
}

/// During a storm signed CRLs are stored at most this often: each is up to
/// megabytes, and what is stored serves restarts (which sign afresh anyway)
/// and keyless responders, which then follow within this interval.
pub const STORM_STORE_INTERVAL: Duration = Duration::from_secs(5);

/// During a mass revocation each CRL is re-signed at most this often: its
/// entries keep growing, and re-signing every partition on every round
/// would spend a core that the revocations themselves need. A lone
/// revocation is published at once.
pub const STORM_INTERVAL: Duration = Duration::from_millis(500);

impl CrlBook {
    pub fn new(pki: Arc<Pki>) -> Self {
        CrlBook {
            pki,
            scopes: BTreeMap::new(),
            dirty: HashSet::new(),
            complete_due: HashSet::new(),
            last_signed: HashMap::new(),
            unstored: HashMap::new(),
            last_stored: Instant::now(),
            storer: None,
        }
    }

    /// Forgets every scope (before a full load).
    pub fn clear(&mut self) {
        self.scopes.clear();
        self.dirty.clear();
        self.complete_due.clear();
    }

    /// Lists a revoked certificate in its scope; true when it was not listed
    /// yet, and the scope is then due for a new CRL.
    pub fn add(
        &mut self,
        scope: &Scope,
        serial: &[u8],
        at: i64,
        reason: Option<RevocationReason>,
        not_after: i64,
    ) -> Result<bool, X509Error> {
        let added = self
            .scopes
            .entry(scope.clone())
            .or_default()
            .add(serial, at, reason, not_after)?;
        if added {
            self.dirty.insert(scope.clone());
        }
        Ok(added)
    }

    /// Records the thisUpdate of the CRL a scope last published (read from
    /// the store at start): expired entries leave relative to it.
    pub fn published_at(&mut self, scope: &Scope, this_update: i64) {
        self.scopes.entry(scope.clone()).or_default().last_this_update = this_update;
    }

    /// Asks for a new CRL of this scope: a delta where the CA has them.
    pub fn mark(&mut self, scope: Scope) {
        self.dirty.insert(scope);
    }

    /// Asks for a new complete CRL of this scope (new, stale, or at start).
    pub fn mark_complete(&mut self, scope: Scope) {
        self.complete_due.insert(scope);
    }

    /// Nothing to sign until something changes (used after a full load,
    /// where every addition marked its scope).
    pub fn unmark_all(&mut self) {
        self.dirty.clear();
        self.complete_due.clear();
    }

    pub fn has_work(&self) -> bool {
        !self.dirty.is_empty() || !self.complete_due.is_empty()
    }

    /// How many entries a scope lists now.
    pub fn entries(&self, scope: &Scope) -> usize {
        self.scopes.get(scope).map_or(0, |s| s.entries.len())
    }

    /// This node (re)gained the signing lead: another signer may have cut
    /// complete CRLs meanwhile, so each scope's next publication cuts its
    /// own rather than a delta against a base no longer served.
    pub fn lead_gained(&mut self) {
        for state in self.scopes.values_mut() {
            state.base_number = None;
        }
    }

    /// A deleted CA: its CRLs are no longer served.
    pub fn remove_ca(&mut self, ca_id: &str) {
        self.scopes.retain(|s, _| s.ca_id != ca_id);
        self.dirty.retain(|s| s.ca_id != ca_id);
        self.complete_due.retain(|s| s.ca_id != ca_id);
        self.last_signed.retain(|s, _| s.ca_id != ca_id);
    }

    /// Signs what every due scope needs, as `served` says: a complete CRL
    /// (then, with deltas, an empty delta naming it), or only a delta of the
    /// revocations since the last complete one. Revocations that arrive
    /// meanwhile are folded into the next round: a storm coalesces, and
    /// while one lasts (`storm`: the caller just applied many changes) a
    /// scope signed less than [`STORM_INTERVAL`] ago waits for a later round.
    /// `known_seq`: the change-log position the entries reflect (see
    /// [`Pki::sign_crl`]: each CRL is compared with the store when it has
    /// nothing newer).
    pub fn publish(
        &mut self,
        served: impl Fn(&Scope) -> Served,
        storm: bool,
        known_seq: Option<i64>,
    ) -> (Vec<Published>, Vec<Failed>) {
        let started = Instant::now();
        let recent = |s: &Scope, last: &HashMap<Scope, Instant>| {
            storm && last.get(s).is_some_and(|t| started.duration_since(*t) < STORM_INTERVAL)
        };
        let (held, changed): (Vec<Scope>, Vec<Scope>) = self
            .dirty
            .drain()
            .partition(|s| !self.complete_due.contains(s) && recent(s, &self.last_signed));
        self.dirty.extend(held);
        let mut due: Vec<Scope> = changed.into_iter().chain(self.complete_due.iter().cloned()).collect();
        due.sort();
        due.dedup();
        let complete_due = std::mem::take(&mut self.complete_due);
        let timings = &self.pki.settings().timings;
        let keep = timings.crl_keep_expired.whole_seconds();
        let base_after = timings.crl_delta_base_after.whole_seconds();
        let max_delta = timings.crl_delta_max_entries;
        let now = self.pki.now().unix_timestamp();
        let mut published = Vec::new();
        let mut failed = Vec::new();
        for scope in due {
            let deltas = match served(&scope) {
                Served::No => continue,
                Served::Complete => false,
                Served::WithDeltas => true,
            };
            self.last_signed.insert(scope.clone(), started);
            let state = self.scopes.entry(scope.clone()).or_default();
            let cut = !deltas
                || complete_due.contains(&scope)
                || state.base_number.is_none()
                || state.entries.count_since(state.base_mark) >= max_delta
                || now - state.last_this_update >= base_after;
            let started = Instant::now();
            let mut sign = |key: CrlScopeKey, base: Option<i64>, entries: &CrlEntries, basis| match self.pki.sign_crl(
                &scope.ca_id,
                key,
                base,
                entries,
                basis,
            ) {
                Ok(row) => {
                    let row_number = row.number;
                    published.push(Published {
                        entries: entries.len(),
                        row,
                        took: started.elapsed(),
                    });
                    Some(row_number)
                }
                Err(error) => {
                    failed.push(Failed {
                        scope: scope.clone(),
                        error,
                    });
                    None
                }
            };
            if cut {
                if let Err(e) = state.prune(keep) {
                    tracing::error!(ca = %scope.ca_id, partition = scope.partition, error = %e, "pruning expired CRL entries failed");
                }
                let basis = known_seq.map(|known_seq| CrlBasis {
                    known_seq,
                    digest: state.digest(),
                });
                let Some(number) = sign(CrlScopeKey::complete(scope.partition), None, &state.entries, basis) else {
                    continue;
                };
                state.last_this_update = now;
                state.base_number = Some(number);
                state.base_mark = state.entries.mark();
                if deltas {
                    sign(
                        CrlScopeKey::delta(scope.partition),
                        Some(number),
                        &CrlEntries::new(),
                        None,
                    );
                }
            } else if let Some(delta) = state.entries.since(state.base_mark) {
                sign(CrlScopeKey::delta(scope.partition), state.base_number, &delta, None);
            } else {
                // The list was rebuilt since the complete CRL: cut a new one.
                state.base_number = None;
                self.dirty.insert(scope.clone());
            }
        }
        (published, failed)
    }

    /// Hands signed CRLs to the storer thread, so the next round of changes
    /// is not held up by this write's fsync; during a storm, at most every
    /// [`STORM_STORE_INTERVAL`] (only the newest of each scope). Called
    /// every round, so what a storm held is stored when it is over.
    pub fn store(&mut self, rows: Vec<CrlRow>, storm: bool) {
        for row in rows {
            let key = (row.ca_id.clone(), row.scope);
            if self.unstored.get(&key).is_none_or(|r| r.number < row.number) {
                self.unstored.insert(key, row);
            }
        }
        if self.unstored.is_empty() || (storm && self.last_stored.elapsed() < STORM_STORE_INTERVAL) {
            return;
        }
        self.last_stored = Instant::now();
        let rows: Vec<CrlRow> = self.unstored.drain().map(|(_, r)| r).collect();
        let pki = self.pki.clone();
        let sender = self.storer.get_or_insert_with(|| spawn_storer(pki));
        for row in rows {
            if let Err(unsent) = sender.send(row) {
                // The storer is gone (it only exits when we drop the sender): store here.
                if let Err(e) = self.pki.store_crl(&unsent.0) {
                    tracing::error!(ca = %unsent.0.ca_id, error = %e, "storing a CRL failed");
                }
            }
        }
    }
}

/// Stores CRLs in the background; of several waiting for one scope, only the newest.
fn spawn_storer(pki: Arc<Pki>) -> Sender<CrlRow> {
    let (tx, rx) = std::sync::mpsc::channel::<CrlRow>();
    let spawned = std::thread::Builder::new().name("crl-store".into()).spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut latest: HashMap<(String, CrlScopeKey), CrlRow> = HashMap::new();
            for row in std::iter::once(first).chain(rx.try_iter()) {
                let key = (row.ca_id.clone(), row.scope);
                if latest.get(&key).is_none_or(|r| r.number < row.number) {
                    latest.insert(key, row);
                }
            }
            for row in latest.into_values() {
                if let Err(e) = pki.store_crl(&row) {
                    tracing::error!(ca = %row.ca_id, partition = row.scope.partition, delta = row.scope.delta, error = %e, "storing a CRL failed");
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the CRL storer thread; storing inline");
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{open, OpenOptions};
    use crate::domain::CaType;

    /// A lone revocation is signed at once; during a storm a scope signed
    /// less than `STORM_INTERVAL` ago waits, and is signed once it is over.
    #[test]
    fn storms_coalesce_per_scope_and_lone_revocations_do_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Arc::new(open(&OpenOptions::new(dir.path().to_path_buf())).unwrap());
        let new_ca = crate::domain::engine::tests::new_ca;
        let root = pki
            .create_ca(new_ca(CaType::RootCertificationAuthority, "R", None))
            .unwrap();
        let issuing = pki
            .create_ca(new_ca(CaType::IssuingCertificationAuthority, "I", Some(root.id)))
            .unwrap();
        let mut book = CrlBook::new(pki);
        let scope = Scope::new(&issuing.id, 3);
        let served = |_: &Scope| Served::Complete;
        book.add(&scope, &[1], 1_800_000_000, None, 1_900_000_000).unwrap();
        let (published, failed) = book.publish(served, false, None);
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(published.len(), 1);
        assert_eq!(
            (published[0].row.scope, published[0].entries),
            (CrlScopeKey::complete(3), 1)
        );

        book.add(&scope, &[2], 1_800_000_001, None, 1_900_000_000).unwrap();
        let (published, _) = book.publish(served, true, None);
        assert!(published.is_empty(), "signed again within the storm interval");
        assert!(book.has_work(), "the change waits, it is not dropped");
        let (published, _) = book.publish(served, false, None);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].entries, 2);
        assert!(!book.has_work());
    }

    /// RFC 5280 §3.3: an entry leaves only after it appeared on one CRL
    /// issued after its certificate's notAfter (plus what the operator keeps).
    #[test]
    fn expired_entries_leave_after_one_crl_past_not_after() {
        let serials = |c: &ScopeState| {
            let mut v: Vec<Vec<u8>> = c.listed.keys().cloned().collect();
            v.sort();
            v
        };
        let mut crl = ScopeState::default();
        crl.add(&[1], 50, Some(RevocationReason::KeyCompromise), 100).unwrap();
        crl.add(&[2], 60, None, 1_000).unwrap();
        // Published at 90: nothing has expired yet.
        assert!(!crl.prune(0).unwrap());
        crl.last_this_update = 90;
        // Published at 110, the first CRL after [1]'s notAfter: still listed.
        assert!(!crl.prune(0).unwrap());
        assert_eq!(serials(&crl), [vec![1], vec![2]]);
        crl.last_this_update = 110;
        // The next one drops it; the entries are re-encoded without it.
        let before = crl.entries.encoded_len();
        assert!(crl.prune(0).unwrap());
        assert_eq!(serials(&crl), [vec![2]]);
        assert_eq!(crl.entries.len(), 1);
        assert!(crl.entries.encoded_len() < before);
        assert_eq!(crl.last_this_update, 110, "pruning keeps the publication history");

        // Revoked after the last CRL although already expired: it has not
        // appeared on any CRL yet, so it stays for one.
        crl.add(&[3], 200, None, 150).unwrap();
        crl.last_this_update = 180;
        assert!(!crl.prune(0).unwrap());
        assert_eq!(serials(&crl), [vec![2], vec![3]]);
        // An operator who keeps expired entries a day longer.
        crl.last_this_update = 300;
        assert!(!crl.prune(86_400).unwrap());
        assert!(crl.prune(0).unwrap());
        assert_eq!(serials(&crl), [vec![2]]);
    }

    /// Regression: the daily OCSP refresh re-reads every revoked row, so a
    /// serial expired off the list was added again and counted twice in the
    /// scope's digest; from then on every complete CRL differed from the
    /// store's digest and was refused.
    #[test]
    fn regression_an_expired_entry_seen_again_is_not_listed_again() {
        let mut crl = ScopeState::default();
        crl.add(&[1], 50, None, 100).unwrap();
        crl.add(&[2], 60, None, 1_000).unwrap();
        let all = crl.digest();
        crl.last_this_update = 200;
        assert!(crl.prune(0).unwrap());
        assert_eq!(crl.entries.len(), 1);
        assert_eq!(crl.digest(), all, "what expired off still counts");
        assert!(!crl.add(&[1], 50, None, 100).unwrap(), "seen again after a refresh");
        assert_eq!((crl.entries.len(), crl.digest()), (1, all));
    }
}
