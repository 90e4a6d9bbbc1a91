#include "node/webhook.hpp"

#include <chrono>

#include <curl/curl.h>

#include "node/log.hpp"

namespace tc::node {

namespace {

constexpr size_t max_queued = 1000;
constexpr int attempts = 3;

size_t discard(char*, size_t size, size_t n, void*) {
  return size * n;
}

}  // namespace

webhook_sender::webhook_sender(std::string url, uint32_t timeout_ms)
    : url_(std::move(url)), timeout_ms_(timeout_ms), thread_([this] { run(); }) {}

webhook_sender::~webhook_sender() {
  {
    std::lock_guard<std::mutex> lock(mx_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool webhook_sender::post(std::string json) {
  {
    std::lock_guard<std::mutex> lock(mx_);
    if (queue_.size() >= max_queued) {
      ++failed_;
      log::warn("webhook_dropped", {{"why", "queue full"}, {"queued", queue_.size()}});
      return false;
    }
    queue_.push_back(std::move(json));
  }
  cv_.notify_one();
  return true;
}

uint64_t webhook_sender::delivered() const {
  std::lock_guard<std::mutex> lock(mx_);
  return delivered_;
}

uint64_t webhook_sender::failed() const {
  std::lock_guard<std::mutex> lock(mx_);
  return failed_;
}

void webhook_sender::run() {
  std::unique_lock<std::mutex> lock(mx_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, nothing left
    std::string body = std::move(queue_.front());
    queue_.pop_front();
    // While stopping, one attempt each: shutdown must not wait on a dead endpoint for long.
    const int tries = stopping_ ? 1 : attempts;
    lock.unlock();
    std::string error;
    bool ok = false;
    for (int i = 0; i < tries && !ok; ++i) {
      if (i != 0) {
        // Backoff 0.5 s, 1 s; cut short by a shutdown.
        std::unique_lock<std::mutex> wait(mx_);
        if (cv_.wait_for(wait, std::chrono::milliseconds(500 << (i - 1)),
                         [&] { return stopping_; }))
          break;
      }
      ok = deliver(body, error);
    }
    lock.lock();
    if (ok) {
      ++delivered_;
    } else {
      ++failed_;
      log::warn("webhook_failed", {{"url", url_}, {"error", error}});
    }
  }
}

bool webhook_sender::deliver(const std::string& body, std::string& error) {
  CURL* e = curl_easy_init();
  if (e == nullptr) {
    error = "curl_easy_init failed";
    return false;
  }
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(e, CURLOPT_POST, 1L);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode rc = curl_easy_perform(e);
  long status = 0;
  if (rc == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(e);
  if (rc != CURLE_OK) {
    error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    return false;
  }
  if (status < 200 || status >= 300) {
    error = "HTTP " + std::to_string(status);
    return false;
  }
  return true;
}

}  // namespace tc::node
