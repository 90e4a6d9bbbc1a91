// libcurl multi on a libuv loop. Design notes:
// - Sockets: one uv_poll_t per curl socket. A connection socket (seen by CURLOPT_SOCKOPTFUNCTION)
//   keeps its poll handle while it idles in curl's connection cache and is closed from
//   CURLOPT_CLOSESOCKETFUNCTION, i.e. while curl still owns the fd, so a later socket with the
//   same fd number never meets a stale watcher. Other sockets (resolver wake-up pipes) are closed
//   at CURL_POLL_REMOVE.
// - Lazy stop: at CURL_POLL_REMOVE a connection's poll is left running (unref'd) and only stopped
//   if it fires while curl does not want it (peer closed an idle connection). The next call on
//   the connection wants the same events again, so a reused connection costs no epoll_ctl at
//   all (libuv's uv_poll_start/stop each cost one or two).
// - Calls are pooled: each pooled call owns a CURL easy handle with its fixed options set once, a
//   first-byte uv_timer_t and a header list, and is addressed by a (generation, slot) id. At most
//   k_max_idle_calls idle ones are kept, so a burst does not pin its easy handles for ever.
// - Re-entrancy: curl forbids multi calls from inside its callbacks, and user callbacks
//   (on_headers/on_data) run inside them. While `depth_` > 0, start/cancel/close only record
//   what to do; after_action() does it once curl has returned. on_complete always runs outside
//   curl, after the call is recycled, so it may start, cancel or close freely.
// - Resume is deferred to a zero timer ("kick") so no callback runs inside resume() either.
// - URLs are parsed once: each distinct call URL (up to k_max_parsed_urls) keeps a CURLU handle
//   that every call to it passes as CURLOPT_CURLU, so curl copies the parsed URL instead of
//   parsing the string and printing it back for every call (about 5% of a loop's CPU per
//   request, docs/benchmarks.md). CURLOPT_URL is set to the same string for what curl reports.
#include "node/upstream/curl_client.hpp"

#include <curl/curl.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tc::upstream {

namespace {

enum class call_state : uint8_t { idle, live, cancelled };

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

void ensure_curl_global() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Headers we add when the caller did not: no "Expect: 100-continue" round trip, no curl default
// Content-Type for POST bodies, no curl default "Accept: */*".
char k_no_expect[] = "Expect:";
char k_no_content_type[] = "Content-Type:";
char k_no_accept[] = "Accept:";
// libcurl 7.88 adds "Expect: 100-continue" only to bodies over 1 MiB (EXPECT_100_THRESHOLD in
// lib/http.c); below it k_no_expect would only lengthen every header scan of the request.
constexpr std::size_t k_expect_threshold = std::size_t{1} << 20;

}  // namespace

struct curl_client::impl {
  struct call {
    impl* owner = nullptr;
    CURL* easy = nullptr;
    uv_timer_t first_byte_timer;
    uint32_t slot = 0;
    call_id id = 0;
    call_state state = call_state::idle;
    bool in_multi = false;
    bool connected = false;     // PREREQFUNCTION ran: TCP (and TLS) established or reused
    bool first_byte = false;    // a header byte arrived
    bool headers_done = false;  // on_headers delivered (final status seen)
    bool paused = false;        // user asked for pause
    bool curl_paused = false;   // the write callback returned CURL_WRITEFUNC_PAUSE
    int status = 0;
    uint64_t bytes = 0;
    uint64_t first_byte_ns = 0;
    call_request req;
    call_handlers handlers;
    std::vector<curl_slist> header_list;
    std::vector<std::pair<std::string, std::string>> response_headers;
    char errbuf[CURL_ERROR_SIZE];
  };

  // A poll watcher for one curl socket; freed by its close callback.
  struct sock_ctx {
    uv_poll_t poll;
    impl* owner = nullptr;
    curl_socket_t fd = CURL_SOCKET_BAD;
    int events = 0;       // uv events being polled; 0 when stopped
    bool wanted = false;  // curl asked for events and did not remove the socket since
    bool connection = false;
  };

  // The loop handles the client itself owns; freed when both are closed, possibly after impl.
  struct loop_handles {
    uv_timer_t curl_timer;
    uv_timer_t kick;
    int open = 2;
  };

  uv_loop_t* loop_;
  curl_options opts_;
  CURLM* multi_ = nullptr;
  loop_handles* handles_ = nullptr;
  static constexpr std::size_t k_max_idle_calls = 256;
  static constexpr std::size_t k_max_parsed_urls = 256;

