#include "node/upstream/transport.hpp"

namespace tc::upstream {

std::string_view to_string(failure f) {
  switch (f) {
    case failure::none:
      return "none";
    case failure::connect:
      return "connect";
    case failure::connect_timeout:
      return "connect_timeout";
    case failure::first_byte_timeout:
      return "first_byte_timeout";
    case failure::total_timeout:
      return "total_timeout";
    case failure::io:
      return "io";
    case failure::cancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace tc::upstream
