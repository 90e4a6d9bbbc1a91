// The admin port: cpp-httplib (thread per connection, fine for operators and scrapers, never
// the data plane). Serves GET /metrics (Prometheus text), GET /healthz and the cache admin
// calls; handlers may block (they ask actors and wait), the data plane never does.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace tc::node {

class metrics;

/// What the admin port can ask of the node, set by node/node.cpp. Each may block briefly.
struct admin_hooks {
  /// Refreshes gauges that are read from actors (cache sizes) before /metrics is served.
  std::function<void()> before_scrape;
  /// GET /v1/cache: the cache's sizes and counters as JSON.
  std::function<std::string()> cache_stats;
  /// POST /v1/cache/invalidate: body {"tenant","model","namespace"} (each optional) ->
  /// (status, JSON body).
  std::function<std::pair<int, std::string>(const std::string& body)> cache_invalidate;
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
