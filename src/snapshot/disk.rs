//! A responder's last snapshot on its own disk, so it can start while the
//! store is unreachable.
//!
//! Two files in `DATA_DIR/snapshot/`, in one format: `base` (everything at
//! one point, written whole under a temporary name, synced, then renamed:
//! a crash leaves the old base or the new one) and `journal` (what changed
//! since, appended after every round that changed the served snapshot).
//! Each file is a magic string and framed records; a frame is its length,
//! the record, and the first 8 bytes of the record's SHA-256, so a torn or
//! corrupted tail is recognised and dropped. A `Seq` record closes every
//! round: loading replays records up to the last `Seq` and no further, so
//! what is loaded is always a snapshot the responder really served.
//!
//! How often: the journal is written after each round (the page cache), and
//! synced at most every second; when it outgrows the base (or 64 MiB) a new
//! base replaces both. On load the answers whose nextUpdate passed are kept
//! (the responder answers `tryLater` for them rather than serve them), and
//! the snapshot's age is what `cloudpki_snapshot_age_seconds` reports.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use der::Encode;

use super::{CaParts, CaState, CertState, CrlDocument, CrlScopeKey, SerialKey, Snapshot};
use crate::domain::engine::EdgeKey;
use crate::domain::CaStatus;
use crate::x509::ocsp::Status;
use crate::x509::RevocationReason;

const MAGIC: &[u8; 8] = b"CPKISNP1";
/// A journal past this (or past the base's size) is folded into a new base.
const JOURNAL_MAX: u64 = 64 << 20;
const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: not a snapshot file, or one whose first round is incomplete")]
    Invalid(String),
    #[error("a stored CA could not be rebuilt: {0}")]
    Ca(String),
}

type Result<T> = std::result::Result<T, DiskError>;

/// What changed since the last round written to disk.
#[derive(Debug, Default)]
pub struct Dirty {
    pub cas: HashSet<Arc<str>>,
    pub removed: HashSet<Arc<str>>,
    pub certs: HashSet<(Arc<str>, SerialKey)>,
    pub crls: HashSet<(Arc<str>, CrlScopeKey)>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty() && self.removed.is_empty() && self.certs.is_empty() && self.crls.is_empty()
    }

    fn absorb(&mut self, other: Dirty) {
        self.cas.extend(other.cas);
        self.removed.extend(other.removed);
        self.certs.extend(other.certs);
        self.crls.extend(other.crls);
    }
}

// --- encoding ---------------------------------------------------------------

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
}

struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

const CA: u8 = 1;
const CA_REMOVED: u8 = 2;
const CERT: u8 = 3;
const CRL: u8 = 4;
const SEQ: u8 = 5;

fn ca_record(ca: &CaState) -> Vec<u8> {
    let mut e = Enc(vec![CA]);
    e.bytes(ca.id.as_bytes());
    e.i64(i64::from(ca.version));
    e.bytes(ca.status.name().as_bytes());
    e.bytes(&ca.cert_der.body);
    e.bytes(&ca.chain_p7c.body);
    e.bytes(&ca.partitions_json.body);
    e.u32(ca.crl_partitions);
    e.u8(u8::from(ca.delta_crls));
    // A responder's delegated certificate (its key stays in its own file).
    let cert = ca
        .responder
        .as_ref()
        .and_then(|r| r.cert.as_ref())
        .and_then(|c| c.to_der().ok())
        .unwrap_or_default();
    e.bytes(&cert);
    e.0
}

fn cert_record(ca_id: &str, serial: &SerialKey, state: &CertState) -> Vec<u8> {
    let mut e = Enc(vec![CERT]);
    e.bytes(ca_id.as_bytes());
    e.bytes(serial.as_bytes());
    match state.status() {
        Status::Good => e.u8(0),
        Status::Unknown => e.u8(1),
        Status::Revoked { at, reason } => {
            e.u8(2);
            e.i64(at.unix_timestamp());
            e.u8(reason.code());
        }
    }
    e.i64(state.this_update());
    e.i64(state.next_update());
    e.bytes(state.sha1());
    // A SHA-256 answer is kept on disk only when it shares the state's
    // nextUpdate (pre-signed ones always do); empty: signed on demand.
    match state.sha256() {
        Some(a) if a.next_update == state.next_update() => e.bytes(&a.body),
        _ => e.bytes(&[]),
    }
    e.0
}

