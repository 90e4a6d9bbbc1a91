// Tests of node/upstream/curl_client against a scripted HTTP/1.1 server on loopback threads.
#include "node/upstream/curl_client.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace tc::upstream;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// ---- a scripted upstream: one thread accepts, one thread per connection ------------------------

struct request_info {
  std::string method;
  std::string path;
  std::string head;  // request line and headers, lower-cased
  std::string body;
};

class test_server;

// One accepted connection. Sockets have 50 ms timeouts so every wait can notice stop().
struct server_conn {
  int fd = -1;
  test_server* srv = nullptr;
  std::string buf;      // received, not yet consumed
  bool closed = false;  // the handler ended the connection

  bool stopping() const;

  bool recv_some() {
    char tmp[16384];
    for (;;) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n > 0) {
        buf.append(tmp, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) return false;
      if ((errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || stopping()) return false;
    }
  }

  bool read_request(request_info& out) {
    std::size_t end;
    while ((end = buf.find("\r\n\r\n")) == std::string::npos)
      if (!recv_some()) return false;
    out.head = buf.substr(0, end + 2);
    buf.erase(0, end + 4);
    for (char& ch : out.head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::size_t sp1 = out.head.find(' ');
    std::size_t sp2 = out.head.find(' ', sp1 + 1);
    out.method = out.head.substr(0, sp1);
    for (char& ch : out.method)
      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    out.path = out.head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::size_t length = 0;
    std::size_t cl = out.head.find("\r\ncontent-length:");
    if (cl != std::string::npos) length = std::strtoul(out.head.c_str() + cl + 17, nullptr, 10);
    while (buf.size() < length)
      if (!recv_some()) return false;
    out.body = buf.substr(0, length);
    buf.erase(0, length);
    return true;
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && !stopping())
        continue;
      return false;
    }
    return true;
  }

  // True once the peer closed (or reset) the connection within timeout_ms.
  bool wait_peer_close(int timeout_ms) {
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    char tmp[4096];
    while (steady::now() < deadline && !stopping()) {
      ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    }
    return false;
  }
};

class test_server {
 public:
  using handler = std::function<void(server_conn&, const request_info&)>;

  explicit test_server(handler h) : handler_(std::move(h)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd_, 512) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~test_server() {
    stop_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : workers_) t.join();
  }

  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  bool stopping() const { return stop_.load(); }
  std::vector<request_info> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

  std::atomic<int> peer_closes{0};   // handler saw the client close its connection
  std::atomic<int> closed_conns{0};  // connections the server has closed (any reason)

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      timeval tv{0, 50'000};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      ++accepted_;
      std::lock_guard<std::mutex> lock(mu_);
      workers_.emplace_back([this, fd] { serve(fd); });
    }
  }

  void serve(int fd) {
    server_conn c;
    c.fd = fd;
    c.srv = this;
    request_info r;
    while (!c.closed && c.read_request(r)) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(r);
      }
      handler_(c, r);
    }
    ::close(fd);
    ++closed_conns;
  }

  handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;
  std::vector<request_info> requests_;
};

bool server_conn::stopping() const {
  return srv->stopping();
}

char pattern_byte(std::size_t i) {
  return static_cast<char>('a' + i % 23);
}
constexpr std::size_t k_big_size = 1 << 20;

std::string response(int status, std::string_view reason, std::string_view extra_headers,
                     std::string_view body) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  r += extra_headers;
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  r += body;
  return r;
}

std::string chunk(std::string_view data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + std::string(data) + "\r\n";
}

