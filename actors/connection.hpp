// The connection actor: one per client request in flight. It runs the request pipeline of
// DESIGN §2 in one place, from auth to settlement. It never touches a socket: the answer leaves
// through an io_port (the node's I/O loop that holds the client connection).
//
// An actor serves one request at a time and is reused for the next one once it has settled:
// CAF 0.17 wakes its clock thread on every actor termination (local_actor::cleanup cancels
// timeouts unconditionally), which measured as one extra context switch per request.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/all.hpp>

#include "protocol/messages.hpp"

namespace tc::actors {

/// The way back to the I/O world. Implemented by node/io_loop; callable from any thread.
class io_port {
 public:
  virtual ~io_port() = default;
  /// Steps 10-12: perform the upstream call and relay its answer to the client. The port sends
  /// exactly one request_outcome back to the connection actor when the request has ended.
  virtual void dispatch(upstream_plan&& plan) = 0;
  /// Answers the client with an error; the request ends there (no outcome follows).
  virtual void reject(reply_target to, openai::api_error&& error) = 0;
};

/// Where a model is served. Built once from config by the node.
struct model_route {
  std::string provider;
  std::string upstream_model;  ///< the model name the provider expects
  std::string base_url;        ///< "http(s)://host/v1" or "sim://<provider>/v1"
  bool embedding = false;      ///< an embedding model (only /v1/embeddings)
  uint32_t context_window = 0;
  uint32_t connect_timeout_ms = 0;
  uint32_t first_byte_timeout_ms = 0;
  uint32_t total_timeout_ms = 0;
};

/// Read-only context shared by every connection actor of a node.
struct pipeline {
  std::unordered_map<std::string, model_route> models;
  std::vector<io_port*> ports;  ///< by reply_target::loop
};

struct connection_state {
  openai::request req;  ///< the request in flight (empty between requests)
  reply_target to;
  std::shared_ptr<const pipeline> ctx;
  static inline const char* name = "connection";
};

/// Spawned by an I/O loop (kept in its pool). Messages, in the order they arrive:
///   (openai::request, reply_target)  a parsed request: runs steps 1-10
///   request_outcome                  how that request ended: step 13, then ready for the next
caf::behavior connection(caf::stateful_actor<connection_state>* self,
                         std::shared_ptr<const pipeline> ctx);

}  // namespace tc::actors
