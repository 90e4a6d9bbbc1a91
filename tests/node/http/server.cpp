// Tests for node/http/server: a real server on its own loop thread, raw blocking sockets as
// clients. Every wait polls a condition or a socket against a deadline.
#include "node/http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <doctest/doctest.h>

using namespace tc::http;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// A server on its own loop thread. Work for the loop thread is posted through a uv_async.
class loop_thread {
 public:
  loop_thread(limits lim, handler fn, uint16_t port = 0, bool reuse_port = false) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &wake_, &on_wake);
    wake_.data = this;
    srv_ = std::make_unique<server>(&loop_, lim, std::move(fn));
    port_ = srv_->listen("127.0.0.1", port, reuse_port);
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }

  ~loop_thread() {
    post([this] {
      srv_->close_all();
      uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    });
    thread_.join();
    srv_.reset();
    int rc = uv_loop_close(&loop_);
    CHECK(rc == 0);
  }

  int port() const { return port_; }
  server& srv() { return *srv_; }
  uv_loop_t* loop() { return &loop_; }

  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.push_back(std::move(fn));
    }
    uv_async_send(&wake_);
  }

  // Runs fn on the loop thread and returns its result.
  template <class F>
  auto call(F fn) -> decltype(fn()) {
    using result = decltype(fn());
    auto done = std::make_shared<std::promise<result>>();
    auto fut = done->get_future();
    post([done, fn]() mutable {
      if constexpr (std::is_void_v<result>) {
        fn();
        done->set_value();
      } else {
        done->set_value(fn());
      }
    });
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  }

  server_stats stats() {
    return call([this] { return srv_->stats(); });
  }

 private:
  static void on_wake(uv_async_t* a) {
    auto* self = static_cast<loop_thread*>(a->data);
    std::deque<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      tasks.swap(self->tasks_);
    }
    for (auto& t : tasks) t();
  }

  uv_loop_t loop_{};
  uv_async_t wake_{};
  std::unique_ptr<server> srv_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::deque<std::function<void()>> tasks_;
};

