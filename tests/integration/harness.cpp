#include "tests/integration/harness.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <rapidjson/error/en.h>

namespace tc::test {

namespace {

/// The last `max` bytes of a file (all of it if shorter; empty if there is none).
std::string tail_of(const std::string& path, std::size_t max) {
  std::string l = path.empty() ? "" : read_file(path);
  return l.size() > max ? l.substr(l.size() - max) : l;
}

/// Starts `binary` with its stderr in `log_path` and waits for its `ready ...` line. Without
/// one, `error` says why (with the end of stderr) and nullopt is returned.
std::optional<std::string> start_until_ready(process& proc, const std::string& binary,
                                             const std::vector<std::string>& args,
                                             const std::string& log_path, std::string& error,
                                             process::options opts = {}) {
  opts.stderr_path = log_path;
  if (!proc.start(binary, args, opts)) {
    error = proc.error();
    return std::nullopt;
  }
  auto line = proc.wait_for_line("ready ", ready_timeout);
  if (!line) error = proc.error() + "; stderr: " + tail_of(log_path, 2000);
  return line;
}

}  // namespace

std::string server_toml(std::string_view extra) {
  std::string s = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n";
  s += extra;
  if (!s.empty() && s.back() != '\n') s += '\n';
  return s;
}

std::string sim_provider_toml(double ttft_ms, double tokens_per_sec, std::string_view extra_sim) {
  std::string s = "[[providers]]\nname = \"sim\"\ntype = \"sim\"\n[providers.sim]\n";
  s += "ttft_ms = " + std::to_string(ttft_ms) + "\n";
  s += "tokens_per_sec = " + std::to_string(tokens_per_sec) + "\n";
  s += extra_sim;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "[[providers.models]]\nname = \"sim-chat\"\n";
  s += "[[providers.models]]\nname = \"sim-embed\"\nkind = \"embedding\"\n";
  return s;
}

std::string regional_sim_toml(std::string_view name, std::string_view region, double price,
                              std::string_view extra_provider) {
  std::string s = "[[providers]]\nname = \"" + std::string(name) + "\"\ntype = \"sim\"\n";
  s += "region = \"" + std::string(region) + "\"\n";
  s += extra_provider;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "[providers.sim]\nttft_ms = 1\ntokens_per_sec = 5000\n";
  s += "[[providers.models]]\nname = \"sim-chat\"\n";
  s += "price_input_per_m = " + std::to_string(price) + "\n";
  s += "price_output_per_m = " + std::to_string(price) + "\n";
  return s;
}

std::string openai_provider_toml(uint16_t port, std::string_view extra_provider) {
  std::string s = "[[providers]]\nname = \"up\"\ntype = \"openai\"\n";
  s += "base_url = \"http://127.0.0.1:" + std::to_string(port) + "/v1\"\n";
  s += extra_provider;
  if (!s.empty() && s.back() != '\n') s += '\n';
  s += "[[providers.models]]\nname = \"sim-chat\"\n";
  s += "[[providers.models]]\nname = \"sim-embed\"\nkind = \"embedding\"\n";
  return s;
}

bool node_process::start(const std::string& toml, const std::vector<std::string>& extra_args) {
  std::string path = dir_.write("tokenschain.toml", toml);
  if (path.empty()) {
    error_ = "cannot write the config under " + dir_.path();
    return false;
  }
  return start_file(path, extra_args);
}

bool node_process::start_file(const std::string& config_path,
                              const std::vector<std::string>& extra_args) {
  log_path_ = dir_.path() + "/tcnode.stderr";
  std::vector<std::string> args{"--config", config_path};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto line = start_until_ready(proc_, bin_path("tcnode"), args, log_path_, error_, opts_);
  if (!line) return false;
  ready_line_ = *line;
  auto kv = parse_kv(*line);
  auto data = parse_endpoint(kv["data"]);
  auto admin = parse_endpoint(kv["admin"]);
  if (!data || !admin || data->port == 0 || admin->port == 0) {
    error_ = "bad ready line: " + *line;
    return false;
  }
  data_port_ = data->port;
  admin_port_ = admin->port;
  return true;
}

std::string node_process::log() const {
  return log_path_.empty() ? "" : read_file(log_path_);
}

std::string node_process::log_tail(std::size_t max) const {
  return tail_of(log_path_, max);
}

bool sim_process::start(const std::vector<std::string>& args) {
  log_path_ = dir_.path() + "/tcsim.stderr";
  std::vector<std::string> all{"--listen", "127.0.0.1:0"};
  all.insert(all.end(), args.begin(), args.end());
  auto line = start_until_ready(proc_, bin_path("tcsim"), all, log_path_, error_);
  if (!line) return false;
  auto ep = parse_endpoint(parse_kv(*line)["sim"]);
  if (!ep || ep->port == 0) {
    error_ = "bad ready line: " + *line;
    return false;
  }
  port_ = ep->port;
  return true;
}

std::string sim_process::log_tail(std::size_t max) const {
  return tail_of(log_path_, max);
}

std::optional<double> sim_process::metric(std::string_view name) {
  response r = get(port_, "/metrics", milliseconds(3000));
  if (r.status != 200) return std::nullopt;
  return metric_sum(r.body, name);
}

std::optional<double> node_metric(const node_process& node, std::string_view name) {
  response r = get(node.admin_port(), "/metrics", milliseconds(3000));
  if (r.status != 200) return std::nullopt;
  return metric_sum(r.body, name);
}

std::string wait_node_idle(const node_process& node, milliseconds timeout) {
  static constexpr std::string_view gauges[] = {"tc_requests_in_flight", "tc_upstream_in_flight",
                                                "tc_http_connections_open"};
  std::string busy;
  eventually(
      [&] {
        busy.clear();
        response r = get(node.admin_port(), "/metrics", milliseconds(2000));
        if (r.status != 200) {
          busy = "GET /metrics failed: " + r.error;
          return false;
        }
        for (auto g : gauges) {
          double v = metric_sum(r.body, g).value_or(0);
          if (v != 0) busy += std::string(g) + "=" + std::to_string(v) + " ";
        }
        return busy.empty();
      },
      timeout, milliseconds(50));
  return busy;
}

std::string chat_body(std::string_view model, std::string_view content, std::string_view extra) {
  std::string s = "{\"model\":\"";
  s += model;
  s += "\",\"messages\":[{\"role\":\"user\",\"content\":\"";
  s += content;
  s += "\"}]";
  if (!extra.empty()) {
    s += ',';
    s += extra;
  }
  s += '}';
  return s;
}

rapidjson::Document parse_json(std::string_view text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return d;
}

std::string str_of(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return {};
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

api_error_view error_of(std::string_view body) {
  api_error_view out;
  auto d = parse_json(body);
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("error") || !d["error"].IsObject())
    return out;
  const auto& e = d["error"];
  out.message = str_of(e, "message");
  out.type = str_of(e, "type");
  out.param = str_of(e, "param");
  out.code = str_of(e, "code");
  out.valid = e.HasMember("message") && e["message"].IsString() && e.HasMember("type") &&
              e["type"].IsString() && e.HasMember("param") && e.HasMember("code");
  return out;
}

std::vector<rapidjson::Document> sse_json_chunks(std::string_view body) {
  std::vector<rapidjson::Document> out;
  for (const auto& ev : parse_sse(body)) {
    if (!ev.event.empty() || ev.data == "[DONE]") continue;
    auto d = parse_json(ev.data);
    if (!d.HasParseError()) out.push_back(std::move(d));
  }
  return out;
}

response admin_call(const node_process& node, std::string_view method, std::string_view path,
                    std::string_view body, std::string_view token) {
  http_connection c;
  if (!c.connect(node.admin_port())) return {};
  std::vector<std::pair<std::string, std::string>> hs{{"Connection", "close"}};
  if (!body.empty()) hs.emplace_back("Content-Type", "application/json");
  if (!token.empty()) hs.emplace_back("Authorization", "Bearer " + std::string(token));
  if (!c.send_all(make_request(method, path, body, hs, false))) return {};
  return c.read_response();
}

void create_tenant(const node_process& node, std::string_view body, std::string_view token) {
  response r = admin_call(node, "POST", "/v1/tenants", body, token);
  REQUIRE_MESSAGE(r.status == 201, r.body);
}

std::string create_key(const node_process& node, std::string_view tenant,
                       std::string_view body_extra, std::string_view token) {
  std::string body = R"({"tenant":")" + std::string(tenant) + "\"";
  if (!body_extra.empty()) body += "," + std::string(body_extra);
  body += "}";
  response r = admin_call(node, "POST", "/v1/keys", body, token);
  REQUIRE_MESSAGE(r.status == 201, r.body);
  auto d = parse_json(r.body);
  std::string secret = str_of(d, "secret");
  REQUIRE(secret.rfind("sk-tc-", 0) == 0);
  return secret;
}

