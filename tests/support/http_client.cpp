#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tc::test {

namespace {

using clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// poll() one fd for `events`, retrying on EINTR. Returns poll's answer.
int poll_one(int fd, short events, int timeout_ms, short* revents = nullptr) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (revents != nullptr) *revents = p.revents;
  return r;
}

}  // namespace

std::string response::header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

bool response::has_header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return true;
  return false;
}

std::vector<sse_event> parse_sse(std::string_view body) {
  std::vector<sse_event> out;
  sse_event cur;
  bool have_field = false;
  bool have_data = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) break;  // incomplete last line: not an event yet
    std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (have_field) out.push_back(std::move(cur));
      cur = sse_event{};
      have_field = false;
      have_data = false;
      continue;
    }
    if (line.front() == ':') continue;  // comment
    auto colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value;
    if (colon != std::string_view::npos) {
      value = line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    have_field = true;
    if (field == "event") {
      cur.event = std::string(value);
    } else if (field == "data") {
      if (have_data) cur.data += '\n';
      cur.data += value;
      have_data = true;
    }
  }
  return out;
}

http_connection::~http_connection() {
  close();
}

http_connection::http_connection(http_connection&& o) noexcept {
  *this = std::move(o);
}

http_connection& http_connection::operator=(http_connection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    in_ = std::move(o.in_);
    peer_closed_ = o.peer_closed_;
    body_state_ = o.body_state_;
    remaining_ = o.remaining_;
    error_ = std::move(o.error_);
  }
  return *this;
}

bool http_connection::connect(uint16_t port, milliseconds timeout, const std::string& host) {
  close();
  error_.clear();
  in_.clear();
  peer_closed_ = false;
  body_state_ = body_state::none;
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    error_ = "bad address " + host;
    close();
    return false;
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (errno != EINPROGRESS) {
      error_ = std::string("connect: ") + std::strerror(errno);
      close();
      return false;
    }
    if (poll_one(fd_, POLLOUT, static_cast<int>(timeout.count())) <= 0) {
      error_ = "connect: timed out";
      close();
      return false;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      error_ = std::string("connect: ") + std::strerror(err);
      close();
      return false;
    }
  }
  return true;
}

bool http_connection::send_all(std::string_view bytes, milliseconds timeout) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  auto deadline = clock::now() + timeout;
  std::size_t sent = 0;
  for (int pass = 0; pass < 10'000'000 && sent < bytes.size(); ++pass) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int left = remaining_ms(deadline);
      if (left == 0 || poll_one(fd_, POLLOUT, left) <= 0) {
        error_ = "send: timed out";
        return false;
      }
      continue;
    }
    error_ = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return sent == bytes.size();
}

std::size_t http_connection::send_until_answered(std::string_view bytes, std::size_t piece,
                                                 milliseconds per_piece_wait,
                                                 milliseconds timeout) {
  auto deadline = clock::now() + timeout;
  std::size_t sent = 0;
  piece = std::max<std::size_t>(piece, 1);
  while (sent < bytes.size() && fd_ >= 0) {
    std::size_t n = std::min(piece, bytes.size() - sent);
    int left = remaining_ms(deadline);
    if (left == 0 || !send_all(bytes.substr(sent, n), milliseconds(left))) break;
    sent += n;
    short rev = 0;
    int wait = std::min<int>(static_cast<int>(per_piece_wait.count()), remaining_ms(deadline));
    if (poll_one(fd_, POLLIN, wait, &rev) > 0) break;  // an answer (or a close) is waiting
  }
  return sent;
}

bool http_connection::fill(milliseconds timeout) {
  if (fd_ < 0 || peer_closed_) return false;
  auto deadline = clock::now() + timeout;
  for (int pass = 0; pass < 100'000; ++pass) {
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n == 0) {
      peer_closed_ = true;
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      error_ = std::string("recv: ") + std::strerror(errno);
      peer_closed_ = true;
      return false;
    }
    int left = remaining_ms(deadline);
    if (left == 0) return false;
    if (poll_one(fd_, POLLIN, left) == 0) return false;
  }
  return false;
}

