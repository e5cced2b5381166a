//! Zero-copy sends of large published bodies (CRLs).
//!
//! A CRL of hundreds of kilobytes is written to every crawler that asks.
//! Copying it from user memory into each socket was a third of the
//! server's CPU per download; a file server hands the kernel the file's
//! pages instead (`sendfile`). A [`Mirror`] is an unnamed file (`O_TMPFILE`)
//! in the data directory holding the same bytes as one published body. The
//! HTTP layer wraps each plain TCP connection in an IO type that, for a
//! write of a slice lying inside a mirrored body ([`find`]), calls
//! `sendfile` from the mirror at the slice's offset instead of copying it.
//!
//! Measured (load-tests/RESULTS.md, "CRL downloads against nginx"): a
//! `memfd` mirror was slower than copying (its 4 KiB shmem pages make every
//! segment carry many page fragments); a file on the data directory's disk
//! file system is served from large page-cache folios, as nginx's files
//! are. Bodies past [`MAX_MIRRORED`] are copied: at 6 MB copying measured
//! 1.9× nginx and `sendfile` 1.0×.
//!
//! Why this is sound: a slice is matched by its address range, and the
//! registry holds a clone of the body's `Bytes` for as long as the entry
//! exists, so that memory cannot be freed and reused by other bytes while
//! it can be matched. The file is written whole before it is registered,
//! has no name, and is reachable only through this process's descriptor.
//! No `unsafe`: `rustix` wraps the system calls.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;

/// Bodies at least this long get a mirror; smaller ones cost less to copy
/// than a second system call.
pub const MIN_MIRRORED: usize = 32 * 1024;

/// Bodies longer than this are copied (see the module's measurements).
pub const MAX_MIRRORED: usize = 2 * 1024 * 1024;

/// Where mirrors are made: set once by the server at start (its data
/// directory); unset, nothing is mirrored.
static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Makes mirrors in `dir` from now on (the first call wins: one server per
/// process; tests running several fall back to the temporary directory
/// once the first one's is gone).
pub fn mirror_in(dir: &Path) {
    let _ = DIR.set(dir.to_path_buf());
}

/// A write slice at least this long is looked up; the tail of a partly
/// written body below it is copied.
pub const MIN_LOOKUP: usize = 4 * 1024;

/// At most this many mirrors (one file descriptor each) exist at once, so
/// that many CAs' CRLs cannot eat the connections' descriptors; past it,
/// bodies are copied as before.
const MAX_MIRRORS: usize = 512;

struct Entry {
    /// Keeps the mirrored memory alive while it can be matched.
    body: Bytes,
    file: Arc<OwnedFd>,
}

#[derive(Default)]
struct Registry {
    /// By start address; read per large write without a lock.
    entries: ArcSwap<BTreeMap<usize, Arc<Entry>>>,
    /// Serialises changes (rare: one per published CRL).
    changes: Mutex<()>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// A published body's file copy; registered while it lives.
#[derive(Debug)]
pub struct Mirror {
    start: usize,
}

impl Mirror {
    /// A mirror of `body`, or None: too small, too many mirrors already, or
    /// the system refused (then the body is simply copied when sent).
    pub fn of(body: &Bytes) -> Option<Arc<Mirror>> {
        if !(MIN_MIRRORED..=MAX_MIRRORED).contains(&body.len()) {
            return None;
        }
        let dir = DIR.get()?;
        let reg = registry();
        let start = body.as_ptr() as usize;
        if reg.entries.load().len() >= MAX_MIRRORS {
            return None;
        }
        // Written before the lock is taken (a mirror dropped on a worker
        // thread takes it too). The temporary directory if the data
        // directory refuses (gone, or no O_TMPFILE), unless it is tmpfs,
        // where sendfile measured slower than copying.
        let file = match file_copy(dir, body).or_else(|e| match on_tmpfs(&std::env::temp_dir()) {
            false => file_copy(&std::env::temp_dir(), body),
            true => Err(e),
        }) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "no zero-copy mirror for a published body");
                return None;
            }
        };
        let _changing = reg.changes.lock().ok()?;
        let current = reg.entries.load();
        if current.len() >= MAX_MIRRORS || current.contains_key(&start) {
            return None;
        }
        let mut next = BTreeMap::clone(&current);
        next.insert(
            start,
            Arc::new(Entry {
                body: body.clone(),
                file: Arc::new(file),
            }),
        );
        reg.entries.store(Arc::new(next));
        Some(Arc::new(Mirror { start }))
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let reg = registry();
        // A poisoned lock only means another change panicked; the map
        // itself is always whole (it is swapped, never edited in place).
        let _changing = reg.changes.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::clone(&reg.entries.load());
        next.remove(&self.start);
        reg.entries.store(Arc::new(next));
    }
}

/// The mirror file and offset holding exactly `slice`, if `slice` lies
/// inside a mirrored body.
pub fn find(slice: &[u8]) -> Option<(Arc<OwnedFd>, u64)> {
    if slice.len() < MIN_LOOKUP {
        return None;
    }
    let entries = registry().entries.load();
    let at = slice.as_ptr() as usize;
    let (start, entry) = entries.range(..=at).next_back()?;
    let end = start.checked_add(entry.body.len())?;
    let offset = at - start;
    (at.checked_add(slice.len())? <= end).then(|| (entry.file.clone(), offset as u64))
}

/// How many bodies are mirrored now (for tests and metrics).
pub fn mirrored() -> usize {
    registry().entries.load().len()
}

/// Whether `dir` is on tmpfs (shared memory).
fn on_tmpfs(dir: &Path) -> bool {
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type as i64 == TMPFS_MAGIC)
}

/// An unnamed file in `dir` holding `body`.
fn file_copy(dir: &Path, body: &[u8]) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let file = rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut rest = body;
    while !rest.is_empty() {
        let n = rustix::io::write(&file, rest)?;
        rest = &rest[n..];
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_inside_a_mirrored_body_are_found_at_their_offset_and_only_while_it_lives() {
        mirror_in(&std::env::temp_dir());
        let body = Bytes::from((0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
        assert!(
            Mirror::of(&Bytes::from(vec![1u8; 100])).is_none(),
            "small bodies are copied"
        );
        assert!(
            Mirror::of(&Bytes::from(vec![1u8; MAX_MIRRORED + 1])).is_none(),
            "so are huge ones"
        );
        let mirror = Mirror::of(&body).unwrap();
        assert!(Mirror::of(&body).is_none(), "one mirror per body");
        let (file, offset) = find(&body[5_000..50_000]).unwrap();
        assert_eq!(offset, 5_000);
        let mut back = vec![0u8; 45_000];
        let n = rustix::io::pread(&*file, &mut back, offset).unwrap();
        assert_eq!(&back[..n], &body[5_000..5_000 + n]);
        assert!(find(&body[..MIN_LOOKUP - 1]).is_none(), "short tails are copied");
        let other = body.to_vec();
        assert!(
            find(&other[..50_000]).is_none(),
            "equal bytes elsewhere are not the mirror's"
        );
        drop(mirror);
        assert!(find(&body[5_000..50_000]).is_none());
    }
}
