// tcnode's malloc: small blocks from the thread-cache allocator (node/memory/thread_cache.hpp),
// everything else from glibc. It replaces malloc the way glibc documents ("Replacing malloc":
// ELF symbol interposition by the executable), so libstdc++'s operator new, CAF, libcurl, libuv
// and RocksDB all allocate through it. Linked into tcnode (and tcbench, which measures its parts),
// never into a sanitizer build (ASan brings its own malloc).
//
// Blocks are told apart by address: free() and realloc() hand a block that is not ours to glibc,
// so memory glibc made (aligned allocations, large blocks, anything from before set-up) is always
// returned to glibc. $TC_ALLOCATOR=system turns the thread caches off at start.
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>

#include "node/memory/thread_cache.hpp"

extern "C" {
void* __libc_malloc(size_t n);
void __libc_free(void* p);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t n);
}

namespace {

namespace mem = tc::memory;

/// glibc's malloc_usable_size, for glibc's blocks (looked up once; dlsym may allocate).
size_t system_usable_size(void* p) {
  using fn = size_t (*)(void*);
  static const fn next = reinterpret_cast<fn>(dlsym(RTLD_NEXT, "malloc_usable_size"));
  return next != nullptr ? next(p) : 0;
}

}  // namespace

extern "C" {

void* malloc(size_t n) noexcept {
  if (void* p = mem::allocate(n)) return p;
  return __libc_malloc(n);
}

void free(void* p) noexcept {
  if (mem::owns(p))
    mem::deallocate(p);
  else
    __libc_free(p);
}

void* calloc(size_t n, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (void* p = mem::allocate(total)) return std::memset(p, 0, total);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t n) noexcept {
  if (p == nullptr) return malloc(n);
  if (!mem::owns(p)) return __libc_realloc(p, n);
  if (n == 0) {  // glibc's behaviour: free and return null
    mem::deallocate(p);
    return nullptr;
  }
  const size_t have = mem::usable_size(p);
  if (n <= have) return p;
  void* q = malloc(n);
  if (q == nullptr) return nullptr;  // p stays valid, as realloc promises
  std::memcpy(q, p, have);
  mem::deallocate(p);
  return q;
}

void* reallocarray(void* p, size_t n, size_t size) noexcept {
  size_t total = 0;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, total);
}

size_t malloc_usable_size(void* p) noexcept {
  if (p == nullptr) return 0;
  if (mem::owns(p)) return mem::usable_size(p);
  return system_usable_size(p);
}

}  // extern "C"