response chat(const node_process& node, std::string_view key, std::string_view content,
              std::string_view extra) {
  std::vector<std::pair<std::string, std::string>> hs;
  if (!key.empty()) hs.emplace_back("Authorization", "Bearer " + std::string(key));
  return post_json(node.data_port(), "/v1/chat/completions", chat_body("sim-chat", content, extra),
                   hs);
}

tcctl_result run_tcctl(const node_process& node, std::vector<std::string> args,
                       const std::vector<std::string>& env) {
  std::vector<std::string> all = {"--admin",
                                  "http://127.0.0.1:" + std::to_string(node.admin_port())};
  all.insert(all.end(), args.begin(), args.end());
  process p;
  process::options o;
  o.env = env;
  tcctl_result r;
  if (!p.start(bin_path("tcctl"), all, o)) return r;
  p.wait_exit(milliseconds(20000));
  p.drain_stdout(milliseconds(2000));
  for (const auto& l : p.stdout_lines()) r.out += l + "\n";
  if (auto st = p.status(); st && st->exited) r.code = st->code;
  return r;
}

http_catcher::http_catcher(std::function<std::string(const std::string&)> answer)
    : answer_(std::move(answer)) {
  fd_ = listen_loopback(port_);
  REQUIRE(fd_ >= 0);
  thread_ = std::thread([this] { serve(); });
}

http_catcher::~http_catcher() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
}

std::vector<std::string> http_catcher::bodies() {
  std::lock_guard<std::mutex> lock(mx_);
  return bodies_;
}

void http_catcher::serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string in;
    char buf[4096];
    size_t need = std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 50) <= 0) continue;
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      size_t end = in.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      if (need == std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        if (cl == std::string::npos) cl = in.find("content-length: ");
        need = end + 4 + (cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16)));
      }
      if (in.size() >= need) break;
    }
    std::string body;
    if (size_t end = in.find("\r\n\r\n"); end != std::string::npos) body = in.substr(end + 4);
    const std::string out = answer_ ? answer_(body) : std::string();
    const std::string reply =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        "Content-Length: " +
        std::to_string(out.size()) + "\r\nConnection: close\r\n\r\n" + out;
    {
      // Kept before the answer goes out: whatever the answer lets happen next (a client's
      // response) may be followed at once by a look at bodies().
      std::lock_guard<std::mutex> lock(mx_);
      bodies_.push_back(std::move(body));
    }
    (void)!::write(c, reply.data(), reply.size());
    ::close(c);
  }
}

}  // namespace tc::test