// The upstream behaviours the tests use, by path.
void scripted(server_conn& c, const request_info& r) {
  const std::string& p = r.path;
  if (p == "/echo") {
    c.send(response(200, "OK", "Content-Type: application/json\r\nX-Reply: Yes\r\n",
                    "echo:" + r.body));
  } else if (p == "/conn_close") {
    c.send("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    c.closed = true;
  } else if (p == "/one_shot") {  // keep-alive response, then the server drops the connection
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.closed = true;
  } else if (p == "/tiny") {
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  } else if (p.rfind("/path/", 0) == 0) {  // answers with the request target it received
    c.send(response(200, "OK", "", "path:" + p));
  } else if (p == "/sse") {
    c.send(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 4; ++i) {
      c.send(chunk("data: " + std::to_string(i) + "\n\n"));
      std::this_thread::sleep_for(30ms);  // paces the stream so the client sees pieces
    }
    c.send("0\r\n\r\n");
  } else if (p == "/interim") {
    c.send("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
  } else if (p == "/hang") {
    if (c.wait_peer_close(10'000)) ++c.srv->peer_closes;
    c.closed = true;
  } else if (p == "/stall") {
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
    if (c.wait_peer_close(10'000)) ++c.srv->peer_closes;
    c.closed = true;
  } else if (p == "/cut") {
    c.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    c.closed = true;
  } else if (p == "/cut_chunked") {
    c.send("HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("hello"));
    c.closed = true;
  } else if (p == "/stream") {
    c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk("first"));
    if (c.wait_peer_close(10'000)) ++c.srv->peer_closes;
    c.closed = true;
  } else if (p == "/big") {
    std::string body(k_big_size, '\0');
    for (std::size_t i = 0; i < body.size(); ++i) body[i] = pattern_byte(i);
    c.send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
    c.send(body);
  } else {
    c.send(response(404, "Not Found", "", ""));
  }
}

// ---- the client side ----------------------------------------------------------------------------

// A loop that the tests drive in bounded steps.
struct test_loop {
  uv_loop_t loop;
  uv_timer_t tick;  // wakes UV_RUN_ONCE at least every 5 ms while waiting

  test_loop() {
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
  }

  ~test_loop() {
    CHECK(drain());
    CHECK(uv_loop_close(&loop) == 0);
  }

  // Runs the loop until done() or timeout_ms; returns done().
  bool run_until(const std::function<bool()>& done, int timeout_ms = 5000) {
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    bool ok = done();
    while (!ok && steady::now() < deadline) {
      uv_run(&loop, UV_RUN_ONCE);
      ok = done();
    }
    uv_timer_stop(&tick);
    return ok;
  }

  // Closes the tick timer and runs the loop until nothing is left; false if it never ends.
  bool drain(int timeout_ms = 3000) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&tick)))
      uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    while (steady::now() < deadline)
      if (uv_run(&loop, UV_RUN_NOWAIT) == 0) return true;
    return false;
  }
};

// Set while start() runs: a callback seeing it ran inside start().
bool g_in_start = false;

// Records what one call's callbacks saw.
struct recorder {
  int headers_calls = 0;
  int data_calls = 0;
  int complete_calls = 0;
  int misordered = 0;  // data before headers, anything after complete, or inside start()
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  call_result result;
  std::function<void(std::string_view)> on_data_extra;

  call_handlers handlers() {
    call_handlers h;
    h.on_headers = [this](int s, std::vector<std::pair<std::string, std::string>>&& hs) {
      if (complete_calls || headers_calls || g_in_start) ++misordered;
      ++headers_calls;
      status = s;
      headers = std::move(hs);
    };
    h.on_data = [this](std::string_view d) {
      if (!headers_calls || complete_calls || g_in_start) ++misordered;
      ++data_calls;
      body.append(d);
      if (on_data_extra) on_data_extra(d);
    };
    h.on_complete = [this](call_result&& r) {
      if (complete_calls || g_in_start) ++misordered;
      ++complete_calls;
      result = std::move(r);
    };
    return h;
  }

  std::string header(std::string_view name) const {
    for (auto& [k, v] : headers)
      if (k == name) return v;
    return "<none>";
  }
  bool done() const { return complete_calls > 0; }
};

call_request post(std::string url, std::string body = "{\"a\":1}") {
  call_request r;
  r.url = std::move(url);
  r.headers = {"Content-Type: application/json", "X-Req: 1"};
  r.body = std::move(body);
  return r;
}

call_id start(curl_client& client, call_request r, recorder& rec) {
  g_in_start = true;
  call_id id = client.start(std::move(r), rec.handlers());
  g_in_start = false;
  return id;
}

// A loopback port with nothing listening: bound (so nobody else takes it) but not listening.
struct closed_port {
  int fd;
  uint16_t port = 0;
  closed_port() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~closed_port() { ::close(fd); }
};

// A listener whose accept queue is full: further SYNs are dropped, so connects hang.
struct full_listener {
  int fd;
  uint16_t port = 0;
  std::vector<int> fillers;
  bool full = false;

  full_listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd, 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    for (int i = 0; i < 16 && !full; ++i) {  // connect until one does not complete
      int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
      fillers.push_back(s);
      pollfd p{s, POLLOUT, 0};
      full = ::poll(&p, 1, 200) == 0;
    }
  }
  ~full_listener() {
    for (int s : fillers) ::close(s);
    ::close(fd);
  }
};

}  // namespace

TEST_CASE("to_string names every failure") {
  CHECK(to_string(failure::none) == "none");
  CHECK(to_string(failure::connect) == "connect");
  CHECK(to_string(failure::connect_timeout) == "connect_timeout");
  CHECK(to_string(failure::first_byte_timeout) == "first_byte_timeout");
  CHECK(to_string(failure::total_timeout) == "total_timeout");
  CHECK(to_string(failure::io) == "io");
  CHECK(to_string(failure::cancelled) == "cancelled");
}

TEST_CASE("curl_client: POST 200 delivers headers, body and result in order") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  uint64_t t0 = uv_hrtime();
  call_id id = start(client, post(server.url("/echo")), rec);
  CHECK(id != 0);
  CHECK(client.in_flight() == 1);
  CHECK(rec.headers_calls == 0);  // nothing ran inside start()
  REQUIRE(l.run_until([&] { return rec.done(); }));

  CHECK(rec.misordered == 0);
  CHECK(rec.headers_calls == 1);
  CHECK(rec.status == 200);
  CHECK(rec.header("x-reply") == "Yes");
  CHECK(rec.header("content-type") == "application/json");
  CHECK(rec.header("content-length") == "12");
  CHECK(rec.body == "echo:{\"a\":1}");
  CHECK(rec.result.why == failure::none);
  CHECK(rec.result.status == 200);
  CHECK(rec.result.bytes_received == 12);
  CHECK(rec.result.first_byte_ns > t0);
  CHECK(rec.result.done_ns >= rec.result.first_byte_ns);
  CHECK(rec.result.detail.empty());
  CHECK(client.in_flight() == 0);

  auto reqs = server.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/echo");
  CHECK(reqs[0].body == "{\"a\":1}");
  CHECK(reqs[0].head.find("\r\ncontent-type: application/json\r\n") != std::string::npos);
  CHECK(reqs[0].head.find("\r\nx-req: 1\r\n") != std::string::npos);
  CHECK(reqs[0].head.find("\r\nexpect:") == std::string::npos);
  CHECK(reqs[0].head.find("\r\naccept:") == std::string::npos);
  CHECK(reqs[0].head.find("http/1.1\r\n") != std::string::npos);
}

TEST_CASE("curl_client: GET without Content-Type sends none, interim 1xx is skipped") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder get_rec, interim_rec;
  call_request get;
  get.method = "GET";
  get.url = server.url("/echo");
  start(client, std::move(get), get_rec);
  call_request interim = post(server.url("/interim"));
  start(client, std::move(interim), interim_rec);
  REQUIRE(l.run_until([&] { return get_rec.done() && interim_rec.done(); }));

  CHECK(get_rec.result.why == failure::none);
  CHECK(get_rec.body == "echo:");
  CHECK(interim_rec.misordered == 0);
  CHECK(interim_rec.headers_calls == 1);
  CHECK(interim_rec.status == 201);
  CHECK(interim_rec.body == "ok");
  auto reqs = server.requests();
  REQUIRE(reqs.size() == 2);
  for (auto& r : reqs) {
    if (r.method != "GET") continue;
    CHECK(r.head.find("content-type") == std::string::npos);
    CHECK(r.head.find("content-length") == std::string::npos);
  }
}

