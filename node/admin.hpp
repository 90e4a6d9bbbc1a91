// The admin port: cpp-httplib (thread per connection, fine for operators and scrapers, never
// the data plane). Serves GET /metrics (Prometheus text), GET /healthz and the cache admin
// calls; handlers may block (they ask actors and wait), the data plane never does.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace tc::node {

class metrics;

/// One call to the admin API (any method under /v1/), as the hook sees it.
struct admin_call {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;  ///< decoded ?name=value pairs
  std::string body;
  std::string authorization;  ///< the Authorization header as sent
};

struct admin_answer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

/// What the admin port can ask of the node, set by node/node.cpp. Each may block briefly.
struct admin_hooks {
  /// Refreshes gauges that are read from actors (cache sizes) before /metrics is served.
  std::function<void()> before_scrape;
  /// Every call under /v1/ (node/admin_api): authentication, roles and the routes.
  std::function<admin_answer(const admin_call&)> api;
};

class admin_server {
 public:
  explicit admin_server(metrics& m);
  /// Installs the hooks (before start()).
  void set_hooks(admin_hooks hooks);
  ~admin_server();

  /// Binds host:port (0 picks a free port). Returns the bound port or -1.
  int bind(const std::string& host, int port);
  /// Serves on a thread of its own until stop().
  void start();
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::node
