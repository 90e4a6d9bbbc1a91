// tcload: holds many client connections against a node and reports what survived.
//   tcload idle --target HOST:PORT --connections 10000 --hold-seconds 30 [--pid PID]
//   tcload sse  --target HOST:PORT --streams 2000 --model sim-chat --max-tokens 100 [--pid PID]
// `idle` opens N keep-alive connections (one GET /healthz each), holds them idle, then asks
// /healthz again on every one and counts the 200s. `sse` runs N concurrent streaming chat
// completions, one per connection, and checks each ends with `data: [DONE]` and no error.
// With --pid it samples the target's VmRSS/VmHWM from /proc while the load is held.
// Prints a human summary and a final one-line JSON summary; exits 0 only if nothing failed.
// One libuv loop, one thread; every phase has a deadline. Loopback targets only.
#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <arpa/inet.h>
#include <sys/resource.h>

#include <http_parser.h>
#include <uv.h>
#include <CLI/CLI.hpp>

#include "node/http/server.hpp"

namespace {

enum class mode { idle, sse };

struct options {
  mode run_mode = mode::idle;
  std::string target;
  uint32_t count = 0;            ///< connections (idle) or streams (sse)
  uint32_t concurrency = 256;    ///< connects (and first requests) in progress at once
  double hold_seconds = 30;      ///< idle: how long every connection stays idle
  double ramp_timeout_s = 120;   ///< idle: deadline for opening all connections
  double verify_timeout_s = 60;  ///< idle: deadline for the second /healthz round
  double timeout_s = 120;        ///< sse: deadline for every stream
  int pid = 0;                   ///< process whose RSS is sampled (0 = none)
  std::string model = "sim-chat";
  uint32_t max_tokens = 100;
  std::string api_key;
};

/// A process's resident set, in kB, from /proc/PID/status.
struct rss_sample {
  long rss_kb = -1;
  long hwm_kb = -1;
};

rss_sample read_rss(int pid) {
  rss_sample out;
  if (pid <= 0) return out;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return out;
  char line[256];
  for (int i = 0; i < 200 && std::fgets(line, sizeof(line), f) != nullptr; ++i) {
    long v = 0;
    if (std::sscanf(line, "VmRSS: %ld kB", &v) == 1) out.rss_kb = v;
    if (std::sscanf(line, "VmHWM: %ld kB", &v) == 1) out.hwm_kb = v;
  }
  std::fclose(f);
  return out;
}

/// Raises the soft open-file limit to the hard one; returns the resulting soft limit.
rlim_t raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

/// Parses HOST:PORT into a loopback sockaddr; false (with a message) for anything else.
bool parse_loopback_target(const std::string& text, sockaddr_storage& out, std::string& err) {
  std::string host;
  uint16_t port = 0;
  if (!tc::http::split_host_port(text, host, port) || port == 0) {
    err = "target must be HOST:PORT with a port in 1..65535, got " + text;
    return false;
  }
  if (host == "localhost") host = "127.0.0.1";
  std::memset(&out, 0, sizeof(out));
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (uv_ip4_addr(host.c_str(), static_cast<int>(port), v4) == 0) {
    if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) {
      err = "only loopback targets (127.0.0.0/8, ::1) are allowed";
      return false;
    }
    return true;
  }
  if (uv_ip6_addr(host.c_str(), static_cast<int>(port), v6) == 0) {
    if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
      err = "only loopback targets (127.0.0.0/8, ::1) are allowed";
      return false;
    }
    return true;
  }
  err = "host must be a numeric address or localhost: " + host;
  return false;
}

/// Nearest-rank percentile of an unsorted sample (sorted in place); -1 when empty.
double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()));
  if (rank >= v.size()) rank = v.size() - 1;
  return v[rank];
}