response http_connection::read_head(milliseconds timeout) {
  response r;
  auto deadline = clock::now() + timeout;
  body_state_ = body_state::none;
  std::size_t end = std::string::npos;
  for (int pass = 0; pass < 100'000; ++pass) {
    end = in_.find("\r\n\r\n");
    if (end != std::string::npos) break;
    if (in_.size() > (1u << 20)) {
      r.error = "response head over 1 MiB";
      return r;
    }
    int left = remaining_ms(deadline);
    if (!fill(milliseconds(left))) {
      end = in_.find("\r\n\r\n");
      if (end != std::string::npos) break;
      r.raw = in_;
      if (peer_closed_)
        r.error = in_.empty() ? "connection closed before a response"
                              : "connection closed inside the response head";
      else
        r.error = "timed out waiting for the response head (" + std::to_string(in_.size()) +
                  " bytes so far)";
      if (!error_.empty()) r.error += " [" + error_ + "]";
      return r;
    }
  }
  if (end == std::string::npos) {
    r.error = "no response head";
    return r;
  }
  std::string head = in_.substr(0, end + 4);
  in_.erase(0, end + 4);
  r.raw = head;
  std::string_view h(head);
  auto line_end = h.find("\r\n");
  std::string_view status_line = h.substr(0, line_end);
  // "HTTP/1.1 200 OK"
  if (status_line.rfind("HTTP/1.", 0) != 0 || status_line.size() < 12) {
    r.error = "bad status line: " + std::string(status_line);
    return r;
  }
  int code = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  r.reason = std::string(trim(status_line.size() > 13 ? status_line.substr(13) : ""));
  std::size_t pos = line_end + 2;
  while (pos < h.size()) {
    auto e = h.find("\r\n", pos);
    if (e == std::string_view::npos || e == pos) break;
    std::string_view line = h.substr(pos, e - pos);
    pos = e + 2;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    r.headers.emplace_back(lower(trim(line.substr(0, colon))),
                           std::string(trim(line.substr(colon + 1))));
  }
  r.status = code;
  std::string te = lower(r.header("transfer-encoding"));
  std::string cl = r.header("content-length");
  if (code / 100 == 1 || code == 204 || code == 304) {
    body_state_ = body_state::done;
  } else if (te.find("chunked") != std::string::npos) {
    r.chunked = true;
    body_state_ = body_state::chunk_size;
  } else if (!cl.empty()) {
    remaining_ = std::strtoull(cl.c_str(), nullptr, 10);
    body_state_ = remaining_ == 0 ? body_state::done : body_state::length;
  } else {
    body_state_ = body_state::until_close;
  }
  return r;
}

std::string http_connection::decode_available(std::string* raw) {
  std::string out;
  auto consume = [&](std::size_t n) {
    if (raw != nullptr) raw->append(in_, 0, n);
    in_.erase(0, n);
  };
  for (int pass = 0; pass < 1'000'000; ++pass) {
    switch (body_state_) {
      case body_state::none:
      case body_state::done:
        return out;
      case body_state::length: {
        std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(remaining_, in_.size()));
        if (n == 0) return out;
        out.append(in_, 0, n);
        consume(n);
        remaining_ -= n;
        if (remaining_ == 0) body_state_ = body_state::done;
        break;
      }
      case body_state::until_close: {
        out += in_;
        consume(in_.size());
        if (peer_closed_) body_state_ = body_state::done;
        return out;
      }
      case body_state::chunk_size: {
        auto e = in_.find("\r\n");
        if (e == std::string::npos) return out;
        std::string line = in_.substr(0, e);
        consume(e + 2);
        char* end = nullptr;
        unsigned long long size = std::strtoull(line.c_str(), &end, 16);
        if (end == line.c_str()) {
          error_ = "bad chunk size line: " + line;
          body_state_ = body_state::done;
          return out;
        }
        if (size == 0) {
          body_state_ = body_state::trailers;
        } else {
          remaining_ = size;
          body_state_ = body_state::chunk_data;
        }
        break;
      }
      case body_state::chunk_data: {
        std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(remaining_, in_.size()));
        if (n == 0) return out;
        out.append(in_, 0, n);
        consume(n);
        remaining_ -= n;
        if (remaining_ == 0) body_state_ = body_state::chunk_crlf;
        break;
      }
      case body_state::chunk_crlf: {
        if (in_.size() < 2) return out;
        if (in_.compare(0, 2, "\r\n") != 0) {
          error_ = "chunk not followed by CRLF";
          body_state_ = body_state::done;
          return out;
        }
        consume(2);
        body_state_ = body_state::chunk_size;
        break;
      }
      case body_state::trailers: {
        auto e = in_.find("\r\n");
        if (e == std::string::npos) return out;
        consume(e + 2);
        if (e == 0) body_state_ = body_state::done;
        break;
      }
    }
  }
  return out;
}

std::string http_connection::read_body_some(milliseconds timeout, std::string* raw) {
  auto deadline = clock::now() + timeout;
  for (int pass = 0; pass < 100'000; ++pass) {
    std::string out = decode_available(raw);
    if (!out.empty() || body_state_ == body_state::done || body_state_ == body_state::none)
      return out;
    if (peer_closed_) {
      if (body_state_ == body_state::until_close) body_state_ = body_state::done;
      return out;
    }
    if (!fill(milliseconds(remaining_ms(deadline)))) {
      out = decode_available(raw);
      if (peer_closed_ && body_state_ == body_state::until_close) body_state_ = body_state::done;
      return out;
    }
  }
  return {};
}

