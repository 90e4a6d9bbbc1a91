// A RapidJSON document for one short-lived parse on the request path. Pure; any thread.
#pragma once

#include <rapidjson/document.h>

namespace tc::openai {

/// Keeps the first 16 KB of parsed values in the caller's stack frame. RapidJSON's default
/// pool allocates (and on destruction frees) a 64 KB chunk per document, which measured as
/// glibc malloc_consolidate on every request; a typical chat body needs a few KB.
struct stack_document {
  alignas(16) char buffer[16 * 1024];
  rapidjson::MemoryPoolAllocator<> pool{buffer, sizeof buffer};
  rapidjson::Document doc{&pool};
};

/// Forwards a SAX parse (rapidjson::Reader) into `doc` and refuses nesting deeper than
/// `max_depth`, so an untrusted 100,000-deep value fails the parse (too_deep says why) instead
/// of reaching code that walks values recursively. Use with kParseIterativeFlag.
struct depth_limited_handler {
  rapidjson::Document& doc;
  unsigned max_depth;
  unsigned depth = 0;
  bool too_deep = false;

  bool enter() {
    if (++depth <= max_depth) return true;
    too_deep = true;
    return false;
  }
  bool Null() { return doc.Null(); }
  bool Bool(bool b) { return doc.Bool(b); }
  bool Int(int i) { return doc.Int(i); }
  bool Uint(unsigned i) { return doc.Uint(i); }
  bool Int64(int64_t i) { return doc.Int64(i); }
  bool Uint64(uint64_t i) { return doc.Uint64(i); }
  bool Double(double d) { return doc.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return doc.String(s, n, copy); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return doc.Key(s, n, copy); }
  bool StartObject() { return enter() && doc.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth;
    return doc.EndObject(n);
  }
  bool StartArray() { return enter() && doc.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth;
    return doc.EndArray(n);
  }
};

}  // namespace tc::openai
