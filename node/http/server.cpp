// HTTP/1.1 server on libuv + http-parser. Contract in server.hpp.
//
// Layout: one `conn` per accepted socket, found by id so that a responder stays harmless after
// its socket is gone. Requests are parsed synchronously out of one read buffer per server; each
// parsed request gets a `slot` in its connection's FIFO so that responses leave in request order.
// Bytes of the slot at the head go straight to `conn::out`; bytes of later slots wait in the
// slot's own buffer until every earlier slot has finished. `out` is written with uv_try_write and
// only a remainder becomes a uv_write (at most one in flight per connection). Output produced
// outside a read callback is flushed from a prepare handle, once per loop iteration, so several
// writes of one iteration leave in one syscall.
#include "node/http/server.hpp"

#include <http_parser.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>
#include <unordered_map>

namespace tc::http {

namespace {

constexpr uint64_t k_no_deadline = UINT64_MAX;
constexpr uint64_t k_linger_ms = 2000;              // wait for the peer's FIN after our last byte
constexpr std::size_t k_read_buffer = 64 * 1024;    // one per server, shared by its connections
constexpr std::size_t k_keep_capacity = 64 * 1024;  // bigger idle output buffers are released
constexpr std::size_t k_body_reserve_max = 64 * 1024;
constexpr std::size_t k_pool_max = 1024;
constexpr int k_backlog = 8192;  // the kernel caps it at net.core.somaxconn

std::atomic<uint64_t> g_next_conn_id{1};

enum class slot_state : uint8_t { waiting, streaming, finished };

char ascii_lower(char ch) {
  return (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch | 0x20) : ch;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// True when the text cannot break the header framing (no CR, LF or NUL).
bool header_safe(std::string_view s) {
  for (char ch : s) {
    if (ch == '\r' || ch == '\n' || ch == '\0') return false;
  }
  return true;
}

void append_uint(std::string& out, uint64_t v) {
  char tmp[24];
  auto res = std::to_chars(tmp, tmp + sizeof tmp, v);
  out.append(tmp, res.ptr);
}

void append_hex(std::string& out, uint64_t v) {
  char tmp[24];
  auto res = std::to_chars(tmp, tmp + sizeof tmp, v, 16);
  out.append(tmp, res.ptr);
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    auto u = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (u < 0x20) {
      static const char hex[] = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

// `path` is the target without query or fragment; an absolute-form target loses its authority.
void set_path(request& r) {
  std::string_view t = r.target;
  if (!t.empty() && t.front() != '/') {
    auto scheme = t.find("://");
    if (scheme != std::string_view::npos) {
      auto slash = t.find('/', scheme + 3);
      t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
    }
  }
  r.path.assign(t.substr(0, t.find_first_of("?#")));
}

// http-parser's own header cap is process-wide; raise it (never lower it) to fit our limit.
/// RFC 9110 tchar: the characters allowed in a header field name.
bool is_token_char(unsigned char ch) {
  if (ch >= 'a' && ch <= 'z') return true;
  if (ch >= 'A' && ch <= 'Z') return true;
  if (ch >= '0' && ch <= '9') return true;
  switch (ch) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

void raise_parser_header_cap(std::size_t max_header_bytes) {
  static std::mutex mu;
  static std::size_t current = 80 * 1024;
  std::lock_guard<std::mutex> lock(mu);
  std::size_t want = max_header_bytes + 16 * 1024;
  if (want > current && want < UINT32_MAX) {
    http_parser_set_max_header_size(static_cast<uint32_t>(want));
    current = want;
  }
}

// libuv writes with write(2): a peer that vanished would kill the process with SIGPIPE.
void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

std::string_view request::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Entity";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

struct server::impl {
  // The pending response of one request, in request order within its connection.
  struct slot {
    slot* next = nullptr;
    uint64_t seq = 0;
    std::string buf;  // bytes held back while an earlier response is unfinished
    std::function<void()> on_close;
    std::function<void()> on_drain;
    slot_state state = slot_state::waiting;
    bool keep_alive = true;
    bool http10 = false;
    bool head_request = false;
    bool chunked = false;      // streamed with chunked framing
    bool no_body = false;      // streamed, but body bytes must not be sent (HEAD, 204, 304)
    bool close_after = false;  // the connection closes once this response is written
  };

  struct write_op {
    uv_write_t req{};
    std::string buf;
  };

  struct conn {
    uv_tcp_t tcp{};
    uv_timer_t timer{};
    http_parser parser{};
    impl* srv = nullptr;
    uint64_t id = 0;  // 0 until accepted and registered
    conn* prev = nullptr;
    conn* next = nullptr;
    std::unique_ptr<request> req;  // the request being parsed
    slot* head = nullptr;
    slot* tail = nullptr;
    std::string out;    // bytes ready for the socket, not yet handed to libuv
    std::string stash;  // unparsed input kept while parsing is paused
    std::unique_ptr<write_op> wop;
    std::unique_ptr<uv_shutdown_t> sreq;
    std::size_t queued_bytes = 0;    // in slot buffers
    std::size_t inflight_bytes = 0;  // in the uv_write in flight
    std::size_t header_bytes = 0;
    uint64_t phase_start_ms = 0;  // start of headers, of body, or of lingering
    uint64_t idle_since_ms = 0;
    uint64_t timer_due_ms = 0;
    uint64_t next_seq = 0;
    uint32_t slots = 0;
    uint32_t drain_waiters = 0;
    uint8_t parsing = 0;  // 0 between requests, 1 in headers, 2 in body
    uint8_t handles = 0;  // libuv handles not yet closed
    bool last_was_value = false;
    bool in_read = false;  // output is flushed when the read callback returns
    bool reading = false;
    bool paused = false;             // too many pipelined requests: parsing waits
    bool discard = false;            // no more requests: input is dropped
    bool close_after_flush = false;  // close once every response is written
    bool eof = false;
    bool lingering = false;  // FIN sent; waiting for the peer's
    bool closing = false;
    bool dirty = false;
    bool writing = false;
  };

  impl(server* o, uv_loop_t* l, limits li, handler f)
      : owner(o), loop(l), lim(li), fn(std::move(f)), read_buf(new char[k_read_buffer]) {
    if (lim.max_pipelined == 0) lim.max_pipelined = 1;
    if (lim.write_low_watermark > lim.write_high_watermark) {
      lim.write_low_watermark = lim.write_high_watermark;
    }
    settings.on_message_begin = &cb_message_begin;
    settings.on_url = &cb_url;
    settings.on_header_field = &cb_header_field;
    settings.on_header_value = &cb_header_value;
    settings.on_headers_complete = &cb_headers_complete;
    settings.on_body = &cb_body;
    settings.on_message_complete = &cb_message_complete;
    raise_parser_header_cap(lim.max_header_bytes);
  }

  ~impl() {
    for (slot* s : slot_pool) delete s;
  }

  server* owner;
  uv_loop_t* loop;
  limits lim;
  handler fn;
  http_parser_settings settings{};
  server_stats stats;
  uv_tcp_t listener{};
  uv_prepare_t prepare{};
  uv_timer_t shutdown_timer{};
  uint8_t listener_state = 0;  // 0 none, 1 open, 2 closing
  bool prepare_open = false;
  bool shutdown_timer_open = false;
  std::unordered_map<uint64_t, conn*> conns;  // live connections (not closing, not lingering)
  conn* all = nullptr;                        // every connection whose memory is still held
  std::vector<uint64_t> dirty;
  std::vector<uint64_t> dirty_spare;
  std::vector<slot*> slot_pool;
  std::vector<std::unique_ptr<request>> request_pool;
  std::unique_ptr<char[]> read_buf;
  uint32_t open_handles = 0;
  bool orphaned = false;  // the server object is gone; the last close callback frees this
  bool shutting_down = false;
  bool done_fired = false;
  bool closed = false;
  uint64_t shutdown_deadline_ms = 0;
  std::function<void()> shutdown_done;

  // ---- listening and accepting ----

  int listen(const std::string& host, uint16_t port, bool reuse_port) {
    if (closed || shutting_down) return UV_ECANCELED;
    if (listener_state != 0) return UV_EBUSY;
    ignore_sigpipe();
    sockaddr_storage ss{};
    int rc = host.find(':') != std::string::npos
                 ? uv_ip6_addr(host.c_str(), port, reinterpret_cast<sockaddr_in6*>(&ss))
                 : uv_ip4_addr(host.c_str(), port, reinterpret_cast<sockaddr_in*>(&ss));
    if (rc != 0) return rc;
    rc = uv_tcp_init(loop, &listener);
    if (rc != 0) return rc;
    listener.data = this;
    listener_state = 1;
    ++open_handles;
    if (reuse_port) {
      rc = open_reuseport_socket(ss);
    } else {
      rc = uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&ss), 0);
    }
    if (rc == 0)
      rc = uv_listen(reinterpret_cast<uv_stream_t*>(&listener), k_backlog, &cb_connection);
    sockaddr_storage bound{};
    int len = sizeof bound;
    if (rc == 0) rc = uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&bound), &len);
    if (rc != 0) {
      close_listener();
      return rc;
    }
    if (!prepare_open) {
      uv_prepare_init(loop, &prepare);
      prepare.data = this;
      uv_unref(reinterpret_cast<uv_handle_t*>(&prepare));
      prepare_open = true;
      ++open_handles;
    }
    if (bound.ss_family == AF_INET6) {
      return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
    }
    return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  // libuv 1.44 has no UV_TCP_REUSEPORT: make the socket ourselves and hand it to libuv.
  int open_reuseport_socket(const sockaddr_storage& ss) {
    int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        ::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
      int err = -errno;
      ::close(fd);
      return err;
    }
    int rc = uv_tcp_open(&listener, fd);
    if (rc != 0) ::close(fd);
    return rc;
  }

  void close_listener() {
    if (listener_state != 1) return;
    listener_state = 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), [](uv_handle_t* h) {
      auto* self = static_cast<impl*>(h->data);
      self->listener_state = 0;
      self->handle_closed();
    });
  }

