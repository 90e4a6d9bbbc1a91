#include "tools/tcbench/http_load.hpp"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <unordered_map>

#include <rapidjson/document.h>

namespace tc::bench {

namespace {

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<response_state*>(user);
  const std::string line(data, size * n);
  std::string lower = line;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto value = [&] {
    std::string v = line.substr(line.find(':') + 1);
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
    return v;
  };
  if (lower.rfind("x-tc-provider:", 0) == 0) r->provider = value();
  if (lower.rfind("content-type:", 0) == 0) r->event_stream = value() == "text/event-stream";
  if (lower.rfind("x-tc-queue-ms:", 0) == 0) r->queue_ms = whole_number(value());
  if (lower.rfind("retry-after:", 0) == 0) r->retry_after = whole_number(value());
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<response_state*>(user);
  if (r->body.size() < (1u << 20)) r->body.append(data, size * n);
  return size * n;
}

size_t keep(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<std::string*>(user);
  if (s->size() < (4u << 20)) s->append(data, size * n);
  return size * n;
}

/// The body as a JSON object, or null when it is not one (bodies here are small: DOM is fine).
bool parse_object(std::string_view body, rapidjson::Document& doc) {
  doc.Parse<rapidjson::kParseIterativeFlag>(body.data(), body.size());
  return !doc.HasParseError() && doc.IsObject();
}

}  // namespace

long whole_number(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t' || value.back() == '\r' ||
                            value.back() == '\n'))
    value.remove_suffix(1);
  if (value.empty() || value.size() > 12) return -1;
  long n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

long completion_tokens_of(std::string_view body) {
  rapidjson::Document doc;
  if (!parse_object(body, doc)) return -1;
  const auto usage = doc.FindMember("usage");
  if (usage == doc.MemberEnd() || !usage->value.IsObject()) return -1;
  const auto n = usage->value.FindMember("completion_tokens");
  if (n == usage->value.MemberEnd() || !n->value.IsUint()) return -1;
  return static_cast<long>(n->value.GetUint());
}

std::string error_code_of(std::string_view body) {
  rapidjson::Document doc;
  if (!parse_object(body, doc)) return "";
  const auto error = doc.FindMember("error");
  if (error == doc.MemberEnd() || !error->value.IsObject()) return "";
  const auto code = error->value.FindMember("code");
  if (code == error->value.MemberEnd() || !code->value.IsString()) return "";
  return {code->value.GetString(), code->value.GetStringLength()};
}

void set_post(CURL* h, const std::string& url, curl_slist* headers, const std::string& body,
              response_state& r) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
}

std::string get_text(CURL* h, const std::string& url) {
  std::string out;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
  if (curl_easy_perform(h) != CURLE_OK) out.clear();
  return out;
}

double metric_value(const std::string& text, const std::string& name,
                    const std::vector<std::string>& must) {
  size_t pos = 0;
  while ((pos = text.find(name + "{", pos)) != std::string::npos) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
    pos = end == std::string::npos ? text.size() : end;
    bool all = true;
    for (const auto& m : must) all = all && line.find(m) != std::string::npos;
    if (!all) continue;
    const size_t sp = line.rfind(' ');
    if (sp != std::string::npos) return std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return -1;
}

double metric_sum(const std::string& text, const std::string& name) {
  double sum = 0;
  size_t pos = 0;
  while ((pos = text.find("\n" + name, pos)) != std::string::npos) {
    const size_t end = text.find('\n', pos + 1);
    const std::string line = text.substr(pos + 1, end == std::string::npos ? end : end - pos - 1);
    pos = end == std::string::npos ? text.size() : end;
    if (line.size() <= name.size() || (line[name.size()] != '{' && line[name.size()] != ' '))
      continue;
    const size_t sp = line.rfind(' ');
    if (sp != std::string::npos) sum += std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return sum;
}

bool loopback_targets(const std::string& target, const std::string& admin, const char* tool) {
  if (target.rfind("127.", 0) == 0 && admin.rfind("127.", 0) == 0) return true;
  std::fprintf(stderr, "tcbench %s: loopback targets only (127.x.x.x:PORT)\n", tool);
  return false;
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size()));
  return v[std::min(i, v.size() - 1)];
}

