//! [`MiMalloc`]: the global allocator of the `llmgate` binaries (mimalloc, called the fast way).
//!
//! The request path allocates many small, short-lived objects (parsed JSON, headers, futures);
//! glibc malloc spent about 9 % of the gateway's CPU on them. The `mimalloc` crate's allocator
//! passes every Rust allocation to `mi_malloc_aligned`, whose fast path only serves a block when a
//! free one of the exact size class happens to be at hand; every other request (a block over 1 KiB,
//! or an exhausted page) falls to its generic path, which over-allocates `size + align - 1` from a
//! larger class. Under the gateway's load that was 14 allocations per request at about 170
//! instructions each (callgrind). Rust's alignment needs are almost always 8 or 16, which plain
//! `mi_malloc` guarantees (every block over 8 bytes is 16-byte aligned on 64-bit targets), so this
//! allocator calls `mi_malloc` / `mi_realloc` then, and the aligned functions only for larger
//! alignments. (Upstream: purpleprotocol/mimalloc_rust#170, microsoft/mimalloc#314.)
//!
//! A module of the binaries (`llmgate`, and `llmgate-mock` and the pass-through example by
//! `#[path]`), not of the library: a library does not choose its users' allocator.
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: alloc::MiMalloc = alloc::MiMalloc;
//! ```
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};

use libmimalloc_sys as ffi;

/// The alignment every `mi_malloc` block of at least this size has (`MI_MAX_ALIGN_SIZE`, the
/// alignment of `max_align_t`); smaller blocks are aligned to their own size class (8 bytes).
const MIN_ALIGN: usize = 16;

/// mimalloc as a Rust global allocator. See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MiMalloc;

/// Whether plain `mi_malloc(size)` returns a block aligned for `align`.
#[inline]
const fn plain_fits(size: usize, align: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

// SAFETY: every function forwards to mimalloc, which returns null on failure and otherwise a
// block of at least `size` bytes. Alignment: `plain_fits` holds only when `mi_malloc`'s guarantee
// covers the layout (blocks are multiples of 16 bytes above 8 bytes and 16-byte aligned; an 8-byte
// block is 8-byte aligned and only chosen when `align <= size <= 8`); otherwise the `_aligned`
// variants are used. Blocks from either family are freed with `mi_free`.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: FFI calls with a size and a power-of-two alignment from a valid `Layout`.
        unsafe {
            if plain_fits(size, align) {
                ffi::mi_malloc(size).cast()
            } else {
                ffi::mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as in `alloc`.
        unsafe {
            if plain_fits(size, align) {
                ffi::mi_zalloc(size).cast()
            } else {
                ffi::mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the `GlobalAlloc` contract).
        unsafe { ffi::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: `ptr` came from this allocator with `layout`; mimalloc keeps the contents.
        unsafe {
            if plain_fits(new_size, align) {
                ffi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast(), new_size, align).cast()
            }
        }
    }
}

extern "C" {
    /// mimalloc's `mi_collect` (in the library `libmimalloc-sys` links; its Rust declaration is
    /// behind the crate's `extended` feature).
    fn mi_collect(force: bool);
    /// mimalloc's `mi_option_set`.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (the version `libmimalloc-sys` 0.1.49
/// builds by default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// The purge delay the janitor sets: 10 ms (mimalloc 2's default; mimalloc 3's is 1 s).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Set when a large buffer (a request body of a MiB or more) was freed since the last release.
static LARGE_FREED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that a large buffer was used: the next [`release_after_large`] returns free memory to
/// the operating system. One relaxed store; called off the common path (large bodies only).
#[inline]
pub(crate) fn note_large() {
    LARGE_FREED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Hands the calling thread's free pages back to mimalloc's shared arenas (`mi_collect(false)`),
/// where [`release_after_large`] can return them to the OS: a thread's own pages are only
/// collected by that thread. The edge calls it after a request with a large body, on the
/// thread that served it ([`LargeBodyHooks::after_call`](llmgate::server::LargeBodyHooks)).
pub(crate) fn collect_this_thread() {
    // SAFETY: as in `release_after_large`.
    unsafe { mi_collect(false) }
}

/// When a large buffer was used since the last call: asks mimalloc to return the memory it
/// holds free to the operating system (`mi_collect(true)`). mimalloc purges freed memory only
/// lazily, when a thread allocates again, so after a burst of large bodies an idle gateway kept
/// what the burst took (docs/reliability.md, "Hostile clients"). Called every second by the
/// binary's janitor thread, never on the request path. Harmless when mimalloc is not the
/// global allocator (it then holds nothing).
pub(crate) fn release_after_large() {
    if LARGE_FREED.swap(false, std::sync::atomic::Ordering::Relaxed) {
        // SAFETY: `mi_collect` takes no pointers; it may be called from any thread.
        unsafe { mi_collect(true) }
    }
}

/// Starts the janitor thread of [`release_after_large`] (once a second), and shortens mimalloc's
/// purge delay to 10 ms unless `MIMALLOC_PURGE_DELAY` sets it: with mimalloc 3's 1 s, memory
/// freed after a burst of large bodies was still held after the janitor's collection (465–591
/// MiB of 900 three seconds later; 41 MiB with 10 ms, see docs/reliability.md). Returns `false`
/// when the thread could not be started.
pub(crate) fn start_janitor() -> bool {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; called once at start-up, before any other caller.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
    std::thread::Builder::new()
        .name("llmgate-mem".into())
        .spawn(|| loop {
            // A thread of its own, not a runtime's: sleeping blocks nothing else.
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(std::time::Duration::from_secs(1));
            release_after_large();
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every size and alignment a Rust program asks for comes back aligned and usable, through
    /// alloc, alloc_zeroed and realloc growing and shrinking (across the plain / aligned switch).
    #[test]
    fn blocks_are_aligned_and_usable() {
        let a = MiMalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for size in [
                1usize, 3, 7, 8, 9, 15, 16, 17, 24, 40, 100, 1000, 1025, 5000, 70_000,
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes, freed with the same layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xAB, size);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0, "zeroed size {size} align {align}");
                    assert!(std::slice::from_raw_parts(z, size).iter().all(|b| *b == 0));
                    // Grow, then shrink below the original size: the contents stay.
                    let big = size * 3;
                    let q = a.realloc(p, layout, big);
                    assert_eq!(q as usize % align, 0, "grow to {big} align {align}");
                    assert!(std::slice::from_raw_parts(q, size)
                        .iter()
                        .all(|b| *b == 0xAB));
                    let small = size / 2 + 1;
                    let r = a.realloc(q, Layout::from_size_align(big, align).unwrap(), small);
                    assert_eq!(r as usize % align, 0, "shrink to {small} align {align}");
                    assert!(std::slice::from_raw_parts(r, small)
                        .iter()
                        .all(|b| *b == 0xAB));
                    a.dealloc(r, Layout::from_size_align(small, align).unwrap());
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