// Polls pred (a cheap check, possibly via loop_thread::call) until true or the deadline.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = steady::now() + limit;
  for (int i = 0; i < 100000; ++i) {
    if (pred()) return true;
    if (steady::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

struct response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
  bool has_header(std::string_view name) const {
    for (const auto& kv : headers) {
      if (kv.first == name) return true;
    }
    return false;
  }
};

// A blocking client socket with a small HTTP/1.1 response reader.
class client {
 public:
  explicit client(int port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~client() { close(); }
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Reads what is available before the deadline: >0 bytes, 0 on EOF, -1 on timeout or error.
  int fill(steady::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
    if (left.count() <= 0) return -1;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) return -1;
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n > 0) {
      buf_.append(tmp, static_cast<std::size_t>(n));
      return static_cast<int>(n);
    }
    if (n == 0) return 0;
    return -1;
  }

  // Status line and headers of the next response.
  bool read_head(response& out, int timeout_ms = 5000) {
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (fill(deadline) <= 0) return false;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    out = response{};
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) return false;
    out.status = std::stoi(head.substr(9, 3));
    std::size_t pos = head.find("\r\n");
    while (pos != std::string::npos) {
      std::size_t next = head.find("\r\n", pos + 2);
      std::string line = head.substr(pos + 2, next == std::string::npos ? next : next - pos - 2);
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        out.headers.emplace_back(name, value);
      }
      pos = next;
    }
    return true;
  }

  // Next chunk of a chunked body: its size (0 for the last), or -1 if it did not arrive.
  long read_chunk(std::string& out, int timeout_ms = 5000) {
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    std::size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (fill(deadline) <= 0) return -1;
    }
    long size = std::stol(buf_.substr(0, eol), nullptr, 16);
    buf_.erase(0, eol + 2);
    while (buf_.size() < static_cast<std::size_t>(size) + 2) {
      if (fill(deadline) <= 0) return -1;
    }
    out.append(buf_, 0, static_cast<std::size_t>(size));
    buf_.erase(0, static_cast<std::size_t>(size) + 2);
    return size;
  }

  bool read_body(response& r, bool head_request, int timeout_ms) {
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    if (head_request || r.status / 100 == 1 || r.status == 204 || r.status == 304) return true;
    if (r.header("transfer-encoding") == "chunked") {
      for (int i = 0; i < 1000000; ++i) {
        long n = read_chunk(r.body, timeout_ms);
        if (n < 0) return false;
        if (n == 0) return true;
      }
      return false;
    }
    if (r.has_header("content-length")) {
      auto len = static_cast<std::size_t>(std::stoul(r.header("content-length")));
      while (buf_.size() < len) {
        if (fill(deadline) <= 0) return false;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
      return true;
    }
    for (;;) {  // delimited by the end of the connection
      int n = fill(deadline);
      if (n == 0) break;
      if (n < 0) return false;
    }
    r.body = std::move(buf_);
    buf_.clear();
    return true;
  }

  bool read_response(response& r, bool head_request = false, int timeout_ms = 5000) {
    return read_head(r, timeout_ms) && read_body(r, head_request, timeout_ms);
  }

  // True when the server ends the connection (EOF or reset) before the deadline.
  bool wait_eof(int timeout_ms = 5000) {
    auto deadline = steady::now() + std::chrono::milliseconds(timeout_ms);
    for (int i = 0; i < 100000; ++i) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char tmp[65536];
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
    return false;
  }

  // True when no byte arrives within the window (used to prove that something is held back).
  bool quiet_for(int ms) {
    pollfd p{fd_, POLLIN, 0};
    return buf_.empty() && ::poll(&p, 1, ms) == 0;
  }

  std::string& buffer() { return buf_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

handler echo_handler() {
  return [](request&& r, responder res) {
    res.send(200, {{"content-type", "text/plain"}}, r.method + " " + r.path + " " + r.body);
  };
}

std::string get(std::string_view path, std::string_view extra = "") {
  std::string s = "GET ";
  s += path;
  s += " HTTP/1.1\r\nHost: test\r\n";
  s += extra;
  s += "\r\n";
  return s;
}

limits small_timeouts() {
  limits lim;
  lim.header_timeout_ms = 200;
  lim.body_timeout_ms = 200;
  lim.idle_timeout_ms = 200;
  return lim;
}

}  // namespace

TEST_CASE("GET and POST with Content-Length are parsed and answered") {
  std::mutex mu;
  request seen;
  loop_thread lt({}, [&](request&& r, responder res) {
    {
      std::lock_guard<std::mutex> lock(mu);
      seen = r;
    }
    res.send(200, {{"content-type", "text/plain"}, {"X-Reply", "yes"}}, "hi " + r.method + r.body);
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.connected());

  REQUIRE(
      c.send("GET /v1/models?limit=2&x=y HTTP/1.1\r\nHost: a\r\nX-Custom-Thing: Value 1\r\n\r\n"));
  response r;
  REQUIRE(c.read_response(r));
  CHECK(r.status == 200);
  CHECK(r.body == "hi GET");
  CHECK(r.header("content-length") == "6");
  CHECK(r.header("x-reply") == "yes");
  CHECK_FALSE(r.has_header("connection"));
  {
    std::lock_guard<std::mutex> lock(mu);
    CHECK(seen.method == "GET");
    CHECK(seen.target == "/v1/models?limit=2&x=y");
    CHECK(seen.path == "/v1/models");
    CHECK(seen.header("x-custom-thing") == "Value 1");
    CHECK(seen.header("host") == "a");
    CHECK(seen.header("missing").empty());
    CHECK(seen.keep_alive);
    CHECK(seen.received_ns > 0);
  }

  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabcde"));
  REQUIRE(c.read_response(r));
  CHECK(r.status == 200);
  CHECK(r.body == "hi POSTabcde");
  {
    std::lock_guard<std::mutex> lock(mu);
    CHECK(seen.body == "abcde");
    CHECK(seen.header("content-length") == "5");
  }
  auto st = lt.stats();
  CHECK(st.requests == 2);
  CHECK(st.connections_accepted == 1);
  CHECK(st.connections_open == 1);
  CHECK(st.responses_in_flight == 0);
  CHECK(st.protocol_errors == 0);
}

TEST_CASE("chunked request body is decoded, also when split across writes") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send("POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"));
  REQUIRE(c.send("lo\r\n6\r\n world\r\n"));
  REQUIRE(c.send("0\r\n\r\n"));
  response r;
  REQUIRE(c.read_response(r));
  CHECK(r.status == 200);
  CHECK(r.body == "POST /c hello world");
}