  static void cb_connection(uv_stream_t* s, int status) {
    static_cast<impl*>(s->data)->accept_one(status);
  }

  void accept_one(int status) {
    if (status < 0) return;
    auto* c = new conn;
    c->srv = this;
    if (uv_tcp_init(loop, &c->tcp) != 0) {
      delete c;
      return;
    }
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    open_handles += 2;
    c->next = all;
    if (all) all->prev = c;
    all = c;
    if (uv_accept(reinterpret_cast<uv_stream_t*>(&listener), stream(c)) != 0 || shutting_down ||
        closed) {
      close_now(c);
      return;
    }
    if (lim.max_connections != 0 && stats.connections_open >= lim.max_connections) {
      ++stats.connections_refused;  // accepted only to be closed: the backlog must not fill
      close_now(c);
      return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->id = g_next_conn_id.fetch_add(1, std::memory_order_relaxed);
    conns.emplace(c->id, c);
    ++stats.connections_accepted;
    ++stats.connections_open;
    c->idle_since_ms = uv_now(loop);
    start_reading(c);
    arm_timer(c);
  }

  static uv_stream_t* stream(conn* c) { return reinterpret_cast<uv_stream_t*>(&c->tcp); }

  // ---- reading and parsing ----

  void start_reading(conn* c) {
    if (c->reading || c->closing) return;
    if (uv_read_start(stream(c), &cb_alloc, &cb_read) == 0) c->reading = true;
  }

  void stop_reading(conn* c) {
    if (!c->reading) return;
    uv_read_stop(stream(c));
    c->reading = false;
  }

  static void cb_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* c = static_cast<conn*>(h->data);
    *buf = uv_buf_init(c->srv->read_buf.get(), k_read_buffer);
  }