TEST_CASE("curl_client: a large POST body is sent at once, without Expect: 100-continue") {
  // libcurl 7.88 adds Expect above 1 MiB and the client removes it there; exactly 1 MiB pins
  // that threshold (an Expect would cost the call a round trip, or a 1 s wait).
  for (std::size_t size : {std::size_t{1} << 20, std::size_t{3} << 20}) {
    CAPTURE(size);
    test_server server(scripted);
    test_loop l;
    curl_client client(&l.loop);
    recorder rec;
    std::string body(size, 'b');
    start(client, post(server.url("/echo"), body), rec);
    REQUIRE(l.run_until([&] { return rec.done(); }, 10'000));
    CHECK(rec.result.why == failure::none);
    CHECK(rec.body.size() == body.size() + 5);
    auto reqs = server.requests();
    REQUIRE(reqs.size() == 1);
    CHECK(reqs[0].body == body);
    CHECK(reqs[0].head.find("\r\nexpect:") == std::string::npos);
  }
}

TEST_CASE("curl_client: a chunked SSE body arrives de-chunked and in pieces") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  start(client, post(server.url("/sse")), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.misordered == 0);
  CHECK(rec.result.why == failure::none);
  CHECK(rec.status == 200);
  CHECK(rec.header("content-type") == "text/event-stream");
  CHECK(rec.body == "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n");
  CHECK(rec.data_calls >= 2);
  CHECK(rec.result.bytes_received == rec.body.size());
}

TEST_CASE("curl_client: sequential calls to one host reuse one connection") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  auto t0 = steady::now();
  for (int i = 0; i < 5; ++i) {
    recorder rec;
    start(client, post(server.url("/echo"), std::to_string(i)), rec);
    REQUIRE(l.run_until([&] { return rec.done(); }));
    CHECK(rec.result.why == failure::none);
    CHECK(rec.body == "echo:" + std::to_string(i));
    CHECK(client.connections_opened() == 1);  // CURLINFO_NUM_CONNECTS == 0 after the first
  }
  CHECK(server.accepted() == 1);
  CHECK(steady::now() - t0 < 1s);  // each call is driven by socket events, not curl's timers
}

