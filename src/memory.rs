//! How much heap the process holds, counted as it allocates: the memory limit (`--max-memory`)
//! is checked against this total on every script operation, in constant time.
//!
//! Rhai's own size limits re-measure a whole array or map after every change, so a loop of
//! `a.push(..)` costs O(n) a push (quadratic to build a list of tasks); a running total of the
//! heap bounds every value a script holds, and everything else the run keeps, at the cost of
//! one atomic add per allocation.

use std::alloc::{GlobalAlloc, Layout};

// mimalloc: Rhai allocates a small box for nearly every value and call, and glibc's malloc
// and free were an eighth of a graph's build (−10% of `build_layers`' instructions). It is
// the C library's `malloc` too (Cargo.toml: `override`), for SQLite's sake. Fuzzing builds
// count over std's `System`, which is `malloc`: mimalloc there as well.
#[cfg(not(fuzzing))]
use mimalloc_heap::Heap;
#[cfg(fuzzing)]
use std::alloc::System as Heap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The heap allocator, counting the bytes it hands out.
pub struct CountingAllocator;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

// SAFETY: every call is passed through to `Heap` unchanged; the counter only observes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { Heap.alloc(layout) };
        if !ptr.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { Heap.alloc_zeroed(layout) };
        if !ptr.is_null() {
            IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { Heap.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { Heap.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                IN_USE.fetch_add(new_size - layout.size(), Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        new
    }
}

/// mimalloc, asked for an alignment only when a block needs more than every block has. The
/// `mimalloc` crate asks for one on every call, and its aligned path costs more than the plain
/// one even when a block falls aligned (about 100 instructions a closure task).
#[cfg(not(fuzzing))]
mod mimalloc_heap {
    use std::alloc::{GlobalAlloc, Layout};
    use std::ffi::c_void;

    use libmimalloc_sys as mi;

    /// Every mimalloc block is aligned to a machine word at least (its smallest size classes
    /// are whole words).
    const ALWAYS_ALIGNED: usize = std::mem::size_of::<usize>();

    pub struct Heap;

    // SAFETY: each call is mimalloc's own for the layout: the plain functions where any block
    // is aligned enough, the aligned ones otherwise; `mi_free` frees either.
    unsafe impl GlobalAlloc for Heap {
        #[inline]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            unsafe {
                if layout.align() <= ALWAYS_ALIGNED {
                    mi::mi_malloc(layout.size()).cast()
                } else {
                    mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
                }
            }
        }

        #[inline]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            unsafe {
                if layout.align() <= ALWAYS_ALIGNED {
                    mi::mi_zalloc(layout.size()).cast()
                } else {
                    mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
                }
            }
        }

        #[inline]
        unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
            unsafe { mi::mi_free(ptr.cast::<c_void>()) }
        }

        #[inline]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            unsafe {
                if layout.align() <= ALWAYS_ALIGNED {
                    mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
                } else {
                    mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
                }
            }
        }
    }
}

/// Bytes of heap the process holds now (what it asked for, not the allocator's overhead).
pub fn in_use() -> u64 {
    IN_USE.load(Ordering::Relaxed) as u64
}

/// True when holding `more` bytes on top of what is held now would pass `limit` (0 = none).
pub fn would_exceed(limit: u64, more: u64) -> bool {
    limit != 0 && in_use().saturating_add(more) > limit
}

/// The machine's physical memory in bytes, if the system says.
pub fn physical() -> Option<u64> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, page_size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && page_size > 0).then(|| pages as u64 * page_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The heap calls mimalloc's plain functions for word-aligned layouts: every block, of
    // every size class, must still come back aligned as asked, zeroed when asked, and keep
    // its bytes across a realloc that moves it.
    #[test]
    fn every_layout_comes_back_aligned_and_keeps_its_bytes() {
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 12, 24, 40, 56, 100, 1000, 5000, 70_000, 1 << 21] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let zeroed = std::alloc::alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "zeroed {size} bytes aligned {align}");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|&b| b == 0));
                    std::alloc::dealloc(zeroed, layout);
                    for new_size in [size * 3 + 5, size.div_ceil(2)] {
                        let ptr = std::alloc::alloc(layout);
                        assert_eq!(ptr as usize % align, 0, "{size} bytes aligned {align}");
                        for i in 0..size {
                            *ptr.add(i) = i as u8;
                        }
                        let moved = std::alloc::realloc(ptr, layout, new_size);
                        assert_eq!(moved as usize % align, 0, "{size} → {new_size} bytes aligned {align}");
                        assert!((0..size.min(new_size)).all(|i| *moved.add(i) == i as u8), "{size} → {new_size}");
                        std::alloc::dealloc(moved, Layout::from_size_align(new_size, align).unwrap());
                    }
                }
            }
        }
    }

    #[test]
    fn an_allocation_is_counted_while_it_lives() {
        let before = in_use();
        let block = vec![0u8; 64 << 20];
        // Other test threads allocate and free meanwhile: allow them 16 MiB either way.
        assert!(in_use() + (16 << 20) >= before + (64 << 20), "{} then {}", before, in_use());
        drop(block);
        assert!(in_use() < before + (48 << 20));
    }

    // SQLite and the C library allocate with `malloc`: from mimalloc's heap, not from an arena
    // of glibc's set up in each thread that calls it (docs/PERFORMANCE.md).
    #[test]
    fn the_c_librarys_malloc_is_mimalloc() {
        extern "C" {
            fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
        }
        let from_another_thread = std::thread::spawn(|| unsafe { libc::malloc(100) } as usize).join().unwrap();
        for block in [unsafe { libc::malloc(100) }, from_another_thread as *mut std::ffi::c_void] {
            assert!(!block.is_null());
            assert!(unsafe { mi_is_in_heap_region(block) }, "{block:?} is not mimalloc's");
            unsafe { libc::free(block) };
        }
    }

    #[test]
    fn no_limit_is_never_exceeded() {
        assert!(!would_exceed(0, u64::MAX));
        assert!(would_exceed(1, u64::MAX));
    }
}
