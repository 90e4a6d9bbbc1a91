// A lock-free multi-producer single-consumer queue (Vyukov's linked list): actors on any thread
// push, one I/O loop drains. Each push allocates one node; nothing else is shared.
#pragma once

#include <atomic>
#include <utility>

namespace tc::node {

template <class T>
class mpsc_queue {
 public:
  mpsc_queue() : head_(&stub_), tail_(&stub_) {}
  ~mpsc_queue() {
    T ignored;
    while (try_pop(ignored)) {
    }
  }
  mpsc_queue(const mpsc_queue&) = delete;
  mpsc_queue& operator=(const mpsc_queue&) = delete;

  /// Any thread. Never blocks.
  void push(T&& value) {
    auto* n = new node{std::move(value)};
    node* prev = head_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }

  /// Consumer thread only. False when empty (or when a producer is mid-push: the value is then
  /// seen on the next call, which the producer's wake-up guarantees).
  bool try_pop(T& out) {
    node* tail = tail_;
    node* next = tail->next.load(std::memory_order_acquire);
    if (tail == &stub_) {
      if (next == nullptr) return false;
      tail_ = next;
      tail = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      tail_ = next;
      out = std::move(tail->value);
      delete tail;
      return true;
    }
    if (tail != head_.load(std::memory_order_acquire)) return false;  // producer mid-push
    push_stub();
    next = tail->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      tail_ = next;
      out = std::move(tail->value);
      delete tail;
      return true;
    }
    return false;
  }

 private:
  struct node {
    T value{};
    std::atomic<node*> next{nullptr};
  };

  void push_stub() {
    stub_.next.store(nullptr, std::memory_order_relaxed);
    node* prev = head_.exchange(&stub_, std::memory_order_acq_rel);
    prev->next.store(&stub_, std::memory_order_release);
  }

  node stub_;
  std::atomic<node*> head_;
  node* tail_;  // consumer only
};

}  // namespace tc::node