TEST_CASE("curl_client: each call reaches its own URL, beyond the URLs kept parsed") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  // More distinct URLs than the client keeps parsed (256), each used twice, with a call to
  // another URL in between, so pooled easy handles switch URLs on every call.
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 300; ++i) {
      CAPTURE(i);
      const std::string target = "/path/" + std::to_string(i) + "?q=" + std::to_string(round);
      recorder rec, other;
      start(client, post(server.url(target)), rec);
      start(client, post(server.url("/echo"), std::to_string(i)), other);
      REQUIRE(l.run_until([&] { return rec.done() && other.done(); }));
      CHECK(rec.result.why == failure::none);
      CHECK(rec.body == "path:" + target);
      CHECK(other.body == "echo:" + std::to_string(i));
    }
  }
  CHECK(server.requests().size() == 1200);
}

TEST_CASE("curl_client: a URL curl cannot parse fails the call as a connect failure") {
  test_loop l;
  curl_client client(&l.loop);
  for (const char* url : {"http://127.0.0.1:99999/x", "http://[::1/x", "ftp://127.0.0.1/x"}) {
    CAPTURE(url);
    recorder rec;
    start(client, post(url), rec);
    REQUIRE(l.run_until([&] { return rec.done(); }));
    CHECK(rec.result.why == failure::connect);
    CHECK(rec.headers_calls == 0);
    CHECK_FALSE(rec.result.detail.empty());
  }
}

