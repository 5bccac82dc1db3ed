//! Process-wide memory settings for CPU training.

/// Largest allocation glibc's `malloc` can be told to serve from its heap instead of
/// a fresh mapping (`HEAP_MAX_SIZE / 2` on 64-bit Linux).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Makes glibc's `malloc` reuse freed memory for large allocations: every block
/// comes from the heap instead of a mapping of its own (`M_MMAP_MAX = 0`; blocks
/// up to 32 MiB would already with `M_MMAP_THRESHOLD`, the largest threshold glibc
/// accepts, and larger ones when the heap cannot grow), and the heap is never
/// trimmed back to the system after frees (`M_TRIM_THRESHOLD = -1`, documented as
/// "disable trimming").
///
/// Training on the CPU allocates and frees activation tensors of several megabytes
/// at every operation. With glibc's defaults most of them are mapped fresh, zeroed
/// page by page by the kernel on first touch and unmapped when freed; on a 2-core
/// machine that was about 45 % of a pixel-transformer training step (`perf`:
/// page clearing, page faults, TLB flushes). Measured with `cargo bench --bench
/// models` (2026-12-02): the threshold and no trimming at `i32::MAX` took the
/// `pixel_transformer_fwd_bwd` bench from 4.44 s to 2.4 s; `i32::MAX` still let a
/// 2.4 GiB heap be trimmed after each step, -1 does not; no mappings for blocks
/// over 32 MiB (L-TAE2d's 63 MB activations) cut its page faults from 2.9 M to
/// 0.45 M in 10 s of `ltae2d_fwd_bwd` (1.37 s -> 1.28 s per step).
///
/// Process-wide and irreversible, so a library never calls it on its own: a
/// program calls it once at the start of `main` (the `sits` binary, the examples
/// and the benches do). The cost is that memory freed by the program stays with
/// the process (its resident size stays near its peak instead of shrinking).
/// Returns whether the setting was applied: `false` on other platforms and C
/// libraries (musl, macOS, Windows), where it does nothing.
pub fn reuse_large_allocations() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are in
        // the ranges glibc documents (it returns 0 when it refuses one).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
                && libc::mallopt(libc::M_MMAP_MAX, 0) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn applies_on_linux_with_glibc() {
        let applied = super::reuse_large_allocations();
        assert_eq!(applied, cfg!(all(target_os = "linux", target_env = "gnu")));
        // large allocations still work afterwards
        let v = vec![1u8; 40 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 40 << 20);
    }
}
