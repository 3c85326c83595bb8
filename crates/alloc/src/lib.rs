//! The process's memory allocator, and the one call that hands memory it
//! holds free back to the operating system.
//!
//! Why the call: mimalloc returns freed memory to the OS only after its
//! purge delay (1 s) and only when some thread allocates again after it.
//! An idle server allocates nothing, so the scratch memory of its start
//! (argon2's 7 MiB per hashing thread for the bootstrap and imported
//! passwords) stayed resident for as long as nobody logged in: 37 MB idle
//! after a first start against 22.5 MB after a restart.

// Links mimalloc's static library, whose `mi_collect` is declared below.
extern crate libmimalloc_sys;

/// The global allocator the binary installs: mimalloc, since the proxy
/// path allocates and frees many small buffers per request and glibc's
/// consolidation showed as ~20 % of the gateway's user time.
pub use mimalloc::MiMalloc as Allocator;

#[allow(unsafe_code)]
unsafe extern "C" {
    /// mimalloc's `void mi_collect(bool force)`: frees the calling thread's
    /// empty pages and, forced, purges the free memory of every arena now.
    safe fn mi_collect(force: bool);
}

/// Gives the memory the calling thread has freed, and whatever mimalloc's
/// arenas hold free, back to the OS at once. For the moments a thread
/// knows it has just dropped a lot and will go idle (a hashing thread
/// after releasing argon2's buffer, the minute's purge timer); not for
/// the request path.
pub fn return_free_memory() {
    // One at a time: mimalloc purges under a try-lock and skips a purge
    // while another runs, so a thread that freed memory just then would
    // keep it resident (one start in five lost a 7 MiB buffer that way).
    let _one = COLLECTING.lock();
    mi_collect(true);
}

static COLLECTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    #[test]
    fn collecting_with_or_without_mimalloc_installed_is_harmless() {
        let big = vec![1u8; 8 << 20];
        drop(big);
        super::return_free_memory();
        super::return_free_memory();
    }
}
