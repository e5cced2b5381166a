//! Gives the C allocator's free pages back to the system.
//!
//! glibc's malloc returns memory on `free` only from the top of each arena.
//! A burst of connections (a thousand slowloris or idle keep-alive clients)
//! leaves tens of megabytes of free chunks below live allocations, resident
//! until the process exits. `malloc_trim(0)` walks every arena and
//! `madvise`s the whole free pages away.
//!
//! cloudpki forbids `unsafe`; this crate holds the one call it needs, so the
//! exception is one audited line in a crate of its own.

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
}