fn crl_record(ca_id: &str, key: CrlScopeKey, crl: &CrlDocument) -> Vec<u8> {
    let mut e = Enc(vec![CRL]);
    e.bytes(ca_id.as_bytes());
    e.u32(key.partition);
    e.u8(u8::from(key.delta));
    e.i64(crl.number);
    e.i64(crl.doc.this_update);
    e.i64(crl.doc.next_update);
    e.i64(crl.entries as i64);
    e.bytes(&crl.doc.body);
    e.0
}

fn seq_record(seq: i64, synced_ms: u64) -> Vec<u8> {
    let mut e = Enc(vec![SEQ]);
    e.i64(seq);
    e.i64(synced_ms as i64);
    e.0
}

fn frame(out: &mut Vec<u8>, record: &[u8]) {
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(record);
    out.extend_from_slice(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, record).as_ref()[..8]);
}

/// Every CA, certificate and CRL of a snapshot, closed by its `Seq`.
fn whole(snapshot: &Snapshot, synced_ms: u64, out: &mut impl Write) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    for ca in snapshot.cas.values() {
        frame(&mut buf, &ca_record(ca));
        for (key, crl) in ca.crls.iter() {
            frame(&mut buf, &crl_record(&ca.id, *key, crl));
        }
        for (serial, state) in ca.certs.iter() {
            frame(&mut buf, &cert_record(&ca.id, serial, state));
            if buf.len() >= 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    frame(&mut buf, &seq_record(snapshot.change_seq, synced_ms));
    out.write_all(&buf)
}

/// The records of what `dirty` names, as `snapshot` has it now.
fn changes(snapshot: &Snapshot, dirty: &Dirty, synced_ms: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    for id in &dirty.removed {
        if !snapshot.cas.contains_key(id) {
            let mut e = Enc(vec![CA_REMOVED]);
            e.bytes(id.as_bytes());
            frame(&mut buf, &e.0);
        }
    }
    for id in &dirty.cas {
        if let Some(ca) = snapshot.cas.get(id) {
            frame(&mut buf, &ca_record(ca));
        }
    }
    for (id, key) in &dirty.crls {
        if let Some(crl) = snapshot.cas.get(id).and_then(|ca| ca.crls.get(key)) {
            frame(&mut buf, &crl_record(id, *key, crl));
        }
    }
    for (id, serial) in &dirty.certs {
        if let Some(state) = snapshot.cas.get(id).and_then(|ca| ca.certs.get(serial)) {
            frame(&mut buf, &cert_record(id, serial, state));
        }
    }
    frame(&mut buf, &seq_record(snapshot.change_seq, synced_ms));
    buf
}

// --- loading ----------------------------------------------------------------

/// A CA as read back, before its state is assembled.
struct LoadedCa {
    parts: CaParts,
    responder_cert: Vec<u8>,
    crls: BTreeMap<CrlScopeKey, Arc<CrlDocument>>,
    /// The base's records, in file order (a later record of a serial wins),
    /// mapped in one build once the base is read.
    certs: Vec<(SerialKey, CertState)>,
    /// Then the journal's records go straight into the map, so that a state
    /// a later record replaces is freed at once (a journal may be as large
    /// as the base).
    map: super::CertMap,
}

#[derive(Default)]
struct Replay {
    cas: BTreeMap<Arc<str>, LoadedCa>,
    removed: HashSet<Arc<str>>,
    /// Whether the base has been read and mapped.
    mapped: bool,
    /// The state as of the last complete round.
    seq: Option<(i64, u64)>,
}

impl Replay {
    /// Maps the records read so far; later ones are applied to the maps.
    fn map_staged(&mut self) {
        for ca in self.cas.values_mut() {
            ca.map.extend(std::mem::take(&mut ca.certs));
        }
        self.mapped = true;
    }

    fn apply(&mut self, record: &[u8]) -> Option<()> {
        let mut d = Dec(record);
        match d.u8()? {
            CA => {
                let id: Arc<str> = d.str()?.into();
                let version = i32::try_from(d.i64()?).ok()?;
                let status = CaStatus::parse(d.str()?)?;
                let cert_der = Bytes::copy_from_slice(d.bytes()?);
                let chain_p7c = Bytes::copy_from_slice(d.bytes()?);
                let partitions_json = Bytes::copy_from_slice(d.bytes()?);
                let crl_partitions = d.u32()?;
                let delta_crls = d.u8()? == 1;
                let responder_cert = d.bytes()?.to_vec();
                let parts = CaParts {
                    id: id.clone(),
                    version,
                    status,
                    cert_der,
                    chain_p7c,
                    partitions_json,
                    crl_partitions,
                    delta_crls,
                };
                self.removed.remove(&id);
                match self.cas.get_mut(&id) {
                    Some(ca) => {
                        ca.parts = parts;
                        ca.responder_cert = responder_cert;
                    }
                    None => {
                        self.cas.insert(
                            id,
                            LoadedCa {
                                parts,
                                responder_cert,
                                crls: BTreeMap::new(),
                                certs: Vec::new(),
                                map: super::CertMap::new(),
                            },
                        );
                    }
                }
            }
            CA_REMOVED => {
                let id: Arc<str> = d.str()?.into();
                self.cas.remove(&id);
                self.removed.insert(id);
            }
            CERT => {
                let id = d.str()?;
                let serial = SerialKey::new(d.bytes()?)?;
                let status = match d.u8()? {
                    0 => Status::Good,
                    1 => Status::Unknown,
                    2 => Status::Revoked {
                        at: time::OffsetDateTime::from_unix_timestamp(d.i64()?).ok()?,
                        reason: RevocationReason::from_code(d.u8()?)?,
                    },
                    _ => return None,
                };
                let state = CertState::new(
                    status,
                    d.i64()?,
                    d.i64()?,
                    d.bytes()?,
                    Some(Bytes::copy_from_slice(d.bytes()?)),
                );
                let ca = self.cas.get_mut(id)?;
                if self.mapped {
                    ca.map.insert(serial, state);
                    if ca.map.fold_due() {
                        ca.map.fold();
                    }
                } else {
                    ca.certs.push((serial, state));
                }
            }
            CRL => {
                let id = d.str()?;
                let key = CrlScopeKey {
                    partition: d.u32()?,
                    delta: d.u8()? == 1,
                };
                let number = d.i64()?;
                let this_update = d.i64()?;
                let next_update = d.i64()?;
                let entries = usize::try_from(d.i64()?).ok()?;
                let body = Bytes::copy_from_slice(d.bytes()?);
                let doc = CrlDocument::new(body, this_update, next_update, number, entries);
                self.cas.get_mut(id)?.crls.insert(key, Arc::new(doc));
            }
            SEQ => self.seq = Some((d.i64()?, u64::try_from(d.i64()?).ok()?)),
            _ => return None,
        }
        Some(())
    }
}

/// How a file's records are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounds {
    /// The base: written whole and renamed into place, so its records are
    /// applied as they are read (no copy of the file in memory); a damaged
    /// one makes the whole base invalid.
    Whole,
    /// The journal: a round is applied once its `Seq` is read; a damaged or
    /// torn frame ends the file there.
    Buffered,
}

