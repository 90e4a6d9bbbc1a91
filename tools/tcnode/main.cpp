// tcnode: one TokensChain gateway node.
//   tcnode --config FILE [--listen HOST:PORT] [--admin-listen HOST:PORT]
//   tcnode --check-config FILE
//   tcnode --print-config-reference
// Prints `ready data=HOST:PORT admin=HOST:PORT` on stdout once serving; logs are JSON lines on
// stderr. SIGTERM or SIGINT drains in-flight requests and exits 0.
#include <pthread.h>
#include <sys/resource.h>
#include <csignal>
#include <cstdio>
#include <iostream>

#include <curl/curl.h>
#include <CLI/CLI.hpp>

#include "config/loader.hpp"
#include "node/log.hpp"
#include "node/node.hpp"

namespace {

/// Lets one node hold tens of thousands of connections: soft fd limit up to the hard one.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcnode: a TokensChain inference gateway node"};
  std::string config_path = "config/tokenschain.toml";
  std::string check_path;
  std::string listen;
  std::string admin_listen;
  bool print_reference = false;
  app.add_option("--config", config_path, "configuration file (TOML)");
  app.add_option("--check-config", check_path, "validate FILE and exit (0 = valid)");
  app.add_option("--listen", listen, "data port HOST:PORT (overrides server.listen; port 0 picks)");
  app.add_option("--admin-listen", admin_listen,
                 "admin port HOST:PORT (overrides server.admin_listen; port 0 picks)");
  app.add_flag("--print-config-reference", print_reference,
               "print the configuration reference (docs/config.md) and exit");
  CLI11_PARSE(app, argc, argv);

  if (print_reference) {
    std::cout << tc::config::reference_markdown();
    return 0;
  }
  if (!check_path.empty()) {
    try {
      tc::config::load_file(check_path);
      std::cout << check_path << ": ok\n";
      return 0;
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }

  tc::config::settings settings;
  try {
    settings = tc::config::load_file(config_path);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  if (!listen.empty()) settings.server.listen = listen;
  if (!admin_listen.empty()) settings.server.admin_listen = admin_listen;

  // Signals: every thread inherits this mask; the main thread alone waits for them.
  std::signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  raise_fd_limit();
  curl_global_init(CURL_GLOBAL_DEFAULT);

  int rc = 0;
  try {
    tc::node::gateway n(std::move(settings));
    n.start();
    std::printf("ready data=%s admin=%s\n", n.data_address().c_str(), n.admin_address().c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    tc::log::info("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    n.shutdown();
  } catch (const std::exception& e) {
    tc::log::error("fatal", {{"what", e.what()}});
    rc = 1;
  }
  curl_global_cleanup();
  tc::log::info("exit", {{"code", rc}});
  return rc;
}
