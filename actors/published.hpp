// A value that one writer replaces now and then and that every thread reads for every request
// (the accounts directory, the moderation rules).
//
// std::atomic<std::shared_ptr> would do, but in libstdc++ 12 each load takes a spin lock kept
// in the pointer's own word, so every request on every thread wrote that word and, with two
// I/O loops on two cores, waited for it to move between them (measured: a third of the exact-hit
// lane's own CPU, spinning on `pause`). Here each thread keeps the last value it read, with the
// cell's stamp at that time, and loads the shared pointer again only after a set().
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace tc::actors {

namespace detail {
/// Stamps are unique across every cell of the process and never reused, so a thread's kept value
/// cannot be taken for another cell's, even one created at the same address.
inline std::atomic<uint64_t> next_published_stamp{1};
}  // namespace detail

template <class T>
class published {
 public:
  published() : published(std::make_shared<const T>()) {}
  explicit published(std::shared_ptr<const T> value)
      : current_(std::move(value)), stamp_(new_stamp()) {}
  published(const published&) = delete;
  published& operator=(const published&) = delete;

  /// The current value (any thread). A set() on another thread is seen by the next get() that
  /// starts after it returned.
  std::shared_ptr<const T> get() const {
    thread_local kept seen;  // one per thread and T: a thread reading two cells reloads often
    const uint64_t stamp = stamp_.load(std::memory_order_acquire);
    if (seen.stamp != stamp) {
      seen.value = current_.load();
      seen.stamp = stamp;
    }
    return seen.value;
  }

  /// Publishes a new value (any thread; meant for one writer).
  void set(std::shared_ptr<const T> value) {
    current_.store(std::move(value));
    stamp_.store(new_stamp(), std::memory_order_release);
  }

 private:
  struct kept {
    uint64_t stamp = 0;  ///< 0: nothing kept (stamps start at 1)
    std::shared_ptr<const T> value;
  };
  static uint64_t new_stamp() {
    return detail::next_published_stamp.fetch_add(1, std::memory_order_relaxed);
  }

  std::atomic<std::shared_ptr<const T>> current_;
  std::atomic<uint64_t> stamp_;
};

}  // namespace tc::actors