/// The largest record read back (a CRL of a few million entries).
const MAX_RECORD: usize = 256 << 20;

/// Streams one file's records into `replay`; returns whether the file
/// ended on a complete round.
fn read_file(path: &Path, replay: &mut Replay, rounds: Rounds, generation: &mut Option<u64>) -> Result<bool> {
    let invalid = || DiskError::Invalid(path.display().to_string());
    let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(io(path))?);
    let mut head = [0u8; 16];
    if input.read_exact(&mut head).is_err() || head[..8] != *MAGIC {
        return Err(invalid());
    }
    let this = u64::from_be_bytes([
        head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15],
    ]);
    match generation {
        // A journal of another base (a crash between a new base and its journal).
        Some(g) if *g != this => return Ok(false),
        Some(_) => {}
        None => *generation = Some(this),
    }
    let mut round: Vec<Vec<u8>> = Vec::new();
    let mut complete = false;
    loop {
        let mut len = [0u8; 4];
        match input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io(path)(e)),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_RECORD {
            break;
        }
        let mut record = vec![0u8; len];
        let mut check = [0u8; 8];
        if input.read_exact(&mut record).is_err() || input.read_exact(&mut check).is_err() {
            break; // a torn tail
        }
        if aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &record).as_ref()[..8] != check {
            if rounds == Rounds::Whole {
                return Err(invalid());
            }
            break;
        }
        let closes_round = record.first() == Some(&SEQ);
        match rounds {
            Rounds::Whole => replay.apply(&record).ok_or_else(invalid)?,
            Rounds::Buffered => round.push(record),
        }
        if closes_round {
            for r in round.drain(..) {
                replay.apply(&r).ok_or_else(invalid)?;
            }
            complete = true;
        }
    }
    Ok(complete)
}

