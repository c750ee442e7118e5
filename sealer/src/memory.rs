//! How the sealer's allocator treats freed memory. Every epoch allocates its rows,
//! strings and proofs afresh and frees them a second later; glibc's defaults give
//! that memory back to the kernel at once (trimming the heap, unmapping large
//! blocks), so the next epoch faults every page in again and the kernel zeroes it.
//! Keeping freed memory for reuse removes that cost; the peak, which the
//! backpressure bound caps, does not change.

/// Keep up to `TRIM` bytes of freed heap instead of returning them, and serve
/// blocks up to glibc's largest mmap threshold from the heap, where they are reused.
pub fn keep_freed_memory() {
    const TRIM: libc::c_int = 512 << 20;
    const MMAP: libc::c_int = 32 << 20;
    // SAFETY: mallopt only sets allocator parameters; it is called with valid
    // parameter numbers and values, and a refusal (return 0) leaves the defaults.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP);
    }
}
