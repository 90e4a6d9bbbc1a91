#include "node/admin.hpp"

#include <thread>

#include <httplib.h>

#include "node/metrics.hpp"
#include "protocol/openai/error.hpp"

namespace tc::node {

struct admin_server::impl {
  explicit impl(metrics& m) : m(m) {
    srv.set_tcp_nodelay(true);
    srv.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      if (hooks.before_scrape) hooks.before_scrape();
      res.set_content(this->m.serialize(), "text/plain; version=0.0.4");
    });
    srv.Get("/v1/cache", [this](const httplib::Request&, httplib::Response& res) {
      if (!hooks.cache_stats) return not_available(res);
      res.set_content(hooks.cache_stats(), "application/json");
    });
    srv.Post("/v1/cache/invalidate", [this](const httplib::Request& req, httplib::Response& res) {
      if (!hooks.cache_invalidate) return not_available(res);
      auto [status, body] = hooks.cache_invalidate(req.body);
      res.status = status;
      res.set_content(body, "application/json");
    });
    srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404) {
        res.set_content(openai::error_body(openai::unknown_endpoint(req.method, req.path)),
                        "application/json");
      }
    });
  }
  static void not_available(httplib::Response& res) {
    res.status = 503;
    res.set_content(openai::error_body(openai::service_unavailable("The cache is not running.", 0)),
                    "application/json");
  }

  metrics& m;
  admin_hooks hooks;
  httplib::Server srv;
  std::thread thread;
};

admin_server::admin_server(metrics& m) : impl_(std::make_unique<impl>(m)) {}

void admin_server::set_hooks(admin_hooks hooks) {
  impl_->hooks = std::move(hooks);
}

admin_server::~admin_server() {
  stop();
}

int admin_server::bind(const std::string& host, int port) {
  if (port == 0) return impl_->srv.bind_to_any_port(host);
  return impl_->srv.bind_to_port(host, port) ? port : -1;
}

void admin_server::start() {
  impl_->thread = std::thread([this] { impl_->srv.listen_after_bind(); });
}

void admin_server::stop() {
  if (impl_->thread.joinable()) {
    impl_->srv.stop();
    impl_->thread.join();
  }
}

}  // namespace tc::node
