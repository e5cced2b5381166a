//! KEK rotation: which KEK seals new keys, re-sealing every sealed key under a
//! new KEK in batches while signers keep running, and the registry of running
//! signers and the KEK ids they hold.
//!
//! Stored state (meta; the rotation and the registrations are flat text
//! records, `kek/record.rs`, not JSON):
//! - `kek_current_id`: the KEK every sealed key is under when no rotation runs;
//! - `kek_rotation`: while a rotation runs, its source and target ids and a
//!   cursor (kind, owner) into [`SealedKind::ALL`];
//! - `kek_signer:<node>`: one entry per running signer (roles all and signer),
//!   refreshed every [`HEARTBEAT_EVERY`]; older than [`SIGNER_GONE_AFTER`]
//!   means gone.
//!
//! Invariant: nothing is ever sealed under a KEK the operator does not hold.
//! New keys are sealed under the rotation's target once a rotation has
//! started (decided inside the write transaction that stores them, so a
//! rotation's batches and a concurrent seal are ordered by the store), else
//! under the current KEK; a rotation only starts when the operator supplied
//! the target and every live signer holds it, and a process started during a
//! rotation must hold both KEKs. Each batch re-seals rows and moves the
//! cursor in one transaction, so a crash leaves every key under the source or
//! the target, both of which every signer holds. The last transaction
//! re-checks every key, re-seals stragglers and only then makes the target
//! current.

mod record;

use super::engine::audit_row;
use super::error::{PkiError, Result};
use super::Pki;
use crate::secrets::{sealed_by, KekId, KeyRing, SealedBy, SealedKind, SecretError};
use crate::store::{SealedTable, Tx, TxMode};

pub const META_KEK_CURRENT: &str = "kek_current_id";
pub const META_KEK_ROTATION: &str = "kek_rotation";
pub const META_KEK_CHECK: &str = "kek_check";
pub const META_TOKEN_KEY: &str = "token_signing_key";
const SIGNER_PREFIX: &str = "kek_signer:";
/// How often a running signer refreshes its registration.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A registration older than this (seconds) is a signer that is gone.
pub const SIGNER_GONE_AFTER: i64 = 30;
/// Registrations older than this (seconds) are deleted by the next heartbeat.
const SIGNER_FORGOTTEN_AFTER: i64 = 3600;
/// Page size of full scans (status, the final check).
const SCAN_PAGE: u32 = 500;

/// Where a kind of sealed key is stored. The match is exhaustive: a new kind
/// does not compile until it says where it lives, and then rotation, the
/// final check and `kek status` cover it.
enum Place {
    Table(SealedTable),
    /// One blob, base64 text in a meta entry; its owner is "".
    Meta(&'static str),
}

fn place(kind: SealedKind) -> Place {
    match kind {
        SealedKind::CaKey => Place::Table(SealedTable::CaKeys),
        SealedKind::OcspDelegateKey => Place::Table(SealedTable::OcspDelegateKeys),
        SealedKind::ScepRaKey => Place::Table(SealedTable::ScepRaKeys),
        SealedKind::TokenSigningKey => Place::Meta(META_TOKEN_KEY),
        SealedKind::KekCheck => Place::Meta(META_KEK_CHECK),
    }
}

fn corrupt(what: &str) -> PkiError {
    PkiError::Store(crate::store::StoreError::Corrupt(what.to_owned()))
}

fn b64_decode(text: &str) -> Result<Vec<u8>> {
    <base64ct::Base64 as base64ct::Encoding>::decode_vec(text).map_err(|_| corrupt("sealed key is not base64"))
}

fn b64_encode(bytes: &[u8]) -> String {
    <base64ct::Base64 as base64ct::Encoding>::encode_string(bytes)
}

/// Sealed keys of `kind` with owners after `after`, by owner.
fn read_sealed(tx: &mut dyn Tx, kind: SealedKind, after: &str, limit: u32) -> Result<Vec<(String, Vec<u8>)>> {
    match place(kind) {
        Place::Table(t) => Ok(tx.sealed_keys(t, after, limit)?),
        Place::Meta(key) if after.is_empty() && limit > 0 => match tx.meta(key)? {
            Some(text) => Ok(vec![(String::new(), b64_decode(&text)?)]),
            None => Ok(Vec::new()),
        },
        Place::Meta(_) => Ok(Vec::new()),
    }
}

/// Calls `f` on every sealed key of every kind, in pages.
fn for_each_sealed(
    tx: &mut dyn Tx,
    mut f: impl FnMut(&mut dyn Tx, SealedKind, &str, &[u8]) -> Result<()>,
) -> Result<()> {
    for &kind in SealedKind::ALL {
        let mut after = String::new();
        loop {
            let rows = read_sealed(tx, kind, &after, SCAN_PAGE)?;
            for (owner, sealed) in &rows {
                f(tx, kind, owner, sealed)?;
                after = owner_after(kind, owner);
            }
            if (rows.len() as u32) < SCAN_PAGE {
                break;
            }
        }
    }
    Ok(())
}

fn write_sealed(tx: &mut dyn Tx, kind: SealedKind, owner: &str, sealed: &[u8]) -> Result<()> {
    match place(kind) {
        Place::Table(t) => {
            if !tx.replace_sealed_key(t, owner, sealed)? {
                return Err(corrupt("sealed key vanished inside its transaction"));
            }
        }
        Place::Meta(key) => tx.set_meta(key, &b64_encode(sealed))?,
    }
    Ok(())
}

/// A rotation in progress, as stored in `kek_rotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The KEK keys are moving from (the current one when it started).
    pub from: String,
    pub target: String,
    /// The cursor: the kind being walked (None once the pass is done) and the
    /// last owner re-checked.
    pub kind: Option<String>,
    pub after: String,
    /// Keys re-sealed so far.
    pub resealed: u64,
    /// Unix seconds.
    pub started_at: i64,
}