enum class conn_state : uint8_t {
  unused,      ///< not started yet
  connecting,  ///< TCP connect in progress
  first,       ///< idle: first /healthz sent, answer pending
  held,        ///< idle: answered, now idle
  verifying,   ///< idle: second /healthz sent, answer pending
  verified,    ///< idle: second answer was a 200
  streaming,   ///< sse: request sent, stream in progress
  done,        ///< finished (success or failure recorded)
};

struct runner;

/// One client connection. Lives in runner::conns_ (never moved); tcp_ is its first member.
struct conn {
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  http_parser parser_{};
  runner* owner_ = nullptr;
  uint32_t index_ = 0;
  conn_state state_ = conn_state::unused;
  bool handle_open_ = false;  ///< uv_tcp_init ran and uv_close has not
  bool message_done_ = false;
  bool keep_alive_ = false;
  bool saw_done_ = false;
  bool saw_error_ = false;
  int status_ = 0;
  uint32_t events_ = 0;         ///< sse: data lines received
  uint64_t sent_ns_ = 0;        ///< when the request was written
  uint64_t first_data_ns_ = 0;  ///< sse: first data line
  std::string request_;         ///< sse: this stream's request bytes (alive until written)
  std::string line_;            ///< sse: the partial line carried between body slices
};

int on_headers_complete(http_parser* p);
int on_body(http_parser* p, const char* at, size_t len);
int on_message_complete(http_parser* p);

/// Drives every connection of one run on one loop.
class runner {
 public:
  runner(const options& opt, const sockaddr_storage& addr) : opt_(opt), addr_(addr) {
    http_parser_settings_init(&parser_settings_);
    parser_settings_.on_headers_complete = on_headers_complete;
    parser_settings_.on_body = on_body;
    parser_settings_.on_message_complete = on_message_complete;
    conns_ = std::make_unique<conn[]>(opt.count);
    for (uint32_t i = 0; i < opt.count; ++i) {
      conns_[i].owner_ = this;
      conns_[i].index_ = i;
    }
    idle_request_ = "GET /healthz HTTP/1.1\r\nHost: " + opt.target + "\r\n\r\n";
  }

  /// Runs to completion (every phase bounded by its deadline). Returns the process exit code.
  int run();

  // Called from the libuv and http-parser callbacks.
  void on_connected(conn& c, int status);
  void on_read(conn& c, ssize_t nread, const char* data);
  void on_written(conn& c, int status);
  void body_slice(conn& c, const char* at, size_t len);
  void on_tick();
  const http_parser_settings* parser_settings() const { return &parser_settings_; }
  char* read_buffer() { return read_buf_; }
  size_t read_buffer_size() const { return sizeof(read_buf_); }

 private:
  enum class phase { ramp, hold, verify, streams, closing };

  void start_next();
  void start_conn(conn& c);
  void send(conn& c, const std::string& bytes);
  void after_message(conn& c);
  void on_broken(conn& c);
  void fail(conn& c, uint64_t& counter);
  void close_conn(conn& c);
  void finish_stream(conn& c);
  void begin_hold();
  void begin_verify();
  void begin_closing();
  void sample_rss(bool all_held);
  double elapsed_s(uint64_t since_ns) const {
    return static_cast<double>(uv_hrtime() - since_ns) / 1e9;
  }
  void report_idle();
  void report_sse();

  const options& opt_;
  sockaddr_storage addr_;
  uv_loop_t loop_{};
  uv_timer_t tick_{};
  http_parser_settings parser_settings_{};
  std::unique_ptr<conn[]> conns_;
  std::string idle_request_;
  char read_buf_[64 * 1024];

  phase phase_ = phase::ramp;
  uint32_t next_ = 0;         ///< next connection to start
  uint32_t in_progress_ = 0;  ///< connects + first requests outstanding (bounded)
  uint64_t start_ns_ = 0;
  uint64_t phase_ns_ = 0;  ///< when the current phase began
  double ramp_s_ = 0;
  double held_s_ = 0;  ///< idle: how long the hold really lasted
  uint64_t last_sample_ns_ = 0;

