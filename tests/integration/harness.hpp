// Shared pieces of the process-level tests: start a real tcnode / tcsim on port 0, small TOML
// configs, request bodies and JSON access. Test-only; used from the test's main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <rapidjson/document.h>

#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"

namespace tc::test {

/// How long a binary may take to print its ready line (debug + sanitizer builds are slow).
inline constexpr milliseconds ready_timeout{15000};

/// "[server]" with both listeners on 127.0.0.1 port 0, plus `extra` lines.
std::string server_toml(std::string_view extra = {});

/// An in-process sim provider "sim" with models sim-chat (chat) and sim-embed (embedding).
std::string sim_provider_toml(double ttft_ms = 5, double tokens_per_sec = 2000,
                              std::string_view extra_sim = {});

/// An in-process sim provider `name` in `region` (ttft 1 ms, 5000 tokens/s) serving sim-chat at
/// `price` per 1M input and output tokens; `extra_provider` lines go in its [[providers]] table.
std::string regional_sim_toml(std::string_view name, std::string_view region, double price,
                              std::string_view extra_provider = {});

/// An openai-type provider "up" at http://127.0.0.1:port/v1 with models sim-chat, sim-embed.
std::string openai_provider_toml(uint16_t port, std::string_view extra_provider = {});

/// A running tcnode. The destructor stops it (SIGTERM, then SIGKILL).
class node_process {
 public:
  /// Writes `toml` to a temp dir and starts tcnode --config on it (plus `extra_args`). Waits for
  /// the ready line. False (and error()) on failure.
  bool start(const std::string& toml, const std::vector<std::string>& extra_args = {});
  /// Extra environment entries "NAME=value" for the next start.
  void set_env(std::vector<std::string> env) { opts_.env = std::move(env); }
  /// RLIMIT_AS (bytes) for the next start; 0 = the test's own.
  void set_address_space_limit(std::size_t bytes) { opts_.address_space_limit = bytes; }
  /// Starts tcnode with an existing config file.
  bool start_file(const std::string& config_path, const std::vector<std::string>& extra_args);

  uint16_t data_port() const { return data_port_; }
  uint16_t admin_port() const { return admin_port_; }
  const std::string& ready_line() const { return ready_line_; }
  const std::string& error() const { return error_; }
  /// What the node wrote to stderr so far (its JSON log lines).
  std::string log() const;
  /// Last `max` bytes of log(), for failure messages.
  std::string log_tail(std::size_t max = 2000) const;
  process& proc() { return proc_; }
  /// SIGTERM and wait; how the node ended (exit 0 is a clean, leak-free shutdown).
  exit_status stop(milliseconds grace = milliseconds(15000)) { return proc_.stop(grace); }

 private:
  temp_dir dir_;
  process proc_;
  std::string ready_line_;
  std::string error_;
  std::string log_path_;
  process::options opts_;  ///< env and limits for the next start (its stderr_path is set there)
  uint16_t data_port_ = 0;
  uint16_t admin_port_ = 0;
};

/// One admin-port call on a fresh connection; `token` is an admin token ("" none).
response admin_call(const node_process& node, std::string_view method, std::string_view path,
                    std::string_view body = {}, std::string_view token = {});
/// POST /v1/tenants with `body`; the test fails unless it is created.
void create_tenant(const node_process& node, std::string_view body, std::string_view token = {});
/// POST /v1/keys for `tenant` plus `body_extra` members; the new secret (the test fails unless
/// it is created).
std::string create_key(const node_process& node, std::string_view tenant,
                       std::string_view body_extra = {}, std::string_view token = {});
/// POST /v1/chat/completions of model sim-chat with `content`, bearer `key` ("" none).
response chat(const node_process& node, std::string_view key, std::string_view content,
              std::string_view extra = {});

/// What a tcctl run printed and how it exited (-1: it did not exit in time).
struct tcctl_result {
  int code = -1;
  std::string out;
};
/// Runs tcctl against `node`'s admin port with `args` (and `env` entries "NAME=value").
tcctl_result run_tcctl(const node_process& node, std::vector<std::string> args,
                       const std::vector<std::string>& env = {});

/// A running tcsim. The destructor stops it.
class sim_process {
 public:
  /// Starts tcsim --listen 127.0.0.1:0 plus `args`; waits for "ready sim=HOST:PORT".
  bool start(const std::vector<std::string>& args = {});
  uint16_t port() const { return port_; }
  const std::string& error() const { return error_; }
  std::string log_tail(std::size_t max = 2000) const;
  process& proc() { return proc_; }
  /// Sum of one metric family from GET /metrics; nullopt if unreachable or absent.
  std::optional<double> metric(std::string_view name);

 private:
  temp_dir dir_;
  process proc_;
  std::string error_;
  std::string log_path_;
  uint16_t port_ = 0;
};

/// Current value of a metric family (summed over labels) on the node's admin /metrics.
std::optional<double> node_metric(const node_process& node, std::string_view name);

/// Waits until every in-flight gauge (requests, upstream calls) and the open-connection gauge
/// of the node read 0. Returns a description of what is still non-zero, or "" when all are 0.
std::string wait_node_idle(const node_process& node, milliseconds timeout);

/// A chat request body with one user message; `extra` is spliced in as more members
/// (e.g. "\"stream\":true").
std::string chat_body(std::string_view model, std::string_view content,
                      std::string_view extra = {});

/// Parses JSON; the document has HasParseError() on failure.
rapidjson::Document parse_json(std::string_view text);

/// Member `key` of object `v` as a string, or "" (also for null or non-strings).
std::string str_of(const rapidjson::Value& v, const char* key);

/// The error envelope's fields: {"error":{"message","type","param","code"}}.
struct api_error_view {
  bool valid = false;  ///< the body is an envelope with a string message and a string type
  std::string message, type, param, code;
};
api_error_view error_of(std::string_view body);

/// The data: payloads of an SSE body's JSON events (not [DONE]) parsed; non-JSON are skipped.
std::vector<rapidjson::Document> sse_json_chunks(std::string_view body);

/// A one-thread HTTP endpoint on 127.0.0.1:0 (a webhook or a moderation service stand-in): it
/// keeps each request's body and answers 200 with answer(body) as JSON ("" without an answer
/// function), one connection at a time, Connection: close.
class http_catcher {
 public:
  explicit http_catcher(std::function<std::string(const std::string&)> answer = {});
  ~http_catcher();
  http_catcher(const http_catcher&) = delete;
  http_catcher& operator=(const http_catcher&) = delete;
  uint16_t port() const { return port_; }
  std::vector<std::string> bodies();

 private:
  void serve();
  std::function<std::string(const std::string&)> answer_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mx_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

/// True if a predicate becomes true before the deadline; checks every `step` (bounded).
template <class Pred>
bool eventually(Pred pred, milliseconds timeout, milliseconds step = milliseconds(20));

}  // namespace tc::test

#include <thread>

namespace tc::test {

template <class Pred>
bool eventually(Pred pred, milliseconds timeout, milliseconds step) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (int pass = 0; pass < 100'000; ++pass) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);  // polling an outside condition, not waiting for readiness
  }
  return false;
}

}  // namespace tc::test
