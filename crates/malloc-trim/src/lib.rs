//! Gives the C allocator's free pages back to the system.
//!
//! glibc's malloc returns memory on `free` only from the top of each arena.
//! A burst of connections (a thousand slowloris or idle keep-alive clients)
//! leaves tens of megabytes of free chunks below live allocations, resident
//! until the process exits. `malloc_trim(0)` walks every arena and
//! `madvise`s the whole free pages away.
//!
//! `malloc_trim` leaves one thing behind: the top chunk of each thread's
//! arena, which only `free` returns, once it is larger than glibc's trim
//! threshold. glibc raises that threshold (to twice the largest `mmap`ped
//! block freed so far, up to 64 MiB) each time a larger block is freed, so
//! in a process that has freed a large block once, a worker whose arena grew
//! under a burst of connections keeps the arena's top resident for good.
//! [`set_trim_threshold`] fixes the threshold instead.
//!
//! cloudpki forbids `unsafe`; this crate holds the two calls it needs, so the
//! exception is two audited lines in a crate of its own.

#![deny(unsafe_op_in_unsafe_fn)]

/// Asks the allocator to return its free pages. `Some(true)` if glibc
/// released anything, `Some(false)` if it had nothing to give back, `None`
/// where there is no such call (musl, other systems: their allocators give
/// memory back themselves or not at all).
///
/// glibc locks each arena while it walks it: a thread allocating from that
/// arena meanwhile waits. Call it from a background thread, not too often.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> Option<bool> {
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc
    // serialises it with every other allocator call (it is MT-Safe).
    Some(unsafe { libc::malloc_trim(0) } == 1)
}

/// See the glibc version: elsewhere there is nothing to call.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> Option<bool> {
    None
}

/// Fixes the size above which `free` returns an arena's top to the system
/// (glibc's `M_TRIM_THRESHOLD`), and with it stops glibc moving that
/// threshold and the `mmap` threshold (which stays at 128 KiB) by itself.
/// `Some(true)` if glibc took it; `None` where there is no such setting.
///
/// Call it once, early, before the process has threads: glibc reads these
/// parameters without a lock.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn set_trim_threshold(bytes: usize) -> Option<bool> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and no pointer; glibc takes the
    // main arena's lock to set the parameter.
    Some(unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, bytes) } == 1)
}

/// See the glibc version: elsewhere there is nothing to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn set_trim_threshold(_bytes: usize) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn trim_gives_back_freed_pages() {
        // Many small blocks, then every other one kept so the free ones sit
        // below live allocations where free() alone cannot return them.
        let mut blocks: Vec<Vec<u8>> = (0..20_000).map(|i| vec![i as u8; 4096]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter().step_by(64).cloned().collect();
        blocks.clear();
        let released = super::trim();
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert_eq!(released, Some(true));
        } else {
            assert_eq!(released, None);
        }
        assert_eq!(kept.len(), 20_000 / 64 + 1);
    }

    #[test]
    fn the_trim_threshold_is_taken() {
        let taken = super::set_trim_threshold(128 * 1024);
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert_eq!(taken, Some(true));
        } else {
            assert_eq!(taken, None);
        }
    }
}