  // idle counters
  uint64_t opened_ = 0;
  uint64_t connect_failed_ = 0;
  uint64_t first_failed_ = 0;
  uint64_t closed_in_hold_ = 0;
  uint64_t verify_pending_ = 0;
  uint64_t alive_ = 0;
  uint64_t verify_failed_ = 0;
  // sse counters
  uint64_t open_streams_ = 0;
  uint64_t peak_streams_ = 0;
  uint64_t completed_ = 0;
  uint64_t non_200_ = 0;
  uint64_t error_event_ = 0;
  uint64_t cut_ = 0;
  uint64_t timed_out_ = 0;
  uint64_t events_ = 0;
  std::vector<double> ttft_ms_;
  std::vector<double> duration_ms_;
  double all_open_s_ = -1;  ///< sse: seconds until every stream was open at once
  // RSS
  rss_sample max_rss_;   ///< max over every sample
  rss_sample held_rss_;  ///< max over samples taken while all were held / in flight
  uint32_t samples_ = 0;
  uint32_t held_samples_ = 0;
};

conn& conn_of(http_parser* p) {
  return *static_cast<conn*>(p->data);
}

int on_headers_complete(http_parser* p) {
  conn& c = conn_of(p);
  c.status_ = static_cast<int>(p->status_code);
  return 0;
}

int on_body(http_parser* p, const char* at, size_t len) {
  conn& c = conn_of(p);
  c.owner_->body_slice(c, at, len);
  return 0;
}

int on_message_complete(http_parser* p) {
  conn& c = conn_of(p);
  c.message_done_ = true;
  c.keep_alive_ = http_should_keep_alive(p) != 0;
  // One response per read pass: pause so bytes of a later message are not consumed yet.
  http_parser_pause(p, 1);
  return 0;
}

void alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<conn*>(h->data);
  *buf =
      uv_buf_init(c->owner_->read_buffer(), static_cast<unsigned>(c->owner_->read_buffer_size()));
}

void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<conn*>(s->data);
  c->owner_->on_read(*c, nread, buf->base);
}

void connect_cb(uv_connect_t* req, int status) {
  auto* c = static_cast<conn*>(req->data);
  c->owner_->on_connected(*c, status);
}

void write_cb(uv_write_t* req, int status) {
  auto* c = static_cast<conn*>(req->data);
  c->owner_->on_written(*c, status);
}

void tick_cb(uv_timer_t* t) {
  static_cast<runner*>(t->data)->on_tick();
}

void runner::start_next() {
  while (phase_ == phase::ramp || phase_ == phase::streams) {
    if (next_ >= opt_.count || in_progress_ >= opt_.concurrency) return;
    start_conn(conns_[next_++]);
  }
}

void runner::start_conn(conn& c) {
  ++in_progress_;
  c.state_ = conn_state::connecting;
  if (uv_tcp_init(&loop_, &c.tcp_) != 0) {
    --in_progress_;
    c.state_ = conn_state::done;
    ++connect_failed_;
    return;
  }
  c.handle_open_ = true;
  c.tcp_.data = &c;
  c.connect_req_.data = &c;
  c.write_req_.data = &c;
  http_parser_init(&c.parser_, HTTP_RESPONSE);
  c.parser_.data = &c;
  int rc = uv_tcp_connect(&c.connect_req_, &c.tcp_, reinterpret_cast<const sockaddr*>(&addr_),
                          connect_cb);
  if (rc != 0) {
    --in_progress_;
    fail(c, connect_failed_);
  }
}