TEST_CASE("curl_client: connections the server closes are not reused") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  // Connection: close announced in the response.
  for (int i = 0; i < 3; ++i) {
    recorder rec;
    start(client, post(server.url("/conn_close")), rec);
    REQUIRE(l.run_until([&] { return rec.done(); }));
    CHECK(rec.result.why == failure::none);
    CHECK(rec.body == "ok");
  }
  CHECK(client.connections_opened() == 3);
  // A kept-alive connection the server drops while it idles in the cache.
  uv_prepare_t counter;
  uv_prepare_init(&l.loop, &counter);
  int iterations = 0;
  counter.data = &iterations;
  for (int i = 0; i < 3; ++i) {
    recorder rec;
    start(client, post(server.url("/one_shot")), rec);
    REQUIRE(l.run_until([&] { return rec.done(); }));
    CHECK(rec.result.why == failure::none);
    CHECK(rec.body == "ok");
    REQUIRE(l.run_until([&] { return server.closed_conns.load() == 4 + i; }));
    // The idle socket is now readable (EOF): the loop must not spin on it.
    iterations = 0;
    uv_prepare_start(&counter, [](uv_prepare_t* p) { ++*static_cast<int*>(p->data); });
    l.run_until([] { return false; }, 100);
    uv_prepare_stop(&counter);
    CHECK(iterations < 100);  // ~20 wake-ups of the 5 ms tick; a spinning loop does thousands
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&counter), nullptr);
  CHECK(client.connections_opened() == 6);
  CHECK(server.accepted() == 6);
}

TEST_CASE("curl_client: connection refused is a connect failure") {
  closed_port port;
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  start(client, post("http://127.0.0.1:" + std::to_string(port.port) + "/x"), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.result.why == failure::connect);
  CHECK(rec.result.status == 0);
  CHECK(rec.headers_calls == 0);
  CHECK_FALSE(rec.result.detail.empty());
  CHECK(rec.misordered == 0);
}

TEST_CASE("curl_client: a connect that never completes is a connect timeout") {
  full_listener listener;
  if (!listener.full) {
    MESSAGE("could not fill the accept queue on this kernel; skipping");
    return;
  }
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_request r = post("http://127.0.0.1:" + std::to_string(listener.port) + "/x");
  r.connect_timeout_ms = 200;
  auto t0 = steady::now();
  start(client, std::move(r), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.result.why == failure::connect_timeout);
  CHECK(steady::now() - t0 >= 190ms);
  CHECK(steady::now() - t0 < 3s);
}

TEST_CASE("curl_client: a TLS handshake that never completes is a connect timeout") {
  test_server server(scripted);  // plain HTTP: it waits for a request that never comes
  test_loop l;
  curl_client client(&l.loop, curl_options{.verify_tls = false});
  recorder rec;
  call_request r = post("https://127.0.0.1:" + std::to_string(server.port()) + "/x");
  r.connect_timeout_ms = 300;
  start(client, std::move(r), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.result.why == failure::connect_timeout);
  CHECK(server.accepted() == 1);
}

TEST_CASE("curl_client: no response header within first_byte_timeout_ms") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_request r = post(server.url("/hang"));
  r.first_byte_timeout_ms = 200;
  auto t0 = steady::now();
  start(client, std::move(r), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  auto elapsed = steady::now() - t0;
  CHECK(rec.result.why == failure::first_byte_timeout);
  CHECK(rec.result.status == 0);
  CHECK(rec.result.first_byte_ns == 0);
  CHECK(elapsed >= 190ms);
  CHECK(elapsed < 3s);
  CHECK(client.in_flight() == 0);
  // The abandoned connection is closed, not left to the server.
  CHECK(l.run_until([&] { return server.peer_closes.load() == 1; }));
  CHECK(rec.complete_calls == 1);
}

