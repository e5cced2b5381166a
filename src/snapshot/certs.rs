//! A CA's certificates as the responder holds them: millions per CA.
//!
//! Two choices keep a certificate near the size of its signed answer
//! (load-tests/RESULTS.md has the measurements):
//! - [`CertState`] is one allocation: status, dates and the lazily signed
//!   SHA-256 answer in a 24-byte header before the SHA-1 answer's bytes (a
//!   thin pointer: 8 bytes in the map).
//! - [`CertMap`] is a sorted, packed array built once per load (found
//!   through a hash index of positions), plus a persistent B-tree of
//!   what changed since. The array costs 32 bytes a certificate; a B-tree
//!   filled in random order ~46 (its nodes are ~70 % full), one filled in
//!   order 64. A snapshot clone shares both; a change copies a few tree
//!   nodes, and the tree is folded into a new array when it grows past an
//!   eighth of it (O(n) on the maintainer's thread, not on a request's).

use std::cmp::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use time::OffsetDateTime;
use triomphe::ThinArc;

use super::SerialKey;
use crate::x509::ocsp::{CertIdHash, Status};
use crate::x509::RevocationReason;

/// A signed answer kept with its nextUpdate.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// Unix seconds.
    pub next_update: i64,
}

#[derive(Debug)]
struct Head {
    /// The SHA-256 CertID answer: pre-signed (CA certificates, rows signed
    /// before leaves' became lazy), or signed on demand at its first request
    /// and kept for as long as this state is current (a change makes a new
    /// state, so a kept answer never states an old status). Replaced when
    /// it reaches its own nextUpdate (capped at a delegated certificate's
    /// end, it may come before the state's).
    sha256: ArcSwapOption<Answer>,
    /// Unix seconds, as [`Seconds`]; of the SHA-1 answer, as signed.
    this_update: Seconds,
    next_update: Seconds,
    status: Kept,
}

/// Unix seconds in 32 bits (to 2106): a certificate's header is 24 bytes,
/// not the 48 that `i64`s and an `OffsetDateTime` took, which at 5M
/// certificates is ~115 MB. The signed answers carry the exact times; these
/// decide freshness and fill headers, and a time outside the range is
/// clamped (a nextUpdate only ever earlier, so an answer is never served
/// past its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seconds(u32);

impl Seconds {
    fn of(unix: i64) -> Self {
        Seconds(u32::try_from(unix.max(0)).unwrap_or(u32::MAX))
    }

    fn unix(self) -> i64 {
        i64::from(self.0)
    }
}

/// [`Status`] as a state keeps it: 8 bytes, not 20.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Good,
    Revoked { at: Seconds, reason: RevocationReason },
    Unknown,
}

impl Kept {
    fn of(status: Status) -> Self {
        match status {
            Status::Good => Kept::Good,
            Status::Unknown => Kept::Unknown,
            Status::Revoked { at, reason } => Kept::Revoked {
                at: Seconds::of(at.unix_timestamp()),
                reason,
            },
        }
    }

    fn status(self) -> Status {
        match self {
            Kept::Good => Status::Good,
            Kept::Unknown => Status::Unknown,
            Kept::Revoked { at, reason } => Status::Revoked {
                // Any u32 of seconds is a valid date.
                at: OffsetDateTime::from_unix_timestamp(at.unix()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
                reason,
            },
        }
    }
}

/// Status and signed answers of one certificate; the SHA-1 CertID answer is
/// the allocation's tail. Cloning shares it.
#[derive(Clone)]
pub struct CertState(ThinArc<Head, u8>);

impl std::fmt::Debug for CertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertState")
            .field("status", &self.status())
            .field("this_update", &self.this_update())
            .field("next_update", &self.next_update())
            .field("sha1", &self.sha1().len())
            .finish()
    }
}

impl CertState {
    pub fn new(status: Status, this_update: i64, next_update: i64, sha1: &[u8], sha256: Option<Bytes>) -> Self {
        let kept = sha256
            .filter(|b| !b.is_empty())
            .map(|body| Arc::new(Answer { body, next_update }));
        let head = Head {
            sha256: ArcSwapOption::new(kept),
            this_update: Seconds::of(this_update),
            next_update: Seconds::of(next_update),
            status: Kept::of(status),
        };
        CertState(ThinArc::from_header_and_slice(head, sha1))
    }

    fn head(&self) -> &Head {
        &self.0.header.header
    }

    pub fn status(&self) -> Status {
        self.head().status.status()
    }

