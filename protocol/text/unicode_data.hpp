// The generated Unicode tables (protocol/text/unicode_data.cpp, written by
// scripts/unicode_tables.py), read only by protocol/text/unicode.cpp. Every table is sorted by
// code point.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tc::text::data {

struct decomposition {
  uint32_t cp;
  uint32_t canonical;  ///< pool offset << 5 | length of the full canonical decomposition, or 0
  uint32_t compat;     ///< the same for the full compatibility decomposition, or 0
};
struct composition {
  uint32_t first, second, composite;  ///< primary composites only (exclusions left out)
};
struct case_fold {
  uint32_t cp, folded;
};

extern const char unicode_version[];
/// Runs: start << 5 | General Category (the order of tc::text::gc), a run lasts to the next.
extern const uint32_t gc_runs[];
extern const size_t gc_runs_size;
/// White_Space as inclusive [first, last] pairs, flattened.
extern const uint32_t white_space[];
extern const size_t white_space_size;
/// Runs: start << 8 | canonical combining class.
extern const uint32_t ccc_runs[];
extern const size_t ccc_runs_size;
/// Runs: start << 4 | a mask of the forms (bit 0 NFD, 1 NFC, 2 NFKD, 3 NFKC) for which the code
/// point is inert: a starter the form leaves unchanged and that never composes with what
/// precedes it.
extern const uint32_t inert_runs[];
extern const size_t inert_runs_size;
/// Code points with a decomposition mapping (Hangul syllables are algorithmic, not here).
extern const decomposition decompositions[];
extern const size_t decompositions_size;
extern const uint32_t decomposition_pool[];
extern const size_t decomposition_pool_size;
/// Sorted by (first, second).
extern const composition compositions[];
extern const size_t compositions_size;
/// Simple case folding.
extern const case_fold case_folds[];
extern const size_t case_folds_size;

}  // namespace tc::text::data