std::string http_connection::read_body_until(std::string_view needle, milliseconds timeout,
                                             std::string* raw) {
  auto deadline = clock::now() + timeout;
  std::string out;
  for (int pass = 0; pass < 100'000; ++pass) {
    if (out.find(needle) != std::string::npos || body_done() || remaining_ms(deadline) == 0) break;
    std::string got = read_body_some(milliseconds(remaining_ms(deadline)), raw);
    if (got.empty() && (peer_closed_ || remaining_ms(deadline) == 0)) break;
    out += got;
  }
  return out;
}

response http_connection::read_response(milliseconds timeout, bool head_request) {
  auto deadline = clock::now() + timeout;
  response r = read_head(timeout);
  if (r.status == 0) return r;
  if (head_request) body_state_ = body_state::done;
  for (int pass = 0; pass < 100'000 && body_state_ != body_state::done; ++pass) {
    if (remaining_ms(deadline) == 0) {
      r.error = "timed out reading the body (" + std::to_string(r.body.size()) + " bytes so far)";
      break;
    }
    std::string got = read_body_some(milliseconds(remaining_ms(deadline)), &r.raw);
    r.body += got;
    if (got.empty() && peer_closed_ && body_state_ != body_state::done) {
      r.error = "connection closed inside the body (" + std::to_string(r.body.size()) + " bytes)";
      break;
    }
  }
  r.complete = body_state_ == body_state::done;
  if (!error_.empty() && r.error.empty()) r.error = error_;
  return r;
}

std::string http_connection::read_raw(milliseconds timeout, std::size_t max) {
  auto deadline = clock::now() + timeout;
  for (int pass = 0; pass < 100'000 && in_.size() < max && !peer_closed_; ++pass) {
    int left = remaining_ms(deadline);
    if (left == 0) break;
    fill(milliseconds(left));
  }
  std::string out = std::move(in_);
  in_.clear();
  return out;
}

bool http_connection::wait_closed(milliseconds timeout, std::string* got) {
  auto deadline = clock::now() + timeout;
  for (int pass = 0; pass < 100'000 && !peer_closed_; ++pass) {
    int left = remaining_ms(deadline);
    if (left == 0) break;
    fill(milliseconds(left));
    if (in_.size() > (1u << 22)) in_.clear();  // bound memory on a chatty peer
  }
  if (got != nullptr) *got += in_;
  in_.clear();
  return peer_closed_;
}

void http_connection::close(bool reset) {
  if (fd_ < 0) return;
  if (reset) {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  ::close(fd_);
  fd_ = -1;
}

std::string make_request(std::string_view method, std::string_view path, std::string_view body,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         bool keep_alive) {
  std::string req;
  req.reserve(256 + body.size());
  req.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    if (lower(k) == "content-type") has_type = true;
    req.append(k).append(": ").append(v).append("\r\n");
  }
  if (!body.empty() || method == "POST") {
    if (!has_type) req.append("Content-Type: application/json\r\n");
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  if (!keep_alive) req.append("Connection: close\r\n");
  req.append("\r\n");
  req.append(body);
  return req;
}

namespace {

response one_shot(uint16_t port, std::string_view method, std::string_view path,
                  std::string_view body,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  milliseconds timeout) {
  http_connection c;
  response r;
  auto deadline = clock::now() + timeout;
  if (!c.connect(port, std::min(timeout, milliseconds(2000)))) {
    r.error = c.error();
    return r;
  }
  if (!c.send_all(make_request(method, path, body, headers, false),
                  milliseconds(remaining_ms(deadline)))) {
    r.error = c.error();
    return r;
  }
  return c.read_response(milliseconds(remaining_ms(deadline)));
}

}  // namespace

response post_json(uint16_t port, std::string_view path, std::string_view body,
                   const std::vector<std::pair<std::string, std::string>>& headers,
                   milliseconds timeout) {
  return one_shot(port, "POST", path, body, headers, timeout);
}

response get(uint16_t port, std::string_view path, milliseconds timeout) {
  return one_shot(port, "GET", path, {}, {}, timeout);
}

std::optional<double> metric_sum(std::string_view text, std::string_view name,
                                 std::string_view label_filter) {
  std::optional<double> sum;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (line.empty() || line.front() == '#') continue;
    std::size_t name_end = line.find_first_of("{ ");
    if (name_end == std::string_view::npos || line.substr(0, name_end) != name) continue;
    std::string_view labels;
    std::size_t value_start = name_end;
    if (line[name_end] == '{') {
      std::size_t close = line.find('}', name_end);
      if (close == std::string_view::npos) continue;
      labels = line.substr(name_end, close - name_end + 1);
      value_start = close + 1;
    }
    if (!label_filter.empty() && labels.find(label_filter) == std::string_view::npos) continue;
    std::string value(trim(line.substr(value_start)));
    auto sp = value.find(' ');
    if (sp != std::string::npos) value.resize(sp);
    char* end = nullptr;
    double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str()) continue;
    sum = sum.value_or(0) + v;
  }
  return sum;
}

int listen_loopback(uint16_t& port, int backlog) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return -1;
  }
  port = ntohs(a.sin_port);
  return fd;
}

}  // namespace tc::test