TEST_CASE("keep-alive serves sequential requests on one connection") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  for (int i = 0; i < 5; ++i) {
    std::string path = "/n" + std::to_string(i);
    REQUIRE(c.send(get(path)));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET " + path + " ");
  }
  auto st = lt.stats();
  CHECK(st.connections_accepted == 1);
  CHECK(st.requests == 5);
}

TEST_CASE("pipelined requests are answered in request order") {
  std::vector<std::pair<std::string, responder>> pending;  // loop thread only
  loop_thread lt({}, [&](request&& r, responder res) { pending.emplace_back(r.path, res); });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/a") + get("/b") + get("/c")));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 3; }));

  // The later two answer first: nothing may reach the client before /a is answered.
  lt.call([&] {
    pending[2].second.send(200, {}, "C");
    pending[1].second.send(200, {}, "B");
    CHECK(pending[2].second.buffered() > 0);  // held back behind /a
    CHECK_FALSE(pending[2].second.alive());   // finished, though not written yet
    CHECK(pending[0].second.alive());
  });
  CHECK(c.quiet_for(50));
  lt.call([&] { pending[0].second.send(200, {}, "A"); });
  for (const char* want : {"A", "B", "C"}) {
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == want);
  }
  CHECK(lt.stats().responses_in_flight == 0);
}

TEST_CASE("synchronous answers to many pipelined requests all arrive") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  std::string batch;
  for (int i = 0; i < 50; ++i) batch += get("/p" + std::to_string(i));
  REQUIRE(c.send(batch));
  for (int i = 0; i < 50; ++i) {
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET /p" + std::to_string(i) + " ");
  }
}

TEST_CASE("reading pauses at max_pipelined and resumes when responses drain") {
  limits lim;
  lim.max_pipelined = 2;
  std::vector<std::pair<std::string, responder>> pending;  // loop thread only
  loop_thread lt(lim, [&](request&& r, responder res) { pending.emplace_back(r.path, res); });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  std::string batch;
  for (int i = 0; i < 5; ++i) batch += get("/q" + std::to_string(i));
  REQUIRE(c.send(batch));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) >= 2; }));
  CHECK(lt.call([&] { return pending.size(); }) == 2);
  std::size_t answered = 0;
  for (int round = 0; round < 10 && answered < 5; ++round) {
    lt.call([&] {
      for (; answered < pending.size(); ++answered) {
        pending[answered].second.send(200, {}, pending[answered].first);
      }
    });
    if (answered < 5) {
      REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) > answered; }));
      CHECK(lt.call([&] { return pending.size(); }) <= answered + 2);
    }
  }
  CHECK(answered == 5);
  for (int i = 0; i < 5; ++i) {
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == "/q" + std::to_string(i));
  }
}

TEST_CASE("a body over the limit gets 413 and the connection closes") {
  limits lim;
  lim.max_body_bytes = 1000;
  std::atomic<int> calls{0};
  loop_thread lt(lim, [&](request&&, responder res) {
    ++calls;
    res.send(200, {}, "ok");
  });
  REQUIRE(lt.port() > 0);

  SUBCASE("announced by Content-Length") {
    client c(lt.port());
    REQUIRE(c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" +
                   std::string(2000, 'x')));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 413);
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("connection") == "close");
    CHECK(r.body ==
          "{\"error\":{\"message\":\"request body exceeds 1000 bytes\",\"type\":"
          "\"invalid_request_error\",\"param\":null,\"code\":\"request_too_large\"}}");
    CHECK(c.wait_eof());
  }
  SUBCASE("found while decoding chunks") {
    client c(lt.port());
    std::string req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) req += "258\r\n" + std::string(600, 'y') + "\r\n";
    req += "0\r\n\r\n";
    REQUIRE(c.send(req));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 413);
    CHECK(r.body.find("request_too_large") != std::string::npos);
    CHECK(c.wait_eof());
  }
  CHECK(calls == 0);
  auto st = lt.stats();
  CHECK(st.protocol_errors == 1);
  CHECK(st.requests == 0);
}