impl Rotation {
    fn target_id(&self) -> Result<KekId> {
        KekId::parse(&self.target).ok_or_else(|| corrupt("kek_rotation target"))
    }

    fn source_id(&self) -> Result<KekId> {
        KekId::parse(&self.from).ok_or_else(|| corrupt("kek_rotation source"))
    }

    /// The stored text (fields named as in the JSON of earlier versions,
    /// which the store's migration converts).
    fn encode(&self) -> String {
        record::Writer::new()
            .str("from", &self.from)
            .str("target", &self.target)
            .opt("kind", self.kind.as_deref())
            .str("after", &self.after)
            .int("resealed", self.resealed)
            .int("startedAt", self.started_at)
            .finish()
    }

    /// Refuses anything but exactly the fields [`Rotation::encode`] writes,
    /// as a corrupt store.
    fn decode(text: &str) -> Result<Self> {
        let read = || -> std::result::Result<Self, record::RecordError> {
            let mut r = record::Reader::parse(text)?;
            let rotation = Rotation {
                from: r.str("from")?,
                target: r.str("target")?,
                kind: r.opt("kind")?,
                after: r.str("after")?,
                resealed: r.int("resealed")?,
                started_at: r.int("startedAt")?,
            };
            r.finish()?;
            Ok(rotation)
        };
        read().map_err(|e| corrupt(&format!("{META_KEK_ROTATION}: {e}")))
    }
}

/// The stored KEK state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekState {
    /// None only in a data directory made before KEK ids existed and not yet
    /// opened by a signer since (`config::open` records it).
    pub current: Option<KekId>,
    pub rotation: Option<Rotation>,
}

pub fn state(tx: &mut dyn Tx) -> Result<KekState> {
    let current = match tx.meta(META_KEK_CURRENT)? {
        Some(s) => Some(KekId::parse(&s).ok_or_else(|| corrupt("kek_current_id"))?),
        None => None,
    };
    let rotation = match tx.meta(META_KEK_ROTATION)? {
        Some(s) => Some(Rotation::decode(&s)?),
        None => None,
    };
    Ok(KekState { current, rotation })
}

fn ids(ring: &KeyRing) -> String {
    held_list(&ring.ids())
}

