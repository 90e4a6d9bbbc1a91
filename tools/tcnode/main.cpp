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
#include <cstdlib>
#include <cstring>
#include <iostream>

#include <curl/curl.h>
#include <CLI/CLI.hpp>

#include "config/loader.hpp"
#include "node/log.hpp"
#include "node/memory/thread_cache.hpp"
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

/// tcnode's malloc is the thread-cache allocator (node/memory) unless TC_ALLOCATOR=system asks
/// for glibc's. When it is off for another reason (its address range could not be reserved), or
/// the variable holds a value it does not know, the log says so once: the node still serves,
/// but slower under load.
void check_allocator() {
#if TC_MALLOC_SHIM
  const char* choice = std::getenv("TC_ALLOCATOR");
  const bool system = choice != nullptr && std::strcmp(choice, "system") == 0;
  if (choice != nullptr && *choice != '\0' && !system && std::strcmp(choice, "thread_cache") != 0)
    tc::log::warn("allocator_setting_unknown",
                  {{"TC_ALLOCATOR", choice}, {"expected", "system or thread_cache"}});
  if (const char* why = tc::memory::off_reason(); why != nullptr && !system)
    tc::log::warn("allocator_fallback",
                  {{"why", why}, {"effect", "glibc's malloc serves every allocation"}});
#endif
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
    check_allocator();
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
