// The process: wires the actor system, the I/O loops, the upstream transports, the admin port
// and the metrics, in dependency order, and stops them in reverse. Nothing else spawns
// long-lived actors or threads.
#pragma once

#include <memory>
#include <string>

#include "config/settings.hpp"

namespace tc::node {

class gateway {
 public:
  explicit gateway(config::settings settings);
  ~gateway();

  /// Starts everything and binds the ports. Throws std::runtime_error when a port cannot be
  /// bound. Afterwards data_address() and admin_address() give the bound HOST:PORT.
  void start();

  /// Graceful stop: stop accepting, drain in-flight requests within server.shutdown_grace_ms,
  /// then stop the loops, the admin port and the actor system. Blocks until done.
  void shutdown();

  std::string data_address() const;
  std::string admin_address() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace tc::node