TEST_CASE("headers over the limit get 431") {
  limits lim;
  lim.max_header_bytes = 4096;
  loop_thread lt(lim, echo_handler());
  REQUIRE(lt.port() > 0);
  SUBCASE("one huge header") {
    client c(lt.port());
    REQUIRE(c.send(get("/", "X-Big: " + std::string(8000, 'a') + "\r\n")));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 431);
    CHECK(r.body.find("\"code\":\"request_header_fields_too_large\"") != std::string::npos);
    CHECK(c.wait_eof());
  }
  SUBCASE("a huge URL") {
    client c(lt.port());
    REQUIRE(c.send(get("/" + std::string(6000, 'u'))));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 431);
    CHECK(c.wait_eof());
  }
  SUBCASE("beyond http-parser's own cap") {
    client c(lt.port());
    std::string many;
    for (int i = 0; i < 3000; ++i)
      many += "X-H" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
    REQUIRE(c.send(get("/", many)));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 431);
  }
  CHECK(lt.stats().protocol_errors == 1);
}

TEST_CASE("malformed requests get 400 and the connection closes") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  SUBCASE("bad request line") {
    client c(lt.port());
    REQUIRE(c.send("GARBAGE / NOTHTTP\r\n\r\n"));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 400);
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.body.find("\"type\":\"invalid_request_error\"") != std::string::npos);
    CHECK(r.body.find("\"code\":\"bad_request\"") != std::string::npos);
    CHECK(c.wait_eof());
  }
  SUBCASE("bad header line") {
    client c(lt.port());
    REQUIRE(c.send("GET / HTTP/1.1\r\nHost a b\r\n\r\n"));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 400);
    CHECK(c.wait_eof());
  }
  SUBCASE("bad chunk size") {
    client c(lt.port());
    REQUIRE(c.send("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 400);
    CHECK(c.wait_eof());
  }
  CHECK(lt.stats().protocol_errors == 1);
}

TEST_CASE("an error after a pipelined request waits for that request's response") {
  std::vector<responder> pending;  // loop thread only
  loop_thread lt({}, [&](request&&, responder res) { pending.push_back(res); });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/first") + "BAD REQUEST\r\n\r\n"));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));
  CHECK(c.quiet_for(50));
  lt.call([&] { pending[0].send(200, {}, "first"); });
  response r;
  REQUIRE(c.read_response(r));
  CHECK(r.status == 200);
  CHECK(r.body == "first");
  REQUIRE(c.read_response(r));
  CHECK(r.status == 400);
  CHECK(c.wait_eof());
}

TEST_CASE("header timeout answers 408 to a half-sent request and closes") {
  loop_thread lt(small_timeouts(), echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  auto t0 = steady::now();
  REQUIRE(c.send("GET / HTTP/1.1\r\nHost: a\r\n"));
  response r;
  REQUIRE(c.read_response(r, false, 3000));
  auto waited = steady::now() - t0;
  CHECK(r.status == 408);
  CHECK(r.body.find("\"code\":\"request_timeout\"") != std::string::npos);
  CHECK(waited >= 150ms);
  CHECK(waited < 2000ms);
  CHECK(c.wait_eof(3000));
  CHECK(lt.stats().protocol_errors == 1);
}

TEST_CASE("body timeout answers 408 to a stalled body") {
  loop_thread lt(small_timeouts(), echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc"));
  response r;
  REQUIRE(c.read_response(r, false, 3000));
  CHECK(r.status == 408);
  CHECK(c.wait_eof(3000));
}

TEST_CASE("idle timeout closes silently") {
  loop_thread lt(small_timeouts(), echo_handler());
  REQUIRE(lt.port() > 0);
  SUBCASE("a connection that never sends") {
    client c(lt.port());
    auto t0 = steady::now();
    CHECK(c.wait_eof(3000));
    CHECK(steady::now() - t0 >= 150ms);
    CHECK(c.buffer().empty());
  }
  SUBCASE("after a completed request") {
    client c(lt.port());
    REQUIRE(c.send(get("/")));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(c.wait_eof(3000));
    CHECK(c.buffer().empty());
  }
  CHECK(eventually([&] { return lt.stats().connections_open == 0; }));
  CHECK(lt.stats().protocol_errors == 0);
}

TEST_CASE("streamed response is chunk-encoded and the connection stays usable") {
  std::vector<responder> pending;  // loop thread only
  loop_thread lt({}, [&](request&& r, responder res) {
    if (r.path == "/stream") {
      res.start(200, {{"content-type", "text/event-stream"}, {"content-length", "999"}});
      pending.push_back(res);
    } else {
      res.send(200, {}, "plain");
    }
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/stream")));
  response r;
  REQUIRE(c.read_head(r));
  CHECK(r.status == 200);
  CHECK(r.header("transfer-encoding") == "chunked");
  CHECK(r.header("content-type") == "text/event-stream");
  CHECK_FALSE(r.has_header("content-length"));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));
  lt.call([&] { CHECK(pending[0].write("data: 1\n\n")); });
  std::string body;
  CHECK(c.read_chunk(body) == 9);
  lt.call([&] {
    CHECK(pending[0].write("data: 22\n\n"));
    CHECK(pending[0].write(""));  // empty chunk is not the end
    CHECK(pending[0].write("data: [DONE]\n\n"));
    pending[0].end();
    CHECK_FALSE(pending[0].alive());
    CHECK_FALSE(pending[0].write("late"));
  });
  for (int i = 0; i < 10; ++i) {
    if (c.read_chunk(body) <= 0) break;
  }
  CHECK(body == "data: 1\n\ndata: 22\n\ndata: [DONE]\n\n");
  REQUIRE(c.send(get("/after")));
  REQUIRE(c.read_response(r));
  CHECK(r.body == "plain");
}

TEST_CASE("a streamed response to HTTP/1.0 is delimited by closing the connection") {
  loop_thread lt({}, [](request&&, responder res) {
    res.start(200, {});
    res.write("part1 ");
    res.write("part2");
    res.end();
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send("GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  response r;
  REQUIRE(c.read_response(r));
  CHECK_FALSE(r.has_header("transfer-encoding"));
  CHECK(r.header("connection") == "close");
  CHECK(r.body == "part1 part2");
}

TEST_CASE("on_close fires when the client goes away mid-stream, responder is then a no-op") {
  std::atomic<int> closes{0};
  std::vector<responder> pending;  // loop thread only
  loop_thread lt({}, [&](request&&, responder res) {
    res.start(200, {});
    res.write("hello");
    res.on_close([&] { ++closes; });
    pending.push_back(res);
  });
  REQUIRE(lt.port() > 0);
  SUBCASE("socket closed") {
    client c(lt.port());
    REQUIRE(c.send(get("/")));
    response r;
    REQUIRE(c.read_head(r));
    std::string body;
    REQUIRE(c.read_chunk(body) == 5);
    c.close();
  }
  SUBCASE("write side shut down while the response is pending") {
    client c(lt.port());
    REQUIRE(c.send(get("/")));
    c.shutdown_write();
    CHECK(c.wait_eof());
  }
  REQUIRE(eventually([&] { return closes.load() == 1; }));
  lt.call([&] {
    responder& res = pending.at(0);
    CHECK_FALSE(res.alive());
    CHECK_FALSE(res.write("more"));
    res.end();
    res.send(200, {}, "x");
    res.start(200, {});
    res.abort();
    res.on_drain([] {});
    res.on_close([] {});
    CHECK(res.buffered() == 0);
    CHECK_FALSE(res.congested());
  });
  auto st = lt.stats();
  CHECK(st.responses_in_flight == 0);
  CHECK(st.connections_open == 0);
  CHECK(closes == 1);

  responder none;  // never bound to a server
  CHECK_FALSE(none.alive());
  CHECK_FALSE(none.write("x"));
  none.send(200, {}, "x");
  CHECK(none.buffered() == 0);
}

TEST_CASE("abort cuts a stream after what was already written") {
  std::vector<responder> pending;  // loop thread only
  loop_thread lt({}, [&](request&&, responder res) {
    res.start(200, {});
    pending.push_back(res);
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/")));
  response r;
  REQUIRE(c.read_head(r));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));
  lt.call([&] {
    pending[0].write("event: error\n\n");
    pending[0].abort();
    CHECK_FALSE(pending[0].alive());
  });
  std::string body;
  CHECK(c.read_chunk(body) == 14);
  CHECK(body == "event: error\n\n");
  CHECK(c.read_chunk(body) == -1);  // no terminating chunk: the stream is cut
  CHECK(lt.stats().responses_in_flight == 0);
}

TEST_CASE("back-pressure: congested while the client does not read, on_drain after it does") {
  limits lim;
  lim.write_high_watermark = 256 * 1024;
  lim.write_low_watermark = 64 * 1024;
  std::vector<responder> pending;  // loop thread only
  loop_thread lt(lim, [&](request&&, responder res) {
    res.start(200, {});
    pending.push_back(res);
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port(), 16 * 1024);
  REQUIRE(c.send(get("/")));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));

  // Pump from a loop timer, one 64 KB chunk per tick, until the responder reports congestion.
  std::atomic<bool> congested{false};
  std::atomic<bool> drained{false};
  std::atomic<std::size_t> written{0};
  struct pump_state {
    uv_timer_t timer{};
    std::function<void()> tick;
  };
  auto pump = std::make_unique<pump_state>();
  lt.call([&] {
    uv_timer_init(lt.loop(), &pump->timer);
    pump->timer.data = pump.get();
    pump->tick = [&] {
      responder& res = pending[0];
      if (res.congested()) {
        congested = true;
        res.on_drain([&] { drained = true; });
        uv_timer_stop(&pump->timer);
        return;
      }
      if (written > 256u * 1024 * 1024) {
        uv_timer_stop(&pump->timer);
        return;
      }
      res.write(std::string(64 * 1024, 'x'));
      written += 64 * 1024;
    };
    uv_timer_start(
        &pump->timer, [](uv_timer_t* t) { static_cast<pump_state*>(t->data)->tick(); }, 1, 1);
  });
  REQUIRE(eventually([&] { return congested.load(); }, 10000ms));
  CHECK(lt.call([&] { return pending[0].buffered(); }) > lim.write_high_watermark);
  CHECK_FALSE(drained);

  response r;
  REQUIRE(c.read_head(r));
  auto deadline = steady::now() + 10s;
  while (!drained && steady::now() < deadline) c.fill(steady::now() + 50ms);
  REQUIRE(drained);
  CHECK(lt.call([&] { return pending[0].buffered(); }) < lim.write_low_watermark);
  lt.call([&] {
    pending[0].end();
    uv_close(reinterpret_cast<uv_handle_t*>(&pump->timer), nullptr);
  });
  std::string body;
  for (int i = 0; i < 100000; ++i) {
    long n = c.read_chunk(body, 5000);
    if (n <= 0) {
      CHECK(n == 0);
      break;
    }
  }
  CHECK(body.size() == written.load());
  CHECK(body.find_first_not_of('x') == std::string::npos);
}

TEST_CASE("shutdown closes idle connections, finishes in-flight responses, then calls done") {
  std::vector<responder> pending;  // loop thread only
  std::atomic<int> closes{0};
  loop_thread lt({}, [&](request&& r, responder res) {
    if (r.path == "/slow") {
      res.on_close([&] { ++closes; });
      pending.push_back(res);
    } else {
      res.send(200, {}, "quick");
    }
  });
  REQUIRE(lt.port() > 0);
  client busy(lt.port());
  client idle(lt.port());
  REQUIRE(idle.send(get("/quick")));
  response r;
  REQUIRE(idle.read_response(r));
  REQUIRE(busy.send(get("/slow")));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));

  std::atomic<bool> done{false};
  lt.call([&] { lt.srv().shutdown(5000, [&] { done = true; }); });
  CHECK(idle.wait_eof(2000));
  client late(lt.port());
  CHECK_FALSE(late.connected());
  CHECK_FALSE(done);

  lt.call([&] {
    CHECK(pending[0].alive());
    pending[0].send(200, {}, "finished");
  });
  REQUIRE(busy.read_response(r));
  CHECK(r.body == "finished");
  CHECK(r.header("connection") == "close");
  CHECK(busy.wait_eof(3000));
  CHECK(eventually([&] { return done.load(); }, 3000ms));
  CHECK(closes == 0);
  CHECK(lt.stats().connections_open == 0);
}

TEST_CASE("shutdown force-closes at the deadline and fires on_close") {
  std::vector<responder> pending;  // loop thread only
  std::atomic<int> closes{0};
  loop_thread lt({}, [&](request&&, responder res) {
    res.on_close([&] { ++closes; });
    pending.push_back(res);
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/never")));
  REQUIRE(eventually([&] { return lt.call([&] { return pending.size(); }) == 1; }));
  std::atomic<bool> done{false};
  auto t0 = steady::now();
  lt.call([&] { lt.srv().shutdown(200, [&] { done = true; }); });
  CHECK(c.wait_eof(3000));
  REQUIRE(eventually([&] { return done.load(); }, 3000ms));
  CHECK(steady::now() - t0 >= 150ms);
  CHECK(closes == 1);
  CHECK(lt.stats().responses_in_flight == 0);
}

TEST_CASE("shutdown with no connections calls done") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  std::atomic<bool> done{false};
  lt.call([&] { lt.srv().shutdown(5000, [&] { done = true; }); });
  CHECK(eventually([&] { return done.load(); }, 2000ms));
}

TEST_CASE("reuse_port lets two servers on two loops listen on one port") {
  loop_thread a(
      {}, [](request&&, responder res) { res.send(200, {}, "a"); }, 0, true);
  REQUIRE(a.port() > 0);
  auto port = static_cast<uint16_t>(a.port());
  loop_thread b(
      {}, [](request&&, responder res) { res.send(200, {}, "b"); }, port, true);
  CHECK(b.port() == a.port());
  int answered = 0;
  for (int i = 0; i < 16; ++i) {
    client c(port);
    REQUIRE(c.connected());
    REQUIRE(c.send(get("/")));
    response r;
    REQUIRE(c.read_response(r));
    if (r.body == "a" || r.body == "b") ++answered;
  }
  CHECK(answered == 16);
  CHECK(a.stats().requests + b.stats().requests == 16);

  loop_thread plain({}, echo_handler(), port, false);
  CHECK(plain.port() < 0);
}

TEST_CASE("HTTP/1.0 and Connection: close are honoured") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  SUBCASE("HTTP/1.0 without keep-alive closes") {
    client c(lt.port());
    REQUIRE(c.send("GET /old HTTP/1.0\r\n\r\n"));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 200);
    CHECK(r.header("connection") == "close");
    CHECK(c.wait_eof());
  }
  SUBCASE("HTTP/1.0 with keep-alive stays open") {
    client c(lt.port());
    for (int i = 0; i < 2; ++i) {
      REQUIRE(c.send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
      response r;
      REQUIRE(c.read_response(r));
      CHECK(r.header("connection") == "keep-alive");
      CHECK(r.body == "GET /old ");
    }
  }
  SUBCASE("HTTP/1.1 Connection: close, a request behind it is ignored") {
    client c(lt.port());
    REQUIRE(c.send(get("/bye", "Connection: close\r\n") + get("/ignored")));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET /bye ");
    CHECK(r.header("connection") == "close");
    CHECK(c.wait_eof());
    CHECK(c.buffer().empty());
  }
}

TEST_CASE("HEAD, Expect: 100-continue and Upgrade requests") {
  loop_thread lt({}, echo_handler());
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  SUBCASE("HEAD sends the length but no body") {
    REQUIRE(c.send("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"));
    response r;
    REQUIRE(c.read_response(r, true));
    CHECK(r.header("content-length") == "8");
    REQUIRE(c.send(get("/next")));
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET /next ");
  }
  SUBCASE("100 Continue before the body") {
    REQUIRE(
        c.send("POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.status == 100);
    REQUIRE(c.send("xyz"));
    REQUIRE(c.read_response(r));
    CHECK(r.status == 200);
    CHECK(r.body == "POST /e xyz");
  }
  SUBCASE("Upgrade is ignored and the request answered as HTTP/1.1") {
    REQUIRE(c.send(get("/u", "Connection: Upgrade\r\nUpgrade: websocket\r\n") + get("/v")));
    response r;
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET /u ");
    REQUIRE(c.read_response(r));
    CHECK(r.body == "GET /v ");
  }
}

TEST_CASE("response headers: framing headers are the server's, unsafe ones are dropped") {
  loop_thread lt({}, [](request&&, responder res) {
    res.send(201,
             {{"Content-Length", "1"},
              {"Transfer-Encoding", "chunked"},
              {"x-evil", "a\r\nx-injected: 1"},
              {"x-ok", "fine"}},
             "four");
  });
  REQUIRE(lt.port() > 0);
  client c(lt.port());
  REQUIRE(c.send(get("/")));
  response r;
  REQUIRE(c.read_response(r));
  CHECK(r.status == 201);
  CHECK(r.body == "four");
  CHECK(r.header("content-length") == "4");
  CHECK_FALSE(r.has_header("transfer-encoding"));
  CHECK_FALSE(r.has_header("x-evil"));
  CHECK_FALSE(r.has_header("x-injected"));
  CHECK(r.header("x-ok") == "fine");
}

TEST_CASE("reason phrases") {
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(404) == "Not Found");
  CHECK(reason_phrase(413) == "Payload Too Large");
  CHECK(reason_phrase(429) == "Too Many Requests");
  CHECK(reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(reason_phrase(503) == "Service Unavailable");
  CHECK_FALSE(reason_phrase(799).empty());
}

TEST_CASE("split_host_port accepts HOST:PORT and bracketed IPv6 and refuses the rest") {
  std::string host;
  uint16_t port = 1;
  CHECK(tc::http::split_host_port("127.0.0.1:8080", host, port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 8080);
  CHECK(tc::http::split_host_port("[::1]:0", host, port));
  CHECK(host == "::1");
  CHECK(port == 0);
  CHECK(tc::http::split_host_port("localhost:65535", host, port));
  CHECK(port == 65535);
  for (const char* bad : {"", "8080", ":8080", "host:", "host:65536", "host:8x", "host:-1"}) {
    CAPTURE(bad);
    CHECK_FALSE(tc::http::split_host_port(bad, host, port));
  }
}

TEST_CASE("a connection beyond max_connections is closed at once and the others keep working") {
  limits lim;
  lim.max_connections = 2;
  loop_thread lt(lim, echo_handler());
  REQUIRE(lt.port() > 0);
  client a(lt.port());
  client b(lt.port());
  REQUIRE(a.send(get("/a")));
  REQUIRE(b.send(get("/b")));
  response ra;
  response rb;
  REQUIRE(a.read_response(ra));
  REQUIRE(b.read_response(rb));
  REQUIRE(eventually([&] { return lt.stats().connections_open == 2; }));
  client over(lt.port());
  CHECK(over.wait_eof(3000));
  CHECK(over.buffer().empty());
  CHECK(eventually([&] { return lt.stats().connections_refused == 1; }));
  REQUIRE(a.send(get("/again")));
  response again;
  CHECK(a.read_response(again));
  CHECK(again.status == 200);
  b.close();
  REQUIRE(eventually([&] { return lt.stats().connections_open == 1; }));
  client later(lt.port());
  REQUIRE(later.send(get("/later")));
  response rl;
  CHECK(later.read_response(rl));
  CHECK(rl.status == 200);
}