  static void cb_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    auto* c = static_cast<conn*>(s->data);
    c->srv->on_read(c, nread, buf->base);
  }

  void on_read(conn* c, ssize_t nread, const char* data) {
    if (c->closing) return;
    if (nread > 0) {
      if (c->discard) return;
      c->in_read = true;
      feed(c, data, static_cast<std::size_t>(nread));
      c->in_read = false;
      if (!c->closing) flush(c);
      return;
    }
    if (nread == 0) return;
    // EOF or error. A client that leaves (or half-closes) while a response is pending is gone:
    // that is what lets the caller cancel the work behind the response.
    c->eof = true;
    stop_reading(c);
    if (c->req) recycle_request(std::move(c->req));  // a partial request is abandoned
    c->parsing = 0;
    if (nread != UV_EOF || c->lingering || c->head != nullptr) {
      close_now(c);
    } else if (!c->out.empty() || c->writing) {
      c->discard = true;
      c->close_after_flush = true;
    } else {
      close_now(c);
    }
  }

  void feed(conn* c, const char* data, std::size_t len) {
    std::size_t n = http_parser_execute(&c->parser, &settings, data, len);
    if (c->closing || c->discard) return;
    http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err == HPE_PAUSED) {  // too many requests pipelined: keep the rest for later
      c->stash.assign(data + n, len - n);
      c->paused = true;
      stop_reading(c);
      return;
    }
    if (err == HPE_OK && n == len) return;
    if (err == HPE_HEADER_OVERFLOW) {
      fail(c, 431, "request_header_fields_too_large", header_limit_message());
      return;
    }
    std::string msg = "malformed HTTP request: ";
    msg += err == HPE_OK ? "unexpected data" : http_errno_description(err);
    fail(c, 400, "bad_request", msg);
  }

  // Parses what was kept while paused, then reads again if nothing pauses it anew.
  void resume(conn* c) {
    if (!c->paused || c->closing || c->discard || c->slots >= lim.max_pipelined) return;
    c->paused = false;
    http_parser_pause(&c->parser, 0);
    std::string data;
    data.swap(c->stash);
    if (!data.empty()) {
      c->in_read = true;
      feed(c, data.data(), data.size());
      c->in_read = false;
      if (c->closing) return;
    }
    if (!c->paused) start_reading(c);
    flush(c);
  }

  static conn* of(http_parser* p) { return static_cast<conn*>(p->data); }
  static int cb_message_begin(http_parser* p) { return of(p)->srv->message_begin(of(p)); }
  static int cb_url(http_parser* p, const char* at, size_t len) {
    return of(p)->srv->url(of(p), at, len);
  }
  static int cb_header_field(http_parser* p, const char* at, size_t len) {
    return of(p)->srv->header_field(of(p), at, len);
  }
  static int cb_header_value(http_parser* p, const char* at, size_t len) {
    return of(p)->srv->header_value(of(p), at, len);
  }
  static int cb_headers_complete(http_parser* p) { return of(p)->srv->headers_complete(of(p)); }
  static int cb_body(http_parser* p, const char* at, size_t len) {
    return of(p)->srv->body(of(p), at, len);
  }
  static int cb_message_complete(http_parser* p) { return of(p)->srv->message_complete(of(p)); }

  int message_begin(conn* c) {
    if (!c->req) {
      if (request_pool.empty()) {
        c->req = std::make_unique<request>();
      } else {
        c->req = std::move(request_pool.back());
        request_pool.pop_back();
      }
    }
    c->header_bytes = 0;
    c->last_was_value = false;
    c->parsing = 1;
    c->phase_start_ms = uv_now(loop);
    arm_timer(c);
    return 0;
  }

  bool count_header_bytes(conn* c, std::size_t len) {
    c->header_bytes += len;
    if (c->header_bytes <= lim.max_header_bytes) return true;
    fail(c, 431, "request_header_fields_too_large", header_limit_message());
    return false;
  }

  int url(conn* c, const char* at, std::size_t len) {
    if (!count_header_bytes(c, len)) return 1;
    c->req->target.append(at, len);
    return 0;
  }

  int header_field(conn* c, const char* at, std::size_t len) {
    if (!count_header_bytes(c, len)) return 1;
    // http-parser 2.9 (non-strict) lets spaces into header names and then still honours
    // "Content-Length : N": a request-smuggling vector (RFC 9112 §5.1 says 400).
    for (std::size_t i = 0; i < len; ++i) {
      if (!is_token_char(static_cast<unsigned char>(at[i]))) {
        fail(c, 400, "bad_request", "invalid character in a header name");
        return 1;
      }
    }
    auto& hs = c->req->headers;
    if (hs.empty() || c->last_was_value) {
      if (hs.empty()) hs.reserve(8);
      hs.emplace_back();
      c->last_was_value = false;
    }
    std::string& name = hs.back().first;
    std::size_t old = name.size();
    name.append(at, len);
    for (std::size_t i = old; i < name.size(); ++i) name[i] = ascii_lower(name[i]);
    return 0;
  }

  int header_value(conn* c, const char* at, std::size_t len) {
    if (!count_header_bytes(c, len)) return 1;
    auto& hs = c->req->headers;
    if (hs.empty()) hs.emplace_back();
    hs.back().second.append(at, len);
    c->last_was_value = true;
    return 0;
  }

  int headers_complete(conn* c) {
    http_parser* p = &c->parser;
    p->upgrade = 0;  // no protocol switch: an Upgrade request is answered as plain HTTP
    request& r = *c->req;
    r.method = http_method_str(static_cast<http_method>(p->method));
    r.keep_alive = http_should_keep_alive(p) != 0 && !shutting_down;
    set_path(r);
    c->parsing = 2;
    c->phase_start_ms = uv_now(loop);
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_length = !chunked && (p->flags & F_CONTENTLENGTH) && p->content_length != ULLONG_MAX;
    if (has_length && p->content_length > lim.max_body_bytes) {
      fail(c, 413, "request_too_large", body_limit_message());
      return -1;
    }
    if (has_length && p->content_length > 0) {
      r.body.reserve(std::min<std::size_t>(p->content_length, k_body_reserve_max));
    }
    bool expects_body = chunked || (has_length && p->content_length > 0);
    if (expects_body && c->head == nullptr && p->http_major == 1 && p->http_minor >= 1 &&
        iequals(r.header("expect"), "100-continue")) {
      c->out.append("HTTP/1.1 100 Continue\r\n\r\n");
      mark_output(c);
    }
    arm_timer(c);
    return 0;
  }

  int body(conn* c, const char* at, std::size_t len) {
    std::string& b = c->req->body;
    if (len > lim.max_body_bytes - b.size()) {
      fail(c, 413, "request_too_large", body_limit_message());
      return 1;
    }
    b.append(at, len);
    return 0;
  }

  int message_complete(conn* c) {
    http_parser* p = &c->parser;
    std::unique_ptr<request> r = std::move(c->req);
    r->received_ns = uv_hrtime();
    c->parsing = 0;
    c->idle_since_ms = uv_now(loop);
    slot* s = new_slot();
    s->seq = ++c->next_seq;
    s->keep_alive = r->keep_alive;
    s->http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);
    s->head_request = p->method == HTTP_HEAD;
    push_slot(c, s);
    ++stats.requests;
    ++stats.responses_in_flight;
    bool stop = !r->keep_alive;
    responder res(owner, c->id, s->seq);
    if (fn) {
      fn(std::move(*r), res);
    } else {
      res.send(503, {{"content-type", "text/plain"}}, "no handler\n");
    }
    recycle_request(std::move(r));
    if (c->closing) return -1;
    if (stop || c->discard) {  // nothing after this request is read
      c->discard = true;
      http_parser_pause(p, 1);
    } else if (c->slots >= lim.max_pipelined) {
      http_parser_pause(p, 1);
    }
    return 0;
  }

  void recycle_request(std::unique_ptr<request> r) {
    if (request_pool.size() >= k_pool_max) return;
    r->method.clear();
    r->target.clear();
    r->path.clear();
    r->headers.clear();
    r->body.clear();
    r->keep_alive = true;
    r->received_ns = 0;
    request_pool.push_back(std::move(r));
  }

  std::string header_limit_message() const {
    std::string m = "request headers exceed ";
    append_uint(m, lim.max_header_bytes);
    m += " bytes";
    return m;
  }

  std::string body_limit_message() const {
    std::string m = "request body exceeds ";
    append_uint(m, lim.max_body_bytes);
    m += " bytes";
    return m;
  }

  // Answers a protocol error after any earlier responses, then closes. Parsing stops for good.
  void fail(conn* c, int status, std::string_view code, std::string_view message) {
    ++stats.protocol_errors;
    if (c->req) recycle_request(std::move(c->req));
    c->parsing = 0;
    c->discard = true;
    c->paused = false;
    c->stash.clear();
    std::string body = "{\"error\":{\"message\":";
    append_json_string(body, message);
    body += ",\"type\":\"invalid_request_error\",\"param\":null,\"code\":";
    append_json_string(body, code);
    body += "}}";
    slot* s = nullptr;
    if (c->head != nullptr) {
      s = new_slot();
      s->seq = ++c->next_seq;
      push_slot(c, s);
    }
    std::string& dst = s ? s->buf : c->out;
    dst += "HTTP/1.1 ";
    append_uint(dst, static_cast<uint64_t>(status));
    dst += ' ';
    dst += reason_phrase(status);
    dst += "\r\ncontent-type: application/json\r\ncontent-length: ";
    append_uint(dst, body.size());
    dst += "\r\nconnection: close\r\n\r\n";
    dst += body;
    if (s) {
      s->state = slot_state::finished;
      s->close_after = true;
      c->queued_bytes += s->buf.size();
    } else {
      c->close_after_flush = true;
    }
    start_reading(c);  // dropping input, but still noticing a client that leaves
    mark_output(c);
  }

  // ---- response slots ----

  slot* new_slot() {
    if (slot_pool.empty()) return new slot;
    slot* s = slot_pool.back();
    slot_pool.pop_back();
    return s;
  }

  void free_slot(slot* s) {
    if (slot_pool.size() >= k_pool_max) {
      delete s;
      return;
    }
    s->next = nullptr;
    s->seq = 0;
    if (s->buf.capacity() > 4096) {
      std::string().swap(s->buf);
    } else {
      s->buf.clear();
    }
    s->on_close = nullptr;
    s->on_drain = nullptr;
    s->state = slot_state::waiting;
    s->keep_alive = true;
    s->http10 = s->head_request = s->chunked = s->no_body = s->close_after = false;
    slot_pool.push_back(s);
  }

  static void push_slot(conn* c, slot* s) {
    if (c->tail) {
      c->tail->next = s;
    } else {
      c->head = s;
    }
    c->tail = s;
    ++c->slots;
  }

  // The live connection `id` and its slot `seq` (finished slots not yet written included).
  slot* find_slot(uint64_t id, uint64_t seq, conn** out) {
    auto it = conns.find(id);
    if (it == conns.end()) return nullptr;
    conn* c = it->second;
    for (slot* s = c->head; s && s->seq <= seq; s = s->next) {
      if (s->seq == seq) {
        *out = c;
        return s;
      }
    }
    return nullptr;
  }

  conn* find_conn(uint64_t id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second;
  }

  static std::string& sink(conn* c, slot* s) { return s == c->head ? c->out : s->buf; }

  void account(conn* c, slot* s, std::size_t before) {
    if (s == c->head) {
      mark_output(c);
    } else {
      c->queued_bytes += s->buf.size() - before;
    }
  }

  static bool bodiless_status(int status) {
    return (status >= 100 && status < 200) || status == 204 || status == 304;
  }

  // Status line and headers (without the final CRLF). Decides whether the connection closes.
  void append_head(conn* c, slot* s, std::string& dst, int status, const header_list& headers,
                   bool chunked, bool force_close) {
    if (status < 100 || status > 999) status = 500;
    bool close =
        force_close || !s->keep_alive || (shutting_down && s == c->tail && c->parsing == 0);
    dst += "HTTP/1.1 ";
    append_uint(dst, static_cast<uint64_t>(status));
    dst += ' ';
    dst += reason_phrase(status);
    dst += "\r\n";
    for (const auto& [name, value] : headers) {
      if (name.empty() || !header_safe(name) || !header_safe(value)) continue;
      if (iequals(name, "content-length") || iequals(name, "transfer-encoding")) continue;
      if (iequals(name, "connection")) {
        if (iequals(value, "close")) close = true;
        continue;
      }
      dst += name;
      dst += ": ";
      dst += value;
      dst += "\r\n";
    }
    if (chunked) dst += "transfer-encoding: chunked\r\n";
    if (close) {
      dst += "connection: close\r\n";
    } else if (s->http10) {
      dst += "connection: keep-alive\r\n";
    }
    s->close_after = close;
  }

  void send(uint64_t id, uint64_t seq, int status, const header_list& headers, std::string body) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state != slot_state::waiting) return;
    bool bodiless = bodiless_status(status);
    std::string& dst = sink(c, s);
    std::size_t before = dst.size();
    dst.reserve(before + 160 + body.size() + headers.size() * 48);
    append_head(c, s, dst, status, headers, false, false);
    if (!bodiless) {
      dst += "content-length: ";
      append_uint(dst, body.size());
      dst += "\r\n";
    }
    dst += "\r\n";
    if (!bodiless && !s->head_request) dst += body;
    account(c, s, before);
    finish_slot(c, s);
  }

  void start(uint64_t id, uint64_t seq, int status, const header_list& headers) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state != slot_state::waiting) return;
    s->state = slot_state::streaming;
    bool bodiless = bodiless_status(status);
    s->no_body = s->head_request || bodiless;
    s->chunked = !s->http10 && !bodiless;
    std::string& dst = sink(c, s);
    std::size_t before = dst.size();
    // HTTP/1.0 has no chunked encoding: the end of the body is the end of the connection.
    append_head(c, s, dst, status, headers, s->chunked, s->http10 && !s->no_body);
    dst += "\r\n";
    account(c, s, before);
  }

  bool write(uint64_t id, uint64_t seq, std::string chunk) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state != slot_state::streaming) return false;
    if (chunk.empty() || s->no_body) return true;
    std::string& dst = sink(c, s);
    std::size_t before = dst.size();
    if (s->chunked) {
      dst.reserve(before + chunk.size() + 16);
      append_hex(dst, chunk.size());
      dst += "\r\n";
      dst += chunk;
      dst += "\r\n";
    } else {
      dst += chunk;
    }
    account(c, s, before);
    return true;
  }

  void end(uint64_t id, uint64_t seq) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state != slot_state::streaming) return;
    if (s->chunked && !s->no_body) {
      std::string& dst = sink(c, s);
      std::size_t before = dst.size();
      dst += "0\r\n\r\n";
      account(c, s, before);
    }
    finish_slot(c, s);
  }

  void abort(uint64_t id, uint64_t seq) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state == slot_state::finished) return;
    s->state = slot_state::finished;
    --stats.responses_in_flight;
    drop_callbacks(c, s);
    // Best effort: what was already produced (an error event, say) goes out before the cut.
    if (!c->writing && !c->out.empty()) {
      uv_buf_t b = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
      uv_try_write(stream(c), &b, 1);
    }
    close_now(c);
  }

  static void drop_callbacks(conn* c, slot* s) {
    s->on_close = nullptr;
    if (s->on_drain) {
      s->on_drain = nullptr;
      --c->drain_waiters;
    }
  }

  void finish_slot(conn* c, slot* s) {
    s->state = slot_state::finished;
    --stats.responses_in_flight;
    drop_callbacks(c, s);
    if (s == c->head) pop_finished(c);
  }

  // Retires finished slots at the head; the next slot's held-back bytes become writable.
  void pop_finished(conn* c) {
    while (c->head && c->head->state == slot_state::finished) {
      slot* s = c->head;
      c->head = s->next;
      if (!c->head) c->tail = nullptr;
      --c->slots;
      bool close = s->close_after;
      free_slot(s);
      if (close) {
        c->close_after_flush = true;
        c->discard = true;
        drop_remaining(c);
        break;
      }
      slot* h = c->head;
      if (h && !h->buf.empty()) {
        c->queued_bytes -= h->buf.size();
        c->out.append(h->buf);
        h->buf.clear();
      }
    }
    mark_output(c);
    if (c->paused && c->slots < lim.max_pipelined) mark_dirty(c);
  }

  // Requests behind a response that closes the connection can never be answered.
  void drop_remaining(conn* c) {
    std::vector<std::function<void()>> fns;
    while (slot* s = c->head) {
      c->head = s->next;
      --c->slots;
      if (s->state != slot_state::finished) {
        --stats.responses_in_flight;
        if (s->on_close) fns.push_back(std::move(s->on_close));
      }
      if (s->on_drain) --c->drain_waiters;
      c->queued_bytes -= s->buf.size();
      free_slot(s);
    }
    c->tail = nullptr;
    for (auto& f : fns) f();
  }

  bool alive(uint64_t id, uint64_t seq) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    return s && s->state != slot_state::finished;
  }

  static std::size_t buffered(const conn* c) {
    return c->out.size() + c->inflight_bytes + c->queued_bytes;
  }

  std::size_t buffered(uint64_t id) {
    conn* c = find_conn(id);
    return c ? buffered(c) : 0;
  }

  void set_on_drain(uint64_t id, uint64_t seq, std::function<void()> f) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state == slot_state::finished) return;
    if (s->on_drain) --c->drain_waiters;
    s->on_drain = std::move(f);
    if (!s->on_drain) return;
    ++c->drain_waiters;
    // Already below the mark: fire from the next flush rather than never.
    if (buffered(c) < lim.write_low_watermark) mark_dirty(c);
  }

  void set_on_close(uint64_t id, uint64_t seq, std::function<void()> f) {
    conn* c = nullptr;
    slot* s = find_slot(id, seq, &c);
    if (!s || s->state == slot_state::finished) return;
    s->on_close = std::move(f);
  }

  // ---- writing ----

  void mark_output(conn* c) {
    if (!c->in_read) mark_dirty(c);
  }

  void mark_dirty(conn* c) {
    if (c->dirty || closed || !prepare_open) return;
    c->dirty = true;
    dirty.push_back(c->id);
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&prepare))) {
      uv_prepare_start(&prepare,
                       [](uv_prepare_t* p) { static_cast<impl*>(p->data)->on_prepare(); });
    }
  }

  void on_prepare() {
    dirty_spare.swap(dirty);
    for (uint64_t id : dirty_spare) {
      conn* c = find_conn(id);
      if (!c) continue;
      c->dirty = false;
      if (c->paused) resume(c);
      if (!c->closing) flush(c);
    }
    dirty_spare.clear();
    if (dirty.empty() && prepare_open) uv_prepare_stop(&prepare);
  }

  void flush(conn* c) {
    if (c->closing) return;
    if (!c->writing && !c->out.empty()) {
      uv_buf_t b = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
      int n = uv_try_write(stream(c), &b, 1);
      if (n == UV_EAGAIN) n = 0;
      if (n < 0) {
        close_now(c);
        return;
      }
      if (static_cast<std::size_t>(n) == c->out.size()) {
        c->out.clear();
        if (c->out.capacity() > k_keep_capacity) std::string().swap(c->out);
      } else {
        if (!c->wop) {
          c->wop = std::make_unique<write_op>();
          c->wop->req.data = c;
        }
        c->wop->buf.swap(c->out);
        c->out.clear();
        std::size_t rest = c->wop->buf.size() - static_cast<std::size_t>(n);
        uv_buf_t wb = uv_buf_init(c->wop->buf.data() + n, static_cast<unsigned>(rest));
        if (uv_write(&c->wop->req, stream(c), &wb, 1, &cb_write) != 0) {
          close_now(c);
          return;
        }
        c->writing = true;
        c->inflight_bytes = rest;
      }
    }
    after_progress(c);
  }

  static void cb_write(uv_write_t* req, int status) {
    auto* c = static_cast<conn*>(req->data);
    c->srv->on_write(c, status);
  }

  void on_write(conn* c, int status) {
    c->writing = false;
    c->inflight_bytes = 0;
    c->wop->buf.clear();
    if (c->wop->buf.capacity() > k_keep_capacity) std::string().swap(c->wop->buf);
    if (c->closing) return;
    if (status < 0) {
      close_now(c);
      return;
    }
    flush(c);
  }

  // Output moved on: wake drain waiters, close a finished connection, or restart the idle clock.
  void after_progress(conn* c) {
    if (c->drain_waiters > 0 && buffered(c) < lim.write_low_watermark) fire_drain(c);
    if (c->closing || c->head != nullptr || c->parsing != 0) return;
    if (c->close_after_flush && c->out.empty() && !c->writing) {
      finish_connection(c);
      return;
    }
    c->idle_since_ms = uv_now(loop);
    arm_timer(c);
  }

  void fire_drain(conn* c) {
    std::vector<std::function<void()>> fns;
    for (slot* s = c->head; s; s = s->next) {
      if (s->on_drain) fns.push_back(std::move(s->on_drain));
      s->on_drain = nullptr;
    }
    c->drain_waiters = 0;
    for (auto& f : fns) {
      if (c->closing) break;
      f();
    }
  }

  // ---- closing ----

  // Everything is written and the connection must close: send FIN, then wait briefly for the
  // peer's so that unread input does not turn our close into a reset that eats the response.
  void finish_connection(conn* c) {
    if (c->eof) {
      close_now(c);
      return;
    }
    unregister(c);
    c->lingering = true;
    c->discard = true;
    c->sreq = std::make_unique<uv_shutdown_t>();
    c->sreq->data = c;
    int rc = uv_shutdown(c->sreq.get(), stream(c), [](uv_shutdown_t* req, int status) {
      auto* conn_ = static_cast<conn*>(req->data);
      if (status < 0 && !conn_->closing) conn_->srv->close_now(conn_);
    });
    if (rc != 0) {
      close_now(c);
      return;
    }
    start_reading(c);
    c->phase_start_ms = uv_now(loop);
    arm_timer(c);
    maybe_shutdown_done();
  }

  // Responders of an unregistered connection are no-ops; a lingering one is no longer counted.
  void unregister(conn* c) {
    if (c->id == 0 || c->lingering) return;
    if (conns.erase(c->id) != 0) --stats.connections_open;
  }

  void close_now(conn* c) {
    if (c->closing) return;
    c->closing = true;
    unregister(c);
    std::vector<std::function<void()>> fns;
    for (slot* s = c->head; s; s = s->next) {
      if (s->state == slot_state::finished) continue;
      s->state = slot_state::finished;
      --stats.responses_in_flight;
      if (s->on_close) fns.push_back(std::move(s->on_close));
      s->on_close = nullptr;
      s->on_drain = nullptr;
    }
    c->drain_waiters = 0;
    stop_reading(c);
    uv_timer_stop(&c->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), &cb_conn_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->timer), &cb_conn_closed);
    for (auto& f : fns) f();
    maybe_shutdown_done();
  }

  static void cb_conn_closed(uv_handle_t* h) {
    auto* c = static_cast<conn*>(h->data);
    impl* self = c->srv;
    if (--c->handles == 0) self->destroy(c);
    self->handle_closed();
  }

  void destroy(conn* c) {
    if (c->prev) {
      c->prev->next = c->next;
    } else {
      all = c->next;
    }
    if (c->next) c->next->prev = c->prev;
    while (slot* s = c->head) {
      c->head = s->next;
      free_slot(s);
    }
    if (c->req) recycle_request(std::move(c->req));
    delete c;
  }

  void handle_closed() {
    if (--open_handles == 0 && orphaned) delete this;
  }

  // ---- timers ----

  uint64_t deadline(const conn* c) const {
    auto after = [](uint64_t start, uint64_t ms) { return ms == 0 ? k_no_deadline : start + ms; };
    if (c->lingering) return c->phase_start_ms + k_linger_ms;
    if (c->parsing == 1) return after(c->phase_start_ms, lim.header_timeout_ms);
    if (c->parsing == 2) return after(c->phase_start_ms, lim.body_timeout_ms);
    // No request in progress: idle, or stuck writing to a client that stopped reading.
    if (c->head == nullptr) return after(c->idle_since_ms, lim.idle_timeout_ms);
    return k_no_deadline;
  }

  // Lazy re-arming: the timer is only restarted when the new deadline is earlier than the one
  // it is set for; when it fires early it re-arms itself for the current deadline.
  void arm_timer(conn* c) {
    if (c->closing) return;
    uint64_t d = deadline(c);
    if (d == k_no_deadline) return;
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&c->timer)) && c->timer_due_ms <= d) return;
    start_timer(c, d, uv_now(loop));
  }

  void start_timer(conn* c, uint64_t due, uint64_t now) {
    c->timer_due_ms = due;
    uv_timer_start(
        &c->timer,
        [](uv_timer_t* t) {
          auto* conn_ = static_cast<conn*>(t->data);
          conn_->srv->on_timer(conn_);
        },
        due > now ? due - now : 0, 0);
  }

  void on_timer(conn* c) {
    if (c->closing) return;
    uint64_t d = deadline(c);
    if (d == k_no_deadline) return;
    uint64_t now = uv_now(loop);
    if (now < d) {
      start_timer(c, d, now);
      return;
    }
    if (c->lingering) {
      close_now(c);
    } else if (c->parsing != 0) {
      bool headers = c->parsing == 1;
      std::string m =
          headers ? "request headers not received within " : "request body not received within ";
      append_uint(m, headers ? lim.header_timeout_ms : lim.body_timeout_ms);
      m += " ms";
      fail(c, 408, "request_timeout", m);
    } else {
      close_now(c);  // idle: close silently
    }
  }

  // ---- shutdown ----

  void shutdown(uint32_t deadline_ms, std::function<void()> done) {
    if (closed || (shutting_down && done_fired)) {
      if (done) done();
      return;
    }
    if (shutting_down) {
      if (done) shutdown_done = std::move(done);
      return;
    }
    shutting_down = true;
    shutdown_done = std::move(done);
    close_listener();
    if (!shutdown_timer_open) {
      uv_timer_init(loop, &shutdown_timer);
      shutdown_timer.data = this;
      shutdown_timer_open = true;
      ++open_handles;
    }
    shutdown_deadline_ms = uv_now(loop) + deadline_ms;
    for (conn* c : live_connections()) {
      if (c->closing) continue;
      if (c->parsing != 0) continue;  // the request being read is answered, then we close
      if (c->head == nullptr && c->out.empty() && !c->writing) {
        close_now(c);  // idle
        continue;
      }
      c->discard = true;
      c->close_after_flush = true;
      c->stash.clear();
      if (c->paused) {
        c->paused = false;
        start_reading(c);  // input is dropped, but a client that leaves is still noticed
      }
    }
    uv_timer_start(&shutdown_timer, &cb_shutdown_timer, deadline_ms, 0);
    maybe_shutdown_done();
  }

  std::vector<conn*> live_connections() const {
    std::vector<conn*> v;
    v.reserve(conns.size());
    for (const auto& kv : conns) v.push_back(kv.second);
    return v;
  }

  static void cb_shutdown_timer(uv_timer_t* t) { static_cast<impl*>(t->data)->on_shutdown_timer(); }

  void on_shutdown_timer() {
    if (done_fired) return;
    if (!conns.empty()) {
      uint64_t now = uv_now(loop);
      if (now < shutdown_deadline_ms) {
        uv_timer_start(&shutdown_timer, &cb_shutdown_timer, shutdown_deadline_ms - now, 0);
        return;
      }
      for (conn* c : live_connections()) close_now(c);
    }
    fire_done();
  }

  void fire_done() {
    if (done_fired) return;
    done_fired = true;
    if (shutdown_timer_open) uv_timer_stop(&shutdown_timer);
    auto f = std::move(shutdown_done);
    shutdown_done = nullptr;
    if (f) f();
  }

  // Defers `done` to a loop callback so that it never runs inside a responder call.
  void maybe_shutdown_done() {
    if (!shutting_down || done_fired || closed || !conns.empty() || !shutdown_timer_open) return;
    uv_timer_start(&shutdown_timer, &cb_shutdown_timer, 0, 0);
  }

  void close_all() {
    if (closed) return;
    closed = true;
    close_listener();
    if (prepare_open) {
      prepare_open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&prepare),
               [](uv_handle_t* h) { static_cast<impl*>(h->data)->handle_closed(); });
    }
    if (shutdown_timer_open) {
      shutdown_timer_open = false;
      uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer),
               [](uv_handle_t* h) { static_cast<impl*>(h->data)->handle_closed(); });
    }
    std::vector<conn*> v;
    for (conn* c = all; c; c = c->next) {
      if (!c->closing) v.push_back(c);
    }
    for (conn* c : v) close_now(c);
    if (shutting_down) fire_done();
  }
};