    /// Unix seconds (clamped to 0..=u32::MAX, see [`Seconds`]).
    pub fn this_update(&self) -> i64 {
        self.head().this_update.unix()
    }

    /// Unix seconds (clamped to 0..=u32::MAX, see [`Seconds`]).
    pub fn next_update(&self) -> i64 {
        self.head().next_update.unix()
    }

    /// The SHA-1 CertID answer.
    pub fn sha1(&self) -> &[u8] {
        &self.0.slice
    }

    /// The kept SHA-256 answer, whatever its nextUpdate.
    pub fn sha256(&self) -> Option<Arc<Answer>> {
        self.head().sha256.load_full()
    }

    /// The ready answer for a CertID hash with its nextUpdate, if there is
    /// one: the SHA-1 answer always (its nextUpdate is for the caller to
    /// judge), a kept SHA-256 one while it is valid at `now` (unix seconds).
    /// The SHA-1 body is copied out of the state: its ~300 bytes are read
    /// all at once, where sharing the allocation (a `Bytes` owning a clone
    /// of the state) made a locked increment of the state's count wait for
    /// its first cache line before anything else was read, and left the
    /// rest of the lines cold for the kernel's copy into the socket.
    pub fn answer(&self, hash: CertIdHash, now: i64) -> Option<(Bytes, i64)> {
        match hash {
            CertIdHash::Sha1 => Some((Bytes::copy_from_slice(self.sha1()), self.next_update())),
            CertIdHash::Sha256 => self
                .head()
                .sha256
                .load()
                .as_ref()
                .filter(|a| a.next_update > now)
                .map(|a| (a.body.clone(), a.next_update)),
            _ => None,
        }
    }

    /// Keeps a SHA-256 answer signed on demand.
    pub fn keep_sha256(&self, body: Bytes, next_update: i64) {
        self.head().sha256.store(Some(Arc::new(Answer { body, next_update })));
    }

    pub fn is_revoked(&self) -> bool {
        matches!(self.head().status, Kept::Revoked { .. })
    }
}

/// Past this many changes (and an eighth of the array) the tree is folded
/// into a new array. Until then each changed certificate is held twice (its
/// old state in the array, ~0.65 KB with the tree's share in all): at 4,096
/// a small CA's memory grew for over an hour of a revocation a second. A fold
/// is O(n): ~1 ms at 10k (the bench's `certmap_fold_random_allocation`: 111 ms
/// at 1M), and past 4,096 certificates the eighth decides anyway.
// Small under test, so that the property test folds often.
const FOLD_MIN: usize = if cfg!(test) { 64 } else { 512 };

/// Arrays at least this long are dropped on a thread of their own.
const REAP_MIN: usize = 65_536;

/// A packed array of states, sorted by serial (for merging and listing),
/// with an open-addressing index of positions for lookups. At 5M
/// certificates a binary search of the 160 MB array was a cache miss per
/// step, 18 % of the server's CPU (a fence of every 64th serial still 13 %);
/// the index (load 2/3, linear probing) costs 6 bytes a certificate and
/// reads about two entries for a serial found, five for one absent.
///
/// Dropping one touches every state's allocation (tens of milliseconds a
/// million), and the last reference to an old snapshot may go on a
/// request's thread: large ones are handed to a reaper thread instead.
#[derive(Default)]
struct Packed {
    entries: Vec<(SerialKey, CertState)>,
    /// Positions in `entries` by serial hash, linear probing; `EMPTY` ends a
    /// probe. 3/2 of the entries (a hash is mapped onto it by multiplication,
    /// so no power of two is needed).
    slots: Vec<u32>,
    hasher: ahash::RandomState,
}

const EMPTY: u32 = u32::MAX;

impl Packed {
    /// `entries` sorted by serial, without duplicates.
    fn new(entries: Vec<(SerialKey, CertState)>) -> Self {
        let hasher = ahash::RandomState::new();
        // Positions are u32: past 4G certificates (never, for one CA) the
        // index is left empty and lookups fall back to a binary search.
        let len = if entries.len() < EMPTY as usize {
            entries.len() + entries.len() / 2 + 1
        } else {
            0
        };
        let mut slots = vec![EMPTY; len];
        for (i, (k, _)) in entries.iter().enumerate().take(len) {
            let mut h = Self::slot(&hasher, k, len);
            while slots[h] != EMPTY {
                h = Self::next(h, len);
            }
            slots[h] = i as u32;
        }
        Packed { entries, slots, hasher }
    }

    /// The first slot of `key`'s probe, in `0..len`.
    fn slot(hasher: &ahash::RandomState, key: &SerialKey, len: usize) -> usize {
        ((u128::from(hasher.hash_one(key)) * len as u128) >> 64) as usize
    }