/// KEK ids for a message: "id, id".
pub fn held_list(ids: &[KekId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Refuses a process that could not open every key: during a rotation it
/// must hold both KEKs, otherwise the current one.
pub fn check_held(state: &KekState, ring: &KeyRing) -> Result<()> {
    if let Some(r) = &state.rotation {
        let (from, target) = (r.source_id()?, r.target_id()?);
        if !ring.holds(from) || !ring.holds(target) {
            return Err(PkiError::Kek(format!(
                "a KEK rotation from {from} to {target} is in progress: start with both KEKs \
                 (--kek-file and --next-kek-file); this process holds {}",
                ids(ring)
            )));
        }
    } else if let Some(current) = state.current {
        if !ring.holds(current) {
            return Err(PkiError::Kek(format!(
                "the keys are sealed with another key-encryption key: the current key-encryption key is \
                 {current}; this process holds {} (after a completed rotation, start with the new KEK)",
                ids(ring)
            )));
        }
    }
    Ok(())
}

/// The KEK a key sealed in this transaction goes under: the rotation's
/// target once a rotation has started, else the current KEK; never one this
/// process does not hold. A process lacking the target during a rotation
/// (a CLI started just before it) seals under the current KEK, which the
/// rotation's final check re-seals.
pub fn sealing_kek(tx: &mut dyn Tx, ring: &KeyRing) -> Result<KekId> {
    let st = state(tx)?;
    if let Some(r) = &st.rotation {
        let target = r.target_id()?;
        if ring.holds(target) {
            return Ok(target);
        }
    }
    match st.current {
        Some(c) if ring.holds(c) => Ok(c),
        Some(c) => Err(SecretError::NotHeld(c, ids(ring)).into()),
        None => Ok(ring.primary().id()),
    }
}

// ------------------------------------------------------------ signers

/// One running signer's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerEntry {
    /// Host name and process id.
    pub node: String,
    pub role: String,
    pub listen: String,
    /// KEK ids held.
    pub held: Vec<KekId>,
    /// Unix seconds of the last heartbeat.
    pub seen: i64,
}

impl SignerEntry {
    fn encode(&self) -> String {
        record::Writer::new()
            .str("node", &self.node)
            .str("role", &self.role)
            .str("listen", &self.listen)
            .list("held", &self.held)
            .int("seen", self.seen)
            .finish()
    }

    /// None for anything but exactly the fields [`SignerEntry::encode`]
    /// writes: a registration that does not decode is ignored, and deleted
    /// by the next heartbeat (as a stale one).
    fn decode(text: &str) -> Option<Self> {
        let mut r = record::Reader::parse(text).ok()?;
        let entry = SignerEntry {
            node: r.str("node").ok()?,
            role: r.str("role").ok()?,
            listen: r.str("listen").ok()?,
            held: r
                .list("held")
                .ok()?
                .iter()
                .map(|h| KekId::parse(h).filter(|id| id.to_string() == *h))
                .collect::<Option<_>>()?,
            seen: r.int("seen").ok()?,
        };
        r.finish().ok()?;
        Some(entry)
    }
}

/// A running signer's registration in the store, refreshed by heartbeats.
#[derive(Debug)]
pub struct SignerRegistration {
    key: String,
    entry: SignerEntry,
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

impl SignerRegistration {
    pub fn new(pki: &Pki, role: &str, listen: &str) -> Result<Self> {
        let held = pki.key_ring()?.ids();
        Ok(SignerRegistration {
            key: format!("{SIGNER_PREFIX}{}", uuid::Uuid::new_v4()),
            entry: SignerEntry {
                node: format!("{}/{}", host_name(), std::process::id()),
                role: role.to_owned(),
                listen: listen.to_owned(),
                held,
                seen: 0,
            },
        })
    }

    /// Registers or refreshes, refusing (and not registering) when a rotation
    /// needs a KEK this node lacks. Being in the same write transaction as
    /// the check a rotation makes when it starts, either the rotation sees
    /// this node or this node sees the rotation.
    pub fn beat(&mut self, pki: &Pki) -> Result<()> {
        let now = pki.now().unix_timestamp();
        let mut tx = pki.store().begin(TxMode::Write)?;
        check_held(&state(tx.as_mut())?, pki.key_ring()?)?;
        self.entry.seen = now;
        tx.set_meta(&self.key, &self.entry.encode())?;
        for (key, value) in tx.meta_with_prefix(SIGNER_PREFIX)? {
            let stale = SignerEntry::decode(&value).is_none_or(|e| e.seen < now - SIGNER_FORGOTTEN_AFTER);
            if stale {
                tx.delete_meta(&key)?;
            }
        }
        Ok(tx.commit()?)
    }

    /// Removes the registration (graceful shutdown).
    pub fn leave(&self, pki: &Pki) -> Result<()> {
        let mut tx = pki.store().begin(TxMode::Write)?;
        tx.delete_meta(&self.key)?;
        Ok(tx.commit()?)
    }
}

/// Signers whose last heartbeat is recent, by node.
pub fn live_signers(tx: &mut dyn Tx, now: i64) -> Result<Vec<SignerEntry>> {
    let mut out: Vec<SignerEntry> = tx
        .meta_with_prefix(SIGNER_PREFIX)?
        .into_iter()
        .filter_map(|(_, v)| SignerEntry::decode(&v))
        .filter(|e| e.seen >= now - SIGNER_GONE_AFTER)
        .collect();
    out.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(out)
}

// ------------------------------------------------------------ rotation

/// How `kek rotate` begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStart {
    /// The target is already current and no rotation runs: nothing to do.
    AlreadyCurrent,
    Started {
        from: KekId,
    },
    /// A rotation to the same target was interrupted; it continues.
    Resumed {
        from: KekId,
        resealed: u64,
    },
}

/// One committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationBatch {
    /// Keys looked at in this batch (at most the batch size).
    pub examined: u32,
    pub resealed: u32,
    /// The pass over every kind is complete: call [`Pki::finish_kek_rotation`].
    pub pass_done: bool,
}

/// What `kek status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekStatus {
    pub current: Option<String>,
    pub rotation: Option<Rotation>,
    /// Sealed keys by the KEK that sealed them ("v1" for blobs that do not
    /// name it), then by kind.
    pub sealed: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    pub live_signers: Vec<SignerEntry>,
}

fn owner_after(kind: SealedKind, owner: &str) -> String {
    match place(kind) {
        // A meta blob has one owner, ""; past it, the cursor must not read it again.
        Place::Meta(_) => "\u{10FFFF}".to_owned(),
        Place::Table(_) => owner.to_owned(),
    }
}

impl Pki {
    fn rotation_refused(msg: String) -> PkiError {
        PkiError::Kek(msg)
    }

    /// Starts a rotation to `target` (a KEK this process holds), or resumes
    /// the interrupted rotation to it. Refuses while a live signer does not
    /// hold the target, naming it, and while a rotation to another KEK runs.
    pub fn begin_kek_rotation(&self, target: KekId) -> Result<RotationStart> {
        let ring = self.key_ring()?;
        if !ring.holds(target) {
            return Err(SecretError::NotHeld(target, ids(ring)).into());
        }
        let now = self.now();
        let mut tx = self.store().begin(TxMode::Write)?;
        let st = state(tx.as_mut())?;
        let lacking: Vec<String> = live_signers(tx.as_mut(), now.unix_timestamp())?
            .into_iter()
            .filter(|s| !s.held.contains(&target))
            .map(|s| format!("{} ({}, {}; holds {})", s.node, s.role, s.listen, held_list(&s.held)))
            .collect();
        let refuse_lacking = |lacking: Vec<String>| {
            Self::rotation_refused(format!(
                "refusing to rotate to KEK {target}: these running signers do not hold it: {}. \
                 Restart them with the new KEK as --next-kek-file (or CLOUDPKI_NEXT_KEK) first",
                lacking.join("; ")
            ))
        };
        match st.rotation {
            Some(r) => {
                if r.target_id()? != target {
                    return Err(Self::rotation_refused(format!(
                        "a rotation from {} to {} is in progress: finish it first \
                         (kek rotate --new-kek-file <the KEK with id {}>)",
                        r.from, r.target, r.target
                    )));
                }
                if !lacking.is_empty() {
                    return Err(refuse_lacking(lacking));
                }
                Ok(RotationStart::Resumed {
                    from: r.source_id()?,
                    resealed: r.resealed,
                })
            }
            None => {
                let from = st.current.unwrap_or_else(|| ring.primary().id());
                if from == target {
                    return Ok(RotationStart::AlreadyCurrent);
                }
                if !ring.holds(from) {
                    return Err(SecretError::NotHeld(from, ids(ring)).into());
                }
                if !lacking.is_empty() {
                    return Err(refuse_lacking(lacking));
                }
                let r = Rotation {
                    from: from.to_string(),
                    target: target.to_string(),
                    kind: SealedKind::ALL.first().map(|k| k.name().to_owned()),
                    after: String::new(),
                    resealed: 0,
                    started_at: now.unix_timestamp(),
                };
                tx.set_meta(META_KEK_ROTATION, &r.encode())?;
                // Scope tags: none, so only administrators read KEK events.
                tx.append_audit(&audit_row(
                    now,
                    crate::domain::audit::KEK_ROTATION_STARTED,
                    ("keyEncryptionKey", &target.to_string()),
                    "success",
                    &format!("from {from}"),
                    &[],
                ))?;
                tx.commit()?;
                Ok(RotationStart::Started { from })
            }
        }
    }