void runner::on_connected(conn& c, int status) {
  if (c.state_ != conn_state::connecting) return;  // closed by a deadline meanwhile
  if (status != 0) {
    --in_progress_;
    fail(c, connect_failed_);
    start_next();
    return;
  }
  uv_tcp_nodelay(&c.tcp_, 1);
  if (uv_read_start(reinterpret_cast<uv_stream_t*>(&c.tcp_), alloc_cb, read_cb) != 0) {
    --in_progress_;
    fail(c, connect_failed_);
    start_next();
    return;
  }
  if (opt_.run_mode == mode::idle) {
    c.state_ = conn_state::first;
    send(c, idle_request_);
    return;
  }
  // sse: the stream's own request; the prompt differs per stream so no cache or dedup joins them.
  std::string body = "{\"model\":\"" + opt_.model +
                     "\",\"stream\":true,\"max_tokens\":" + std::to_string(opt_.max_tokens) +
                     ",\"messages\":[{\"role\":\"user\",\"content\":\"tcload stream " +
                     std::to_string(c.index_) + ": tell a short story about a load test.\"}]}";
  c.request_ = "POST /v1/chat/completions HTTP/1.1\r\nHost: " + opt_.target +
               "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n";
  if (!opt_.api_key.empty()) c.request_ += "Authorization: Bearer " + opt_.api_key + "\r\n";
  c.request_ += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  c.state_ = conn_state::streaming;
  --in_progress_;  // in sse the bound is on handshakes only: streams may all be open at once
  ++open_streams_;
  peak_streams_ = std::max(peak_streams_, open_streams_);
  if (open_streams_ == opt_.count && all_open_s_ < 0) all_open_s_ = elapsed_s(start_ns_);
  send(c, c.request_);
  start_next();
}

void runner::send(conn& c, const std::string& bytes) {
  c.message_done_ = false;
  c.status_ = 0;
  c.sent_ns_ = uv_hrtime();
  uv_buf_t buf = uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  if (uv_write(&c.write_req_, reinterpret_cast<uv_stream_t*>(&c.tcp_), &buf, 1, write_cb) != 0) {
    on_written(c, UV_EPIPE);
  }
}

void runner::on_written(conn& c, int status) {
  if (status == 0 || !c.handle_open_) return;
  // A failed write shows up as a failure of whatever that connection was doing.
  on_broken(c);
}

void runner::on_read(conn& c, ssize_t nread, const char* data) {
  if (!c.handle_open_) return;
  if (nread == 0) return;
  if (nread < 0) {
    // Let the parser finish a body that is delimited by the end of the connection.
    if (!c.message_done_) {
      http_parser_execute(&c.parser_, &parser_settings_, nullptr, 0);
      if (HTTP_PARSER_ERRNO(&c.parser_) == HPE_PAUSED) http_parser_pause(&c.parser_, 0);
    }
    if (c.message_done_) {
      after_message(c);
      if (!c.handle_open_) return;
    }
    on_broken(c);
    return;
  }
  size_t off = 0;
  size_t len = static_cast<size_t>(nread);
  // Bounded: each pass consumes at least one byte or stops.
  for (int pass = 0; pass < 1024 && off < len && c.handle_open_; ++pass) {
    size_t used = http_parser_execute(&c.parser_, &parser_settings_, data + off, len - off);
    off += used;
    if (HTTP_PARSER_ERRNO(&c.parser_) == HPE_PAUSED) {
      http_parser_pause(&c.parser_, 0);
    } else if (HTTP_PARSER_ERRNO(&c.parser_) != HPE_OK) {
      // Not HTTP we understand: a failed answer for whatever was pending, then drop it.
      c.status_ = 0;
      after_message(c);
      close_conn(c);
      break;
    }
    if (c.message_done_) {
      after_message(c);
    } else if (used == 0) {
      break;
    }
  }
}

void runner::after_message(conn& c) {
  bool ok = c.status_ == 200 && HTTP_PARSER_ERRNO(&c.parser_) == HPE_OK;
  c.message_done_ = false;
  switch (c.state_) {
    case conn_state::first:
      --in_progress_;
      if (ok && c.keep_alive_) {
        c.state_ = conn_state::held;
        ++opened_;
      } else {
        fail(c, first_failed_);
      }
      start_next();
      break;
    case conn_state::verifying:
      --verify_pending_;
      if (ok) {
        c.state_ = conn_state::verified;
        ++alive_;
      } else {
        fail(c, verify_failed_);
      }
      break;
    case conn_state::streaming:
      finish_stream(c);
      break;
    default:
      // An answer nobody asked for (e.g. the server's 408 on an idle connection).
      if (c.state_ == conn_state::held) fail(c, closed_in_hold_);
      break;
  }
}