/// Where a data directory keeps its snapshot files.
pub fn dir_of(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshot")
}

/// A snapshot read back from disk, and when it was last known current.
pub struct Restored {
    pub snapshot: Snapshot,
    /// Unix milliseconds of the last round that reached the store.
    pub synced_ms: u64,
}

/// Loads the last snapshot written to `dir`; `edge` re-attaches the
/// responder's delegated certificates that are still valid.
pub fn load(dir: &Path, edge: Option<&EdgeKey>) -> Result<Restored> {
    let mut replay = Replay::default();
    let mut generation = None;
    if !read_file(&dir.join("base"), &mut replay, Rounds::Whole, &mut generation)? {
        return Err(DiskError::Invalid(dir.join("base").display().to_string()));
    }
    replay.map_staged();
    let journal = dir.join("journal");
    if journal.exists() {
        // Whatever is wrong with the journal (torn, damaged, half created),
        // the base and the rounds read before the damage stand.
        if let Err(e) = read_file(&journal, &mut replay, Rounds::Buffered, &mut generation) {
            tracing::warn!(error = %e, "snapshot journal unreadable from some point: using what precedes it");
        }
    }
    let (seq, synced_ms) = replay
        .seq
        .ok_or_else(|| DiskError::Invalid(dir.display().to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    let mut snapshot = Snapshot::empty();
    for (id, ca) in replay.cas {
        let responder = match (edge, ca.responder_cert.is_empty()) {
            (Some(edge), false) => edge
                .responder_for(&ca.responder_cert, &ca.parts.cert_der, now)
                .map_err(|e| DiskError::Ca(e.to_string()))?,
            _ => None,
        };
        let state = CaState::assemble(ca.parts, Arc::new(ca.crls), ca.map, responder)
            .map_err(|e| DiskError::Ca(e.to_string()))?;
        snapshot.cas.insert(id, Arc::new(state));
    }
    for id in replay.removed {
        snapshot.deleted.insert(id);
    }
    let mut issuers = super::Issuers::default();
    for (id, ca) in snapshot.cas.iter() {
        for h in &ca.hashes {
            issuers.insert(h.key_hash.clone(), id.clone());
        }
    }
    snapshot.issuers = Arc::new(issuers);
    snapshot.change_seq = seq;
    snapshot.ready = true;
    Ok(Restored { snapshot, synced_ms })
}

// --- writing ----------------------------------------------------------------

enum Message {
    /// Everything: written as a new base.
    Whole(Snapshot, u64),
    Changed(Snapshot, Dirty, u64),
}

/// Hands rounds to the writer thread; dropping it stops the thread after
/// it wrote (and synced) what it was given.
pub struct DiskWriter {
    tx: Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DiskWriter {
    pub fn start(dir: PathBuf) -> std::io::Result<DiskWriter> {
        std::fs::create_dir_all(&dir)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("snapshot-disk".into())
            .spawn(move || write_loop(&dir, rx))?;
        Ok(DiskWriter {
            tx,
            thread: Some(thread),
        })
    }

    /// The whole snapshot (after a load from the store).
    pub fn whole(&self, snapshot: &Snapshot, synced_ms: u64) {
        let _ = self.tx.send(Message::Whole(snapshot.clone(), synced_ms));
    }

    /// One round's changes (the snapshot is an O(1) clone).
    pub fn changed(&self, snapshot: &Snapshot, dirty: Dirty, synced_ms: u64) {
        let _ = self.tx.send(Message::Changed(snapshot.clone(), dirty, synced_ms));
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        // Closing the channel ends the loop.
        let (tx, _) = std::sync::mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Files {
    journal: Option<BufWriter<File>>,
    journal_len: u64,
    base_len: u64,
    last_sync: Instant,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiskError + '_ {
    move |source| DiskError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A file's header: the magic string and the generation of the base it
/// belongs to (a journal is only ever replayed on top of its own base).
fn header(generation: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&generation.to_be_bytes());
    h
}

fn write_base(dir: &Path, snapshot: &Snapshot, synced_ms: u64, files: &mut Files) -> Result<()> {
    let started = Instant::now();
    // Distinct per base: the write time in nanoseconds.
    let generation = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let tmp = dir.join("base.tmp");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io(&tmp))?);
    out.write_all(&header(generation)).map_err(io(&tmp))?;
    whole(snapshot, synced_ms, &mut out).map_err(io(&tmp))?;
    let file = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io(&tmp))?;
    let len = file.metadata().map_err(io(&tmp))?.len();
    // The new base first, then a new journal: a crash in between leaves the
    // new base with the old journal, which names the old base's generation
    // and is ignored. (The other order could leave the old base alone, older
    // than what was served.)
    std::fs::rename(&tmp, dir.join("base")).map_err(io(&tmp))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    let journal = dir.join("journal");
    let mut j = File::create(&journal).map_err(io(&journal))?;
    j.write_all(&header(generation)).map_err(io(&journal))?;
    j.sync_all().map_err(io(&journal))?;
    files.journal = Some(BufWriter::new(
        OpenOptions::new().append(true).open(&journal).map_err(io(&journal))?,
    ));
    files.journal_len = 16;
    files.base_len = len;
    tracing::info!(
        bytes = len,
        certificates = snapshot.cas.values().map(|c| c.certs.len()).sum::<usize>(),
        seconds = started.elapsed().as_secs_f64(),
        "snapshot written to disk"
    );
    Ok(())
}

fn write_loop(dir: &Path, rx: Receiver<Message>) {
    let mut files = Files {
        journal: None,
        journal_len: 0,
        base_len: 0,
        last_sync: Instant::now(),
    };
    let mut unsynced = false;
    loop {
        let first = match rx.recv_timeout(SYNC_EVERY) {
            Ok(m) => m,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // A quiet second after a write: sync it now.
                if let (true, Some(j)) = (unsynced, files.journal.as_mut()) {
                    if j.get_ref().sync_data().is_ok() {
                        unsynced = false;
                        files.last_sync = Instant::now();
                    }
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // Coalesce what queued up meanwhile: the newest snapshot, every change.
        let mut whole_at: Option<(Snapshot, u64)> = None;
        let mut latest: Option<(Snapshot, u64)> = None;
        let mut dirty = Dirty::default();
        for m in std::iter::once(first).chain(rx.try_iter()) {
            match m {
                Message::Whole(s, at) => {
                    whole_at = Some((s, at));
                    latest = None;
                    dirty = Dirty::default();
                }
                Message::Changed(s, d, at) => {
                    dirty.absorb(d);
                    latest = Some((s, at));
                }
            }
        }
        let result = (|| -> Result<()> {
            if let Some((s, at)) = &whole_at {
                write_base(dir, s, *at, &mut files)?;
            }
            let Some((s, at)) = latest else { return Ok(()) };
            let Some(journal) = files.journal.as_mut() else {
                // No base yet (the first load failed to write one): nothing to append to.
                return write_base(dir, &s, at, &mut files);
            };
            let buf = changes(&s, &dirty, at);
            let path = dir.join("journal");
            journal.write_all(&buf).map_err(io(&path))?;
            journal.flush().map_err(io(&path))?;
            files.journal_len += buf.len() as u64;
            unsynced = true;
            if files.last_sync.elapsed() >= SYNC_EVERY {
                journal.get_ref().sync_data().map_err(io(&path))?;
                files.last_sync = Instant::now();
                unsynced = false;
            }
            if files.journal_len > files.base_len.max(JOURNAL_MAX) {
                write_base(dir, &s, at, &mut files)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "writing the snapshot to disk failed; a restart without the store may serve an older one");
            files.journal = None;
        }
    }
    if let Some(j) = files.journal.as_mut() {
        let _ = j.flush();
        let _ = j.get_ref().sync_data();
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per serial: the status and both answers.
    type Answers = BTreeMap<Vec<u8>, (String, Bytes, Option<Bytes>)>;

    /// The served state, comparable: per CA its certificate, CRL bodies and
    /// every answer.
    fn served(s: &Snapshot) -> BTreeMap<String, (Bytes, Vec<Bytes>, Answers)> {
        s.cas
            .iter()
            .map(|(id, ca)| {
                let certs = ca
                    .certs
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_bytes().to_vec(),
                            (
                                format!("{:?}", v.status()),
                                Bytes::copy_from_slice(v.sha1()),
                                v.sha256().map(|a| a.body.clone()),
                            ),
                        )
                    })
                    .collect();
                let crls = ca.crls.values().map(|c| c.doc.body.clone()).collect();
                (id.to_string(), (ca.cert_der.body.clone(), crls, certs))
            })
            .collect()
    }

    #[test]
    fn a_snapshot_written_to_disk_reads_back_as_served_and_a_torn_round_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = crate::snapshot::tests::Fixture::new(dir.path().join("data"), 5);
        let disk_dir = dir.path().join("snapshot");
        let mut m = f.maintainer().with_disk(disk_dir.clone()).unwrap();
        m.load().unwrap();
        // Changes after the base go to the journal.
        f.pki
            .revoke_leaf(&f.leaves[1].id, None, RevocationReason::Superseded)
            .unwrap();
        f.pki.issue_leaf(&f.issuing, &f.request).unwrap();
        m.step().unwrap();
        let expected = f.published.load_full();
        drop(m); // stops the writer after it wrote everything

        let restored = load(&disk_dir, None).unwrap();
        assert_eq!(served(&restored.snapshot), served(&expected));
        assert_eq!(restored.snapshot.change_seq, expected.change_seq);
        assert!(restored.synced_ms > 0);
        let issuing_state = &restored.snapshot.cas[f.issuing.as_str()];
        assert_eq!(issuing_state.certs.len(), 6);
        assert!(!issuing_state.crls.is_empty(), "the CRLs are on disk too");
        assert_eq!(restored.snapshot.issuers.len(), expected.issuers.len());

        // A torn tail (a crash mid-append) loses that round only.
        let journal = disk_dir.join("journal");
        let whole_journal = std::fs::read(&journal).unwrap();
        let mut torn = whole_journal.clone();
        let mut extra = Vec::new();
        frame(&mut extra, &seq_record(expected.change_seq + 99, 1));
        torn.extend_from_slice(&extra[..extra.len() - 3]);
        std::fs::write(&journal, &torn).unwrap();
        let again = load(&disk_dir, None).unwrap();
        assert_eq!(again.snapshot.change_seq, expected.change_seq);
        assert_eq!(served(&again.snapshot), served(&expected));
        // A flipped byte in the first journal record: that round and what
        // follows are dropped, the base stands.
        let mut flipped = whole_journal.clone();
        flipped[16 + 5] ^= 0xff;
        std::fs::write(&journal, &flipped).unwrap();
        let older = load(&disk_dir, None).unwrap();
        assert!(older.snapshot.change_seq < expected.change_seq);
        assert_eq!(older.snapshot.cas[f.issuing.as_str()].certs.len(), 5);
        // A journal of another base (a crash between a new base and its
        // journal) is not replayed on this one.
        let mut other = whole_journal;
        other[15] ^= 0x01;
        std::fs::write(&journal, &other).unwrap();
        assert_eq!(
            load(&disk_dir, None).unwrap().snapshot.change_seq,
            older.snapshot.change_seq
        );
        // Half created (no header yet): the base stands.
        std::fs::write(&journal, b"").unwrap();
        assert_eq!(
            load(&disk_dir, None).unwrap().snapshot.change_seq,
            older.snapshot.change_seq
        );
        // A damaged base is not started from (it was written whole: a bad frame is corruption).
        let base = disk_dir.join("base");
        let mut damaged = std::fs::read(&base).unwrap();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xff;
        std::fs::write(&base, &damaged).unwrap();
        assert!(load(&disk_dir, None).is_err());
        // No base: nothing to start from.
        std::fs::remove_file(disk_dir.join("base")).unwrap();
        assert!(load(&disk_dir, None).is_err());
    }
}
