#include "node/memory/thread_cache.hpp"

#include <pthread.h>
#include <sys/mman.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

// Everything here may run inside malloc, before main and inside other libraries: no allocation of
// our own (std::mutex and pthread keys do not allocate), and every global is constant-initialized
// (constinit) so that it is usable before any constructor has run.

namespace tc::memory {
namespace {

constexpr std::size_t reserve_bytes = std::size_t{64} << 30;  // address range, not memory
constexpr unsigned slab_shift = 18;                           // 256 KiB slabs
constexpr std::size_t slab_bytes = std::size_t{1} << slab_shift;
constexpr std::size_t slab_count = reserve_bytes >> slab_shift;

// Size classes: 16 to 1,024 bytes in steps of 16 (classes 1-64), then four per doubling up to
// max_small (classes 65-72, at most 25% rounding). Class 0 marks a slab not handed out.
constexpr unsigned step_classes = 64;
constexpr unsigned class_count = step_classes + 1 + 8;

constexpr unsigned class_index(std::size_t n) {
  if (n <= 1024) return n == 0 ? 1 : unsigned((n + 15) >> 4);
  const std::size_t m = n - 1;
  const unsigned k = 63 - unsigned(__builtin_clzll(m));                     // 10..11
  const unsigned j = unsigned((m - (std::size_t{1} << k)) >> (k - 2)) + 1;  // 1..4
  return step_classes + (k - 10) * 4 + j;
}

constexpr std::size_t size_of_class(unsigned c) {
  if (c <= step_classes) return std::size_t{c} << 4;
  const unsigned k = (c - step_classes - 1) / 4 + 10;
  const unsigned j = (c - step_classes - 1) % 4 + 1;
  return (std::size_t{1} << k) + j * (std::size_t{1} << (k - 2));
}

static_assert(class_index(max_small) == class_count - 1);
static_assert(size_of_class(class_count - 1) == max_small);
static_assert(size_of_class(class_index(1025)) == 1280);
static_assert(size_of_class(class_index(2048)) == 2048);
static_assert(size_of_class(class_index(2049)) == 2560);

constexpr auto class_sizes = [] {
  std::array<std::size_t, class_count> a{};
  for (unsigned c = 1; c < class_count; ++c) a[c] = size_of_class(c);
  return a;
}();

/// Blocks moved per transfer between a thread's list and the central one: about 16 KiB, 2-64.
constexpr auto class_batch = [] {
  std::array<std::uint32_t, class_count> a{};
  for (unsigned c = 1; c < class_count; ++c) {
    const std::size_t b = 16 * 1024 / size_of_class(c);
    a[c] = b < 2 ? 2 : b > 64 ? 64 : std::uint32_t(b);
  }
  return a;
}();

// A free block holds its list link in its first word; the first block of a batch parked on a
// central list holds the link to the next batch in its second word (every class is >= 16 bytes).
void*& next_of(void* p) {
  return *static_cast<void**>(p);
}
void*& next_batch_of(void* p) {
  return static_cast<void**>(p)[1];
}

enum class mode : int { unset, setting_up, on, off };
constinit std::atomic<mode> g_mode{mode::unset};
constinit std::atomic<const char*> g_off_reason{nullptr};  // set before g_mode turns off
constinit std::uintptr_t g_base = 0;
constinit std::atomic<std::size_t> g_limit{0};  // reserve_bytes once set up: owns() is false before
constinit std::atomic<std::size_t> g_slab_next{0};   // offset of the next slab to hand out
constinit std::atomic<std::size_t> g_slab_bytes{0};  // slabs made usable
constinit std::atomic<bool> g_exhausted{false};
constinit std::uint8_t g_slab_class[slab_count] = {};
constinit std::atomic<std::size_t> g_central_bytes{0};
constinit std::atomic<std::uint64_t> g_transfers{0};
constinit pthread_key_t g_key{};

struct alignas(64) central_list {
  std::mutex lock;
  void* batches = nullptr;  ///< full batches of class_batch blocks, linked by next_batch_of
  void* loose = nullptr;    ///< single blocks (from exited threads and partial takes)
  std::size_t loose_count = 0;
  char* carve = nullptr;  ///< the current slab's first block never handed out
  char* carve_end = nullptr;
};
constinit central_list g_central[class_count];

struct free_list {
  void* head = nullptr;
  std::uint32_t count = 0;
};

enum class cache_state : int { fresh, attaching, live, gone };

struct thread_cache {
  free_list lists[class_count];
  cache_state state = cache_state::fresh;
};
constinit thread_local thread_cache t_cache;

std::uintptr_t offset_of(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) - g_base;
}

unsigned class_of(const void* p) {
  const unsigned c = g_slab_class[offset_of(p) >> slab_shift];
  if (c == 0) std::abort();  // a free of an address in the range that was never handed out
  return c;
}

/// Makes one more slab usable for class c; false once the range or memory is used up.
bool new_slab(unsigned c, central_list& cl) {
  if (g_exhausted.load(std::memory_order_relaxed)) return false;
  const std::size_t off = g_slab_next.fetch_add(slab_bytes, std::memory_order_relaxed);
  char* slab = reinterpret_cast<char*>(g_base + off);
  if (off + slab_bytes > reserve_bytes || mprotect(slab, slab_bytes, PROT_READ | PROT_WRITE) != 0) {
    g_exhausted.store(true, std::memory_order_relaxed);
    return false;
  }
  g_slab_class[off >> slab_shift] = std::uint8_t(c);
  g_slab_bytes.fetch_add(slab_bytes, std::memory_order_relaxed);
  cl.carve = slab;
  cl.carve_end = slab + slab_bytes;
  return true;
}

/// Carves up to `want` new blocks of class c onto list l. Called with cl.lock held.
void carve(unsigned c, central_list& cl, free_list& l, std::uint32_t want) {
  const std::size_t size = class_sizes[c];
  for (std::uint32_t got = 0; got < want; ++got) {
    if (cl.carve == nullptr || cl.carve + size > cl.carve_end) {
      if (!new_slab(c, cl)) return;
    }
    void* p = cl.carve;
    cl.carve += size;
    next_of(p) = l.head;
    l.head = p;
    ++l.count;
  }
}

/// Fills an empty thread list of class c: a parked batch, else the loose blocks, else new ones.
bool refill(free_list& l, unsigned c) {
  central_list& cl = g_central[c];
  const std::size_t size = class_sizes[c];
  std::lock_guard guard(cl.lock);
  g_transfers.fetch_add(1, std::memory_order_relaxed);
  if (cl.batches != nullptr) {
    l.head = cl.batches;
    l.count = class_batch[c];
    cl.batches = next_batch_of(l.head);
    g_central_bytes.fetch_sub(l.count * size, std::memory_order_relaxed);
  } else if (cl.loose != nullptr) {
    l.head = cl.loose;
    l.count = std::uint32_t(cl.loose_count);
    cl.loose = nullptr;
    cl.loose_count = 0;
    g_central_bytes.fetch_sub(l.count * size, std::memory_order_relaxed);
  } else {
    carve(c, cl, l, class_batch[c]);
  }
  return l.head != nullptr;
}

/// Parks one batch from the front of a thread list that grew past its bound.
void release(free_list& l, unsigned c) {
  const std::uint32_t n = class_batch[c];
  void* first = l.head;
  void* last = first;
  for (std::uint32_t i = 1; i < n; ++i) last = next_of(last);
  l.head = next_of(last);
  l.count -= n;
  next_of(last) = nullptr;
  central_list& cl = g_central[c];
  std::lock_guard guard(cl.lock);
  next_batch_of(first) = cl.batches;
  cl.batches = first;
  g_central_bytes.fetch_add(n * class_sizes[c], std::memory_order_relaxed);
  g_transfers.fetch_add(1, std::memory_order_relaxed);
}

/// Adds a whole chain of `count` blocks to the central loose list. Takes cl.lock.
void give_loose(unsigned c, void* first, void* last, std::size_t count) {
  central_list& cl = g_central[c];
  std::lock_guard guard(cl.lock);
  next_of(last) = cl.loose;
  cl.loose = first;
  cl.loose_count += count;
  g_central_bytes.fetch_add(count * class_sizes[c], std::memory_order_relaxed);
}

/// One block straight from the central list: for threads without a cache (exiting, or inside
/// the pthread call that attaches the cache).
void* take_one(unsigned c) {
  central_list& cl = g_central[c];
  std::lock_guard guard(cl.lock);
  void* p = nullptr;
  if (cl.loose == nullptr && cl.batches != nullptr) {
    cl.loose = cl.batches;
    cl.loose_count = class_batch[c];
    cl.batches = next_batch_of(cl.loose);
  }
  if (cl.loose != nullptr) {
    p = cl.loose;
    cl.loose = next_of(p);
    --cl.loose_count;
    g_central_bytes.fetch_sub(class_sizes[c], std::memory_order_relaxed);
  } else {
    free_list one;
    carve(c, cl, one, 1);
    p = one.head;
  }
  return p;
}

/// At thread exit (pthread key destructor): every cached block goes to the central lists.
void on_thread_exit(void*) {
  thread_cache& tc = t_cache;
  for (unsigned c = 1; c < class_count; ++c) {
    free_list& l = tc.lists[c];
    if (l.head == nullptr) continue;
    void* last = l.head;
    while (next_of(last) != nullptr) last = next_of(last);
    give_loose(c, l.head, last, l.count);
    l = free_list{};
  }
  tc.state = cache_state::gone;
}

/// Gives this thread its cache; false while attaching (pthread_setspecific may allocate) and
/// after the thread's exit handler ran.
bool attach(thread_cache& tc) {
  if (tc.state != cache_state::fresh) return tc.state == cache_state::live;
  tc.state = cache_state::attaching;
  if (pthread_setspecific(g_key, &tc) != 0) {
    tc.state = cache_state::gone;
    return false;
  }
  tc.state = cache_state::live;
  return true;
}

void lock_all() {
  for (auto& cl : g_central) cl.lock.lock();
}
void unlock_all() {
  for (auto& cl : g_central) cl.lock.unlock();
}

/// Reserves the range on the first allocation. Allocations made meanwhile (by another thread,
/// or by the calls below) go to the fallback.
void set_up() {
  mode expected = mode::unset;
  if (!g_mode.compare_exchange_strong(expected, mode::setting_up)) return;
  const char* choice = std::getenv("TC_ALLOCATOR");
  auto turn_off = [](const char* why) {
    g_off_reason.store(why, std::memory_order_relaxed);
    g_mode.store(mode::off, std::memory_order_release);
  };
  if (choice != nullptr && std::strcmp(choice, "system") == 0)
    return turn_off("TC_ALLOCATOR=system");
  void* range = mmap(nullptr, reserve_bytes + slab_bytes, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (range == MAP_FAILED)
    return turn_off("the allocator's 64 GiB address range could not be reserved (RLIMIT_AS?)");
  if (pthread_key_create(&g_key, on_thread_exit) != 0) {
    munmap(range, reserve_bytes + slab_bytes);
    return turn_off("no thread-specific key was left for the allocator's caches");
  }
  g_base = (reinterpret_cast<std::uintptr_t>(range) + slab_bytes - 1) & ~(slab_bytes - 1);
  g_limit.store(reserve_bytes, std::memory_order_release);
  g_mode.store(mode::on, std::memory_order_release);
  // A child of fork() must not inherit a central lock held by a thread it does not have.
  pthread_atfork(lock_all, unlock_all, unlock_all);
}

}  // namespace

void* allocate(std::size_t n) noexcept {
  if (n > max_small) return nullptr;
  if (g_mode.load(std::memory_order_acquire) != mode::on && !enabled()) [[unlikely]]
    return nullptr;
  const unsigned c = class_index(n);
  thread_cache& tc = t_cache;
  if (tc.state != cache_state::live && !attach(tc)) [[unlikely]]
    return take_one(c);
  free_list& l = tc.lists[c];
  if (l.head == nullptr && !refill(l, c)) [[unlikely]]
    return nullptr;
  void* p = l.head;
  l.head = next_of(p);
  --l.count;
  return p;
}

void deallocate(void* p) noexcept {
  const unsigned c = class_of(p);
  thread_cache& tc = t_cache;
  if (tc.state != cache_state::live && !attach(tc)) [[unlikely]] {
    give_loose(c, p, p, 1);
    return;
  }
  free_list& l = tc.lists[c];
  next_of(p) = l.head;
  l.head = p;
  if (++l.count >= 2 * class_batch[c]) [[unlikely]]
    release(l, c);
}

bool owns(const void* p) noexcept {
  const std::size_t limit = g_limit.load(std::memory_order_acquire);
  return offset_of(p) < limit;
}

std::size_t usable_size(const void* p) noexcept {
  return class_sizes[class_of(p)];
}

std::size_t class_size(std::size_t n) noexcept {
  return class_sizes[class_index(n)];
}

bool enabled() noexcept {
  if (g_mode.load(std::memory_order_acquire) == mode::unset) set_up();
  return g_mode.load(std::memory_order_acquire) == mode::on;
}

const char* off_reason() noexcept {
  return enabled() ? nullptr : g_off_reason.load(std::memory_order_relaxed);
}

stats read_stats() noexcept {
  stats s;
  s.slab_bytes = g_slab_bytes.load(std::memory_order_relaxed);
  s.central_bytes = g_central_bytes.load(std::memory_order_relaxed);
  s.central_transfers = g_transfers.load(std::memory_order_relaxed);
  return s;
}

}  // namespace tc::memory