    /// Re-seals up to `batch` keys under the rotation's target in one
    /// transaction, moving the stored cursor with them.
    pub fn kek_rotation_batch(&self, batch: u32) -> Result<RotationBatch> {
        let ring = self.key_ring()?;
        let batch = batch.max(1);
        let mut tx = self.store().begin(TxMode::Write)?;
        let st = state(tx.as_mut())?;
        let mut r = st
            .rotation
            .ok_or_else(|| Self::rotation_refused("no KEK rotation is in progress".into()))?;
        let target = r.target_id()?;
        let (mut examined, mut resealed) = (0u32, 0u32);
        while examined < batch {
            let Some(kind) = r
                .kind
                .as_deref()
                .map(|k| SealedKind::parse(k).ok_or_else(|| corrupt("kek_rotation kind")))
                .transpose()?
            else {
                break;
            };
            let want = batch - examined;
            let rows = read_sealed(tx.as_mut(), kind, &r.after, want)?;
            for (owner, sealed) in &rows {
                examined += 1;
                if sealed_by(sealed)? != SealedBy::Kek(target) {
                    let (plain, _) = ring.open(kind, owner, sealed)?;
                    let fresh = ring.seal_with(target, kind, owner, &plain)?;
                    write_sealed(tx.as_mut(), kind, owner, &fresh)?;
                    resealed += 1;
                }
                r.after = owner_after(kind, owner);
            }
            if (rows.len() as u32) < want {
                // Fewer than asked: this kind is done; on to the next.
                let next = SealedKind::ALL
                    .iter()
                    .position(|k| *k == kind)
                    .and_then(|i| SealedKind::ALL.get(i + 1));
                r.kind = next.map(|k| k.name().to_owned());
                r.after = String::new();
            }
        }
        r.resealed += u64::from(resealed);
        let pass_done = r.kind.is_none();
        tx.set_meta(META_KEK_ROTATION, &r.encode())?;
        tx.commit()?;
        Ok(RotationBatch {
            examined,
            resealed,
            pass_done,
        })
    }

    /// Ends a rotation whose pass is done, in one transaction: re-checks every
    /// sealed key, re-seals any still under another KEK (sealed meanwhile by
    /// a process that lacked the target), then makes the target current.
    /// Returns the number of stragglers re-sealed.
    pub fn finish_kek_rotation(&self) -> Result<u64> {
        let ring = self.key_ring()?;
        let now = self.now();
        let mut tx = self.store().begin(TxMode::Write)?;
        let r = state(tx.as_mut())?
            .rotation
            .ok_or_else(|| Self::rotation_refused("no KEK rotation is in progress".into()))?;
        if r.kind.is_some() {
            return Err(Self::rotation_refused("the rotation's pass is not done yet".into()));
        }
        let target = r.target_id()?;
        let mut stragglers = 0u64;
        for_each_sealed(tx.as_mut(), |tx, kind, owner, sealed| {
            if sealed_by(sealed)? != SealedBy::Kek(target) {
                let (plain, _) = ring.open(kind, owner, sealed)?;
                let fresh = ring.seal_with(target, kind, owner, &plain)?;
                write_sealed(tx, kind, owner, &fresh)?;
                stragglers += 1;
            }
            Ok(())
        })?;
        tx.set_meta(META_KEK_CURRENT, &target.to_string())?;
        tx.delete_meta(META_KEK_ROTATION)?;
        tx.append_audit(&audit_row(
            now,
            crate::domain::audit::KEK_ROTATION_COMPLETED,
            ("keyEncryptionKey", &target.to_string()),
            "success",
            &format!("from {}; {} keys re-sealed", r.from, r.resealed + stragglers),
            &[],
        ))?;
        tx.commit()?;
        Ok(stragglers)
    }

    /// Opens every sealed key with the KEKs this process holds (nothing is
    /// kept or shown); returns how many opened, or the first that did not,
    /// by kind and owner.
    pub fn verify_sealed_keys(&self) -> Result<u64> {
        let ring = self.key_ring()?;
        let mut tx = self.store().begin(TxMode::Read)?;
        let mut opened = 0u64;
        for_each_sealed(tx.as_mut(), |_, kind, owner, sealed| {
            ring.open(kind, owner, sealed)
                .map_err(|e| PkiError::Kek(format!("sealed key {} of {owner:?} does not open: {e}", kind.name())))?;
            opened += 1;
            Ok(())
        })?;
        Ok(opened)
    }

