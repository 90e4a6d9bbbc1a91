// Test helpers for the simulated provider. See sim_support.hpp.
#include "sim_support.hpp"

namespace tc::sim::test {

upstream::call_handlers recorder(std::shared_ptr<record> r) {
  upstream::call_handlers h;
  h.on_headers = [r](int status, std::vector<std::pair<std::string, std::string>>&& headers) {
    if (r->in_start) r->callback_in_start = true;
    r->status = status;
    r->headers = std::move(headers);
    ++r->header_calls;
  };
  h.on_data = [r](std::string_view data) {
    if (r->in_start) r->callback_in_start = true;
    if (r->data_calls++ == 0) r->first_data_ns = uv_hrtime();
    r->body.append(data);
  };
  h.on_complete = [r](upstream::call_result&& res) {
    if (r->in_start) r->callback_in_start = true;
    r->result = std::move(res);
    r->done = true;
    ++r->complete_calls;
    r->done_ns = uv_hrtime();
  };
  return h;
}

std::shared_ptr<record> start_call(provider& p, std::string method, std::string path,
                                   std::string body, upstream::call_id* id) {
  auto r = std::make_shared<record>();
  upstream::call_request req;
  req.method = std::move(method);
  req.url = "http://sim.test" + path;
  req.body = std::move(body);
  r->start_ns = uv_hrtime();
  r->in_start = true;
  upstream::call_id got = p.start(std::move(req), recorder(r));
  r->in_start = false;
  if (id) *id = got;
  return r;
}

std::vector<std::string> sse_payloads(std::string_view body, bool* done) {
  std::vector<std::string> out;
  if (done) *done = false;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find("\n\n", pos);
    if (end == std::string_view::npos) end = body.size();
    std::string_view ev = body.substr(pos, end - pos);
    pos = end + 2;
    if (!ev.starts_with("data: ")) continue;
    ev.remove_prefix(6);
    if (ev == "[DONE]") {
      if (done) *done = pos >= body.size();
      continue;
    }
    out.emplace_back(ev);
  }
  return out;
}

rapidjson::Document parse(std::string_view json) {
  rapidjson::Document d;
  d.Parse(json.data(), json.size());
  return d;
}

config::sim_settings fast_settings() {
  config::sim_settings s;
  s.ttft_ms = 2;
  s.tokens_per_sec = 2000;
  s.max_batch = 64;
  s.default_max_tokens = 16;
  s.embedding_dim = 32;
  return s;
}

config::sim_settings instant_settings() {
  config::sim_settings s;
  s.ttft_ms = 0;
  s.tokens_per_sec = 0;
  s.default_max_tokens = 16;
  s.embedding_dim = 32;
  return s;
}

std::size_t word_count(std::string_view s) {
  std::size_t n = 0;
  bool in = false;
  for (char c : s) {
    if (c == ' ') {
      in = false;
    } else if (!in) {
      in = true;
      ++n;
    }
  }
  return n;
}

}  // namespace tc::sim::test
