// tc::sim::provider: the GPU model (TTFT, per-sequence rate, batch slots, utilisation),
// back-pressure and cancellation. Time bounds are generous: the machine is shared.
#include <doctest/doctest.h>

#include <algorithm>

#include "sim_support.hpp"

using namespace tc::sim;
using namespace tc::sim::test;

namespace {

const char* chat_path = "/v1/chat/completions";

std::string stream_body(int i, int max_tokens) {
  return R"({"model":"m","stream":true,"max_tokens":)" + std::to_string(max_tokens) +
         R"(,"messages":[{"role":"user","content":"q)" + std::to_string(i) + "\"}]}";
}

bool all_done(const std::vector<std::shared_ptr<record>>& rs) {
  return std::all_of(rs.begin(), rs.end(), [](const auto& r) { return r->done; });
}

int count_events(const std::string& body) {
  return static_cast<int>(sse_payloads(body).size());
}

}  // namespace

TEST_CASE("TTFT is honoured and tokens follow at the configured rate") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 100;
  s.tokens_per_sec = 100;
  s.max_batch = 8;
  provider p(&f.loop, s);
  auto r = post(p, chat_path, stream_body(0, 11));
  REQUIRE(f.run_until([&] { return r->data_calls > 0; }, 3000));
  double ttft_ms = static_cast<double>(r->first_data_ns - r->start_ns) / 1e6;
  CHECK(ttft_ms >= 98);  // served up to 1 ms early, within the timer's resolution
  CHECK(ttft_ms < 1000);
  CHECK(r->result.first_byte_ns == 0);  // not complete yet
  REQUIRE(f.run_until([&] { return r->done; }, 3000));
  // 10 more tokens at 100 tokens/s after the first: about 100 ms.
  double decode_ms = static_cast<double>(r->done_ns - r->first_data_ns) / 1e6;
  CHECK(decode_ms >= 85);
  CHECK(decode_ms < 1500);
  CHECK(r->data_calls >= 5);  // spread over time, not one burst
}

TEST_CASE("spike_rate 1 adds spike_ms to the TTFT") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 10;
  s.tokens_per_sec = 1000;
  s.spike_rate = 1;
  s.spike_ms = 150;
  provider p(&f.loop, s);
  auto r = post(p, chat_path, stream_body(0, 2));
  REQUIRE(f.run_until([&] { return r->data_calls > 0; }, 3000));
  CHECK(static_cast<double>(r->first_data_ns - r->start_ns) / 1e6 >= 158);
}

TEST_CASE("max_batch 4 with 8 concurrent calls: 4 decode - 4 wait FIFO") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 5;
  s.tokens_per_sec = 200;
  s.max_batch = 4;
  provider p(&f.loop, s);
  std::vector<std::shared_ptr<record>> rs;
  for (int i = 0; i < 8; ++i) rs.push_back(post(p, chat_path, stream_body(i, 10)));
  auto st = p.stats();
  CHECK(st.active_sequences == 4);
  CHECK(st.waiting == 4);
  CHECK(p.in_flight() == 8);
  REQUIRE(f.run_until([&] { return rs[0]->data_calls > 0; }));
  st = p.stats();
  CHECK(st.active_sequences == 4);
  CHECK(st.waiting == 4);
  for (int i = 4; i < 8; ++i) CHECK(rs[i]->data_calls == 0);
  REQUIRE(f.run_until([&] { return all_done(rs); }));
  uint64_t first_done = UINT64_MAX;
  for (int i = 0; i < 4; ++i) first_done = std::min(first_done, rs[i]->done_ns);
  for (int i = 4; i < 8; ++i) {
    CHECK(rs[i]->first_data_ns >= first_done);  // started only when a slot was freed
    CHECK(rs[i]->status == 200);
  }
  st = p.stats();
  CHECK(st.active_sequences == 0);
  CHECK(st.waiting == 0);
  CHECK(st.completed == 8);
  CHECK(st.tokens_generated == 80);
}

TEST_CASE("a call holds one slot per choice - and waits in line until it has them all") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 5;
  s.tokens_per_sec = 200;
  s.max_batch = 4;
  provider p(&f.loop, s);
  // Three prompts in one completions call: three sequences.
  auto three =
      post(p, "/v1/completions", R"({"model":"m","max_tokens":10,"prompt":["a","b","c"]})");
  CHECK(p.stats().active_sequences == 3);
  // n = 2 needs two slots and only one is free: it waits, and so does the call behind it.
  auto two =
      post(p, chat_path,
           R"({"model":"m","n":2,"max_tokens":10,"messages":[{"role":"user","content":"x"}]})");
  auto one = post(p, chat_path, stream_body(1, 10));
  auto st = p.stats();
  CHECK(st.active_sequences == 3);
  CHECK(st.waiting == 2);
  REQUIRE(f.run_until([&] { return three->done && two->done && one->done; }));
  CHECK(two->first_data_ns >= three->done_ns);
  CHECK(one->first_data_ns >= three->done_ns);  // FIFO: it did not pass the call of two
  CHECK(three->status == 200);
  CHECK(two->status == 200);
  st = p.stats();
  CHECK(st.active_sequences == 0);
  CHECK(st.tokens_generated == 60);
}