  std::vector<call*> calls_;           // by slot (null: free slot); each freed by its timer's close
  std::vector<uint32_t> generations_;  // by slot: ids stay unique across reuse of a slot
  std::vector<uint32_t> free_slots_;
  std::vector<call*> free_;       // idle pooled calls
  std::vector<sock_ctx*> socks_;  // by fd
  std::vector<std::pair<call*, call_id>> deferred_add_;
  std::vector<call*> deferred_remove_;
  std::vector<call_id> failed_starts_;
  std::vector<call_id> to_unpause_;
  std::unordered_map<std::string, CURLU*> parsed_urls_;  // call URL -> its parsed form
  std::size_t live_ = 0;
  uint64_t connects_ = 0;
  int depth_ = 0;  // > 0 while inside curl (socket_action, easy_pause)
  bool closed_ = false;
  bool close_pending_ = false;
  bool kick_armed_ = false;

  impl(uv_loop_t* loop, curl_options opts) : loop_(loop), opts_(opts) {
    ensure_curl_global();
    handles_ = new loop_handles;
    uv_timer_init(loop_, &handles_->curl_timer);
    uv_timer_init(loop_, &handles_->kick);
    handles_->curl_timer.data = this;
    handles_->kick.data = this;
    multi_ = curl_multi_init();
    if (multi_) {
      curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &impl::on_curl_socket);
      curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
      curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &impl::on_curl_timer_set);
      curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
      curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, opts_.max_host_connections);
      curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, opts_.max_total_connections);
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, opts_.max_connects_cached);
      curl_multi_setopt(multi_, CURLMOPT_PIPELINING, long{CURLPIPE_NOTHING});
    }
  }

  ~impl() { free_parsed_urls(); }

  // ---- calls ----------------------------------------------------------------------------------

  call* find(call_id id) {
    uint32_t slot = static_cast<uint32_t>(id & 0xffffffffu);
    if (slot >= calls_.size()) return nullptr;
    call* c = calls_[slot];
    if (!c || c->id != id || c->state != call_state::live) return nullptr;
    return c;
  }

  call* acquire() {
    if (!free_.empty()) {
      call* c = free_.back();
      free_.pop_back();
      return c;
    }
    auto* c = new call;
    c->owner = this;
    if (free_slots_.empty()) {
      c->slot = static_cast<uint32_t>(calls_.size());
      calls_.push_back(c);
      generations_.push_back(0);
    } else {
      c->slot = free_slots_.back();
      free_slots_.pop_back();
      calls_[c->slot] = c;
    }
    uv_timer_init(loop_, &c->first_byte_timer);
    c->first_byte_timer.data = c;
    c->easy = curl_easy_init();
    if (c->easy) set_fixed_options(c);
    return c;
  }

  // Options that never change between calls on one pooled easy handle.
  void set_fixed_options(call* c) {
    CURL* e = c->easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, long{CURL_HTTP_VERSION_1_1});
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PROXY, "");  // no proxy from the environment
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, opts_.tcp_nodelay ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, opts_.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, opts_.verify_tls ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &impl::on_curl_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, &impl::on_curl_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, this);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &impl::on_curl_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
  }

  // Options of one call. Every option a previous call may have changed is set again.
  void set_call_options(call* c) {
    CURL* e = c->easy;
    const call_request& r = c->req;
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_CURLU, parsed_url(r.url));  // null: curl parses CURLOPT_URL
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    const std::string& m = r.method;
    bool body_method = m == "POST" || m == "PUT" || m == "PATCH";
    if (m == "HEAD") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr);
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (body_method || !r.body.empty()) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m == "POST" ? nullptr : m.c_str());
    } else {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m == "GET" ? nullptr : m.c_str());
    }

    // The header list points into the request's own strings: no allocation per call once the
    // pooled vector has grown.
    bool has_expect = false, has_content_type = false, has_accept = false;
    c->header_list.clear();
    for (const std::string& h : r.headers) {
      has_expect = has_expect || starts_with_nocase(h, "expect:");
      has_content_type = has_content_type || starts_with_nocase(h, "content-type:");
      has_accept = has_accept || starts_with_nocase(h, "accept:");
      c->header_list.push_back({const_cast<char*>(h.c_str()), nullptr});
    }
    if (!has_expect && r.body.size() > k_expect_threshold)
      c->header_list.push_back({k_no_expect, nullptr});
    if (!has_content_type) c->header_list.push_back({k_no_content_type, nullptr});
    if (!has_accept) c->header_list.push_back({k_no_accept, nullptr});
    for (std::size_t i = 0; i + 1 < c->header_list.size(); ++i)
      c->header_list[i].next = &c->header_list[i + 1];
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->header_list.data());

    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout_ms));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(r.total_timeout_ms));
  }

  // The kept parse of `url`, made on first use with the flags curl uses for CURLOPT_URL; null
  // when the table is full or curl rejects the URL (then curl parses the string itself, and
  // reports its error for the call as it always did).
  CURLU* parsed_url(const std::string& url) {
    if (auto it = parsed_urls_.find(url); it != parsed_urls_.end()) return it->second;
    if (parsed_urls_.size() >= k_max_parsed_urls) return nullptr;
    CURLU* u = curl_url();
    if (!u) return nullptr;
    if (curl_url_set(u, CURLUPART_URL, url.c_str(),
                     CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
      curl_url_cleanup(u);
      return nullptr;
    }
    parsed_urls_.emplace(url, u);
    return u;
  }

  // After every easy handle that may point at them is gone.
  void free_parsed_urls() {
    for (auto& [url, u] : parsed_urls_) curl_url_cleanup(u);
    parsed_urls_.clear();
  }

  call_id start(call_request&& req, call_handlers&& h) {
    if (closed_ || !multi_) return 0;
    call* c = acquire();
    c->req = std::move(req);
    c->handlers = std::move(h);
    uint32_t& generation = generations_[c->slot];
    generation = generation == 0xffffffffu ? 1 : generation + 1;
    c->id = (static_cast<uint64_t>(generation) << 32) | c->slot;
    c->state = call_state::live;
    c->in_multi = c->connected = c->first_byte = c->headers_done = false;
    c->paused = c->curl_paused = false;
    c->status = 0;
    c->bytes = 0;
    c->first_byte_ns = 0;
    c->errbuf[0] = '\0';
    ++live_;
    if (!c->easy && (c->easy = curl_easy_init())) set_fixed_options(c);  // init failed before
    if (!c->easy) {
      fail_start(c, "curl_easy_init failed");
      return c->id;
    }
    set_call_options(c);
    if (c->req.first_byte_timeout_ms > 0)
      uv_timer_start(&c->first_byte_timer, &impl::on_first_byte_timeout,
                     c->req.first_byte_timeout_ms, 0);
    if (depth_ > 0)
      deferred_add_.emplace_back(c, c->id);
    else
      add(c);
    return c->id;
  }

  void add(call* c) {
    CURLMcode rc = curl_multi_add_handle(multi_, c->easy);
    if (rc == CURLM_OK)
      c->in_multi = true;
    else
      fail_start(c, curl_multi_strerror(rc));
  }

  // A call that could not be started ends with failure::connect, delivered from the loop.
  void fail_start(call* c, const char* why) {
    std::strncpy(c->errbuf, why, CURL_ERROR_SIZE - 1);
    c->errbuf[CURL_ERROR_SIZE - 1] = '\0';
    failed_starts_.push_back(c->id);
    arm_kick();
  }

  // Returns an ended call (out of the multi) to the pool, dropping the caller's state.
  void recycle(call* c) {
    c->state = call_state::idle;
    c->id = 0;
    c->handlers = {};
    c->req = {};
    c->response_headers.clear();
    c->header_list.clear();
    if (free_.size() < k_max_idle_calls)
      free_.push_back(c);
    else
      destroy(c);
  }

  // Frees a pooled call (out of the multi); its memory goes with its timer's close callback.
  void destroy(call* c) {
    if (c->easy) curl_easy_cleanup(c->easy);
    c->easy = nullptr;
    c->handlers = {};
    calls_[c->slot] = nullptr;
    free_slots_.push_back(c->slot);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->first_byte_timer),
             [](uv_handle_t* h) { delete static_cast<call*>(h->data); });
  }

  void remove_from_multi(call* c) {
    if (!c->in_multi) return;
    curl_multi_remove_handle(multi_, c->easy);
    c->in_multi = false;
  }

  // Ends a live call: no curl call on the stack (depth_ == 0).
  void complete(call* c, failure why, const char* detail) {
    uv_timer_stop(&c->first_byte_timer);
    if (c->in_multi) {
      long n = 0;
      if (curl_easy_getinfo(c->easy, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0)
        connects_ += static_cast<uint64_t>(n);
    }
    remove_from_multi(c);
    call_result r;
    r.why = why;
    r.status = c->headers_done ? c->status : 0;
    r.bytes_received = c->bytes;
    r.first_byte_ns = c->first_byte_ns;
    r.done_ns = uv_hrtime();
    if (why != failure::none && detail) r.detail = detail;
    auto on_complete = std::move(c->handlers.on_complete);
    --live_;
    recycle(c);
    if (on_complete) on_complete(std::move(r));
  }

  void cancel(call_id id) {
    call* c = find(id);
    if (!c) return;
    c->state = call_state::cancelled;
    --live_;
    uv_timer_stop(&c->first_byte_timer);
    if (depth_ > 0) {
      deferred_remove_.push_back(c);  // its handlers may be on the stack right now
      return;
    }
    remove_from_multi(c);
    recycle(c);
  }

  void pause(call_id id) {
    if (call* c = find(id)) c->paused = true;
  }

  void resume(call_id id) {
    call* c = find(id);
    if (!c || !c->paused) return;
    c->paused = false;
    if (c->curl_paused) {
      to_unpause_.push_back(id);
      arm_kick();
    }
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    for (call* c : calls_) {
      if (!c || c->state != call_state::live) continue;
      c->state = call_state::cancelled;
      --live_;
      uv_timer_stop(&c->first_byte_timer);
    }
    if (depth_ > 0) {
      close_pending_ = true;
      return;
    }
    finish_close();
  }

  void finish_close() {
    close_pending_ = false;
    deferred_add_.clear();
    deferred_remove_.clear();
    failed_starts_.clear();
    to_unpause_.clear();
    for (call* c : calls_)
      if (c) remove_from_multi(c);
    if (multi_) curl_multi_cleanup(multi_);  // closes cached connections via on_curl_closesocket
    multi_ = nullptr;
    for (call* c : calls_)
      if (c) destroy(c);
    calls_.clear();
    free_.clear();
    free_parsed_urls();
    for (sock_ctx* s : socks_)
      if (s) close_sock(s);
    socks_.clear();
    auto on_closed = [](uv_handle_t* h) {
      auto* lh = static_cast<loop_handles*>(h->data);
      if (--lh->open == 0) delete lh;
    };
    handles_->curl_timer.data = handles_;
    handles_->kick.data = handles_;
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->curl_timer), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->kick), on_closed);
    handles_ = nullptr;
  }

  // ---- driving curl ---------------------------------------------------------------------------

  void socket_action(curl_socket_t fd, int flags) {
    if (!multi_) return;
    int running = 0;
    ++depth_;
    curl_multi_socket_action(multi_, fd, flags, &running);
    --depth_;
    after_action();
  }

  // Runs what was deferred while curl was on the stack, then reports finished calls.
  void after_action() {
    if (depth_ > 0) return;
    if (close_pending_) {
      finish_close();
      return;
    }
    if (closed_) return;
    while (!deferred_remove_.empty() || !deferred_add_.empty()) {
      auto removes = std::move(deferred_remove_);
      deferred_remove_.clear();
      for (call* c : removes) {
        remove_from_multi(c);
        recycle(c);
      }
      auto adds = std::move(deferred_add_);
      deferred_add_.clear();
      for (auto [c, id] : adds)
        if (c->id == id && c->state == call_state::live) add(c);
    }
    check_done();
  }

  void check_done() {
    int left = 0;
    while (!closed_ && multi_) {
      CURLMsg* msg = curl_multi_info_read(multi_, &left);
      if (!msg) break;
      if (msg->msg != CURLMSG_DONE) continue;
      call* c = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &c);
      CURLcode rc = msg->data.result;
      if (!c || c->state != call_state::live) {
        if (c && c->in_multi) remove_from_multi(c);  // not expected: cancels remove at once
        continue;
      }
      const char* detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
      complete(c, classify(c, rc), detail);
    }
  }

  static failure classify(const call* c, CURLcode rc) {
    switch (rc) {
      case CURLE_OK:
        return failure::none;
      case CURLE_OPERATION_TIMEDOUT: {
        const call_request& r = c->req;
        bool connect_first = r.connect_timeout_ms > 0 &&
                             (r.total_timeout_ms == 0 || r.connect_timeout_ms < r.total_timeout_ms);
        return !c->connected && connect_first ? failure::connect_timeout : failure::total_timeout;
      }
      case CURLE_UNSUPPORTED_PROTOCOL:
      case CURLE_URL_MALFORMAT:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
        return failure::connect;
      default:
        return c->connected ? failure::io : failure::connect;
    }
  }

  void arm_kick() {
    if (kick_armed_ || !handles_) return;
    kick_armed_ = true;
    uv_timer_start(&handles_->kick, &impl::on_kick, 0, 0);
  }

  void kick() {
    kick_armed_ = false;
    auto failed = std::move(failed_starts_);
    failed_starts_.clear();
    for (call_id id : failed) {
      if (closed_) return;
      if (call* c = find(id)) {
        remove_from_multi(c);
        complete(c, failure::connect, c->errbuf);
      }
    }
    auto unpause = std::move(to_unpause_);
    to_unpause_.clear();
    for (call_id id : unpause) {
      if (closed_) return;
      call* c = find(id);
      if (!c || c->paused || !c->curl_paused) continue;
      c->curl_paused = false;
      ++depth_;  // curl delivers the held data from inside curl_easy_pause
      curl_easy_pause(c->easy, CURLPAUSE_CONT);
      --depth_;
      after_action();
    }
  }

  // ---- sockets --------------------------------------------------------------------------------

  sock_ctx* sock_of(curl_socket_t fd) {
    if (fd < 0 || static_cast<std::size_t>(fd) >= socks_.size()) return nullptr;
    return socks_[static_cast<std::size_t>(fd)];
  }

  sock_ctx* make_sock(curl_socket_t fd, bool connection) {
    if (fd < 0) return nullptr;
    auto* s = new sock_ctx;
    s->owner = this;
    s->fd = fd;
    s->connection = connection;
    if (uv_poll_init_socket(loop_, &s->poll, fd) != 0) {
      delete s;
      return nullptr;
    }
    s->poll.data = s;
    if (static_cast<std::size_t>(fd) >= socks_.size())
      socks_.resize(static_cast<std::size_t>(fd) + 1, nullptr);
    socks_[static_cast<std::size_t>(fd)] = s;
    return s;
  }

  // Stops watching and frees the context. Called while curl still owns the fd.
  void close_sock(sock_ctx* s) {
    if (sock_of(s->fd) == s) socks_[static_cast<std::size_t>(s->fd)] = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&s->poll),
             [](uv_handle_t* h) { delete static_cast<sock_ctx*>(h->data); });
  }

  // ---- curl and libuv callbacks ---------------------------------------------------------------

  static int on_curl_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
    auto* self = static_cast<impl*>(userp);
    sock_ctx* s = self->sock_of(fd);
    if (what == CURL_POLL_REMOVE) {
      if (s && s->connection) {
        s->wanted = false;  // idle in the cache; closed by on_curl_closesocket
        uv_unref(reinterpret_cast<uv_handle_t*>(&s->poll));
      } else if (s) {
        self->close_sock(s);
      }
      return 0;
    }
    if (!s) s = self->make_sock(fd, false);
    if (!s) return -1;
    int events = 0;
    if (what & CURL_POLL_IN) events |= UV_READABLE;
    if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
    if (!s->wanted) uv_ref(reinterpret_cast<uv_handle_t*>(&s->poll));
    s->wanted = true;
    if (s->events != events) {
      s->events = events;
      uv_poll_start(&s->poll, events, &impl::on_poll);
    }
    return 0;
  }

  static int on_curl_sockopt(void* clientp, curl_socket_t fd, curlsocktype purpose) {
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKOPT_OK;
    auto* self = static_cast<impl*>(clientp);
    if (sock_ctx* stale = self->sock_of(fd)) self->close_sock(stale);  // fd closed behind us
    return self->make_sock(fd, true) ? CURL_SOCKOPT_OK : CURL_SOCKOPT_ERROR;
  }

  static int on_curl_closesocket(void* clientp, curl_socket_t fd) {
    auto* self = static_cast<impl*>(clientp);
    if (sock_ctx* s = self->sock_of(fd)) self->close_sock(s);
    return ::close(fd);
  }

  static int on_curl_timer_set(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<impl*>(userp);
    if (!self->handles_) return 0;
    if (timeout_ms < 0)
      uv_timer_stop(&self->handles_->curl_timer);
    else
      uv_timer_start(&self->handles_->curl_timer, &impl::on_curl_timeout,
                     static_cast<uint64_t>(timeout_ms), 0);
    return 0;
  }

  static int on_curl_prereq(void* clientp, char*, char*, int, int) {
    static_cast<call*>(clientp)->connected = true;
    return CURL_PREREQFUNC_OK;
  }

  static size_t on_curl_header(char* p, size_t size, size_t n, void* userdata) {
    auto* c = static_cast<call*>(userdata);
    std::size_t len = size * n;
    if (c->state != call_state::live) return 0;
    if (!c->first_byte) {
      c->first_byte = true;
      c->first_byte_ns = uv_hrtime();
      uv_timer_stop(&c->first_byte_timer);
    }
    if (c->headers_done) return len;  // trailers
    std::string_view line(p, len);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) {  // end of one header block
      if (c->status >= 100 && c->status < 200) {
        c->response_headers.clear();  // interim response
        return len;
      }
      c->owner->deliver_headers(c);
      return c->state == call_state::live ? len : 0;
    }
    if (line.substr(0, 5) == "HTTP/") {
      std::size_t sp = line.find(' ');
      int status = 0;
      if (sp != std::string_view::npos && line.size() >= sp + 4) {
        for (std::size_t i = sp + 1; i < sp + 4; ++i) {
          char d = line[i];
          if (d < '0' || d > '9') {
            status = 0;
            break;
          }
          status = status * 10 + (d - '0');
        }
      }
      c->status = status;
      c->response_headers.clear();
      c->response_headers.reserve(16);  // the vector goes to the caller: one allocation per call
      return len;
    }
    if (line.front() == ' ' || line.front() == '\t') {  // obsolete line folding
      if (!c->response_headers.empty()) {
        std::string& v = c->response_headers.back().second;
        v.push_back(' ');
        v.append(trim(line));
      }
      return len;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return len;  // not a header: ignore
    std::string name(trim(line.substr(0, colon)));
    for (char& ch : name)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    c->response_headers.emplace_back(std::move(name), std::string(trim(line.substr(colon + 1))));
    return len;
  }

  void deliver_headers(call* c) {
    c->headers_done = true;
    if (c->handlers.on_headers) c->handlers.on_headers(c->status, std::move(c->response_headers));
    c->response_headers.clear();
  }

  static size_t on_curl_write(char* p, size_t size, size_t n, void* userdata) {
    auto* c = static_cast<call*>(userdata);
    std::size_t len = size * n;
    if (c->state != call_state::live) return 0;  // aborts the transfer; it is being removed
    if (c->paused) {
      c->curl_paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    if (!c->headers_done) {
      c->owner->deliver_headers(c);
      if (c->state != call_state::live) return 0;
      if (c->paused) {
        c->curl_paused = true;
        return CURL_WRITEFUNC_PAUSE;
      }
    }
    if (len == 0) return 0;
    c->bytes += len;
    if (c->handlers.on_data) c->handlers.on_data(std::string_view(p, len));
    return c->state == call_state::live ? len : 0;
  }

  static void on_poll(uv_poll_t* h, int status, int events) {
    auto* s = static_cast<sock_ctx*>(h->data);
    if (!s->wanted) {  // an idle cached connection became readable: stop until curl wants it
      s->events = 0;
      uv_poll_stop(&s->poll);
      return;
    }
    int flags = 0;
    if (status < 0) {
      flags = CURL_CSELECT_ERR;
    } else {
      if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
      if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    }
    s->owner->socket_action(s->fd, flags);  // s may be closed during this call
  }

  static void on_curl_timeout(uv_timer_t* t) {
    static_cast<impl*>(t->data)->socket_action(CURL_SOCKET_TIMEOUT, 0);
  }

  static void on_kick(uv_timer_t* t) { static_cast<impl*>(t->data)->kick(); }

  static void on_first_byte_timeout(uv_timer_t* t) {
    auto* c = static_cast<call*>(t->data);
    if (c->state != call_state::live) return;
    char text[64];
    std::snprintf(text, sizeof text, "no response header within %u ms",
                  c->req.first_byte_timeout_ms);
    c->owner->complete(c, failure::first_byte_timeout, text);
  }
};

curl_client::curl_client(uv_loop_t* loop, curl_options opts)
    : impl_(std::make_unique<impl>(loop, opts)) {}

curl_client::~curl_client() {
  impl_->close();
}

call_id curl_client::start(call_request&& req, call_handlers&& h) {
  return impl_->start(std::move(req), std::move(h));
}

void curl_client::cancel(call_id id) {
  impl_->cancel(id);
}

void curl_client::pause(call_id id) {
  impl_->pause(id);
}

void curl_client::resume(call_id id) {
  impl_->resume(id);
}

std::size_t curl_client::in_flight() const {
  return impl_->live_;
}

uint64_t curl_client::connections_opened() const {
  return impl_->connects_;
}

void curl_client::close() {
  impl_->close();
}

}  // namespace tc::upstream