    fn next(h: usize, len: usize) -> usize {
        if h + 1 == len {
            0
        } else {
            h + 1
        }
    }

    fn get(&self, key: &SerialKey) -> Option<&CertState> {
        if self.slots.is_empty() {
            let e = &self.entries;
            return e.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| &e[i].1);
        }
        let len = self.slots.len();
        let mut h = Self::slot(&self.hasher, key, len);
        loop {
            let i = *self.slots.get(h)?;
            if i == EMPTY {
                return None;
            }
            let (k, v) = self.entries.get(i as usize)?;
            if k == key {
                return Some(v);
            }
            h = Self::next(h, len);
        }
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        if self.entries.len() < REAP_MIN {
            return;
        }
        if let Some(reaper) = reaper() {
            // Should the thread be gone, the array comes back and drops here.
            let _ = reaper.send(Box::new((
                std::mem::take(&mut self.entries),
                std::mem::take(&mut self.slots),
            )));
        }
    }
}

type Garbage = Box<dyn Send>;

fn reaper() -> Option<&'static std::sync::mpsc::Sender<Garbage>> {
    static REAPER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> = std::sync::OnceLock::new();
    REAPER
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
            std::thread::Builder::new()
                .name("cert-reaper".into())
                .spawn(move || rx.into_iter().for_each(drop))
                .ok()
                .map(|_| tx)
        })
        .as_ref()
}

/// A CA's certificates by serial. See the module documentation.
#[derive(Clone, Default)]
pub struct CertMap {
    /// Sorted by serial, one entry per serial.
    packed: Arc<Packed>,
    /// What changed since `packed` was built; wins over it.
    recent: imbl::OrdMap<SerialKey, CertState>,
    /// Serials in `recent` that `packed` lacks.
    added: usize,
}

impl CertMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of `entries`, in any order; of a serial listed twice the later
    /// entry wins.
    pub fn from_entries(mut entries: Vec<(SerialKey, CertState)>) -> Self {
        // Reversed, then a stable sort: of equal serials the later entry comes
        // first, and dedup keeps the first of a run.
        entries.reverse();
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.shrink_to_fit();
        CertMap {
            packed: Arc::new(Packed::new(entries)),
            recent: imbl::OrdMap::new(),
            added: 0,
        }
    }

    /// Adds `entries` (in any order; they win over what the map holds).
    pub fn extend(&mut self, entries: Vec<(SerialKey, CertState)>) {
        if entries.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = Self::from_entries(entries);
            return;
        }
        let mut all: Vec<(SerialKey, CertState)> = self.iter().map(|(k, v)| (*k, v.clone())).collect();
        all.extend(entries);
        *self = Self::from_entries(all);
    }

    fn packed_get(&self, key: &SerialKey) -> Option<&CertState> {
        self.packed.get(key)
    }

    pub fn get(&self, key: &SerialKey) -> Option<&CertState> {
        if !self.recent.is_empty() {
            if let Some(v) = self.recent.get(key) {
                return Some(v);
            }
        }
        self.packed_get(key)
    }

    /// Adds or replaces a state. The caller folds when [`CertMap::fold_due`]
    /// (the maintainer does so after publishing, so that no change waits
    /// for it).
    pub fn insert(&mut self, key: SerialKey, state: CertState) {
        if self.recent.insert(key, state).is_none() && self.packed_get(&key).is_none() {
            self.added += 1;
        }
    }

    /// Whether the tree of recent changes has outgrown an eighth of the array.
    pub fn fold_due(&self) -> bool {
        self.recent.len() >= FOLD_MIN && self.recent.len() * 8 >= self.packed.entries.len()
    }

    /// Merges the tree into a new array: O(n).
    pub fn fold(&mut self) {
        let mut merged = Vec::with_capacity(self.len());
        merged.extend(self.iter().map(|(k, v)| (*k, v.clone())));
        self.packed = Arc::new(Packed::new(merged));
        self.recent = imbl::OrdMap::new();
        self.added = 0;
    }

    pub fn len(&self) -> usize {
        self.packed.entries.len() + self.added
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every certificate, by serial.
    pub fn iter(&self) -> impl Iterator<Item = (&SerialKey, &CertState)> + '_ {
        Merge {
            packed: self.packed.entries.iter().map(|(k, v)| (k, v)).peekable(),
            recent: self.recent.iter().peekable(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &SerialKey> + '_ {
        self.iter().map(|(k, _)| k)
    }
}

impl Drop for CertMap {
    fn drop(&mut self) {
        // A large tree, like a large array, is freed off the request path.
        if self.recent.len() >= REAP_MIN {
            if let Some(reaper) = reaper() {
                let _ = reaper.send(Box::new(std::mem::take(&mut self.recent)));
            }
        }
    }
}

impl std::fmt::Debug for CertMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertMap")
            .field("packed", &self.packed.entries.len())
            .field("recent", &self.recent.len())
            .finish()
    }
}