TEST_CASE("aggregate throughput with 4 concurrent sequences beats 2.5x a single one") {
  // throughput(n) = n / (1 + c*(n-1)): with c = 0.05, 4 sequences give 3.48x one.
  tc::config::sim_settings s;
  s.ttft_ms = 1;
  s.tokens_per_sec = 200;
  s.batch_contention = 0.05;
  s.max_batch = 8;
  s.default_max_tokens = 1000;  // max_tokens 60 caps every answer
  auto measure = [&](int n) {
    loop_fixture f;
    provider p(&f.loop, s);
    std::vector<std::shared_ptr<record>> rs;
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < n; ++i) rs.push_back(post(p, chat_path, stream_body(i, 60)));
    REQUIRE(f.run_until([&] { return all_done(rs); }, 10000));
    uint64_t t1 = 0;
    for (auto& r : rs) t1 = std::max(t1, r->done_ns);
    CHECK(p.stats().tokens_generated == 60u * n);
    return 60.0 * n / (static_cast<double>(t1 - t0) / 1e9);
  };
  double one = measure(1);
  double four = measure(4);
  CHECK(one < 200 * 1.2);  // not faster than the configured rate
  CHECK(four > 2.5 * one);
  CHECK(four < 4.0 * one);  // contention slows each sequence
}

TEST_CASE("cancel frees the slot for the next waiting call and stops callbacks") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 5;
  s.tokens_per_sec = 20;
  s.max_batch = 1;
  provider p(&f.loop, s);
  tc::upstream::call_id a_id = 0;
  tc::upstream::call_id b_id = 0;
  auto a = post(p, chat_path, stream_body(1, 100), &a_id);
  auto b = post(p, chat_path, stream_body(2, 100), &b_id);
  CHECK(p.stats().waiting == 1);
  REQUIRE(f.run_until([&] { return a->data_calls > 0; }));
  int a_calls = a->data_calls;
  p.cancel(a_id);
  auto st = p.stats();
  CHECK(st.cancelled == 1);
  CHECK(st.active_sequences == 1);  // b took the slot
  CHECK(st.waiting == 0);
  CHECK(p.in_flight() == 1);
  REQUIRE(f.run_until([&] { return b->data_calls > 0; }));
  f.run_for(120);
  CHECK(a->data_calls == a_calls);
  CHECK_FALSE(a->done);
  p.cancel(b_id);
  CHECK(p.stats().active_sequences == 0);
  CHECK(p.in_flight() == 0);
  CHECK_FALSE(b->done);

  // A waiting call can be cancelled too.
  auto c = post(p, chat_path, stream_body(3, 100), &a_id);
  auto d = post(p, chat_path, stream_body(4, 100), &b_id);
  p.cancel(b_id);
  CHECK(p.stats().waiting == 0);
  p.cancel(a_id);
  f.run_for(20);
  CHECK(c->data_calls == 0);
  CHECK(d->data_calls == 0);
  CHECK(p.stats().cancelled == 4);
}

TEST_CASE("pause holds on_data - resume delivers the buffered tokens") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 2;
  s.tokens_per_sec = 400;
  provider p(&f.loop, s);
  auto r = std::make_shared<record>();
  tc::upstream::call_id id = 0;
  auto h = recorder(r);
  auto inner = h.on_data;
  h.on_data = [&, inner](std::string_view d) {
    inner(d);
    if (r->data_calls == 1) p.pause(id);  // back-pressure from inside the callback
  };
  tc::upstream::call_request req;
  req.url = "http://sim/v1/chat/completions";
  req.body =
      R"({"model":"m","stream":true,"max_tokens":20,"stream_options":{"include_usage":true},)"
      R"("messages":[{"role":"user","content":"x"}]})";
  id = p.start(std::move(req), std::move(h));
  REQUIRE(f.run_until([&] { return r->data_calls > 0; }));
  f.run_for(100);  // 20 tokens at 400/s take 50 ms: generation ends while paused
  CHECK(r->data_calls == 1);
  CHECK_FALSE(r->done);
  CHECK(p.stats().active_sequences == 0);  // the slot is free although not delivered
  CHECK(p.stats().tokens_generated == 20);
  p.resume(id);
  REQUIRE(f.run_until([&] { return r->done; }));
  CHECK(r->data_calls == 2);
  bool done = false;
  auto payloads = sse_payloads(r->body, &done);
  CHECK(done);
  // role + 20 tokens + finish + usage
  CHECK(payloads.size() == 23);
}