// ---- responder ----

bool responder::alive() const {
  return srv_ && srv_->impl_->alive(conn_id_, seq_);
}

void responder::send(int status, const header_list& headers, std::string body) {
  if (srv_) srv_->impl_->send(conn_id_, seq_, status, headers, std::move(body));
}

void responder::start(int status, const header_list& headers) {
  if (srv_) srv_->impl_->start(conn_id_, seq_, status, headers);
}

bool responder::write(std::string chunk) {
  return srv_ && srv_->impl_->write(conn_id_, seq_, std::move(chunk));
}

void responder::end() {
  if (srv_) srv_->impl_->end(conn_id_, seq_);
}

void responder::abort() {
  if (srv_) srv_->impl_->abort(conn_id_, seq_);
}

std::size_t responder::buffered() const {
  return srv_ ? srv_->impl_->buffered(conn_id_) : 0;
}

bool responder::congested() const {
  return srv_ && srv_->impl_->buffered(conn_id_) > srv_->impl_->lim.write_high_watermark;
}

void responder::on_drain(std::function<void()> fn) {
  if (srv_) srv_->impl_->set_on_drain(conn_id_, seq_, std::move(fn));
}

void responder::on_close(std::function<void()> fn) {
  if (srv_) srv_->impl_->set_on_close(conn_id_, seq_, std::move(fn));
}

// ---- server ----

server::server(uv_loop_t* loop, limits lim, handler fn)
    : impl_(std::make_unique<impl>(this, loop, lim, std::move(fn))), loop_(loop) {}

server::~server() {
  if (!impl_) return;
  impl_->close_all();
  if (impl_->open_handles > 0) {
    // Close callbacks still reference the state: it frees itself after the last one.
    impl_->orphaned = true;
    impl_->owner = nullptr;
    impl_.release();
  }
}

int server::listen(const std::string& host, uint16_t port, bool reuse_port) {
  return impl_->listen(host, port, reuse_port);
}

void server::shutdown(uint32_t deadline_ms, std::function<void()> done) {
  impl_->shutdown(deadline_ms, std::move(done));
}

void server::close_all() {
  impl_->close_all();
}

const server_stats& server::stats() const {
  return impl_->stats;
}

bool split_host_port(std::string_view text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string_view h = text.substr(0, colon);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  unsigned long p = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<unsigned long>(c - '0');
    if (p > 65535) return false;
  }
  host.assign(h);
  port = static_cast<uint16_t>(p);
  return true;
}

}  // namespace tc::http
