// The template tier's view of a query (issue 3): the query with its slot values replaced by
// placeholders, plus the values, each normalised; and the guards the semantic tier checks
// before accepting a near neighbour. Pure; any thread; UTF-8 in, UTF-8 out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tc::canonical {

enum class slot_kind : uint8_t { number, date, money, email, phone, id, quoted };

/// The kind's name as it appears in a template placeholder: "number" for {number} ...
const char* kind_name(slot_kind k);

/// One value taken out of a query, in a normal form so that equal values compare equal
/// ("1,000" and "1000" -> "1000"; "$5" and "5 USD" -> "USD 5"; "2026-11-21", "21 Nov 2026",
/// "November 21, 2026" -> "2026-11-21"; emails lower-cased; phone digits only).
struct slot {
  slot_kind kind = slot_kind::number;
  std::string value;
  friend bool operator==(const slot&, const slot&) = default;
};

struct templated {
  /// The query, lower-cased (ASCII), whitespace collapsed, trailing ?!. stripped, with each
  /// slot replaced by a placeholder naming its kind: "what is {number}+{number}".
  std::string text;
  std::vector<slot> slots;  ///< in order of appearance
};

/// Extracts the slots and builds the template. Same template and same slots <=> the template
/// tier may answer one query with the other's answer.
templated make_template(std::string_view query);

/// The guards for a semantic hit: two queries may share an answer only if these are equal.
struct guard {
  std::vector<slot> slots;  ///< as make_template gives them, in order ("2-3" is not "3-2")
  /// Proper nouns / acronyms, normalised, in order of first appearance (so "from Paris to
  /// London" is not "from London to Paris").
  std::vector<std::string> entities;
  bool negated = false;  ///< an odd number of negations (not, no, never, n't, without, 不, 没 …)
  friend bool operator==(const guard&, const guard&) = default;
};

guard make_guard(std::string_view query);

}  // namespace tc::canonical
