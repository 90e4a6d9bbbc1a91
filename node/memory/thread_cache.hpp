// A small-object allocator with a cache per thread, for tcnode's malloc (node/memory/
// malloc_shim.cpp). glibc's malloc keeps a free list per arena and frees a chunk into the arena
// that made it, under that arena's lock. A gateway hands almost every object to another thread:
// the I/O loop parses a request that an actor frees; an actor builds an answer that the loop
// frees; CAF's mailbox elements die on the receiver's thread. Measured on this machine, those
// remote frees made the loop's mallocs wait on its arena lock, and malloc was about a fifth of the
// loop's time (docs/benchmarks.md, session 14).
//
// Here a free goes to the freeing thread's own list, whoever allocated the object. A list that
// grows past its bound gives a batch back to a central list per size class (one lock per batch,
// not per object), and an empty list takes a batch from it. Objects live in slabs of one size
// class carved from one reserved address range, so a pointer's class is found from its address
// and no header is kept. Sizes above max_small, and anything once the range is used up, go to
// the caller's fallback (glibc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tc::memory {

/// The largest request served from the thread caches; larger ones go to the fallback. Larger
/// blocks are mostly buffers that grow by doubling, and a size class never gives its free blocks
/// to another: at 64 KiB, 2,000 open streams held 60 MB more than with glibc, whose free chunks
/// merge; at 4 KiB the same as glibc, at the same speed (docs/benchmarks.md, session 14).
inline constexpr std::size_t max_small = 4 * 1024;

/// A block of at least `n` bytes (n <= max_small), 16-byte aligned, or nullptr when the
/// allocator is off, not set up yet, out of address range, or n > max_small. Any thread.
void* allocate(std::size_t n) noexcept;

/// Returns a block from allocate(). Any thread, not only the one that allocated it.
void deallocate(void* p) noexcept;

/// True when p came from allocate(). Cheap: one subtraction and compare.
bool owns(const void* p) noexcept;

/// The usable size of a block from allocate(): its size class, at least what was asked.
std::size_t usable_size(const void* p) noexcept;

/// The size class a request of n bytes is served from (n <= max_small); for tests and docs.
std::size_t class_size(std::size_t n) noexcept;

/// Whether allocate() serves requests. Read once from $TC_ALLOCATOR at the first allocation:
/// "system" leaves every allocation to glibc; unset or "thread_cache" turns this allocator on.
bool enabled() noexcept;

/// Why enabled() is false, for the node's log: "TC_ALLOCATOR=system" when chosen, else what
/// failed at set-up (e.g. the address range could not be reserved under a low RLIMIT_AS).
/// nullptr while enabled() is true (or another thread is still setting it up). A static string.
const char* off_reason() noexcept;

/// Counters for metrics and tests; each is a relaxed read.
struct stats {
  std::size_t slab_bytes = 0;     ///< slabs made readable and writable so far (never returned)
  std::size_t central_bytes = 0;  ///< free blocks held by the central lists
  std::uint64_t central_transfers = 0;  ///< batches moved between thread and central lists
};
stats read_stats() noexcept;

}  // namespace tc::memory