    /// The current KEK, any rotation, sealed keys per KEK and the live signers.
    /// Reads headers only: needs no KEK.
    pub fn kek_status(&self) -> Result<KekStatus> {
        let now = self.now().unix_timestamp();
        let mut tx = self.store().begin(TxMode::Read)?;
        let st = state(tx.as_mut())?;
        let mut sealed: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> =
            Default::default();
        for_each_sealed(tx.as_mut(), |_, kind, _, blob| {
            let by = match sealed_by(blob)? {
                SealedBy::Unlabelled => "v1".to_owned(),
                SealedBy::Kek(id) => id.to_string(),
            };
            *sealed.entry(by).or_default().entry(kind.name().to_owned()).or_default() += 1;
            Ok(())
        })?;
        Ok(KekStatus {
            current: st.current.map(|c| c.to_string()),
            rotation: st.rotation,
            sealed,
            live_signers: live_signers(tx.as_mut(), now)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::clock::FixedClock;
    use crate::config::{open_with_clock, OpenOptions};
    use crate::domain::engine::OcspSigning;
    use crate::domain::{CaType, HashAlgorithm, KeyAlgorithm, NewCa};
    use crate::secrets::Kek;
    use crate::x509::names::SubjectParts;

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn opts(dir: &Path, kek: &Kek, next: Option<&Kek>) -> OpenOptions {
        OpenOptions {
            kek_base64: Some(kek.to_base64().to_string()),
            next_kek_base64: next.map(|k| k.to_base64().to_string()),
            ocsp_signing: Some(OcspSigning::Delegated),
            ..OpenOptions::new(dir.to_path_buf())
        }
    }

    fn open_at(dir: &Path, kek: &Kek, next: Option<&Kek>, at: time::OffsetDateTime) -> Pki {
        open_with_clock(&opts(dir, kek, next), Arc::new(FixedClock(at))).unwrap()
    }

    fn open(dir: &Path, kek: &Kek, next: Option<&Kek>) -> Pki {
        open_at(dir, kek, next, time::OffsetDateTime::now_utc())
    }

    fn root(pki: &Pki, cn: &str) -> String {
        pki.create_ca(NewCa {
            ca_type: CaType::RootCertificationAuthority,
            display_name: None,
            description: None,
            subject: SubjectParts {
                common_name: cn.into(),
                ..Default::default()
            },
            issuer_id: None,
            key_size: KeyAlgorithm::EcP256,
            hash: HashAlgorithm::Sha256,
            validity_years: 10,
            ekus: vec![],
            role_scope_tag_ids: vec![],
            crl_partitions: None,
            delta_crls: false,
        })
        .unwrap()
        .id
    }

    /// Every cell of every table that parses as a sealed blob (BLOB cells, and
    /// base64 text cells), found without the list of sealed kinds.
    fn raw_sealed_cells(dir: &Path) -> Vec<(String, SealedBy)> {
        let db = rusqlite::Connection::open(dir.join("cloudpki.db")).unwrap();
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut out = Vec::new();
        for t in tables {
            let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
            let n = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..n {
                    let bytes = match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
                        rusqlite::types::ValueRef::Text(t) => {
                            match <base64ct::Base64 as base64ct::Encoding>::decode_vec(&String::from_utf8_lossy(t)) {
                                Ok(b) => b,
                                Err(_) => continue,
                            }
                        }
                        _ => continue,
                    };
                    if let Ok(by) = sealed_by(&bytes) {
                        out.push((format!("{t}.{i}"), by));
                    }
                }
            }
        }
        out
    }

    fn rotate(pki: &Pki, target: KekId, batch: u32) -> (u32, u64) {
        assert!(matches!(
            pki.begin_kek_rotation(target).unwrap(),
            RotationStart::Started { .. } | RotationStart::Resumed { .. }
        ));
        let mut batches = 0;
        loop {
            let b = pki.kek_rotation_batch(batch).unwrap();
            assert!(b.examined <= batch);
            batches += 1;
            if b.pass_done {
                break;
            }
        }
        (batches, pki.finish_kek_rotation().unwrap())
    }

    /// The test that fails when a sealed kind is not covered: it makes a key
    /// of every kind through the real code paths, finds sealed blobs in the
    /// raw database without using the kind list, and requires rotation to
    /// have moved every one of them.
    #[test]
    fn rotation_reseals_every_sealed_blob_in_the_store_of_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let pki = open(dir.path(), &old, None);
        let ca = root(&pki, "Root A");
        let ca2 = root(&pki, "Root B");
        pki.ocsp_responder(&ca).unwrap(); // a delegated OCSP key
        let issuing = pki
            .create_ca(NewCa {
                ca_type: CaType::IssuingCertificationAuthority,
                display_name: None,
                description: None,
                subject: SubjectParts {
                    common_name: "Issuing A".into(),
                    ..Default::default()
                },
                issuer_id: Some(ca.clone()),
                key_size: KeyAlgorithm::EcP256,
                hash: HashAlgorithm::Sha256,
                validity_years: 2,
                ekus: vec![],
                role_scope_tag_ids: vec![],
                crl_partitions: None,
                delta_crls: false,
            })
            .unwrap()
            .id;
        assert!(pki.scep_ra(&issuing).unwrap().is_some()); // a SCEP RA key
        crate::auth::TokenIssuer::load_or_create(&pki).unwrap(); // the token key
                                                                 // A legacy V1 blob (data sealed before KEK ids existed).
        {
            let mut tx = pki.store().begin(TxMode::Write).unwrap();
            let v2 = tx.sealed_keys(SealedTable::CaKeys, "", 10).unwrap();
            let (owner, blob) = v2.iter().find(|(o, _)| *o == ca2).unwrap();
            let plain = old.open(SealedKind::CaKey, owner, blob).unwrap();
            let v1 = old.seal_v1(SealedKind::CaKey, owner, &plain).unwrap();
            assert!(tx.replace_sealed_key(SealedTable::CaKeys, owner, &v1).unwrap());
            tx.commit().unwrap();
        }
        drop(pki);

        let before = raw_sealed_cells(dir.path());
        let status = open(dir.path(), &old, Some(&new)).kek_status().unwrap();
        let listed: u64 = status.sealed.values().flat_map(|k| k.values()).sum();
        assert_eq!(
            listed as usize,
            before.len(),
            "a sealed blob in the store is of no listed kind: {before:?}"
        );
        for kind in SealedKind::ALL {
            assert!(
                status.sealed.values().any(|k| k.contains_key(kind.name())),
                "this test makes no {} key: add one above",
                kind.name()
            );
        }
        assert_eq!(status.sealed["v1"]["caKey"], 1);

        let pki = open(dir.path(), &old, Some(&new));
        let (batches, stragglers) = rotate(&pki, new.id(), 1);
        assert_eq!(stragglers, 0);
        assert!(batches as usize > before.len(), "batch size 1: one key per transaction");
        drop(pki);
        let after = raw_sealed_cells(dir.path());
        assert_eq!(after.len(), before.len());
        assert!(after.iter().all(|(_, by)| *by == SealedBy::Kek(new.id())), "{after:?}");

        // Only the new KEK now: everything opens, and the engine signs.
        let pki = open(dir.path(), &new, None);
        assert_eq!(pki.verify_sealed_keys().unwrap() as usize, before.len());
        pki.ocsp_responder(&ca).unwrap();
        pki.ocsp_responder(&ca2).unwrap();
        crate::auth::TokenIssuer::load_or_create(&pki).unwrap();
        let st = pki.kek_status().unwrap();
        assert_eq!(st.current, Some(new.id().to_string()));
        assert!(st.rotation.is_none());
        // Only the old KEK: refused, naming the current one.
        let err = open_with_clock(&opts(dir.path(), &old, None), Arc::new(crate::clock::SystemClock)).unwrap_err();
        assert!(err.to_string().contains(&new.id().to_string()), "{err}");
    }

