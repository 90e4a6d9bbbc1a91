// Moderation vocabulary shared by the engines (issue 5): what an engine found in a text and what
// to do about it. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tc::moderation {

/// What a finding asks for, weakest to strongest; a verdict is the strongest of its findings.
enum class action : uint8_t { allow = 0, flag = 1, mask = 2, block = 3 };
std::string_view action_name(action a);
/// "allow" | "flag" | "mask" | "block" -> action; false otherwise.
bool parse_action(std::string_view name, action& out);

/// One finding: bytes [begin, end) of the scanned text, its category and action.
struct hit {
  uint32_t begin = 0;
  uint32_t end = 0;
  std::string category;  ///< e.g. "politics", "pii.phone"
  action act = action::block;
  friend bool operator==(const hit&, const hit&) = default;
};

/// The strongest action among `hits` (allow when empty).
action strongest(const std::vector<hit>& hits);

/// `text` with every byte range of a `mask` hit replaced by one '*' per UTF-8 code point.
/// Overlapping and unordered ranges are fine; other hits are left alone.
std::string apply_masks(std::string_view text, const std::vector<hit>& hits);

}  // namespace tc::moderation