void runner::body_slice(conn& c, const char* at, size_t len) {
  if (c.state_ != conn_state::streaming) return;
  // SSE lines may be split across chunks and reads: carry the partial line (bounded).
  size_t start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (at[i] != '\n') continue;
    c.line_.append(at + start, i - start);
    start = i + 1;
    std::string_view line = c.line_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.rfind("data:", 0) == 0) {
      std::string_view value = line.substr(5);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (value == "[DONE]") {
        c.saw_done_ = true;
      } else {
        if (value.rfind("{\"error\"", 0) == 0) c.saw_error_ = true;
        if (c.events_++ == 0) c.first_data_ns_ = uv_hrtime();
      }
    } else if (line.rfind("event:", 0) == 0 && line.find("error") != std::string_view::npos) {
      c.saw_error_ = true;
    }
    c.line_.clear();
  }
  if (start < len) {
    if (c.line_.size() + (len - start) > (1u << 20)) {
      c.saw_error_ = true;  // a 1 MiB line is not an SSE stream we understand
      c.line_.clear();
      return;
    }
    c.line_.append(at + start, len - start);
  }
}

void runner::finish_stream(conn& c) {
  --open_streams_;
  events_ += c.events_;
  if (c.status_ != 200) {
    fail(c, non_200_);
  } else if (c.saw_error_) {
    fail(c, error_event_);
  } else if (!c.saw_done_) {
    fail(c, cut_);
  } else {
    ++completed_;
    uint64_t now = uv_hrtime();
    if (c.first_data_ns_ != 0) {
      ttft_ms_.push_back(static_cast<double>(c.first_data_ns_ - c.sent_ns_) / 1e6);
    }
    duration_ms_.push_back(static_cast<double>(now - c.sent_ns_) / 1e6);
    c.state_ = conn_state::done;
    close_conn(c);
  }
  start_next();
}

void runner::on_broken(conn& c) {
  // The connection broke (read error, EOF or failed write): count it against what it was doing.
  switch (c.state_) {
    case conn_state::first:
      --in_progress_;
      fail(c, first_failed_);
      start_next();
      break;
    case conn_state::held:
      fail(c, closed_in_hold_);
      break;
    case conn_state::verifying:
      --verify_pending_;
      fail(c, verify_failed_);
      break;
    case conn_state::streaming:
      --open_streams_;
      fail(c, cut_);
      start_next();
      break;
    default:
      close_conn(c);
      break;
  }
}

void runner::fail(conn& c, uint64_t& counter) {
  ++counter;
  c.state_ = conn_state::done;
  close_conn(c);
}

void runner::close_conn(conn& c) {
  if (!c.handle_open_) return;
  c.handle_open_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&c.tcp_), nullptr);
}

void runner::sample_rss(bool all_held) {
  if (opt_.pid <= 0) return;
  rss_sample s = read_rss(opt_.pid);
  if (s.rss_kb < 0) return;
  ++samples_;
  max_rss_.rss_kb = std::max(max_rss_.rss_kb, s.rss_kb);
  max_rss_.hwm_kb = std::max(max_rss_.hwm_kb, s.hwm_kb);
  if (all_held) {
    ++held_samples_;
    held_rss_.rss_kb = std::max(held_rss_.rss_kb, s.rss_kb);
    held_rss_.hwm_kb = std::max(held_rss_.hwm_kb, s.hwm_kb);
  }
}