TEST_CASE("curl_client: a response slower than total_timeout_ms is a total timeout") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_request r = post(server.url("/stall"));
  r.connect_timeout_ms = 250;  // shorter than the total, but the connect itself succeeded
  r.total_timeout_ms = 300;
  auto t0 = steady::now();
  start(client, std::move(r), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.result.why == failure::total_timeout);
  CHECK(rec.result.status == 200);
  CHECK(rec.result.bytes_received == 10);
  CHECK(rec.body == "0123456789");
  CHECK(steady::now() - t0 >= 290ms);
  CHECK(rec.misordered == 0);
}

TEST_CASE("curl_client: a body cut mid-way is an io failure with the received status") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder cut, cut_chunked;
  start(client, post(server.url("/cut")), cut);
  start(client, post(server.url("/cut_chunked")), cut_chunked);
  REQUIRE(l.run_until([&] { return cut.done() && cut_chunked.done(); }));
  CHECK(cut.result.why == failure::io);
  CHECK(cut.result.status == 200);
  CHECK(cut.result.bytes_received == 10);
  CHECK_FALSE(cut.result.detail.empty());
  CHECK(cut_chunked.result.why == failure::io);
  CHECK(cut_chunked.result.status == 502);
  CHECK(cut_chunked.body == "hello");
  CHECK(cut.misordered + cut_chunked.misordered == 0);
}

TEST_CASE("curl_client: cancel mid-stream stops callbacks and closes the connection") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_id id = 0;
  rec.on_data_extra = [&](std::string_view) { client.cancel(id); };
  id = start(client, post(server.url("/stream")), rec);
  REQUIRE(l.run_until([&] { return rec.data_calls > 0; }));
  CHECK(client.in_flight() == 0);
  REQUIRE(l.run_until([&] { return server.peer_closes.load() == 1; }));
  CHECK(rec.data_calls == 1);
  CHECK(rec.body == "first");
  CHECK(rec.complete_calls == 0);
  client.cancel(id);  // a finished id is ignored
  client.pause(id);
  client.resume(id);
}

TEST_CASE("curl_client: cancel from on_headers and from outside, of self and of others") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder self, other, outside, after;
  call_id self_id = 0, other_id = 0;
  call_handlers h = self.handlers();
  h.on_headers = [&](int, auto&&) {
    ++self.headers_calls;
    client.cancel(self_id);
    client.cancel(other_id);
    // a call started from inside a curl callback still runs
    start(client, post(server.url("/echo"), "x"), after);
  };
  other_id = start(client, post(server.url("/hang")), other);
  call_id outside_id = start(client, post(server.url("/hang")), outside);
  REQUIRE(l.run_until([&] { return server.requests().size() == 2; }));
  self_id = client.start(post(server.url("/stream")), std::move(h));
  REQUIRE(l.run_until([&] { return after.done(); }));
  CHECK(after.result.why == failure::none);
  CHECK(after.body == "echo:x");
  client.cancel(outside_id);
  CHECK(client.in_flight() == 0);
  REQUIRE(l.run_until([&] { return server.peer_closes.load() == 3; }));
  CHECK(self.headers_calls == 1);
  CHECK(self.data_calls + self.complete_calls == 0);
  CHECK(other.headers_calls + other.data_calls + other.complete_calls == 0);
  CHECK(outside.headers_calls + outside.data_calls + outside.complete_calls == 0);
}

