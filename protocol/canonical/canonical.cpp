// Chunk -> arrange -> canonicalize -> hash: the cache and dedup keys of a request.
//
// The body is parsed once (RapidJSON SAX: iterative, in situ on a per-thread copy, numbers kept
// as their source text) into a flat tree of nodes held in per-thread buffers that are reused
// from call to call, so a warm call allocates nothing but the strings it hands back. The
// canonical writer walks that tree with an explicit stack, not recursion, so any nesting depth
// is safe (parse_request caps request bodies at 128 levels anyway; canonical_json takes any
// JSON). Every block is appended to one per-thread buffer and the hashes are fed from it.
//
// Numbers: a literal without fraction or exponent is an exact integer and is written as is (so
// seeds 2^53 and 2^53+1 stay distinct); any other literal is read as the nearest double
// (correctly rounded) and written as an integer when integral and within +-2^53, else as the
// shortest text that reads back as the same double. So 1 == 1.0 == 1e0 and 0.7 == 7e-1.
//
// make_key remembers its last keys per thread (key_memo): the same bytes with the same scope,
// model and version give the same key without being parsed and hashed again.
#include "protocol/canonical/canonical.hpp"
#include "protocol/memo.hpp"

#include <rapidjson/reader.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <memory>

namespace tc::canonical {

namespace {

// ---------------------------------------------------------------------------------------------
// The parsed tree

enum class kind : uint8_t { null_value, false_value, true_value, number, string, array, object };

/// One JSON value. Strings and numbers point into the in-situ parse text; a container's
/// children are contiguous in tree::nodes from `first` (an object's alternate key, value).
struct node {
  const char* str;  ///< string or number text (not NUL-terminated)
  uint32_t len;     ///< string/number: bytes; array: elements; object: members
  uint32_t first;   ///< array/object: index of the first child in tree::nodes
  kind k;

  std::string_view text() const { return {str, len}; }
};

/// A growable array of trivially copyable T that keeps its storage across clear().
template <class T>
class pod_stack {
 public:
  std::size_t size() const { return size_; }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  void clear() { size_ = 0; }
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
  }
  /// Room for `n` more; returns where the first goes. push with `commit`.
  T* reserve(std::size_t n) {
    if (capacity_ - size_ < n) grow(n);
    return data_.get() + size_;
  }
  void commit(std::size_t n) { size_ += n; }
  T& push() {
    T* slot = reserve(1);
    ++size_;
    return *slot;
  }
  void push(const T& v) { push() = v; }
  /// Frees the storage if it is larger than `keep` elements.
  void trim(std::size_t keep) {
    if (capacity_ > keep) {
      data_.reset();
      capacity_ = size_ = 0;
    }
  }

 private:
  [[gnu::noinline]] void grow(std::size_t n) {
    const std::size_t cap = std::max(capacity_ * 2, std::max<std::size_t>(size_ + n, 64));
    std::unique_ptr<T[]> bigger(new T[cap]);
    if (size_ != 0) std::memcpy(bigger.get(), data_.get(), size_ * sizeof(T));
    data_ = std::move(bigger);
    capacity_ = cap;
  }