namespace {

/// One request of an open-loop run in flight: its handle, body and what the answer says.
struct transfer {
  CURL* h = nullptr;
  std::string body;
  response_state r;
  size_t index = 0;  ///< into open_loop_report::results
};

/// libcurl's multi socket interface on one epoll set: the sockets it wants watched, and when it
/// wants its timeout action.
struct multi_io {
  int epoll_fd = -1;
  bool timer_armed = false;
  std::chrono::steady_clock::time_point timer_due;
};

int on_multi_socket(CURL*, curl_socket_t fd, int what, void* user, void*) {
  auto* io = static_cast<multi_io*>(user);
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(io->epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    return 0;
  }
  epoll_event ev{};
  ev.data.fd = fd;
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  if (epoll_ctl(io->epoll_fd, EPOLL_CTL_MOD, fd, &ev) != 0)
    epoll_ctl(io->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

int on_multi_timer(CURLM*, long timeout_ms, void* user) {
  auto* io = static_cast<multi_io*>(user);
  io->timer_armed = timeout_ms >= 0;
  if (io->timer_armed)
    io->timer_due = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  return 0;
}

}  // namespace

open_loop_report run_open_loop(const open_loop_options& o,
                               const std::vector<open_loop_stream>& streams) {
  using clock_type = std::chrono::steady_clock;
  open_loop_report rep;
  rep.skipped.assign(streams.size(), 0);
  multi_io io;
  io.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (io.epoll_fd < 0) return rep;
  CURLM* m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_multi_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, &io);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_multi_timer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, &io);
  std::vector<curl_slist*> lists;
  for (const auto& s : streams) {
    curl_slist* l = curl_slist_append(nullptr, "Content-Type: application/json");
    l = curl_slist_append(l, "Cache-Control: no-cache");
    l = curl_slist_append(l, "Expect:");
    for (const auto& h : s.headers) l = curl_slist_append(l, h.c_str());
    lists.push_back(l);
  }
  std::vector<uint64_t> next(streams.size(), 0);
  const auto due_of = [&](size_t s) { return (streams[s].phase + next[s]) / streams[s].rate; };
  std::vector<std::unique_ptr<transfer>> spare;
  std::unordered_map<CURL*, std::unique_ptr<transfer>> active;
  std::vector<uint32_t> in_flight(streams.size(), 0);
  uint64_t handed = 0;  // requests due so far, sent or skipped
  const auto t0 = clock_type::now();
  const auto since = [&] { return std::chrono::duration<double>(clock_type::now() - t0).count(); };
  // The stream whose next request is due first (before o.seconds), or streams.size().
  const auto earliest = [&] {
    size_t best = streams.size();
    double best_due = o.seconds;
    if (handed >= o.max_requests) return best;
    for (size_t s = 0; s < streams.size(); ++s) {
      if (!(streams[s].rate > 0) || !streams[s].body) continue;
      const double d = due_of(s);
      if (d < best_due) {
        best_due = d;
        best = s;
      }
    }
    return best;
  };
  const auto collect = [&] {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = active.find(msg->easy_handle);
      if (it == active.end()) continue;
      transfer& t = *it->second;
      open_loop_result& res = rep.results[t.index];
      res.end_s = since();
      if (msg->data.result == CURLE_OK) curl_easy_getinfo(t.h, CURLINFO_RESPONSE_CODE, &res.status);
      res.queue_ms = t.r.queue_ms;
      res.retry_after = t.r.retry_after;
      if (res.status == 200) {
        res.completion_tokens = completion_tokens_of(t.r.body);
      } else if (res.status != 0) {
        res.error_code = error_code_of(t.r.body);
      }
      --in_flight[res.stream];
      curl_multi_remove_handle(m, t.h);
      spare.push_back(std::move(it->second));
      active.erase(it);
    }
  };

  std::vector<epoll_event> events(512);
  for (uint64_t rounds = 0; rounds < 100'000'000; ++rounds) {
    // Hand out every request due within the next millisecond (the wait's resolution).
    double now = since();
    for (size_t s = earliest(); s < streams.size() && due_of(s) <= now + 0.001; s = earliest()) {
      const double due = due_of(s);
      const uint64_t n = next[s]++;
      ++handed;
      if (in_flight[s] >= o.max_in_flight) {
        ++rep.skipped[s];
        continue;
      }
      std::unique_ptr<transfer> t;
      if (spare.empty()) {
        t = std::make_unique<transfer>();
        t->h = curl_easy_init();
      } else {
        t = std::move(spare.back());
        spare.pop_back();
      }
      t->body = streams[s].body(n);
      t->r = response_state{};
      t->index = rep.results.size();
      open_loop_result res;
      res.stream = static_cast<uint32_t>(s);
      res.due_s = due;
      rep.results.push_back(std::move(res));
      set_post(t->h, o.url, lists[s], t->body, t->r);
      curl_easy_setopt(t->h, CURLOPT_TIMEOUT_MS, o.timeout_ms);
      rep.max_lag_s = std::max(rep.max_lag_s, now - due);
      curl_multi_add_handle(m, t->h);
      ++in_flight[s];
      active.emplace(t->h, std::move(t));
      rep.peak_in_flight = std::max(rep.peak_in_flight, static_cast<uint32_t>(active.size()));
    }
    // Wait for sockets, libcurl's timer or the next request due, whichever comes first.
    now = since();
    const size_t s = earliest();
    if (s == streams.size()) {  // nothing more is due: wait for the answers, within the drain
      if (active.empty()) break;
      if (now >= o.seconds + o.drain_seconds) {
        for (auto& [h, t] : active) {
          rep.results[t->index].aborted = true;
          rep.results[t->index].end_s = now;
          curl_multi_remove_handle(m, h);
          spare.push_back(std::move(t));
        }
        active.clear();
        break;
      }
    }
    double wait_s = s == streams.size() ? 0.01 : std::min(0.01, due_of(s) - now);
    if (io.timer_armed) {
      wait_s =
          std::min(wait_s, std::chrono::duration<double>(io.timer_due - clock_type::now()).count());
    }
    const int wait_ms = static_cast<int>(std::clamp(std::ceil(wait_s * 1000), 0.0, 10.0));
    const int n = epoll_wait(io.epoll_fd, events.data(), static_cast<int>(events.size()), wait_ms);
    int running = 0;
    for (int i = 0; i < n; ++i) {
      int flags = 0;
      if (events[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
      if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (events[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(m, events[i].data.fd, flags, &running);
    }
    if (io.timer_armed && clock_type::now() >= io.timer_due) {
      io.timer_armed = false;
      curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect();
  }
  rep.ended_s = since();
  for (auto& t : spare) curl_easy_cleanup(t->h);
  curl_multi_cleanup(m);
  close(io.epoll_fd);
  for (curl_slist* l : lists) curl_slist_free_all(l);
  return rep;
}

uint64_t raise_open_files() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace tc::bench
