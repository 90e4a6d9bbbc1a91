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

}  // namespace tc::openai
