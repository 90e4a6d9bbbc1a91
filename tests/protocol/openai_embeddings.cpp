// protocol/openai/embeddings: the body of the gateway's own /v1/embeddings call, and the
// vectors read back from an answer that came from outside.
#include "protocol/openai/embeddings.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

using tc::openai::embeddings_body;
using tc::openai::l2_normalize;
using tc::openai::parse_embeddings;

namespace {

/// Standard base64 of the little-endian float32 bytes of `v` (as the OpenAI API sends it).
std::string base64_floats(const std::vector<float>& v) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  for (float f : v) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    for (int b = 0; b < 4; ++b) bytes.push_back(static_cast<char>(bits >> (8 * b)));
  }
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<unsigned char>(bytes[i + 2]);
    out += abc[(n >> 18) & 63];
    out += abc[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? abc[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? abc[n & 63] : '=';
  }
  return out;
}

}  // namespace

TEST_CASE("embeddings_body: the texts as a list, dimensions only when asked") {
  CHECK(embeddings_body("m", {"a", "b \"q\""}) == R"({"model":"m","input":["a","b \"q\""]})");
  CHECK(embeddings_body("m", {"x"}, 256) == R"({"model":"m","input":["x"],"dimensions":256})");
  // Invalid UTF-8 is replaced: the body always parses.
  CHECK(embeddings_body("m", {std::string("a\xff")}) == R"({"model":"m","input":["a\ufffd"]})");
}

TEST_CASE("parse_embeddings: vectors by index, as numbers or base64") {
  std::vector<std::vector<float>> out;
  std::string error;
  const std::string body = R"({"object":"list","data":[)"
                           R"({"object":"embedding","index":1,"embedding":[0,1.5,-2]},)"
                           R"({"object":"embedding","index":0,"embedding":")" +
                           base64_floats({0.25f, -1, 3}) + R"("}],"model":"m"})";
  REQUIRE(parse_embeddings(body, 2, 3, out, error));
  CHECK(out[0] == std::vector<float>{0.25f, -1, 3});
  CHECK(out[1] == std::vector<float>{0, 1.5f, -2});
}

TEST_CASE("parse_embeddings: what does not fit is refused with a reason") {
  std::vector<std::vector<float>> out;
  auto reason = [&](const std::string& body, size_t count = 1, uint32_t dim = 2) {
    std::string error;
    if (parse_embeddings(body, count, dim, out, error)) return std::string("<accepted>");
    return error;
  };
  CHECK(reason("nope") == "bad_json");
  CHECK(reason(R"({"data":{}})") == "bad_json");
  CHECK(reason(R"({"error":{"message":"x"}})") == "bad_json");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,2]}]})", 2) == "count");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,2]},{"index":0,"embedding":[1,2]}]})", 2) ==
        "count");
  CHECK(reason(R"({"data":[{"index":5,"embedding":[1,2]}]})") == "count");
  CHECK(reason(R"({"data":[{"index":-1,"embedding":[1,2]}]})") == "bad_json");
  CHECK(reason(R"({"data":[{"embedding":[1,2]}]})") == "bad_json");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,2,3]}]})") == "dimension");
  CHECK(reason(R"({"data":[{"index":0,"embedding":")" + base64_floats({1, 2, 3}) + R"("}]})") ==
        "dimension");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,"2"]}]})") == "value");
  CHECK(reason(R"({"data":[{"index":0,"embedding":"***"}]})") == "value");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,1e999]}]})") != "<accepted>");
  const float inf = std::numeric_limits<float>::infinity();
  CHECK(reason(R"({"data":[{"index":0,"embedding":")" + base64_floats({1, inf}) + R"("}]})") ==
        "value");
  CHECK(reason(R"({"data":[{"index":0,"embedding":[1,2]}]})") == "<accepted>");
  // Deep nesting is parsed iteratively (no stack overflow), and refused.
  CHECK(reason(std::string(100000, '[') + std::string(100000, ']')) == "bad_json");
}

TEST_CASE("l2_normalize: unit length, a zero vector stays zero, non-finite is refused") {
  std::vector<float> v{3, 0, 4};
  REQUIRE(l2_normalize(v));
  CHECK(v[0] == doctest::Approx(0.6));
  CHECK(v[2] == doctest::Approx(0.8));
  std::vector<float> zero{0, 0};
  REQUIRE(l2_normalize(zero));
  CHECK(zero == std::vector<float>{0, 0});
  std::vector<float> bad{1, std::nanf("")};
  CHECK(!l2_normalize(bad));
}