  std::unique_ptr<T[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

struct tree {
  pod_stack<node> nodes;  ///< children of closed containers
  pod_stack<node> open;   ///< values whose container is still being parsed

  const node* children(const node& n) const { return nodes.data() + n.first; }
};

/// SAX handler that builds a tree. Containers move their children from `open` to `nodes` when
/// they close, so each container's children end up contiguous. Nodes are written field by
/// field in place (a node built on the stack and then copied measured as a store stall).
struct tree_builder {
  tree& t;

  bool push(kind k, const char* s, uint32_t len, uint32_t first) {
    node& n = t.open.push();
    n.str = s;
    n.len = len;
    n.first = first;
    n.k = k;
    return true;
  }
  bool close(kind k, rapidjson::SizeType count, std::size_t children) {
    if (children > t.open.size()) return false;  // cannot happen: the reader balances events
    const std::size_t from = t.open.size() - children;
    const auto first = static_cast<uint32_t>(t.nodes.size());
    node* to = t.nodes.reserve(children);
    if (children != 0) std::memcpy(to, t.open.data() + from, children * sizeof(node));
    t.nodes.commit(children);
    t.open.resize(from);
    return push(k, nullptr, count, first);
  }

  bool Null() { return push(kind::null_value, nullptr, 0, 0); }
  bool Bool(bool b) { return push(b ? kind::true_value : kind::false_value, nullptr, 0, 0); }
  // kParseNumbersAsStringsFlag routes every number to RawNumber; these are never called.
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(int64_t) { return false; }
  bool Uint64(uint64_t) { return false; }
  bool Double(double) { return false; }
  bool RawNumber(const char* s, rapidjson::SizeType len, bool) {
    return push(kind::number, s, len, 0);
  }
  bool String(const char* s, rapidjson::SizeType len, bool) {
    return push(kind::string, s, len, 0);
  }
  bool Key(const char* s, rapidjson::SizeType len, bool) { return push(kind::string, s, len, 0); }
  bool StartObject() { return true; }
  bool EndObject(rapidjson::SizeType n) { return close(kind::object, n, std::size_t{n} * 2); }
  bool StartArray() { return true; }
  bool EndArray(rapidjson::SizeType n) { return close(kind::array, n, n); }
};

// ---------------------------------------------------------------------------------------------
// The canonical writer

/// A byte range of workspace::out (offsets: `out` may grow while blocks are written).
struct span {
  std::size_t offset = 0;
  std::size_t size = 0;
};

struct tool_entry {
  std::string_view name;  ///< the tool's name, or empty; points into the parse text
  span text;
};

/// An open container while writing.
struct frame {
  const node* children;
  uint32_t count;
  uint32_t pos;
  uint32_t order_begin;  ///< objects: their sorted member order in workspace::order
  bool object;
};

/// Per-thread state, reused by every call so a warm call does not allocate.
struct workspace {
  std::string text;  ///< in-situ parse copy of the input
  rapidjson::Reader reader;
  tree t;
  node root{};
  pod_stack<frame> frames;
  pod_stack<uint32_t> order;  ///< member orders of the objects being written
  pod_stack<char> out;        ///< canonical text of every block
  pod_stack<span> system, history;
  pod_stack<tool_entry> tools;
  pod_stack<uint32_t> params;  ///< indices of the counted top-level members
  span query, params_text;
  std::string query_text;

  /// Drops buffers a rare huge input grew, so one big request does not pin memory per thread.
  void trim() {
    constexpr std::size_t keep_bytes = 1 << 20;
    if (text.capacity() > keep_bytes) std::string().swap(text);
    if (query_text.capacity() > keep_bytes) std::string().swap(query_text);
    out.trim(keep_bytes);
    t.nodes.trim(keep_bytes / sizeof(node));
    t.open.trim(keep_bytes / sizeof(node));
    frames.trim(keep_bytes / sizeof(frame));
    order.trim(keep_bytes / sizeof(uint32_t));
    params.trim(keep_bytes / sizeof(uint32_t));
    system.trim(keep_bytes / sizeof(span));
    history.trim(keep_bytes / sizeof(span));
    tools.trim(keep_bytes / sizeof(tool_entry));
  }
};

workspace& local_workspace() {
  thread_local workspace w;
  return w;
}

void put(pod_stack<char>& out, char c) {
  out.push() = c;
}

void put(pod_stack<char>& out, std::string_view s) {
  std::memcpy(out.reserve(s.size()), s.data(), s.size());
  out.commit(s.size());
}

/// What each byte becomes inside a JSON string: 0 = itself, 'u' = \u00XX, else \ and that char.
constexpr auto escape_table = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['"'] = '"';
  t['\\'] = '\\';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}();

/// True if any of the 8 bytes in `w` is a control character, '"' or '\\'. May report true for
/// a clean word after a byte that needs escaping (borrows), never false for a dirty one.
bool word_needs_escape(uint64_t w) {
  constexpr uint64_t ones = 0x0101010101010101ULL;
  constexpr uint64_t highs = 0x8080808080808080ULL;
  auto has_zero = [](uint64_t v) { return (v - ones) & ~v & highs; };
  const uint64_t below_space = (w - ones * 0x20) & ~w & highs;
  return (below_space | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\'))) != 0;
}

/// Writes `s` as a JSON string: only '"', '\\' and control characters are escaped. Scans and
/// copies 8 bytes at a time while no byte needs escaping (strings are mostly plain text).
void write_string(std::string_view s, pod_stack<char>& out) {
  const char* p = s.data();
  const char* const end = p + s.size();
  char* start = out.reserve(s.size() + 2);  // grows again only for escapes
  char* d = start;
  *d++ = '"';
  while (p != end) {
    while (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, sizeof w);
      if (word_needs_escape(w)) break;
      std::memcpy(d, &w, sizeof w);
      p += 8;
      d += 8;
    }
    // Up to 8 bytes one at a time: the word that needs an escape, or the tail.
    const char* const stop = end - p >= 8 ? p + 8 : end;
    for (; p != stop; ++p) {
      const auto c = static_cast<unsigned char>(*p);
      const char e = escape_table[c];
      if (e == 0) {
        *d++ = *p;
        continue;
      }
      out.commit(static_cast<std::size_t>(d - start));
      // Room for this escape (up to 6 bytes), the rest of the input and the closing quote.
      start = d = out.reserve(static_cast<std::size_t>(end - p) + 6);
      *d++ = '\\';
      if (e == 'u') {
        static constexpr char hex[] = "0123456789ABCDEF";
        const char esc[5] = {'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        std::memcpy(d, esc, sizeof esc);
        d += sizeof esc;
      } else {
        *d++ = e;
      }
    }
  }
  *d++ = '"';
  out.commit(static_cast<std::size_t>(d - start));
}

/// Writes a JSON number literal (already validated by the parser) in the one canonical format.
void write_number(std::string_view s, pod_stack<char>& out) {
  if (s.find_first_of(".eE") == std::string_view::npos) {
    // An integer literal: JSON allows no leading zeros, so its text is canonical but for "-0".
    put(out, s == "-0" ? std::string_view("0") : s);
    return;
  }
  double d = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    put(out, s);  // out of double range (1e-400): keep the text, a miss at worst
    return;
  }
  char buf[32];
  std::to_chars_result r;
  constexpr double exact_integers = 9007199254740992.0;  // 2^53
  if (std::fabs(d) <= exact_integers && d == static_cast<double>(static_cast<int64_t>(d))) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(d));  // -0.0 too gives "0"
  } else {
    r = std::to_chars(buf, buf + sizeof buf, d);  // shortest round-trip
  }
  put(out, std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

/// Member order: keys by unsigned bytes, equal keys in their original order, since upstream
/// parsers keep the last of duplicates.
bool key_less(const node* members, uint32_t a, uint32_t b) {
  const node& ka = members[2 * a];
  const node& kb = members[2 * b];
  // Keys are short and usually differ early: a byte loop beats a call to memcmp here.
  const uint32_t n = std::min(ka.len, kb.len);
  for (uint32_t i = 0; i < n; ++i) {
    const auto ca = static_cast<unsigned char>(ka.str[i]);
    const auto cb = static_cast<unsigned char>(kb.str[i]);
    if (ca != cb) return ca < cb;
  }
  return ka.len < kb.len || (ka.len == kb.len && a < b);
}

/// Fills `order` with 0..count-1 sorted by key_less.
void sort_members(const node* members, uint32_t count, uint32_t* order) {
  for (uint32_t i = 0; i < count; ++i) order[i] = i;
  auto less = [members](uint32_t a, uint32_t b) { return key_less(members, a, b); };
  if (count > 16) {
    std::sort(order, order + count, less);
    return;
  }
  for (uint32_t i = 1; i < count; ++i) {  // objects are small: insertion sort
    const uint32_t v = order[i];
    uint32_t j = i;
    for (; j > 0 && less(v, order[j - 1]); --j) order[j] = order[j - 1];
    order[j] = v;
  }
}

/// Writes a scalar, or opens a container (pushing a frame if it is not empty).
void open_value(workspace& w, const node& n, pod_stack<char>& out) {
  switch (n.k) {
    case kind::null_value:
      put(out, "null");
      return;
    case kind::false_value:
      put(out, "false");
      return;
    case kind::true_value:
      put(out, "true");
      return;
    case kind::number:
      write_number(n.text(), out);
      return;
    case kind::string:
      write_string(n.text(), out);
      return;
    case kind::array:
    case kind::object:
      break;
  }
  const bool object = n.k == kind::object;
  if (n.len == 0) {
    put(out, object ? "{}" : "[]");
    return;
  }
  put(out, object ? '{' : '[');
  const node* children = w.t.children(n);
  const auto order_begin = static_cast<uint32_t>(w.order.size());
  if (object) {
    sort_members(children, n.len, w.order.reserve(n.len));
    w.order.commit(n.len);
  }
  w.frames.push(frame{children, n.len, 0, order_begin, object});
}

/// Writes `v` canonically. Iterative: containers go on w.frames, so depth costs heap, not stack.
void write_value(workspace& w, const node& v, pod_stack<char>& out) {
  const std::size_t base = w.frames.size();
  open_value(w, v, out);
  while (w.frames.size() > base) {
    frame& f = w.frames[w.frames.size() - 1];
    if (f.pos == f.count) {
      put(out, f.object ? '}' : ']');
      w.order.resize(f.order_begin);
      w.frames.resize(w.frames.size() - 1);
      continue;
    }
    if (f.pos != 0) put(out, ',');
    const node* child;
    if (f.object) {
      const node* member = f.children + 2 * std::size_t{w.order[f.order_begin + f.pos]};
      write_string(member[0].text(), out);
      put(out, ':');
      child = member + 1;
    } else {
      child = f.children + f.pos;
    }
    ++f.pos;
    open_value(w, *child, out);  // may push a frame: `f` is not used after this
  }
}

/// Appends the canonical text of `v` to w.out and returns where it is.
span emit(workspace& w, const node& v) {
  const std::size_t begin = w.out.size();
  write_value(w, v, w.out);
  return span{begin, w.out.size() - begin};
}

std::string_view view(const workspace& w, span s) {
  return {w.out.data() + s.offset, s.size};
}

// ---------------------------------------------------------------------------------------------
// Parsing and chunking

constexpr unsigned parse_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseInsituFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

/// Parses `json` into w.t / w.root. False if it is not one valid JSON value.
template <unsigned ExtraFlags>
bool parse(workspace& w, std::string_view json) {
  // RapidJSON's in-situ stream ends at a NUL, which would accept "1\0garbage".
  if (std::memchr(json.data(), '\0', json.size()) != nullptr) return false;
  w.text.assign(json);
  w.t.nodes.clear();
  w.t.open.clear();
  w.frames.clear();
  w.order.clear();
  tree_builder builder{w.t};
  rapidjson::InsituStringStream in(w.text.data());
  const rapidjson::ParseResult result = w.reader.Parse<parse_flags | ExtraFlags>(in, builder);
  if (result.IsError() || w.t.open.size() != 1) return false;
  w.root = w.t.open[0];
  return true;
}

/// The member of object `obj` named `name` (the last one, as upstream parsers keep), or null.
const node* member(const workspace& w, const node& obj, std::string_view name) {
  if (obj.k != kind::object) return nullptr;
  const node* m = w.t.children(obj);
  const node* found = nullptr;
  for (uint32_t i = 0; i < obj.len; ++i) {
    if (m[2 * i].text() == name) found = &m[2 * i + 1];
  }
  return found;
}

bool is_string(const node* n, std::string_view value) {
  return n != nullptr && n->k == kind::string && n->text() == value;
}

bool is_system(const workspace& w, const node& message) {
  const node* role = member(w, message, "role");
  return is_string(role, "system") || is_string(role, "developer");
}

/// A tool's name: tools[i][tools[i].type].name ("function" -> function.name), or empty.
std::string_view tool_name(const workspace& w, const node& tool) {
  const node* type = member(w, tool, "type");
  if (type == nullptr || type->k != kind::string) return {};
  const node* body = member(w, tool, type->text());
  const node* name = body == nullptr ? nullptr : member(w, *body, "name");
  return name != nullptr && name->k == kind::string ? name->text() : std::string_view{};
}

/// Chat content as plain text: a string, or the "text" of its text parts joined by "\n".
void content_text(const workspace& w, const node* content, std::string& out) {
  out.clear();
  if (content == nullptr) return;
  if (content->k == kind::string) {
    out.assign(content->text());
    return;
  }
  if (content->k != kind::array) return;
  const node* parts = w.t.children(*content);
  bool first = true;
  for (uint32_t i = 0; i < content->len; ++i) {
    const node* text = member(w, parts[i], "text");
    if (!is_string(member(w, parts[i], "type"), "text") || text == nullptr ||
        text->k != kind::string) {
      // An image, audio or file part: the text alone does not say what was asked, so the
      // template and semantic tiers must not compare it (empty query text turns them off).
      out.clear();
      return;
    }
    if (!first) out += '\n';
    out.append(text->text());
    first = false;
  }
}

/// A prompt or input as plain text: a string, or its strings joined by "\n" (token ids: empty).
void prompt_text(const workspace& w, const node& v, std::string& out) {
  out.clear();
  if (v.k == kind::string) {
    out.assign(v.text());
    return;
  }
  if (v.k != kind::array) return;
  const node* items = w.t.children(v);
  bool first = true;
  for (uint32_t i = 0; i < v.len; ++i) {
    if (items[i].k != kind::string) continue;
    if (!first) out += '\n';
    out.append(items[i].text());
    first = false;
  }
}

bool is_ignored(std::string_view k) {
  for (std::string_view f : ignored_fields()) {
    if (k == f) return true;
  }
  return false;
}

/// Steps 1-3 into the per-thread workspace: parse once, split into blocks, write each block's
/// canonical text into w.out. `messages` or `tools` that is not a non-empty array is not split
/// but counted as a parameter, so it still changes the keys ("tools":[] is not "no tools": some
/// providers refuse it).
bool arrange(const openai::request& req, workspace& w, std::string& error) {
  w.out.clear();
  w.system.clear();
  w.history.clear();
  w.tools.clear();
  w.params.clear();
  w.query = {};
  w.params_text = {};
  w.query_text.clear();
  if (!parse<0>(w, req.body)) {
    error = "request body is not valid JSON";
    return false;
  }
  if (w.root.k != kind::object) {
    error = "request body is not a JSON object";
    return false;
  }
  w.out.reserve(req.body.size() + 64);

  const node root = w.root;
  const node* members = w.t.children(root);
  const node* messages = nullptr;
  const node* tools = nullptr;
  const node* query = nullptr;  // prompt or input
  for (uint32_t i = 0; i < root.len; ++i) {
    const std::string_view k = members[2 * i].text();
    const node& v = members[2 * i + 1];
    if (k == "model" || is_ignored(k)) continue;  // the model is hashed from req.model
    switch (req.kind) {
      case openai::endpoint::chat_completions:
        if (k == "messages" && messages == nullptr && v.k == kind::array && v.len > 0) {
          messages = &v;
          continue;
        }
        if (k == "tools" && tools == nullptr && v.k == kind::array && v.len > 0) {
          tools = &v;
          continue;
        }
        break;
      case openai::endpoint::completions:
        if (k == "prompt" && query == nullptr) {
          query = &v;
          continue;
        }
        break;
      case openai::endpoint::embeddings:
        if (k == "input" && query == nullptr) {
          query = &v;
          continue;
        }
        break;
    }
    w.params.push(i);
  }

  if (messages != nullptr) {
    const node* m = w.t.children(*messages);
    const uint32_t last = messages->len - 1;
    uint32_t i = 0;
    for (; i < last && is_system(w, m[i]); ++i) w.system.push(emit(w, m[i]));
    for (; i < last; ++i) w.history.push(emit(w, m[i]));
    w.query = emit(w, m[last]);
    content_text(w, member(w, m[last], "content"), w.query_text);
  }
  if (tools != nullptr) {
    const node* t = w.t.children(*tools);
    for (uint32_t i = 0; i < tools->len; ++i) {
      w.tools.push(tool_entry{tool_name(w, t[i]), emit(w, t[i])});
    }
    std::sort(w.tools.data(), w.tools.data() + w.tools.size(),
              [&w](const tool_entry& a, const tool_entry& b) {
                if (a.name != b.name) return a.name < b.name;
                return view(w, a.text) < view(w, b.text);
              });
  }
  if (query != nullptr) {
    w.query = emit(w, *query);
    prompt_text(w, *query, w.query_text);
  }

  const std::size_t begin = w.out.size();
  std::sort(w.params.data(), w.params.data() + w.params.size(),
            [members](uint32_t a, uint32_t b) { return key_less(members, a, b); });
  put(w.out, '{');
  for (std::size_t j = 0; j < w.params.size(); ++j) {
    if (j != 0) put(w.out, ',');
    const node* m = members + 2 * std::size_t{w.params[j]};
    write_string(m[0].text(), w.out);
    put(w.out, ':');
    write_value(w, m[1], w.out);
  }
  put(w.out, '}');
  w.params_text = span{begin, w.out.size() - begin};
  return true;
}

hasher& local_hasher() {
  thread_local hasher h;
  return h;
}

/// The history hash of a request without history (as make_key computes it for a list).
const digest& empty_history() {
  static const digest d = [] {
    hasher h;
    return h.add("tc.history.v1").add(uint64_t{0}).finish();
  }();
  return d;
}

/// make_key's recent keys on this thread, by everything they were made from: the endpoint (the
/// tag), the exact body bytes, the model as hashed, the scope and the model version. A repeated
/// request then costs a byte comparison instead of a parse, a canonical rewrite and five
/// SHA-256 digests, which were a sixth of an I/O loop's time per exact hit.
using key_memo = recent_results<key, 4>;

key_memo& local_key_memo() {
  thread_local key_memo m;
  return m;
}

key_memo::input memo_input(const openai::request& req, std::string_view scope,
                           std::string_view version) {
  return {req.body, req.model, scope, version};
}

}  // namespace

const std::vector<std::string_view>& ignored_fields() {
  static const std::vector<std::string_view> fields = {
      "stream",           "stream_options",   "user", "metadata", "store", "service_tier",
      "prompt_cache_key", "safety_identifier"};
  return fields;
}

bool chunk(const openai::request& req, blocks& out, std::string& error) {
  workspace& w = local_workspace();
  const bool ok = arrange(req, w, error);
  if (ok) {
    auto copy = [&w](const pod_stack<span>& from, std::vector<std::string>& to) {
      to.clear();
      for (std::size_t i = 0; i < from.size(); ++i) to.emplace_back(view(w, from[i]));
    };
    copy(w.system, out.system);
    copy(w.history, out.history);
    out.tools.clear();
    for (std::size_t i = 0; i < w.tools.size(); ++i)
      out.tools.emplace_back(view(w, w.tools[i].text));
    out.query_message.assign(view(w, w.query));
    out.query_text.assign(w.query_text);
    out.params.assign(view(w, w.params_text));
  }
  w.trim();
  return ok;
}

bool canonical_json(std::string_view json, std::string& out) {
  workspace& w = local_workspace();
  out.clear();
  const bool ok = parse<rapidjson::kParseValidateEncodingFlag>(w, json);
  if (ok) {
    w.out.clear();
    write_value(w, w.root, w.out);
    out.assign(w.out.data(), w.out.size());
  }
  w.trim();
  return ok;
}

bool make_key(const openai::request& req, std::string_view scope, std::string_view model_version,
              key& out, std::string& error) {
  key_memo& memo = local_key_memo();
  const auto tag = static_cast<uint64_t>(req.kind);
  if (const key* known = memo.find(tag, memo_input(req, scope, model_version))) {
    out = *known;
    out.deterministic = deterministic(req);
    return true;
  }
  workspace& w = local_workspace();
  if (!arrange(req, w, error)) {
    w.trim();
    return false;
  }
  // Each digest starts with its own tag, and every part is length-prefixed or fixed-size with
  // counts before lists, so no two different inputs (or two different digests) share a preimage.
  const auto endpoint = static_cast<uint64_t>(req.kind);
  hasher& h = local_hasher();

  h.add("tc.prefix.v1").add(req.model).add(static_cast<uint64_t>(w.system.size()));
  for (std::size_t i = 0; i < w.system.size(); ++i) h.add(view(w, w.system[i]));
  h.add(static_cast<uint64_t>(w.tools.size()));
  for (std::size_t i = 0; i < w.tools.size(); ++i) h.add(view(w, w.tools[i].text));
  out.prefix_hash = h.finish();

  if (w.history.size() == 0) {
    out.history_hash = empty_history();  // single-turn: most requests, one SHA finish saved
  } else {
    h.add("tc.history.v1").add(static_cast<uint64_t>(w.history.size()));
    for (std::size_t i = 0; i < w.history.size(); ++i) h.add(view(w, w.history[i]));
    out.history_hash = h.finish();
  }

  h.add("tc.params.v1").add(endpoint).add(req.model).add(model_version);
  h.add(view(w, w.params_text));
  out.params_hash = h.finish();

  // The blocks enter through the digests above: as collision-resistant as hashing them again,
  // and the body is hashed once instead of twice.
  h.add("tc.full.v1").add(scope).add(endpoint).add(req.model).add(model_version);
  h.add(out.prefix_hash).add(out.history_hash).add(out.params_hash).add(view(w, w.query));
  out.full_hash = h.finish();

  h.add("tc.namespace.v1").add(scope).add(req.model).add(model_version);
  h.add(out.prefix_hash).add(out.params_hash);
  out.namespace_hash = h.finish();

  out.query_text.assign(w.query_text);
  out.single_turn = w.history.size() == 0;
  out.deterministic = deterministic(req);
  w.trim();
  memo.keep(tag, memo_input(req, scope, model_version), out);
  return true;
}

bool deterministic(const openai::request& req) {
  return (req.temperature.has_value() && *req.temperature == 0) || req.seed.has_value();
}

}  // namespace tc::canonical