void runner::begin_hold() {
  phase_ = phase::hold;
  ramp_s_ = elapsed_s(start_ns_);
  phase_ns_ = uv_hrtime();
  std::fprintf(stderr,
               "tcload: %" PRIu64 " open after %.2f s (failed %" PRIu64 "), holding %.0f s\n",
               opened_, ramp_s_, connect_failed_ + first_failed_, opt_.hold_seconds);
  sample_rss(true);
}

void runner::begin_verify() {
  phase_ = phase::verify;
  held_s_ = elapsed_s(phase_ns_);
  phase_ns_ = uv_hrtime();
  for (uint32_t i = 0; i < opt_.count; ++i) {
    conn& c = conns_[i];
    if (c.state_ != conn_state::held || !c.handle_open_) continue;
    c.state_ = conn_state::verifying;
    ++verify_pending_;
    send(c, idle_request_);
  }
}

void runner::begin_closing() {
  phase_ = phase::closing;
  for (uint32_t i = 0; i < opt_.count; ++i) {
    conn& c = conns_[i];
    if (!c.handle_open_) continue;
    if (c.state_ == conn_state::streaming || c.state_ == conn_state::connecting) {
      if (opt_.run_mode == mode::sse) ++timed_out_;
    }
    if (c.state_ == conn_state::connecting && opt_.run_mode == mode::idle) ++connect_failed_;
    if (c.state_ == conn_state::first) ++first_failed_;
    if (c.state_ == conn_state::verifying) ++verify_failed_;
    c.state_ = conn_state::done;
    close_conn(c);
  }
  uv_timer_stop(&tick_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
}

void runner::on_tick() {
  uint64_t now = uv_hrtime();
  bool sample_due = now - last_sample_ns_ >= 200'000'000ull;
  if (sample_due) last_sample_ns_ = now;
  switch (phase_) {
    case phase::ramp:
      if (sample_due) sample_rss(false);
      if ((next_ >= opt_.count && in_progress_ == 0) ||
          elapsed_s(start_ns_) > opt_.ramp_timeout_s) {
        if (in_progress_ != 0) {
          // Deadline: whatever is still connecting counts as failed.
          for (uint32_t i = 0; i < opt_.count; ++i) {
            conn& c = conns_[i];
            if (c.state_ == conn_state::connecting) fail(c, connect_failed_);
            if (c.state_ == conn_state::first) fail(c, first_failed_);
          }
          for (uint32_t i = next_; i < opt_.count; ++i) ++connect_failed_;
          next_ = opt_.count;
          in_progress_ = 0;
        }
        if (opened_ == 0) {
          ramp_s_ = elapsed_s(start_ns_);
          begin_closing();  // nothing to hold
        } else {
          begin_hold();
        }
      }
      break;
    case phase::hold:
      if (sample_due) sample_rss(true);
      if (elapsed_s(phase_ns_) >= opt_.hold_seconds) begin_verify();
      break;
    case phase::verify:
      if (verify_pending_ == 0 || elapsed_s(phase_ns_) > opt_.verify_timeout_s) begin_closing();
      break;
    case phase::streams:
      if (sample_due) sample_rss(open_streams_ == opt_.count);
      if ((next_ >= opt_.count && open_streams_ == 0 && in_progress_ == 0) ||
          elapsed_s(start_ns_) > opt_.timeout_s) {
        begin_closing();
      }
      break;
    case phase::closing:
      break;
  }
}

int runner::run() {
  if (uv_loop_init(&loop_) != 0) return 2;
  uv_timer_init(&loop_, &tick_);
  tick_.data = this;
  start_ns_ = uv_hrtime();
  last_sample_ns_ = start_ns_;
  phase_ = opt_.run_mode == mode::idle ? phase::ramp : phase::streams;
  uv_timer_start(&tick_, tick_cb, 50, 50);
  start_next();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  if (opt_.run_mode == mode::idle) {
    report_idle();
    return (opened_ == opt_.count && alive_ == opt_.count) ? 0 : 1;
  }
  report_sse();
  return completed_ == opt_.count ? 0 : 1;
}

void runner::report_idle() {
  uint64_t failed = connect_failed_ + first_failed_;
  std::printf("idle: target=%s connections=%u opened=%" PRIu64 " failed=%" PRIu64
              " (connect=%" PRIu64 " first_request=%" PRIu64 ") ramp=%.2fs\n",
              opt_.target.c_str(), opt_.count, opened_, failed, connect_failed_, first_failed_,
              ramp_s_);
  std::printf("idle: held %.1fs, closed_during_hold=%" PRIu64 " still_alive=%" PRIu64
              " verify_failed=%" PRIu64 "\n",
              held_s_, closed_in_hold_, alive_, verify_failed_);
  if (opt_.pid > 0) {
    std::printf("idle: pid %d RSS while held: max VmRSS=%ld kB VmHWM=%ld kB (%u samples)\n",
                opt_.pid, held_rss_.rss_kb, held_rss_.hwm_kb, held_samples_);
  }
  std::printf("{\"mode\":\"idle\",\"target\":\"%s\",\"connections\":%u,\"opened\":%" PRIu64
              ",\"failed\":%" PRIu64 ",\"closed_during_hold\":%" PRIu64 ",\"alive\":%" PRIu64
              ",\"verify_failed\":%" PRIu64
              ",\"ramp_s\":%.3f,\"hold_s\":%.1f,\"pid\":%d,\"rss_kb\":%ld,\"hwm_kb\":%ld}\n",
              opt_.target.c_str(), opt_.count, opened_, failed, closed_in_hold_, alive_,
              verify_failed_, ramp_s_, held_s_, opt_.pid, held_rss_.rss_kb, held_rss_.hwm_kb);
}

void runner::report_sse() {
  double total_s = elapsed_s(start_ns_);
  uint64_t errors = connect_failed_ + non_200_ + error_event_ + cut_ + timed_out_;
  double ttft50 = percentile(ttft_ms_, 50), ttft99 = percentile(ttft_ms_, 99);
  double dur50 = percentile(duration_ms_, 50), dur99 = percentile(duration_ms_, 99);
  std::printf("sse: target=%s model=%s streams=%u completed=%" PRIu64 " errors=%" PRIu64
              " (connect=%" PRIu64 " non_200=%" PRIu64 " error_event=%" PRIu64 " cut=%" PRIu64
              " timeout=%" PRIu64 ")\n",
              opt_.target.c_str(), opt_.model.c_str(), opt_.count, completed_, errors,
              connect_failed_, non_200_, error_event_, cut_, timed_out_);
  std::printf("sse: peak_open=%" PRIu64 " all_open_after=%.2fs total=%.2fs events=%" PRIu64
              " ttft p50=%.1fms p99=%.1fms duration p50=%.0fms p99=%.0fms\n",
              peak_streams_, all_open_s_, total_s, events_, ttft50, ttft99, dur50, dur99);
  if (opt_.pid > 0) {
    std::printf(
        "sse: pid %d RSS with all streams open: max VmRSS=%ld kB (%u samples); "
        "max over run VmRSS=%ld kB VmHWM=%ld kB\n",
        opt_.pid, held_rss_.rss_kb, held_samples_, max_rss_.rss_kb, max_rss_.hwm_kb);
  }
  std::printf("{\"mode\":\"sse\",\"target\":\"%s\",\"streams\":%u,\"completed\":%" PRIu64
              ",\"errors\":%" PRIu64 ",\"connect_failed\":%" PRIu64 ",\"non_200\":%" PRIu64
              ",\"error_event\":%" PRIu64 ",\"cut\":%" PRIu64 ",\"timeout\":%" PRIu64
              ",\"peak_open\":%" PRIu64 ",\"all_open_s\":%.3f,\"total_s\":%.3f,\"events\":%" PRIu64
              ",\"ttft_p50_ms\":%.2f,\"ttft_p99_ms\":%.2f,\"duration_p50_ms\":%.1f"
              ",\"duration_p99_ms\":%.1f,\"pid\":%d,\"rss_all_open_kb\":%ld,\"rss_max_kb\":%ld"
              ",\"hwm_kb\":%ld}\n",
              opt_.target.c_str(), opt_.count, completed_, errors, connect_failed_, non_200_,
              error_event_, cut_, timed_out_, peak_streams_, all_open_s_, total_s, events_, ttft50,
              ttft99, dur50, dur99, opt_.pid, held_rss_.rss_kb, max_rss_.rss_kb, max_rss_.hwm_kb);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcload: holds many connections or SSE streams against a node (loopback only)"};
  app.require_subcommand(1);
  options opt;
  uint32_t connections = 10'000;
  uint32_t streams = 2'000;

  auto* idle = app.add_subcommand("idle", "N idle keep-alive connections, verified after a hold");
  idle->add_option("--target", opt.target, "HOST:PORT of the data port")->required();
  idle->add_option("--connections", connections, "connections to open")
      ->check(CLI::Range(1u, 1'000'000u));
  idle->add_option("--hold-seconds", opt.hold_seconds, "how long all stay idle")
      ->check(CLI::Range(0.0, 3600.0));
  idle->add_option("--concurrency", opt.concurrency, "connects in progress at once")
      ->check(CLI::Range(1u, 100'000u));
  idle->add_option("--ramp-timeout", opt.ramp_timeout_s, "seconds allowed to open them all")
      ->check(CLI::Range(1.0, 3600.0));
  idle->add_option("--verify-timeout", opt.verify_timeout_s, "seconds allowed for the re-check")
      ->check(CLI::Range(1.0, 3600.0));
  idle->add_option("--pid", opt.pid, "sample this process's RSS while the connections are held");

  auto* sse = app.add_subcommand("sse", "N concurrent streaming chat completions");
  sse->add_option("--target", opt.target, "HOST:PORT of the data port")->required();
  sse->add_option("--streams", streams, "concurrent streams (one connection each)")
      ->check(CLI::Range(1u, 1'000'000u));
  sse->add_option("--model", opt.model, "model id to request");
  sse->add_option("--max-tokens", opt.max_tokens, "max_tokens of each request")
      ->check(CLI::Range(1u, 1'000'000u));
  sse->add_option("--concurrency", opt.concurrency, "TCP handshakes in progress at once")
      ->check(CLI::Range(1u, 100'000u));
  sse->add_option("--timeout-seconds", opt.timeout_s, "deadline for the whole run")
      ->check(CLI::Range(1.0, 3600.0));
  sse->add_option("--api-key", opt.api_key, "sent as Authorization: Bearer KEY");
  sse->add_option("--pid", opt.pid, "sample this process's RSS while the streams are open");

  CLI11_PARSE(app, argc, argv);
  if (sse->parsed()) {
    opt.run_mode = mode::sse;
    opt.count = streams;
  } else {
    opt.run_mode = mode::idle;
    opt.count = connections;
  }

  sockaddr_storage addr{};
  std::string err;
  if (!parse_loopback_target(opt.target, addr, err)) {
    std::fprintf(stderr, "tcload: %s\n", err.c_str());
    return 2;
  }
  rlim_t limit = raise_fd_limit();
  if (static_cast<uint64_t>(opt.count) + 64 > static_cast<uint64_t>(limit)) {
    std::fprintf(stderr, "tcload: %u connections need more open files than the limit (%llu)\n",
                 opt.count, static_cast<unsigned long long>(limit));
    return 2;
  }
  if (opt.pid > 0 && read_rss(opt.pid).rss_kb < 0) {
    std::fprintf(stderr, "tcload: cannot read /proc/%d/status\n", opt.pid);
    return 2;
  }
  auto r = std::make_unique<runner>(opt, addr);
  return r->run();
}