    #[test]
    fn keys_sealed_during_a_rotation_go_under_the_target_or_are_swept_up() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let both = open(dir.path(), &old, Some(&new));
        root(&both, "Before");
        // A process that opened before the rotation with the old KEK only.
        let old_only = open(dir.path(), &old, None);
        assert!(matches!(
            both.begin_kek_rotation(new.id()).unwrap(),
            RotationStart::Started { .. }
        ));
        let during = root(&both, "During");
        let straggler = root(&old_only, "Straggler");
        let by = |id: &str| {
            let mut tx = both.store().begin(TxMode::Read).unwrap();
            sealed_by(&tx.sealed_key(id).unwrap().unwrap()).unwrap()
        };
        assert_eq!(by(&during), SealedBy::Kek(new.id()));
        assert_eq!(by(&straggler), SealedBy::Kek(old.id()));
        // The straggler sorts anywhere; if the pass missed it, the final
        // transaction re-seals it.
        while !both.kek_rotation_batch(1).unwrap().pass_done {}
        let late = root(&old_only, "Late");
        assert_eq!(by(&late), SealedBy::Kek(old.id()));
        assert!(both.finish_kek_rotation().unwrap() >= 1);
        assert_eq!(by(&late), SealedBy::Kek(new.id()));
        assert_eq!(by(&straggler), SealedBy::Kek(new.id()));
        // After completion a process without the new KEK seals nothing.
        let err = both
            .store()
            .begin(TxMode::Write)
            .map(|mut tx| sealing_kek(tx.as_mut(), old_only.key_ring().unwrap()));
        assert!(matches!(err, Ok(Err(PkiError::Secret(SecretError::NotHeld(..))))));
    }

    #[test]
    fn rotation_refuses_while_a_live_signer_lacks_the_new_kek() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (Kek::generate().unwrap(), Kek::generate().unwrap());
        let now = time::OffsetDateTime::now_utc();
        let cli = open(dir.path(), &old, Some(&new));
        // A signer gone for a minute does not count.
        let gone = open_at(dir.path(), &old, None, now - time::Duration::seconds(60));
        SignerRegistration::new(&gone, "all", "127.0.0.1:1")
            .unwrap()
            .beat(&gone)
            .unwrap();
        let live = open(dir.path(), &old, None);
        let mut reg = SignerRegistration::new(&live, "signer", "127.0.0.1:2").unwrap();
        reg.beat(&live).unwrap();
        let err = cli.begin_kek_rotation(new.id()).unwrap_err().to_string();
        assert!(err.contains("127.0.0.1:2") && err.contains("do not hold"), "{err}");
        assert!(!err.contains("127.0.0.1:1"), "{err}");
        assert_eq!(cli.kek_status().unwrap().live_signers.len(), 1);
        // Restarted with both KEKs: the rotation starts.
        reg.leave(&live).unwrap();
        let both = open(dir.path(), &old, Some(&new));
        let mut reg = SignerRegistration::new(&both, "signer", "127.0.0.1:2").unwrap();
        reg.beat(&both).unwrap();
        assert!(matches!(
            cli.begin_kek_rotation(new.id()).unwrap(),
            RotationStart::Started { .. }
        ));
        // A signer with one KEK cannot register (or start) mid-rotation.
        let mut lone = SignerRegistration::new(&live, "all", "127.0.0.1:3").unwrap();
        assert!(lone.beat(&live).unwrap_err().to_string().contains("in progress"));
        assert!(open_with_clock(&opts(dir.path(), &new, None), Arc::new(FixedClock(now))).is_err());
        assert!(open_with_clock(&opts(dir.path(), &old, None), Arc::new(FixedClock(now))).is_err());
    }

    #[test]
    fn rotation_resumes_refuses_another_target_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new, other) = (
            Kek::generate().unwrap(),
            Kek::generate().unwrap(),
            Kek::generate().unwrap(),
        );
        let pki = open(dir.path(), &old, Some(&new));
        for i in 0..3 {
            root(&pki, &format!("CA {i}"));
        }
        assert!(matches!(
            pki.begin_kek_rotation(new.id()).unwrap(),
            RotationStart::Started { .. }
        ));
        assert_eq!(pki.kek_rotation_batch(2).unwrap().resealed, 2);
        // "Crash": a new process, with the KEKs swapped, resumes.
        let swapped = open(dir.path(), &new, Some(&old));
        assert_eq!(
            swapped.begin_kek_rotation(new.id()).unwrap(),
            RotationStart::Resumed {
                from: old.id(),
                resealed: 2
            }
        );
        // One KEK of the two plus a third: refused at open.
        assert!(open_with_clock(&opts(dir.path(), &old, Some(&other)), Arc::new(FixedClock(now()))).is_err());
        // Both plus a third: a rotation to the third waits for this one.
        let other_file = dir.path().join("other.kek");
        std::fs::write(&other_file, other.to_base64().as_bytes()).unwrap();
        let mut o = opts(dir.path(), &old, Some(&new));
        o.next_kek_files.push(other_file);
        let three = open_with_clock(&o, Arc::new(FixedClock(now()))).unwrap();
        let err = three.begin_kek_rotation(other.id()).unwrap_err().to_string();
        assert!(err.contains("in progress"), "{err}");
        assert!(swapped.finish_kek_rotation().is_err(), "the pass is not done");
        let (_, stragglers) = rotate(&swapped, new.id(), 100);
        assert_eq!(stragglers, 0);
        assert_eq!(
            swapped.begin_kek_rotation(new.id()).unwrap(),
            RotationStart::AlreadyCurrent
        );
        let status = swapped.kek_status().unwrap();
        assert_eq!(status.sealed.keys().collect::<Vec<_>>(), vec![&new.id().to_string()]);
        assert_eq!(status.sealed[&new.id().to_string()]["caKey"], 3);
        // And back again, with the roles swapped.
        let (_, _) = rotate(&swapped, old.id(), 1);
        assert_eq!(open(dir.path(), &old, None).verify_sealed_keys().unwrap(), 4);
    }

    fn sample_rotation(kind: Option<&str>, after: &str) -> Rotation {
        Rotation {
            from: "0123456789abcdef".into(),
            target: "fedcba9876543210".into(),
            kind: kind.map(str::to_owned),
            after: after.into(),
            resealed: 7,
            started_at: 1_700_000_000,
        }
    }

    fn corrupt_message<T: std::fmt::Debug>(r: Result<T>) -> String {
        match r {
            Err(PkiError::Store(crate::store::StoreError::Corrupt(m))) => m,
            other => panic!("not a corrupt store: {other:?}"),
        }
    }

    #[test]
    fn rotation_record_round_trips_and_refuses_anything_else() {
        let r = sample_rotation(Some("caKey"), "ca-1");
        assert_eq!(
            r.encode(),
            "from=0123456789abcdef\ntarget=fedcba9876543210\nkind=caKey\nafter=ca-1\nresealed=7\nstartedAt=1700000000\n"
        );
        for r in [
            r,
            sample_rotation(None, ""),
            sample_rotation(Some("tokenSigningKey"), "\u{10FFFF}"),
            sample_rotation(Some("a\\b\nc"), "x=y\\n\n\r,\"'"),
        ] {
            assert_eq!(Rotation::decode(&r.encode()).unwrap(), r);
        }
        let good = sample_rotation(None, "ca-1").encode();
        let json = r#"{"from":"0123456789abcdef","target":"fedcba9876543210","kind":null,"after":"","resealed":0,"startedAt":0}"#;
        for (bad, why) in [
            (json.to_owned(), "truncated"),
            (format!("{json}\n"), "not a field name"),
            (good.replace("target=", "tarjet="), "target is missing"),
            (good.replace("kind\n", ""), "kind is missing"),
            (format!("{good}extra=1\n"), "unknown field extra"),
            (good.replace("after=ca-1", "after"), "after has no value"),
            (good.replace("resealed=7", "resealed=-7"), "not an integer"),
            (good.trim_end().to_owned(), "truncated"),
            (String::new(), "from is missing"),
        ] {
            let m = corrupt_message(Rotation::decode(&bad));
            assert!(m.starts_with("kek_rotation: ") && m.contains(why), "{bad:?}: {m}");
        }
    }

    #[test]
    fn undecodable_signer_registrations_are_ignored_then_swept() {
        let dir = tempfile::tempdir().unwrap();
        let kek = Kek::generate().unwrap();
        let pki = open(dir.path(), &kek, None);
        let entry = SignerEntry {
            node: "host\\1\n/2".into(),
            role: "all".into(),
            listen: "[::1]:8443".into(),
            held: vec![kek.id(), Kek::generate().unwrap().id()],
            seen: now().unix_timestamp(),
        };
        assert_eq!(SignerEntry::decode(&entry.encode()), Some(entry.clone()));
        let mut no_held = entry.clone();
        no_held.held.clear();
        assert_eq!(SignerEntry::decode(&no_held.encode()), Some(no_held));
        let garbage = [
            (
                "json",
                format!(
                    r#"{{"node":"n","role":"all","listen":"l","held":[],"seen":{}}}"#,
                    entry.seen
                ),
            ),
            (
                "upper",
                entry
                    .encode()
                    .replace(&kek.id().to_string(), &kek.id().to_string().to_uppercase()),
            ),
            ("notid", entry.encode().replace(&kek.id().to_string(), "nothex")),
            ("extra", format!("{}x=1\n", entry.encode())),
        ];
        {
            let mut tx = pki.store().begin(TxMode::Write).unwrap();
            tx.set_meta(&format!("{SIGNER_PREFIX}good"), &entry.encode()).unwrap();
            for (k, v) in &garbage {
                tx.set_meta(&format!("{SIGNER_PREFIX}{k}"), v).unwrap();
            }
            tx.commit().unwrap();
        }
        assert_eq!(pki.kek_status().unwrap().live_signers, vec![entry]);
        SignerRegistration::new(&pki, "all", "127.0.0.1:1")
            .unwrap()
            .beat(&pki)
            .unwrap();
        let mut tx = pki.store().begin(TxMode::Read).unwrap();
        let left: Vec<String> = tx
            .meta_with_prefix(SIGNER_PREFIX)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&format!("{SIGNER_PREFIX}good")), "{left:?}");
    }

    /// The first migration that knows the text records.
    const RECORDS_MIGRATION: &str = "kek_rotation";

    /// The previous version's JSON (serde's, camelCase) of rotations, and
    /// what each must read as after the migration.
    fn json_rotations() -> Vec<(String, Rotation)> {
        vec![
            (
                "{\"from\":\"0123456789abcdef\",\"target\":\"fedcba9876543210\",\"kind\":\"ocspDelegateKey\",\
                 \"after\":\"ca\\\\1\\n2'x\\\"y\u{10FFFF}\",\"resealed\":7,\"startedAt\":1700000000}"
                    .to_owned(),
                sample_rotation(Some("ocspDelegateKey"), "ca\\1\n2'x\"y\u{10FFFF}"),
            ),
            (
                "{\"from\":\"0123456789abcdef\",\"target\":\"fedcba9876543210\",\"kind\":null,\
                 \"after\":\"\",\"resealed\":7,\"startedAt\":1700000000}"
                    .to_owned(),
                sample_rotation(None, ""),
            ),
        ]
    }

    /// SQL writing what the previous version left in meta: `rotation`, a
    /// signer registration in JSON, and JSON under keys that are not KEK state.
    fn old_meta(rotation: &str) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
        format!(
            "INSERT INTO meta (key, value) VALUES ('kek_rotation', {}), ('kek_signer:1', {}), \
             ('kek_signer', '{{}}'), ('other', '{{\"a\":1}}');",
            q(rotation),
            q(r#"{"node":"h/1","role":"all","listen":"127.0.0.1:1","held":["0123456789abcdef"],"seen":1}"#)
        )
    }

    /// A store of the previous version holding `sql`'s rows, opened (and so
    /// migrated) by this one; the second value keeps its database alive.
    type OldStore = (Box<dyn crate::store::Store>, Box<dyn std::any::Any>);

    fn previous_json_state_migrates(old_store: impl Fn(&str) -> OldStore) {
        for (json, want) in json_rotations() {
            let (store, _db) = old_store(&old_meta(&json));
            let mut tx = store.begin(TxMode::Read).unwrap();
            assert_eq!(state(tx.as_mut()).unwrap().rotation, Some(want), "{json}");
            assert_eq!(tx.meta_with_prefix(SIGNER_PREFIX).unwrap(), Vec::new());
            assert_eq!(tx.meta("kek_signer").unwrap().as_deref(), Some("{}"));
            assert_eq!(tx.meta("other").unwrap().as_deref(), Some("{\"a\":1}"));
        }
        // Not JSON, or a field missing: left as it was, and reported corrupt.
        for bad in [
            "{not json",
            r#"{"from":"0123456789abcdef","target":"fedcba9876543210"}"#,
        ] {
            let (store, _db) = old_store(&old_meta(bad));
            let mut tx = store.begin(TxMode::Read).unwrap();
            assert!(corrupt_message(state(tx.as_mut())).starts_with("kek_rotation: "));
            assert_eq!(tx.meta(META_KEK_ROTATION).unwrap().as_deref(), Some(bad));
        }
    }

    #[test]
    fn previous_json_state_migrates_sqlite() {
        previous_json_state_migrates(|sql| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cloudpki.db");
            crate::store::SqliteStore::create_before_migration(&path, RECORDS_MIGRATION).unwrap();
            rusqlite::Connection::open(&path).unwrap().execute_batch(sql).unwrap();
            (Box::new(crate::store::SqliteStore::open(&path).unwrap()), Box::new(dir))
        });
    }

    #[test]
    fn previous_json_state_migrates_postgres() {
        previous_json_state_migrates(|sql| {
            let db = crate::store::conformance::pg::TempDb::new();
            crate::store::postgres::create_before_migration(&db.url, RECORDS_MIGRATION).unwrap();
            db.client().batch_execute(sql).unwrap();
            (Box::new(crate::store::PgStore::connect(&db.url).unwrap()), Box::new(db))
        });
    }
}
