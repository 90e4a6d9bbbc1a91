#include "node/admin.hpp"

#include <atomic>
#include <chrono>
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
    auto api = [this](const httplib::Request& req, httplib::Response& res) {
      if (!hooks.api) {
        res.status = 503;
        res.set_content(
            openai::error_body(openai::service_unavailable("The admin API is not running.", 1)),
            "application/json");
        return;
      }
      admin_call call;
      call.method = req.method;
      call.path = req.path;
      for (const auto& [k, v] : req.params) call.query.emplace_back(k, v);
      call.body = req.body;
      call.authorization = req.get_header_value("Authorization");
      admin_answer a = hooks.api(call);
      res.status = a.status;
      res.set_content(a.body, a.content_type.c_str());
    };
    srv.Get(R"(/v1/.*)", api);
    srv.Post(R"(/v1/.*)", api);
    srv.Put(R"(/v1/.*)", api);
    srv.Patch(R"(/v1/.*)", api);
    srv.Delete(R"(/v1/.*)", api);
    srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (res.status == 404 && res.body.empty()) {  // no route (a route's own 404 has a body)
        res.set_content(openai::error_body(openai::unknown_endpoint(req.method, req.path)),
                        "application/json");
      }
    });
  }
  metrics& m;
  admin_hooks hooks;
  httplib::Server srv;
  std::thread thread;
  std::atomic<bool> served{false};  ///< listen_after_bind() has returned
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
  impl_->thread = std::thread([this] {
    impl_->srv.listen_after_bind();
    impl_->served.store(true, std::memory_order_release);
  });
}

void admin_server::stop() {
  if (!impl_->thread.joinable()) return;
  // httplib's stop() acts only once the thread is in its accept loop (is_running()); called
  // before that, it does nothing and the loop then blocks in accept() for good (a SIGTERM just
  // after the ready line). So wait for the loop, or for the thread to have left it on its own.
  while (!impl_->srv.is_running() && !impl_->served.load(std::memory_order_acquire))
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  impl_->srv.stop();  // once: httplib asserts that the socket it closes is still open
  impl_->thread.join();
}

}  // namespace tc::node
