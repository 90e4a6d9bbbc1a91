// The admin port: cpp-httplib (thread per connection, fine for operators and scrapers, never
// the data plane). Serves GET /metrics (Prometheus text) and GET /healthz for now.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace tc::node {

class metrics;

class admin_server {
 public:
  explicit admin_server(metrics& m);
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