TEST_CASE("non-stream answers are delivered when generation finishes") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 30;
  s.tokens_per_sec = 100;
  provider p(&f.loop, s);
  auto r = post(p, chat_path,
                R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}]})");
  REQUIRE(f.run_until([&] { return r->done; }));
  CHECK(r->data_calls == 1);
  double ms = static_cast<double>(r->done_ns - r->start_ns) / 1e6;
  CHECK(ms >= 30 + 85);  // TTFT + 9 tokens at 100/s
  auto d = parse(r->body);
  CHECK(d["usage"]["completion_tokens"].GetUint() == 10);
  // Embeddings take one TTFT.
  auto e = post(p, "/v1/embeddings", R"({"model":"e","input":"x"})");
  REQUIRE(f.run_until([&] { return e->done; }));
  CHECK(static_cast<double>(e->done_ns - e->start_ns) / 1e6 >= 29);
}

TEST_CASE("utilisation is 0 when idle and in 0..1 after load") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 1;
  s.tokens_per_sec = 500;
  s.max_batch = 4;
  provider p(&f.loop, s);
  f.run_for(20);
  auto st = p.stats();
  CHECK(st.utilisation == 0);
  CHECK(st.utilisation_recent == 0);
  std::vector<std::shared_ptr<record>> rs;
  for (int i = 0; i < 4; ++i) rs.push_back(post(p, chat_path, stream_body(i, 50)));
  // While 4 of 4 slots decode, the recent utilisation approaches 1.
  f.run_for(50);
  st = p.stats();
  CHECK(st.active_sequences == 4);
  CHECK(st.utilisation_recent > 0.3);
  CHECK(st.utilisation_recent <= 1.0);
  REQUIRE(f.run_until([&] { return all_done(rs); }));
  st = p.stats();
  CHECK(st.utilisation > 0);
  CHECK(st.utilisation <= 1.0);
  CHECK(st.utilisation_recent > 0);
  CHECK(st.utilisation_recent <= 1.0);
  double before = st.utilisation;
  f.run_for(50);
  CHECK(p.stats().utilisation < before);  // idle time dilutes it
}

TEST_CASE("update() changes rates and batch size for new calls") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 1;
  s.tokens_per_sec = 100;
  s.max_batch = 1;
  provider p(&f.loop, s);
  auto a = post(p, chat_path, stream_body(1, 200));
  auto b = post(p, chat_path, stream_body(2, 5));
  CHECK(p.stats().waiting == 1);
  s.max_batch = 2;
  p.update(s);
  CHECK(p.stats().waiting == 0);
  CHECK(p.stats().active_sequences == 2);
  REQUIRE(f.run_until([&] { return b->done; }));
  CHECK_FALSE(a->done);
  CHECK(p.settings().max_batch == 2);
  p.close();
  CHECK(p.in_flight() == 0);
  CHECK_FALSE(a->done);  // close() cancels without callbacks
}

TEST_CASE("many slow streams cost little: 2000 concurrent at 20 tokens/s") {
  loop_fixture f;
  tc::config::sim_settings s;
  s.ttft_ms = 10;
  s.tokens_per_sec = 20;
  s.max_batch = 4096;
  s.batch_contention = 0;
  provider p(&f.loop, s);
  std::vector<std::shared_ptr<record>> rs;
  for (int i = 0; i < 2000; ++i) rs.push_back(post(p, chat_path, stream_body(i, 5)));
  uv_rusage_t ru0;
  uv_getrusage(&ru0);
  uint64_t t0 = uv_hrtime();
  REQUIRE(f.run_until([&] { return all_done(rs); }, 20000));
  double wall = static_cast<double>(uv_hrtime() - t0) / 1e9;
  uv_rusage_t ru1;
  uv_getrusage(&ru1);
  double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
  MESSAGE("2000 streams x 5 tokens: wall " << wall << " s, cpu " << cpu << " s");
  CHECK(wall >= 0.2);  // 4 tokens after the first at 20/s
  CHECK(cpu < wall);   // the loop is mostly idle (generous under sanitizers)
  int events = 0;
  for (auto& r : rs) events += count_events(r->body);
  CHECK(events == 2000 * 7);  // role + 5 tokens + finish
}

TEST_CASE("a long backlog goes out in bounded pieces - and pause acts between them") {
  loop_fixture f;
  auto s = instant_settings();
  s.default_max_tokens = 2000;
  provider p(&f.loop, s);
  auto r = std::make_shared<record>();
  tc::upstream::call_id id = 0;
  auto h = recorder(r);
  auto inner = h.on_data;
  h.on_data = [&, inner](std::string_view d) {
    inner(d);
    if (r->data_calls == 2) p.pause(id);
  };
  tc::upstream::call_request req;
  req.url = "http://sim/v1/chat/completions";
  req.body =
      R"({"model":"m","stream":true,"max_tokens":600,"messages":[{"role":"user","content":"x"}]})";
  id = p.start(std::move(req), std::move(h));
  f.run_for(30);
  CHECK(r->data_calls == 2);  // 256 + 256 tokens, then paused
  CHECK_FALSE(r->done);
  p.resume(id);
  REQUIRE(f.run_until([&] { return r->done; }));
  CHECK(r->data_calls == 3);
  bool done = false;
  auto payloads = sse_payloads(r->body, &done);
  CHECK(done);
  CHECK(payloads.size() == 1 + 600 + 1);  // role + tokens + finish
}