/// Two sorted sequences as one; of equal serials the second's entry.
struct Merge<A: Iterator, B: Iterator> {
    packed: std::iter::Peekable<A>,
    recent: std::iter::Peekable<B>,
}

impl<'a, A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = (&'a SerialKey, &'a CertState)>,
    B: Iterator<Item = (&'a SerialKey, &'a CertState)>,
{
    type Item = (&'a SerialKey, &'a CertState);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.packed.peek(), self.recent.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.0.cmp(b.0),
        };
        match order {
            Ordering::Less => self.packed.next(),
            Ordering::Greater => self.recent.next(),
            Ordering::Equal => {
                self.packed.next();
                self.recent.next()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> SerialKey {
        SerialKey::new(&n.to_be_bytes()).expect("serial")
    }

    fn state(tag: u8) -> CertState {
        CertState::new(Status::Good, i64::from(tag), 100, &[tag; 3], None)
    }

    /// As the maintainer does: fold when due.
    fn insert_folding(m: &mut CertMap, k: SerialKey, v: CertState) {
        m.insert(k, v);
        if m.fold_due() {
            m.fold();
        }
    }

    fn tags(m: &CertMap) -> Vec<(u32, u8)> {
        m.iter()
            .map(|(k, v)| {
                let mut b = [0u8; 4];
                b.copy_from_slice(k.as_bytes());
                (u32::from_be_bytes(b), v.sha1()[0])
            })
            .collect()
    }

    #[test]
    fn from_entries_sorts_and_keeps_the_later_duplicate() {
        let m = CertMap::from_entries(vec![(key(3), state(1)), (key(1), state(2)), (key(3), state(3))]);
        assert_eq!(tags(&m), vec![(1, 2), (3, 3)]);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&key(3)).map(|s| s.sha1()[0]), Some(3));
        assert!(m.get(&key(2)).is_none());
    }

    #[test]
    fn every_serial_is_found_across_blocks_and_gaps_are_not() {
        let m = CertMap::from_entries((0..1000u32).map(|n| (key(n * 2 + 1), state((n % 250) as u8))).collect());
        for n in 0..1000u32 {
            assert_eq!(
                m.get(&key(n * 2 + 1)).map(|s| s.sha1()[0]),
                Some((n % 250) as u8),
                "{n}"
            );
            assert!(m.get(&key(n * 2)).is_none(), "{n}");
        }
        assert!(m.get(&key(5000)).is_none());
        assert!(CertMap::new().get(&key(1)).is_none());
    }

    #[test]
    fn recent_changes_win_and_are_counted_once() {
        let mut m = CertMap::from_entries(vec![(key(1), state(1)), (key(5), state(5))]);
        m.insert(key(5), state(50));
        m.insert(key(3), state(3));
        m.insert(key(3), state(30));
        m.insert(key(9), state(9));
        assert_eq!(tags(&m), vec![(1, 1), (3, 30), (5, 50), (9, 9)]);
        assert_eq!(m.len(), 4);
        assert_eq!(m.keys().count(), 4);
        assert_eq!(m.get(&key(5)).map(|s| s.sha1()[0]), Some(50));
    }

    #[test]
    fn folding_keeps_every_entry_and_old_clones_see_the_old_map() {
        let mut m = CertMap::new();
        for n in 0..10_000u32 {
            insert_folding(&mut m, key(n * 2), state((n % 200) as u8));
        }
        let before = m.clone();
        for n in 0..10_000u32 {
            insert_folding(&mut m, key(n * 2 + 1), state(7));
            insert_folding(&mut m, key(n * 2), state(9));
        }
        assert_eq!(m.len(), 20_000);
        assert!(m.recent.len() < 20_000, "the tree was folded");
        assert!(m.iter().all(|(_, v)| matches!(v.sha1()[0], 7 | 9)));
        assert!(m.iter().zip(m.iter().skip(1)).all(|(a, b)| a.0 < b.0));
        assert_eq!(before.len(), 10_000);
        assert_eq!(before.get(&key(2)).map(|s| s.sha1()[0]), Some(1));
        assert!(before.get(&key(1)).is_none());
    }

    #[test]
    fn a_large_array_is_dropped_on_the_reaper_thread() {
        let s = state(1);
        let entries: Vec<_> = (0..REAP_MIN as u32).map(|n| (key(n), s.clone())).collect();
        let m = CertMap::from_entries(entries);
        drop(m);
        // The reaper drops the array's clones; only ours is left in the end.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while triomphe::ThinArc::strong_count(&s.0) > 1 {
            assert!(std::time::Instant::now() < deadline, "the array was not dropped");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    proptest::proptest! {
        /// Whatever the order of loads, changes and folds, the map answers
        /// as a plain ordered map would.
        #[test]
        fn agrees_with_an_ordered_map(
            load in proptest::collection::vec((0u32..3000, 0u8..255), 0..3000),
            changes in proptest::collection::vec((0u32..6000, 0u8..255), 0..6000),
        ) {
            let mut model = std::collections::BTreeMap::new();
            for (k, t) in &load {
                model.insert(*k, *t);
            }
            let mut m = CertMap::from_entries(load.iter().map(|(k, t)| (key(*k), state(*t))).collect());
            for (k, t) in &changes {
                model.insert(*k, *t);
                insert_folding(&mut m, key(*k), state(*t));
            }
            proptest::prop_assert_eq!(m.len(), model.len());
            proptest::prop_assert_eq!(tags(&m), model.iter().map(|(k, t)| (*k, *t)).collect::<Vec<_>>());
            for k in 0..6100u32 {
                proptest::prop_assert_eq!(m.get(&key(k)).map(|s| s.sha1()[0]), model.get(&k).copied());
            }
        }
    }

    #[test]
    fn extend_merges_and_new_entries_win() {
        let mut m = CertMap::from_entries(vec![(key(1), state(1))]);
        m.insert(key(2), state(2));
        m.extend(vec![(key(2), state(20)), (key(0), state(0))]);
        assert_eq!(tags(&m), vec![(0, 0), (1, 1), (2, 20)]);
    }

    /// The per-certificate budget (≤ 400 B at millions per CA) has ~100 B
    /// besides the answer: a header that grows eats it.
    #[test]
    fn a_certificate_costs_its_answer_plus_a_small_header() {
        assert_eq!(std::mem::size_of::<Head>(), 24);
        assert_eq!(std::mem::size_of::<CertState>(), 8);
        assert_eq!(std::mem::size_of::<(SerialKey, CertState)>(), 32);
    }

    #[test]
    fn a_state_keeps_its_status_and_times_in_32_bit_seconds() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        let revoked = Status::Revoked {
            at,
            reason: RevocationReason::KeyCompromise,
        };
        let s = CertState::new(revoked, 1_799_999_000, 1_800_604_800, b"a", None);
        assert_eq!(s.status(), revoked);
        assert!(s.is_revoked());
        assert_eq!((s.this_update(), s.next_update()), (1_799_999_000, 1_800_604_800));
        let good = CertState::new(Status::Good, 5, 6, b"a", None);
        assert_eq!((good.status(), good.is_revoked()), (Status::Good, false));
        assert_eq!(
            CertState::new(Status::Unknown, 5, 6, b"a", None).status(),
            Status::Unknown
        );
    }

    /// Out of the 32-bit range a nextUpdate only gets earlier: an answer is
    /// never judged fresh past the time it was signed for.
    #[test]
    fn times_outside_32_bits_are_clamped_never_extended() {
        let s = CertState::new(Status::Good, -5, i64::MAX, b"a", None);
        assert_eq!((s.this_update(), s.next_update()), (0, i64::from(u32::MAX)));
        assert_eq!(CertState::new(Status::Good, 1, -1, b"a", None).next_update(), 0);
    }

    #[test]
    fn the_sha1_body_shares_the_state_and_sha256_is_kept() {
        let s = CertState::new(Status::Good, 10, 100, b"answer", None);
        let (body, next) = s.answer(CertIdHash::Sha1, 50).expect("sha1");
        assert_eq!((&body[..], next), (&b"answer"[..], 100));
        assert!(s.answer(CertIdHash::Sha256, 50).is_none());
        s.keep_sha256(Bytes::from_static(b"two"), 60);
        let again = s.clone();
        assert_eq!(
            again.answer(CertIdHash::Sha256, 50).map(|a| a.0),
            Some(Bytes::from_static(b"two"))
        );
        assert!(
            again.answer(CertIdHash::Sha256, 60).is_none(),
            "past its own nextUpdate"
        );
    }
}