TEST_CASE("curl_client: pause holds on_data and resume delivers every byte in order") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_id id = 0;
  bool paused = false;
  int pauses = 0, while_paused = 0;
  uv_timer_t resume_timer;
  uv_timer_init(&l.loop, &resume_timer);
  struct ctx_t {
    curl_client* client;
    call_id* id;
    bool* paused;
  } ctx{&client, &id, &paused};
  resume_timer.data = &ctx;
  rec.on_data_extra = [&](std::string_view) {
    if (paused) ++while_paused;
    if (pauses < 8 && rec.data_calls % 3 == 1) {
      ++pauses;
      paused = true;
      client.pause(id);
      uv_timer_start(
          &resume_timer,
          [](uv_timer_t* t) {
            auto* c = static_cast<ctx_t*>(t->data);
            *c->paused = false;
            c->client->resume(*c->id);
          },
          20, 0);
    }
  };
  call_request r = post(server.url("/big"));
  id = start(client, std::move(r), rec);
  REQUIRE(l.run_until([&] { return rec.done(); }, 10'000));
  uv_close(reinterpret_cast<uv_handle_t*>(&resume_timer), nullptr);
  CHECK(rec.result.why == failure::none);
  CHECK(pauses == 8);
  CHECK(while_paused == 0);
  CHECK(rec.misordered == 0);
  REQUIRE(rec.body.size() == k_big_size);
  CHECK(rec.result.bytes_received == k_big_size);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < rec.body.size(); ++i) bad += rec.body[i] != pattern_byte(i);
  CHECK(bad == 0);
}

TEST_CASE("curl_client: a call paused before its response holds the body until resumed") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec;
  call_id id = start(client, post(server.url("/echo"), "held"), rec);
  client.pause(id);
  REQUIRE(l.run_until([&] { return rec.headers_calls == 1; }));
  l.run_until([] { return false; }, 100);
  CHECK(rec.data_calls == 0);
  CHECK(rec.complete_calls == 0);
  CHECK(client.in_flight() == 1);
  client.resume(id);
  CHECK(rec.data_calls == 0);  // resume() itself runs no callback
  REQUIRE(l.run_until([&] { return rec.done(); }));
  CHECK(rec.result.why == failure::none);
  CHECK(rec.body == "echo:held");
  CHECK(rec.misordered == 0);
}

TEST_CASE("curl_client: 100 concurrent calls all complete") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  std::vector<recorder> recs(100);
  for (int i = 0; i < 100; ++i)
    start(client, post(server.url("/echo"), "n=" + std::to_string(i)), recs[i]);
  CHECK(client.in_flight() == 100);
  REQUIRE(l.run_until([&] {
    for (auto& r : recs)
      if (!r.done()) return false;
    return true;
  }));
  for (int i = 0; i < 100; ++i) {
    CHECK(recs[i].result.why == failure::none);
    CHECK(recs[i].body == "echo:n=" + std::to_string(i));
    CHECK(recs[i].misordered == 0);
  }
  CHECK(client.in_flight() == 0);
  CHECK(client.connections_opened() == static_cast<uint64_t>(server.accepted()));
}

TEST_CASE("curl_client: after a burst larger than the pool, stale ids touch no new call") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  std::vector<recorder> burst(300);
  std::vector<call_id> stale;
  for (auto& r : burst) stale.push_back(start(client, post(server.url("/tiny")), r));
  REQUIRE(l.run_until([&] {
    for (auto& r : burst)
      if (!r.done()) return false;
    return true;
  }));
  for (auto& r : burst) CHECK(r.result.why == failure::none);
  std::vector<recorder> fresh(280);  // more than the idle pool: freed slots are reused too
  std::set<call_id> ids;
  for (auto& r : fresh) ids.insert(start(client, post(server.url("/tiny")), r));
  int collisions = 0;
  for (call_id id : stale) {
    collisions += static_cast<int>(ids.count(id));
    client.cancel(id);
    client.pause(id);
  }
  CHECK(collisions == 0);
  CHECK(ids.size() == fresh.size());
  CHECK(client.in_flight() == fresh.size());
  REQUIRE(l.run_until([&] {
    for (auto& r : fresh)
      if (!r.done()) return false;
    return true;
  }));
  for (auto& r : fresh) CHECK(r.body == "ok");
}

TEST_CASE("curl_client: on_complete may start the next call") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  int completed = 0;
  std::function<void()> next = [&] {
    call_handlers h;
    h.on_complete = [&](call_result&& r) {
      if (r.why == failure::none && r.status == 200) ++completed;
      if (completed < 10) next();
    };
    client.start(post(server.url("/tiny")), std::move(h));
  };
  next();
  REQUIRE(l.run_until([&] { return completed == 10; }));
  CHECK(client.in_flight() == 0);
  CHECK(server.accepted() == 1);
}

