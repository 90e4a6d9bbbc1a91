// Fire-and-forget JSON webhooks (budget alerts, issue 4): POSTed from one thread of their own
// with libcurl, never from an I/O loop or an actor. A bounded queue; each event is tried a few
// times with backoff, then given up with a log line (the event itself was already logged and
// counted by its producer: the webhook is a notification, not a record).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace tc::node {

class webhook_sender {
 public:
  /// Starts the sender thread for `url` (http:// or https://).
  webhook_sender(std::string url, uint32_t timeout_ms);
  /// Sends what is queued (each event tried once more at most), then stops.
  ~webhook_sender();
  webhook_sender(const webhook_sender&) = delete;
  webhook_sender& operator=(const webhook_sender&) = delete;

  /// Queues one JSON body; false (dropped, logged) when 1,000 are already waiting. Any thread.
  bool post(std::string json);

  uint64_t delivered() const;  ///< events the endpoint answered with 2xx
  uint64_t failed() const;     ///< events given up after every attempt

 private:
  void run();
  bool deliver(const std::string& body, std::string& error);

  const std::string url_;
  const uint32_t timeout_ms_;
  mutable std::mutex mx_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  uint64_t delivered_ = 0;
  uint64_t failed_ = 0;
  std::thread thread_;
};

}  // namespace tc::node
