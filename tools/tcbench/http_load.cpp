#include "tools/tcbench/http_load.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

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

}  // namespace

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

}  // namespace tc::bench
