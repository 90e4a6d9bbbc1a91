// protocol/openai/error.cpp: the envelope, its escaping, and each status of the error table.
#include <doctest/doctest.h>

#include <string>

#include <rapidjson/document.h>

#include "protocol/openai/error.hpp"

using namespace tc::openai;

namespace {

/// Parses an envelope and checks its shape; returns the inner "error" object's fields.
struct parsed {
  std::string message, type;
  bool param_null = false, code_null = false;
  std::string param, code;
};

parsed parse_envelope(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str(), body.size());
  parsed p;
  REQUIRE_FALSE(d.HasParseError());
  REQUIRE(d.IsObject());
  REQUIRE(d.MemberCount() == 1);
  REQUIRE(d.HasMember("error"));
  const auto& e = d["error"];
  REQUIRE(e.IsObject());
  REQUIRE(e.MemberCount() == 4);
  REQUIRE(e["message"].IsString());
  REQUIRE(e["type"].IsString());
  p.message.assign(e["message"].GetString(), e["message"].GetStringLength());
  p.type = e["type"].GetString();
  p.param_null = e["param"].IsNull();
  p.code_null = e["code"].IsNull();
  if (e["param"].IsString()) p.param = e["param"].GetString();
  if (e["code"].IsString()) p.code = e["code"].GetString();
  return p;
}

}  // namespace

TEST_CASE("error_body: exact bytes and null for empty param and code") {
  CHECK(error_body(invalid_request("Missing required parameter: 'model'.", "model")) ==
        R"({"error":{"message":"Missing required parameter: 'model'.","type":)"
        R"("invalid_request_error","param":"model","code":null}})");
  api_error bare;
  CHECK(error_body(bare) == R"({"error":{"message":"","type":"","param":null,"code":null}})");
}

TEST_CASE("error_body escapes everything JSON needs escaped") {
  const std::string nasty = std::string("quote\" back\\ nl\n tab\t cr\r nul") + '\0' +
                            " ctl\x01 slash/ utf8 \xE4\xBD\xA0 </script>";
  api_error e = invalid_request(nasty, "messages[0].\"content\"");
  const std::string body = error_body(e);
  CHECK(body.find('\n') == std::string::npos);
  CHECK(body.find("\\u0000") != std::string::npos);
  CHECK(body.find("\\u0001") != std::string::npos);
  parsed p = parse_envelope(body);
  CHECK(p.message == nasty);
  CHECK(p.param == "messages[0].\"content\"");
  CHECK(p.code_null);
}

TEST_CASE("each constructor gives the status, type, code and param of the error table") {
  SUBCASE("invalid_request") {
    api_error e = invalid_request("bad");
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.code.empty());
    CHECK(e.param.empty());
    parsed p = parse_envelope(error_body(e));
    CHECK(p.param_null);
    CHECK(p.code_null);
  }
  SUBCASE("model_not_found") {
    api_error e = model_not_found("gpt-9\"x");
    CHECK(e.status == 404);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.code == "model_not_found");
    CHECK(e.param == "model");
    CHECK(e.message == "The model 'gpt-9\"x' does not exist or you do not have access to it.");
    CHECK(parse_envelope(error_body(e)).code == "model_not_found");
  }
  SUBCASE("unknown_endpoint") {
    api_error e = unknown_endpoint("POST", "/v1/foo");
    CHECK(e.status == 404);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.code == "unknown_url");
    CHECK(e.message == "Unknown request URL: POST /v1/foo.");
  }
  SUBCASE("method_not_allowed") {
    api_error e = method_not_allowed("GET", "/v1/chat/completions");
    CHECK(e.status == 405);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.code == "method_not_allowed");
    CHECK(e.message.find("GET /v1/chat/completions") != std::string::npos);
  }
  SUBCASE("request_too_large") {
    api_error e = request_too_large(1048576);
    CHECK(e.status == 413);
    CHECK(e.type == "invalid_request_error");
    CHECK(e.code == "request_too_large");
    CHECK(e.message.find("1048576") != std::string::npos);
  }
  SUBCASE("upstream_error") {
    api_error e = upstream_error("all upstreams failed");
    CHECK(e.status == 502);
    CHECK(e.type == "upstream_error");
    CHECK(e.code == "upstream_error");
    CHECK(e.message == "all upstreams failed");
    CHECK(e.retry_after_s == 0);
  }
  SUBCASE("upstream_timeout") {
    api_error e = upstream_timeout("no answer in 30 s");
    CHECK(e.status == 504);
    CHECK(e.type == "timeout");
    CHECK(e.code == "timeout");
  }
  SUBCASE("service_unavailable") {
    api_error e = service_unavailable("queue full", 3);
    CHECK(e.status == 503);
    CHECK(e.type == "service_unavailable");
    CHECK(e.code == "service_unavailable");
    CHECK(e.retry_after_s == 3);
    parsed p = parse_envelope(error_body(e));
    CHECK(p.message == "queue full");
    CHECK(p.param_null);
  }
}
