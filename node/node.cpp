#include "node/node.hpp"

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include <curl/curl.h>
#include <caf/all.hpp>

#include "actors/connection.hpp"
#include "node/admin.hpp"
#include "node/http/server.hpp"
#include "node/io_loop.hpp"
#include "node/log.hpp"
#include "node/metrics.hpp"
#include "protocol/messages.hpp"
#include "protocol/openai/models.hpp"

namespace tc::node {

namespace {

/// The actor system's settings, from [actors] (tuned by measurement: docs/benchmarks.md).
std::unique_ptr<caf::actor_system_config> make_actor_config(const config::actors_settings& a) {
  auto cfg = std::make_unique<caf::actor_system_config>();
  add_message_types(*cfg);
  unsigned threads = a.scheduler_threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  cfg->set("scheduler.max-threads", static_cast<size_t>(threads));
  cfg->set("work-stealing.aggressive-poll-attempts",
           static_cast<size_t>(a.aggressive_poll_attempts));
  cfg->set("work-stealing.moderate-poll-attempts", static_cast<size_t>(a.moderate_poll_attempts));
  cfg->set("logger.file-verbosity", caf::atom("quiet"));
  cfg->set("logger.console-verbosity", caf::atom("quiet"));
  return cfg;
}

/// Model id -> where it is served, from [[providers]].
std::shared_ptr<actors::pipeline> make_pipeline(const config::settings& s) {
  auto p = std::make_shared<actors::pipeline>();
  for (const auto& prov : s.providers) {
    std::string base = prov.type == "sim" ? "sim://" + prov.name + "/v1" : prov.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    for (const auto& m : prov.models) {
      actors::model_route r;
      r.provider = prov.name;
      r.upstream_model = m.upstream_name.empty() ? m.name : m.upstream_name;
      r.base_url = base;
      r.embedding = m.kind == "embedding";
      r.context_window = m.context_window;
      r.connect_timeout_ms = prov.connect_timeout_ms;
      r.first_byte_timeout_ms = prov.first_byte_timeout_ms;
      r.total_timeout_ms = prov.total_timeout_ms;
      p->models.emplace(m.name, std::move(r));
    }
  }
  return p;
}

}  // namespace

struct gateway::impl {
  explicit impl(config::settings s)
      : settings(std::move(s)),
        actor_cfg(make_actor_config(settings.actors)),
        system(*actor_cfg),
        admin(metrics) {}

  config::settings settings;
  std::unique_ptr<caf::actor_system_config> actor_cfg;
  caf::actor_system system;
  node::metrics metrics;
  admin_server admin;
  std::shared_ptr<actors::pipeline> pipeline;
  loop_context ctx;
  std::vector<std::unique_ptr<io_loop>> loops;
  std::string data_addr;
  std::string admin_addr;
  bool started = false;
  bool stopped = false;
};

gateway::gateway(config::settings settings) : impl_(std::make_unique<impl>(std::move(settings))) {}

gateway::~gateway() {
  shutdown();
}

void gateway::start() {
  auto& d = *impl_;
  const auto& s = d.settings;
  log::set_level(s.log.level);

  d.pipeline = make_pipeline(s);
  d.ctx.system = &d.system;
  d.ctx.metrics = &d.metrics;
  d.ctx.settings = &d.settings;
  std::vector<openai::model_card> cards;
  for (const auto& prov : s.providers) {
    for (const auto& m : prov.models) {
      openai::model_card card{m.name, prov.name, 1700000000};
      d.ctx.model_bodies.emplace(m.name, openai::model_body(card));
      cards.push_back(std::move(card));
    }
    if (!prov.api_key_env.empty()) {
      const char* key = std::getenv(prov.api_key_env.c_str());
      if (key != nullptr && *key != '\0') {
        d.ctx.provider_auth.emplace(prov.name, std::string("Authorization: Bearer ") + key);
      } else {
        log::warn("provider_key_missing", {{"provider", prov.name}, {"env", prov.api_key_env}});
      }
    }
  }
  d.ctx.models_body = openai::models_list_body(cards);

  // Data port: one loop per io_thread, each with its own SO_REUSEPORT listener.
  std::string host;
  uint16_t port = 0;
  if (!http::split_host_port(s.server.listen, host, port))
    throw std::runtime_error("server.listen: expected HOST:PORT, got '" + s.server.listen + "'");
  const uint32_t n = std::max(1u, s.server.io_threads);
  for (uint32_t i = 0; i < n; ++i) d.loops.push_back(std::make_unique<io_loop>(i, d.ctx));
  for (auto& l : d.loops) d.pipeline->ports.push_back(l.get());
  d.ctx.pipeline = d.pipeline;
  int bound = d.loops[0]->listen(host, port, n > 1);
  if (bound < 0)
    throw std::runtime_error("cannot listen on " + s.server.listen + ": " + uv_strerror(bound));
  for (uint32_t i = 1; i < n; ++i) {
    int r = d.loops[i]->listen(host, static_cast<uint16_t>(bound), true);
    if (r < 0) throw std::runtime_error("cannot listen on loop " + std::to_string(i));
  }
  d.data_addr = host + ":" + std::to_string(bound);

  std::string admin_host;
  uint16_t admin_port = 0;
  if (!http::split_host_port(s.server.admin_listen, admin_host, admin_port))
    throw std::runtime_error("server.admin_listen: expected HOST:PORT, got '" +
                             s.server.admin_listen + "'");
  int admin_bound = d.admin.bind(admin_host, admin_port);
  if (admin_bound < 0) throw std::runtime_error("cannot listen on " + s.server.admin_listen);
  d.admin_addr = admin_host + ":" + std::to_string(admin_bound);

  d.admin.start();
  for (auto& l : d.loops) l->start();
  d.started = true;
  log::info(
      "node_started",
      {{"node_id", s.node_id}, {"data", d.data_addr}, {"admin", d.admin_addr}, {"io_threads", n}});
}

void gateway::shutdown() {
  auto& d = *impl_;
  if (!d.started || d.stopped) return;
  d.stopped = true;
  log::info("node_draining", {{"grace_ms", d.settings.server.shutdown_grace_ms}});
  std::mutex mx;
  std::condition_variable cv;
  std::size_t drained = 0;
  for (auto& l : d.loops) {
    l->shutdown(d.settings.server.shutdown_grace_ms, [&] {
      std::lock_guard<std::mutex> lock(mx);
      ++drained;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mx);
    cv.wait(lock, [&] { return drained == d.loops.size(); });
  }
  for (auto& l : d.loops) l->join();
  d.admin.stop();
  log::info("node_stopped");
  // The actor system's destructor waits for the last connection actors to settle and quit.
}

std::string gateway::data_address() const {
  return impl_->data_addr;
}
std::string gateway::admin_address() const {
  return impl_->admin_addr;
}

}  // namespace tc::node