TEST_CASE("curl_client: close() cancels everything and lets the loop end") {
  test_server server(scripted);
  test_loop l;
  auto client = std::make_unique<curl_client>(&l.loop);
  std::vector<recorder> recs(4);
  start(*client, post(server.url("/hang")), recs[0]);
  start(*client, post(server.url("/hang")), recs[1]);
  start(*client, post(server.url("/stream")), recs[2]);
  recorder ok;
  start(*client, post(server.url("/echo")), ok);
  REQUIRE(l.run_until([&] { return ok.done() && server.requests().size() == 4; }));
  client->close();
  CHECK(client->in_flight() == 0);
  CHECK(client->start(post(server.url("/echo")), recs[3].handlers()) == 0);
  CHECK(l.drain());  // nothing of the client keeps the loop alive
  for (auto& r : recs) CHECK(r.complete_calls == 0);
  client.reset();
  auto deadline = steady::now() + 5s;
  while (server.peer_closes.load() < 3 && steady::now() < deadline) std::this_thread::yield();
  CHECK(server.peer_closes.load() == 3);
}

TEST_CASE("curl_client: close() from inside on_data") {
  test_server server(scripted);
  test_loop l;
  curl_client client(&l.loop);
  recorder rec, other;
  rec.on_data_extra = [&](std::string_view) { client.close(); };
  start(client, post(server.url("/stream")), rec);
  start(client, post(server.url("/hang")), other);
  REQUIRE(l.run_until([&] { return rec.data_calls > 0; }));
  CHECK(client.in_flight() == 0);
  CHECK(l.drain());
  CHECK(rec.complete_calls + other.complete_calls == 0);
}

// Throughput: TC_UPSTREAM_BENCH=N runs N sequential and N concurrent (16 in flight) small POSTs
// against the in-process server, or against TC_UPSTREAM_BENCH_URL (e.g. a local nginx).
TEST_CASE("curl_client: benchmark (TC_UPSTREAM_BENCH=N)") {
  const char* env = std::getenv("TC_UPSTREAM_BENCH");
  if (!env) return;
  const int n = std::max(1, std::atoi(env));
  test_server server(scripted);
  const char* target = std::getenv("TC_UPSTREAM_BENCH_URL");
  std::string url = target ? target : server.url("/tiny");
  test_loop l;
  curl_client client(&l.loop);

  auto thread_cpu_us = [] {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
  };
  auto process_cpu_us = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
  };

  for (int in_flight : {1, 16}) {
    int started = 0, completed = 0, failed = 0;
    std::function<void()> launch = [&] {
      ++started;
      call_handlers h;
      h.on_complete = [&](call_result&& r) {
        ++completed;
        if (r.why != failure::none || r.status != 200) ++failed;
        if (started < n) launch();
      };
      client.start(post(url, "{\"model\":\"m\",\"messages\":[]}"), std::move(h));
    };
    auto t0 = steady::now();
    double cpu0 = thread_cpu_us(), pcpu0 = process_cpu_us();
    for (int i = 0; i < in_flight && started < n; ++i) launch();
    CHECK(l.run_until([&] { return completed == n; }, 120'000));
    double secs = std::chrono::duration<double>(steady::now() - t0).count();
    double cpu = thread_cpu_us() - cpu0, pcpu = process_cpu_us() - pcpu0;
    CHECK(failed == 0);
    std::printf(
        "upstream bench: %d calls, %2d in flight: %8.0f calls/s, client loop CPU %.1f us/call, "
        "process CPU %.1f us/call, connections %llu\n",
        n, in_flight, n / secs, cpu / n, pcpu / n,
        static_cast<unsigned long long>(client.connections_opened()));
  }
}
