// tcbench: micro-benchmarks of TokensChain's building blocks, one subcommand each.
//   tcbench pipeline [--rounds 21] [--requests 2000] [--scheduler-threads 1]
//   tcbench records [--rounds 7] [--records 100000] [--burst 64] [--max-behind 1000]
//   tcbench moderation
//   tcbench tokenizer --file tokenizer.json [--file ...] [--rounds 200]
//   tcbench machine [--round-trips 10000] [--max-seconds 5]
//   tcbench semantic [--entries 1000000] [--queries 10000] [--dim 256] [--ef 64] [--sweep]
//                    [--recall-sample 1000] [--m 16] [--ef-construction 100] [--k 10]
//   tcbench failover / affinity / batching / flood: loads through a running node (--help)
// `semantic` fills one semantic_index (one cache namespace holding every entry: the worst
// case) with built-in embeddings of synthetic English questions, generated deterministically
// from templates x topics x entities x numbers so that near-duplicates exist. It then asks
// perturbed copies of stored questions (typos, dropped or added words, rephrasings) and
// unrelated texts, and prints a Markdown table: build time, insert rate, lookup latency
// percentiles per ef, recall@1 and recall@10 against a brute-force scan of every entry, memory
// per entry, and the embedding cost; then it replaces --replace entries (evict one, insert a
// new one into its slot, as a full cache does) and measures recall again. Recall is also given
// for near-duplicate queries alone and for true neighbours above --threshold, the ones a
// semantic cache would serve: unrelated texts have no real neighbour, only hash noise at
// similarity ~0.2, which no graph search finds reliably. Single-threaded; every phase is
// bounded in count and time; progress goes to stderr, the report to stdout.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "actors/semantic_index.hpp"
#include "protocol/canonical/embed.hpp"
#include "tools/tcbench/affinity.hpp"
#include "tools/tcbench/failover.hpp"
#include "tools/tcbench/machine.hpp"
#include "tools/tcbench/moderation.hpp"
#include "tools/tcbench/pipeline.hpp"
#include "tools/tcbench/records.hpp"
#include "tools/tcbench/scheduling.hpp"
#include "tools/tcbench/tokenizer.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double micros(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

/// CPU time of this thread in µs: unlike wall time, it leaves out time spent preempted, which
/// on a shared 2-core machine dominates the tail.
double thread_cpu_us() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/// The 1-minute load average, or -1.
double load_average() {
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return -1;
  double l = -1;
  if (std::fscanf(f, "%lf", &l) != 1) l = -1;
  std::fclose(f);
  return l;
}

/// Resident set size of this process in kB (VmRSS), or -1.
long rss_kb() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  char line[256];
  long kb = -1;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      kb = std::strtol(line + 6, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

/// Deterministic generator (splitmix64): the same texts on every machine and run.
class rng {
 public:
  explicit rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }
  template <class T>
  const T& pick(const std::vector<T>& v) {
    return v[below(static_cast<uint32_t>(v.size()))];
  }

 private:
  uint64_t state_;
};

// --- the synthetic questions ----------------------------------------------------------------

using words = std::vector<std::string_view>;

const words& slot_values(std::string_view slot) {
  static const words country = {
      "france",    "spain",     "germany",  "italy",     "japan",    "china",    "brazil",
      "canada",    "mexico",    "india",    "egypt",     "kenya",    "norway",   "sweden",
      "poland",    "greece",    "turkey",   "peru",      "chile",    "vietnam",  "thailand",
      "australia", "argentina", "portugal", "ireland",   "austria",  "belgium",  "denmark",
      "finland",   "morocco",   "nigeria",  "indonesia", "malaysia", "colombia", "hungary",
      "romania",   "ukraine",   "iceland",  "nepal",     "cuba"};
  static const words city = {
      "paris",     "madrid",    "berlin",  "rome",    "tokyo",     "beijing",   "shanghai",
      "london",    "new york",  "chicago", "toronto", "sydney",    "seoul",     "mumbai",
      "cairo",     "lisbon",    "vienna",  "prague",  "amsterdam", "barcelona", "istanbul",
      "dubai",     "singapore", "bangkok", "hanoi",   "lima",      "bogota",    "oslo",
      "stockholm", "helsinki",  "dublin",  "athens",  "budapest",  "warsaw",    "kyoto",
      "osaka",     "boston",    "seattle", "denver",  "montreal"};
  static const words lang = {"python", "javascript", "typescript", "rust",    "go",
                             "java",   "c++",        "c#",         "kotlin",  "swift",
                             "ruby",   "php",        "scala",      "haskell", "elixir",
                             "lua",    "r",          "julia",      "dart",    "bash"};
  static const words code_noun = {"list",
                                  "string",
                                  "dictionary",
                                  "array",
                                  "file",
                                  "json object",
                                  "date",
                                  "regex",
                                  "class",
                                  "function",
                                  "thread",
                                  "socket",
                                  "http request",
                                  "csv file",
                                  "linked list",
                                  "hash map",
                                  "set",
                                  "tuple",
                                  "integer",
                                  "float",
                                  "enum",
                                  "iterator",
                                  "generator",
                                  "stream",
                                  "queue",
                                  "binary tree",
                                  "matrix",
                                  "byte buffer",
                                  "environment variable",
                                  "command line argument"};
  static const words code_verb = {
      "sort",      "reverse",     "parse",    "merge",   "split",        "copy",
      "serialize", "deserialize", "validate", "format",  "iterate over", "filter",
      "flatten",   "compress",    "encrypt",  "hash",    "compare",      "convert",
      "read",      "write",       "delete",   "update",  "search",       "cache",
      "benchmark", "test",        "mock",     "profile", "debug",        "log"};
  static const words error = {"a null pointer exception",
                              "a segmentation fault",
                              "a stack overflow",
                              "an index out of range error",
                              "a type error",
                              "a timeout",
                              "a deadlock",
                              "a memory leak",
                              "a permission denied error",
                              "a connection refused error",
                              "an import error",
                              "a syntax error",
                              "a division by zero",
                              "an encoding error",
                              "a race condition",
                              "an out of memory error"};
  static const words tool = {"docker",  "kubernetes", "git",    "nginx",     "postgres",
                             "mysql",   "redis",      "kafka",  "terraform", "ansible",
                             "jenkins", "vim",        "vscode", "webpack",   "cmake",
                             "gradle",  "maven",      "npm",    "pip",       "systemd"};
  static const words topic = {"machine learning",
                              "quantum computing",
                              "climate change",
                              "photosynthesis",
                              "the french revolution",
                              "black holes",
                              "inflation",
                              "blockchain",
                              "the immune system",
                              "plate tectonics",
                              "neural networks",
                              "the stock market",
                              "renewable energy",
                              "the roman empire",
                              "evolution",
                              "general relativity",
                              "supply and demand",
                              "the water cycle",
                              "dna replication",
                              "compound interest",
                              "the cold war",
                              "public key cryptography",
                              "game theory",
                              "the big bang",
                              "volcanoes",
                              "vaccines",
                              "the printing press",
                              "electric cars",
                              "the internet",
                              "democracy",
                              "meditation",
                              "sleep",
                              "nutrition",
                              "the silk road",
                              "impressionism",
                              "jazz",
                              "the renaissance",
                              "operating systems",
                              "databases",
                              "compilers"};
  static const words food = {"rice",      "pasta",         "bread",    "eggs",      "chicken",
                             "salmon",    "tofu",          "avocado",  "banana",    "apple",
                             "oatmeal",   "yogurt",        "cheese",   "chocolate", "coffee",
                             "green tea", "potatoes",      "broccoli", "spinach",   "lentils",
                             "almonds",   "peanut butter", "honey",    "sushi",     "pizza",
                             "ramen",     "dumplings",     "tacos",    "curry",     "soup"};
  static const words unit = {"meters",     "feet",    "inches",    "centimeters", "miles",
                             "kilometers", "pounds",  "kilograms", "ounces",      "grams",
                             "liters",     "gallons", "cups",      "tablespoons", "seconds",
                             "minutes",    "hours",   "days",      "celsius",     "fahrenheit"};
  static const words attr = {
      "capital",          "population",     "currency", "official language", "largest city",
      "national dish",    "area",           "climate",  "history",           "time zone",
      "highest mountain", "national animal"};
  static const words human = {"spanish", "french",     "german",  "japanese", "chinese", "korean",
                              "italian", "portuguese", "russian", "arabic",   "hindi",   "dutch"};
  static const words phrase = {"good morning",    "thank you very much",     "where is the station",
                               "i love you",      "how much does this cost", "nice to meet you",
                               "happy birthday",  "see you tomorrow",        "i am hungry",
                               "the bill please", "what time is it",         "excuse me"};
  static const words activity = {"a birthday party", "a team meeting",   "a road trip",
                                 "a first date",     "a job interview",  "a wedding speech",
                                 "a rainy weekend",  "a science fair",   "a book club",
                                 "a hackathon",      "a family dinner",  "a camping trip",
                                 "a marathon",       "a school project", "a podcast"};
  static const words product = {"laptop",  "phone",      "camera",       "headphones",
                                "monitor", "keyboard",   "backpack",     "running shoes",
                                "bicycle", "tent",       "coffee maker", "vacuum cleaner",
                                "tablet",  "smartwatch", "office chair"};
  static const words doc = {"poem",      "essay", "story",   "email",  "cover letter",
                            "blog post", "haiku", "summary", "speech", "product description"};
  static const words audience = {"a beginner", "a child",        "my boss",    "a scientist",
                                 "a student",  "my grandmother", "a teenager", "an engineer",
                                 "a doctor",   "a teacher",      "my team",    "a tourist"};
  static const words style = {"short",    "funny",  "formal",   "simple",
                              "detailed", "casual", "creative", "practical"};
  static const words os = {"ubuntu", "windows",    "macos", "debian",
                           "fedora", "arch linux", "alpine"};
  static const words month = {"january",   "february", "march",    "april",
                              "may",       "june",     "july",     "august",
                              "september", "october",  "november", "december"};
  static const words number = [] {
    static std::vector<std::string> text;
    words out;
    for (int n = 1; n <= 100; ++n) text.push_back(std::to_string(n));
    for (const auto& t : text) out.push_back(t);
    return out;
  }();
  static const words year = [] {
    static std::vector<std::string> text;
    words out;
    for (int y = 1950; y < 2030; ++y) text.push_back(std::to_string(y));
    for (const auto& t : text) out.push_back(t);
    return out;
  }();
  static const words none;
  struct entry {
    std::string_view name;
    const words* values;
  };
  static const entry table[] = {
      {"country", &country},   {"city", &city},         {"lang", &lang},       {"noun", &code_noun},
      {"verb", &code_verb},    {"error", &error},       {"tool", &tool},       {"topic", &topic},
      {"food", &food},         {"unit", &unit},         {"attr", &attr},       {"human", &human},
      {"phrase", &phrase},     {"activity", &activity}, {"product", &product}, {"doc", &doc},
      {"audience", &audience}, {"style", &style},       {"os", &os},           {"month", &month},
      {"n", &number},          {"year", &year}};
  for (const auto& e : table)
    if (e.name == slot) return *e.values;
  return none;
}

/// Every template has at least 38,400 slot combinations, so up to 34 x 38,400 = 1.3M stored
/// questions are all different (a semantic cache never stores the same question twice: the
/// exact tier answers it), while questions one slot apart are near-duplicates.
const words& templates() {
  static const words t = {
      "what is the {attr} of {country} in {year}",
      "how do i {verb} a {noun} in {lang} on {os}",
      "how can i {verb} a {noun} using {lang} without {tool}",
      "why does my {lang} {noun} code throw {error} on {os}",
      "how to fix {error} in {tool} on {os} after {n} minutes",
      "explain {topic} to {audience} in {n} sentences",
      "write a {style} {n} word {doc} about {topic}",
      "write a {style} {doc} about {city} for {audience}",
      "translate {phrase} into {human} for a trip to {city} in {month}",
      "convert {n} {unit} to {unit}",
      "how many {unit} are in {n} {unit} of {food}",
      "best {style} {product} under {n} dollars for {audience} in {country}",
      "compare the top {n} {product} models of {year}",
      "plan a {n} day trip to {city} in {month} with {audience}",
      "what should i see in {city} in {n} days in {month}",
      "give me {n} {style} ideas for {activity} with {audience}",
      "is eating {food} and {food} {n} times a week healthy for {audience}",
      "how many calories are in {n} grams of {food} with {food}",
      "a {style} recipe with {food}, {food} and {food}",
      "summarize the history of {country} from {year} to {year}",
      "what is the weather like in {city} in {month} {year}",
      "recommend {n} {style} books about {topic} for {audience}",
      "what are the pros and cons of {topic} for {audience} in {country} in {year}",
      "how do i install {tool} version {n} on {os} for {lang}",
      "configure {tool} and {tool} for {lang} projects on {os}",
      "difference between a {noun} and a {noun} in {lang} and {lang}",
      "write a unit test for a {lang} function that {verb}s a {noun} using {tool}",
      "what is the time complexity to {verb} a {noun} of {n} elements in {lang}",
      "how much is a flight from {city} to {city} in {month} {year}",
      "what was the population of {city} and {city} in {year}",
      "tips for {activity} on a budget of {n} dollars in {city}",
      "how do i learn {lang} in {n} weeks as {audience} with a {style} plan",
      "is it safe to travel to {country} in {month} {year}",
      "what languages do they speak in {city}, {country} in {year}",
  };
  return t;
}

/// The slots of a template, in order.
std::vector<std::string_view> slots_of(std::string_view t) {
  std::vector<std::string_view> out;
  for (std::size_t p = t.find('{'); p != std::string_view::npos; p = t.find('{', p + 1))
    out.push_back(t.substr(p + 1, t.find('}', p) - p - 1));
  return out;
}

/// Stored question `i`: template i mod T, and the (i / T)-th slot combination of it in a
/// scrambled order (a multiplication by a large prime modulo the number of combinations, which
/// is a bijection), so `i` below T x combinations never repeats a question.
std::string make_question(uint64_t i, uint64_t seed) {
  const auto& ts = templates();
  const uint64_t t_index = (i + seed * 7) % ts.size();
  const std::string_view t = ts[t_index];
  const auto slots = slots_of(t);
  uint64_t space = 1;
  for (const auto slot : slots) space *= slot_values(slot).size();
  constexpr uint64_t prime = 1'000'003;  // no word list has a size it divides
  uint64_t combo = ((i / ts.size()) * prime + seed * 0x9e3779b9ULL) % space;
  std::string out;
  out.reserve(96);
  std::size_t s = 0;
  for (std::size_t p = 0; p < t.size();) {
    if (t[p] != '{') {
      out.push_back(t[p++]);
      continue;
    }
    const auto& values = slot_values(slots[s++]);
    out += values[combo % values.size()];
    combo /= values.size();
    p = t.find('}', p) + 1;
  }
  return out;
}

const words& general_vocabulary() {
  static const words v = {
      "river",   "blanket", "melody",    "orbit",   "lantern",  "velvet",   "harbor",   "puzzle",
      "glacier", "thunder", "saddle",    "meadow",  "copper",   "ribbon",   "canyon",   "whisper",
      "marble",  "feather", "compass",   "ladder",  "violin",   "pepper",   "castle",   "anchor",
      "desert",  "mirror",  "garden",    "signal",  "engine",   "forest",   "island",   "pillow",
      "rocket",  "shadow",  "silver",    "candle",  "planet",   "wizard",   "tunnel",   "bridge",
      "crystal", "falcon",  "helmet",    "jungle",  "kettle",   "lemon",    "magnet",   "needle",
      "ocean",   "parrot",  "quilt",     "rabbit",  "sunset",   "tiger",    "umbrella", "valley",
      "window",  "yellow",  "zebra",     "acorn",   "bamboo",   "cactus",   "dolphin",  "eclipse",
      "fossil",  "goblin",  "hammock",   "igloo",   "jigsaw",   "koala",    "lobster",  "mosaic",
      "nectar",  "oyster",  "pebble",    "quartz",  "raccoon",  "sapphire", "tornado",  "unicorn",
      "volcano", "walrus",  "xylophone", "yacht",   "zeppelin", "ancient",  "bright",   "curious",
      "distant", "eager",   "fragile",   "gentle",  "hollow",   "icy",      "jolly",    "keen",
      "lazy",    "mighty",  "narrow",    "odd",     "proud",    "quiet",    "rapid",    "silent",
      "tiny",    "vivid",   "wild",      "young",   "dance",    "wander",   "sparkle",  "gather",
      "drift",   "shimmer", "tumble",    "whistle", "bloom",    "crumble",  "dwell",    "flutter",
      "glow",    "hover",   "linger"};
  return v;
}

/// A text unrelated to every stored question: random words from another vocabulary.
std::string make_unrelated(uint64_t i, uint64_t seed) {
  rng r(seed * 0xc2b2ae3d27d4eb4fULL + i + 0x5bd1e995);
  const uint32_t n = 4 + r.below(9);
  std::string out;
  for (uint32_t w = 0; w < n; ++w) {
    if (w > 0) out.push_back(' ');
    out += r.pick(general_vocabulary());
  }
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t p = 0;
  while (p < s.size()) {
    const std::size_t e = std::min(s.find(' ', p), s.size());
    if (e > p) out.emplace_back(s.substr(p, e - p));
    p = e + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& w) {
  std::string out;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (i > 0) out.push_back(' ');
    out += w[i];
  }
  return out;
}

/// A user's version of `text`: one to three edits of the kinds real traffic has.
std::string perturb(const std::string& text, rng& r) {
  static const words fillers = {"please", "can you tell me", "quick question:",
                                "hey,",   "i was wondering", "could you explain"};
  static const words endings = {"?", " thanks", " please", " in detail", "??", " asap"};
  static const std::pair<std::string_view, std::string_view> rephrase[] = {
      {"how do i ", "how can i "}, {"what is ", "what's "},   {"how can i ", "how do i "},
      {"give me ", "show me "},    {"how to ", "how do i "},  {"write a ", "create a "},
      {"explain ", "describe "},   {"is it ", "would it be "}};
  std::string s = text;
  const uint32_t edits = 1 + r.below(3);
  for (uint32_t e = 0; e < edits; ++e) {
    auto w = split(s);
    switch (r.below(6)) {
      case 0: {  // typo: swap two letters inside a longer word
        std::vector<std::size_t> longer;
        for (std::size_t i = 0; i < w.size(); ++i)
          if (w[i].size() >= 5) longer.push_back(i);
        if (longer.empty()) break;
        std::string& x = w[r.pick(longer)];
        const std::size_t p = 1 + r.below(static_cast<uint32_t>(x.size() - 3));
        std::swap(x[p], x[p + 1]);
        s = join(w);
        break;
      }
      case 1:  // drop a word
        if (w.size() > 4) {
          w.erase(w.begin() + 1 + r.below(static_cast<uint32_t>(w.size() - 1)));
          s = join(w);
        }
        break;
      case 2:  // a filler in front
        s = std::string(r.pick(fillers)) + " " + s;
        break;
      case 3: {  // rephrase a common opening
        bool done = false;
        for (const auto& [from, to] : rephrase) {
          const std::size_t at = s.find(from);
          if (at != std::string::npos) {
            s.replace(at, from.size(), to);
            done = true;
            break;
          }
        }
        if (!done) s += "?";
        break;
      }
      case 4:  // capitals
        if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
        for (char& c : s)
          if (r.below(12) == 0) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        break;
      default:
        s += r.pick(endings);
        break;
    }
  }
  return s;
}

// --- statistics -----------------------------------------------------------------------------

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const auto i = static_cast<std::size_t>(std::min<double>(v.size() - 1, p * v.size()));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  return v[i];
}

double max_of(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

/// 1234567 -> "1,234,567".
std::string grouped(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(i, ",");
  return s;
}

// --- the semantic benchmark -----------------------------------------------------------------

struct semantic_args {
  uint64_t entries = 1'000'000;
  uint32_t queries = 10'000;
  uint32_t dim = 256;
  uint32_t ef = 64;
  bool sweep = false;
  std::vector<uint32_t> sweep_list = {16, 32, 64, 128, 256, 512};
  float threshold = 0.8f;
  uint32_t recall_sample = 1000;
  uint32_t m = 16;
  uint32_t ef_construction = 100;
  uint32_t k = 10;
  uint32_t flat_limit = 512;
  uint32_t initial_capacity = 1024;
  uint32_t replace = 10'000;
  uint64_t seed = 1;
  double unrelated_share = 0.3;
  double build_timeout_s = 3600;
  double phase_timeout_s = 900;
  double max_memory_mb = 4000;
};

/// One query: its text kind and, for a perturbed one, the stored question it came from.
struct query {
  std::vector<float> v;
  bool unrelated = false;
  uint64_t source = 0;
};

/// Exact top-k of one query, most similar first.
struct truth {
  std::vector<float> sims;
};

/// Row `r` of a stored set: false if the row is not in it, else its text in `text`.
using row_text = std::function<bool(uint64_t r, std::string& text)>;

/// Brute force over rows [0, rows) of a stored set (re-embedded in blocks), for queries
/// [0, sample).
std::vector<truth> brute_force(const semantic_args& a, uint64_t rows, const row_text& text_of,
                               const std::vector<query>& qs, uint32_t sample,
                               const tc::canonical::embed_options& eo, bool& complete) {
  // Per query a small min-heap of the best k similarities (ids are not needed: recall is
  // judged by similarity, so exact duplicates count as equally right).
  const uint32_t k = a.k;
  std::vector<std::vector<float>> best(sample);
  for (auto& b : best) b.reserve(k);
  auto greater = [](float x, float y) { return x > y; };
  constexpr uint64_t block = 2048;
  std::vector<float> vectors(block * a.dim);
  const auto t0 = clock_type::now();
  double last_report = 0;
  complete = true;
  std::string text;
  for (uint64_t next = 0; next < rows;) {
    uint64_t n = 0;
    for (; n < block && next < rows; ++next) {
      if (!text_of(next, text)) continue;
      const auto v = tc::canonical::embed(text, eo);
      std::copy(v.begin(), v.end(), vectors.begin() + n * a.dim);
      ++n;
    }
    for (uint32_t q = 0; q < sample; ++q) {
      auto& b = best[q];
      const float* qv = qs[q].v.data();
      for (uint64_t j = 0; j < n; ++j) {
        const float s = tc::canonical::dot(qv, vectors.data() + j * a.dim, a.dim);
        if (b.size() < k) {
          b.push_back(s);
          std::push_heap(b.begin(), b.end(), greater);
        } else if (s > b.front()) {
          std::pop_heap(b.begin(), b.end(), greater);
          b.back() = s;
          std::push_heap(b.begin(), b.end(), greater);
        }
      }
    }
    const double el = seconds_since(t0);
    if (el - last_report >= 10) {
      last_report = el;
      std::fprintf(stderr, "[truth] %s/%s rows scanned, %.0f s\n", grouped(next).c_str(),
                   grouped(rows).c_str(), el);
    }
    if (el > a.phase_timeout_s) {
      std::fprintf(stderr, "[truth] phase timeout: ground truth over the first %s rows\n",
                   grouped(next).c_str());
      complete = false;
      break;
    }
  }
  std::vector<truth> out(sample);
  for (uint32_t q = 0; q < sample; ++q) {
    out[q].sims = best[q];
    std::sort(out[q].sims.begin(), out[q].sims.end(), greater);
  }
  return out;
}

struct ef_result {
  uint32_t ef = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
  double cpu_p50 = 0, cpu_p99 = 0, cpu_max = 0;  // thread CPU time of the same lookups
  double recall1 = 0, recall1_near = 0, recall10 = 0, recall10_near = 0, recall10_unrelated = 0;
  double recall_above = 0;  // recall@k of the true neighbours at least `threshold` similar
  double hit_recall = 0;    // queries with a true best >= threshold whose best hit is too
  double top1_near = 0, top1_unrelated = 0;  // median best similarity
  uint32_t ran = 0;
};

ef_result run_queries(const semantic_args& a, tc::actors::semantic_index& idx,
                      const std::vector<query>& qs, const std::vector<truth>& gt, uint32_t ef) {
  constexpr float eps = 1e-5f;  // hnswlib's SIMD sum and ours round differently
  idx.set_ef_search(ef);
  ef_result r;
  r.ef = ef;
  // Warm the caches and branch predictors on a few queries first.
  for (uint32_t q = 0; q < std::min<uint32_t>(200, qs.size()); ++q) idx.search(qs[q].v.data(), a.k);
  std::vector<double> lat, cpu;
  lat.reserve(qs.size());
  cpu.reserve(qs.size());
  std::vector<double> top_near, top_unrel;
  uint64_t hit1 = 0, hit1_near = 0, sample_near = 0, hit10 = 0, want10 = 0, near_hit = 0,
           near_want = 0, un_hit = 0, un_want = 0;
  uint64_t above_hit = 0, above_want = 0, hit_ok = 0, hit_want = 0;
  const auto t0 = clock_type::now();
  for (uint32_t q = 0; q < qs.size(); ++q) {
    const double c0 = thread_cpu_us();
    const auto s = clock_type::now();
    const auto hits = idx.search(qs[q].v.data(), a.k);
    const auto e = clock_type::now();
    cpu.push_back(thread_cpu_us() - c0);
    lat.push_back(micros(s, e));
    ++r.ran;
    const float best = hits.empty() ? 0.0f : hits[0].similarity;
    (qs[q].unrelated ? top_unrel : top_near).push_back(best);
    if (q < gt.size() && !gt[q].sims.empty()) {
      const auto& want = gt[q].sims;
      // Tie-aware: a hit is right if it is at least as similar as the k-th true neighbour.
      const bool first_ok = !hits.empty() && hits[0].similarity >= want[0] - eps;
      hit1 += first_ok ? 1 : 0;
      if (!qs[q].unrelated) {
        ++sample_near;
        hit1_near += first_ok ? 1 : 0;
      }
      uint64_t ok = 0;
      for (const auto& h : hits)
        if (h.similarity >= want.back() - eps) ++ok;
      ok = std::min<uint64_t>(ok, want.size());
      hit10 += ok;
      want10 += want.size();
      (qs[q].unrelated ? un_hit : near_hit) += ok;
      (qs[q].unrelated ? un_want : near_want) += want.size();
      const auto want_above = static_cast<uint64_t>(
          std::count_if(want.begin(), want.end(), [&](float x) { return x >= a.threshold; }));
      uint64_t got_above = 0;
      for (const auto& h : hits)
        if (h.similarity >= a.threshold) ++got_above;
      above_hit += std::min(got_above, want_above);
      above_want += want_above;
      if (want[0] >= a.threshold) {
        ++hit_want;
        if (!hits.empty() && hits[0].similarity >= a.threshold) ++hit_ok;
      }
    }
    if ((q & 255) == 0 && seconds_since(t0) > a.phase_timeout_s) {
      std::fprintf(stderr, "[query] phase timeout after %u queries\n", q + 1);
      break;
    }
  }
  r.p50 = percentile(lat, 0.50);
  r.p90 = percentile(lat, 0.90);
  r.p99 = percentile(lat, 0.99);
  r.max = max_of(lat);
  r.cpu_p50 = percentile(cpu, 0.50);
  r.cpu_p99 = percentile(cpu, 0.99);
  r.cpu_max = max_of(cpu);
  double sum = 0;
  for (const double x : lat) sum += x;
  r.mean = lat.empty() ? 0 : sum / lat.size();
  const std::size_t sample = std::min<std::size_t>(gt.size(), r.ran);
  r.recall1 = sample == 0 ? 0 : static_cast<double>(hit1) / sample;
  r.recall1_near = sample_near == 0 ? 0 : static_cast<double>(hit1_near) / sample_near;
  r.recall10 = want10 == 0 ? 0 : static_cast<double>(hit10) / want10;
  r.recall10_near = near_want == 0 ? 0 : static_cast<double>(near_hit) / near_want;
  r.recall10_unrelated = un_want == 0 ? 0 : static_cast<double>(un_hit) / un_want;
  r.recall_above = above_want == 0 ? 0 : static_cast<double>(above_hit) / above_want;
  r.hit_recall = hit_want == 0 ? 0 : static_cast<double>(hit_ok) / hit_want;
  std::vector<double> tn(top_near.begin(), top_near.end());
  std::vector<double> tu(top_unrel.begin(), top_unrel.end());
  r.top1_near = percentile(tn, 0.5);
  r.top1_unrelated = percentile(tu, 0.5);
  return r;
}

int run_semantic(const semantic_args& a, const std::string& command_line) {
  if (a.dim == 0 || a.k == 0 || a.entries == 0) {
    std::fprintf(stderr, "tcbench: --dim, --k and --entries must be positive\n");
    return 2;
  }
  // What the graph will hold at most: capacity doubles from initial_capacity past `entries`.
  uint64_t capacity = std::max<uint64_t>(a.initial_capacity, 16);
  while (capacity < a.entries + 1) capacity *= 2;
  const double per_slot = a.dim * 4.0 + a.m * 2 * 4.0 + 4 + 8 + 8 + 4 + 40 + 2 + 48;
  const double estimate_mb = (capacity * per_slot + a.queries * (a.dim * 4.0 + 64)) / 1e6;
  std::fprintf(stderr, "[plan] %s entries, dim %u, capacity %s, estimated %.0f MB\n",
               grouped(a.entries).c_str(), a.dim, grouped(capacity).c_str(), estimate_mb);
  if (estimate_mb > a.max_memory_mb) {
    std::fprintf(stderr, "tcbench: would need ~%.0f MB, over --max-memory-mb %.0f\n", estimate_mb,
                 a.max_memory_mb);
    return 2;
  }

  tc::canonical::embed_options eo;
  eo.dimension = a.dim;
  tc::actors::semantic_options so;
  so.dimension = a.dim;
  so.m = a.m;
  so.ef_construction = a.ef_construction;
  so.ef_search = a.ef;
  so.flat_limit = a.flat_limit;
  so.initial_capacity = a.initial_capacity;

  // Build.
  const long rss_before = rss_kb();
  tc::actors::semantic_index idx(so);
  std::vector<double> add_us, add_cpu_us;
  add_us.reserve(a.entries);
  add_cpu_us.reserve(a.entries);
  const double load_start = load_average();
  double embed_total_us = 0;
  uint64_t built = 0;
  const auto build_t0 = clock_type::now();
  double last_report = 0;
  for (uint64_t i = 0; i < a.entries; ++i) {
    const std::string text = make_question(i, a.seed);
    const auto t0 = clock_type::now();
    const auto v = tc::canonical::embed(text, eo);
    const auto t1 = clock_type::now();
    const double c1 = thread_cpu_us();
    idx.add(i, v.data());
    add_cpu_us.push_back(thread_cpu_us() - c1);
    const auto t2 = clock_type::now();
    embed_total_us += micros(t0, t1);
    add_us.push_back(micros(t1, t2));
    built = i + 1;
    const double el = seconds_since(build_t0);
    if (el - last_report >= 15 || built == a.entries) {
      last_report = el;
      const double rate = built / std::max(el, 1e-9);
      std::fprintf(stderr,
                   "[build] %s/%s (%.1f%%) %.0f/s, %.0f s elapsed, eta %.0f s, RSS %ld MB\n",
                   grouped(built).c_str(), grouped(a.entries).c_str(), 100.0 * built / a.entries,
                   rate, el, (a.entries - built) / std::max(rate, 1e-9), rss_kb() / 1024);
    }
    if (el > a.build_timeout_s) {
      std::fprintf(stderr, "[build] build timeout: stopping at %s entries\n",
                   grouped(built).c_str());
      break;
    }
  }
  const double build_s = seconds_since(build_t0);
  const long rss_after = rss_kb();
  double add_total_us = 0;
  for (const double x : add_us) add_total_us += x;
  const std::size_t mem = idx.memory_bytes();

  // Queries: the first ones form the recall sample, a mix of both kinds throughout.
  std::vector<query> qs(a.queries);
  std::vector<double> embed_q_us;
  embed_q_us.reserve(a.queries);
  rng qr(a.seed ^ 0xfeedfacecafebeefULL);
  uint32_t unrelated_count = 0;
  for (uint32_t q = 0; q < a.queries; ++q) {
    const bool unrelated = qr.below(1000) < static_cast<uint32_t>(a.unrelated_share * 1000);
    std::string text;
    if (unrelated) {
      text = make_unrelated(q, a.seed);
      ++unrelated_count;
    } else {
      qs[q].source = qr.below(static_cast<uint32_t>(std::min<uint64_t>(built, UINT32_MAX)));
      text = perturb(make_question(qs[q].source, a.seed), qr);
    }
    qs[q].unrelated = unrelated;
    const auto t0 = clock_type::now();
    qs[q].v = tc::canonical::embed(text, eo);
    embed_q_us.push_back(micros(t0, clock_type::now()));
    if (q < 3) std::fprintf(stderr, "[query] example %u: \"%s\"\n", q, text.c_str());
  }

  const uint32_t sample = std::min<uint32_t>(a.recall_sample, a.queries);
  std::fprintf(stderr, "[truth] brute force for %u queries over %s entries\n", sample,
               grouped(built).c_str());
  const auto truth_t0 = clock_type::now();
  bool truth_complete = true;
  const row_text stored_text = [&](uint64_t r, std::string& text) {
    text = make_question(r, a.seed);
    return true;
  };
  const auto gt = brute_force(a, built, stored_text, qs, sample, eo, truth_complete);
  const double truth_s = seconds_since(truth_t0);

  std::vector<uint32_t> efs = a.sweep ? a.sweep_list : std::vector<uint32_t>{a.ef};
  if (a.sweep && std::find(efs.begin(), efs.end(), a.ef) == efs.end()) efs.push_back(a.ef);
  std::sort(efs.begin(), efs.end());
  std::vector<ef_result> results;
  for (const uint32_t ef : efs) {
    std::fprintf(stderr, "[query] ef %u: %u queries\n", ef, a.queries);
    results.push_back(run_queries(a, idx, qs, gt, ef));
  }
  idx.set_ef_search(a.ef);

  // Steady state of a full cache: evict one entry, insert a new one into its slot.
  std::vector<double> remove_us, reuse_us, reuse_cpu_us;
  const uint32_t replace = static_cast<uint32_t>(std::min<uint64_t>(a.replace, built));
  {
    const auto t0 = clock_type::now();
    for (uint32_t j = 0; j < replace; ++j) {
      // Distinct victims: a stride by a large prime through the stored ids.
      const uint64_t victim = (j * 2654435761ULL + 12345) % built;
      const auto v = tc::canonical::embed(make_question(a.entries + j, a.seed), eo);
      const auto s0 = clock_type::now();
      idx.remove(victim);
      const auto s1 = clock_type::now();
      const double c1 = thread_cpu_us();
      idx.add(a.entries + j, v.data());
      reuse_cpu_us.push_back(thread_cpu_us() - c1);
      const auto s2 = clock_type::now();
      remove_us.push_back(micros(s0, s1));
      reuse_us.push_back(micros(s1, s2));
      if ((j & 127) == 0 && seconds_since(t0) > a.phase_timeout_s) {
        std::fprintf(stderr, "[replace] phase timeout after %u\n", j + 1);
        break;
      }
    }
  }

  // After the churn: recall against a new brute force over what is stored now.
  ef_result churned;
  bool churn_truth_complete = true;
  const uint32_t churn_sample = reuse_us.empty() ? 0 : sample;
  if (churn_sample > 0) {
    const uint64_t done = reuse_us.size();
    std::vector<bool> removed(built, false);
    for (uint64_t j = 0; j < done; ++j) removed[(j * 2654435761ULL + 12345) % built] = true;
    const row_text now_text = [&](uint64_t r, std::string& text) {
      if (r < built) {
        if (removed[r]) return false;
        text = make_question(r, a.seed);
      } else {
        text = make_question(a.entries + (r - built), a.seed);
      }
      return true;
    };
    std::fprintf(stderr, "[truth] after %s replaces: brute force for %u queries\n",
                 grouped(done).c_str(), churn_sample);
    const auto gt2 =
        brute_force(a, built + done, now_text, qs, churn_sample, eo, churn_truth_complete);
    const std::vector<query> subset(qs.begin(), qs.begin() + churn_sample);
    churned = run_queries(a, idx, subset, gt2, a.ef);
  }

  // Report.
  const double embed_build_us = built == 0 ? 0 : embed_total_us / built;
  double embed_q_sum = 0;
  for (const double x : embed_q_us) embed_q_sum += x;
  std::printf("## tcbench semantic\n\n");
  std::printf("`%s`\n\n", command_line.c_str());
  std::printf(
      "%s entries in one namespace, dim %u, M %u, ef_construction %u, k %u; %s queries "
      "(%u unrelated, the rest perturbed copies of stored questions); recall over the first %u "
      "queries against a brute-force scan of %s entries%s (tie-aware: a hit counts if it is as "
      "similar as the k-th true neighbour).\n\n",
      grouped(built).c_str(), a.dim, a.m, a.ef_construction, a.k, grouped(a.queries).c_str(),
      unrelated_count, sample, truth_complete ? "all" : "the first",
      truth_complete ? "" : " (truncated by the phase timeout)");
  std::printf("| measure | value |\n|---|---|\n");
  std::printf("| build time (embed + add, %s entries) | %.1f s |\n", grouped(built).c_str(),
              build_s);
  std::printf("| insert rate, add() only | %.0f /s |\n",
              add_total_us > 0 ? built / (add_total_us / 1e6) : 0.0);
  std::printf(
      "| add() p50 / p99 / max, wall (CPU) | %.0f / %.0f / %.0f µs (%.0f / %.0f / %.0f) |\n",
      percentile(add_us, 0.5), percentile(add_us, 0.99), max_of(add_us),
      percentile(add_cpu_us, 0.5), percentile(add_cpu_us, 0.99), max_of(add_cpu_us));
  std::printf("| memory_bytes() / entry | %.0f B (%.0f MB total) |\n",
              built == 0 ? 0.0 : static_cast<double>(mem) / built, mem / 1e6);
  std::printf("| RSS delta / entry | %.0f B (%.0f MB total) |\n",
              built == 0 ? 0.0 : (rss_after - rss_before) * 1024.0 / built,
              (rss_after - rss_before) / 1024.0);
  std::printf("| embed cost / query, mean (p50, p99) | %.2f µs (%.2f, %.2f) |\n",
              embed_q_us.empty() ? 0.0 : embed_q_sum / embed_q_us.size(),
              percentile(embed_q_us, 0.5), percentile(embed_q_us, 0.99));
  std::printf("| embed cost / stored question, mean | %.2f µs |\n", embed_build_us);
  std::printf(
      "| replace (remove + add into the freed slot), %zu times: remove p50, add p50 / "
      "p99 / max, wall (CPU) | %.1f µs, %.0f / %.0f / %.0f µs (%.0f / %.0f / %.0f) |\n",
      reuse_us.size(), percentile(remove_us, 0.5), percentile(reuse_us, 0.5),
      percentile(reuse_us, 0.99), max_of(reuse_us), percentile(reuse_cpu_us, 0.5),
      percentile(reuse_cpu_us, 0.99), max_of(reuse_cpu_us));
  if (churn_sample > 0) {
    std::printf(
        "| after the replaces, at ef %u: recall@1 all (near-dup), recall@%u all (near-dup "
        "/ unrelated), recall@%u of sim >= %.2f%s | %.3f (%.3f), %.3f (%.3f / %.3f), "
        "%.3f |\n",
        a.ef, a.k, a.k, a.threshold, churn_truth_complete ? "" : " (truth truncated)",
        churned.recall1, churned.recall1_near, churned.recall10, churned.recall10_near,
        churned.recall10_unrelated, churned.recall_above);
  }
  std::printf("| brute-force ground truth | %.1f s |\n\n", truth_s);

  std::printf(
      "| ef | p50 µs | p90 µs | p99 µs | max µs | CPU p50 / p99 / max µs | recall@1 all "
      "(near-dup) | recall@%u all (near-dup / unrelated) | recall@%u of sim >= %.2f | hit found "
      "(true best >= %.2f) | best sim p50 near-dup / unrelated |\n",
      a.k, a.k, a.threshold, a.threshold);
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : results) {
    std::printf(
        "| %u%s | %.0f | %.0f | %.0f | %.0f | %.0f / %.0f / %.0f | %.3f (%.3f) | %.3f (%.3f / "
        "%.3f) | %.3f | %.3f | %.2f / %.2f |\n",
        r.ef, r.ef == a.ef ? " (chosen)" : "", r.p50, r.p90, r.p99, r.max, r.cpu_p50, r.cpu_p99,
        r.cpu_max, r.recall1, r.recall1_near, r.recall10, r.recall10_near, r.recall10_unrelated,
        r.recall_above, r.hit_recall, r.top1_near, r.top1_unrelated);
  }
  std::printf(
      "\nGoal p99 <= 2,000 µs and recall >= 0.95 (wall p99; recall@%u over all queries "
      "/ over near-duplicate queries):",
      a.k);
  for (const auto& [name, pick] :
       {std::pair<const char*, double ef_result::*>{"all", &ef_result::recall10},
        std::pair<const char*, double ef_result::*>{"near-dup", &ef_result::recall10_near}}) {
    bool any = false;
    std::printf(" %s:", name);
    for (const auto& r : results) {
      if (r.p99 <= 2000 && r.*pick >= 0.95) {
        std::printf(" ef %u", r.ef);
        any = true;
      }
    }
    std::printf("%s;", any ? "" : " none");
  }
  std::printf(" RSS now %ld MB. Load average (2 cores, shared) %.2f at start, %.2f at end.\n",
              rss_kb() / 1024, load_start, load_average());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tcbench: benchmarks of TokensChain building blocks"};
  app.require_subcommand(1);
  semantic_args sa;
  auto* sem = app.add_subcommand("semantic", "semantic_index + built-in embedder at scale");
  sem->add_option("--entries", sa.entries, "entries in the one namespace")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  sem->add_option("--queries", sa.queries, "lookups to time")->check(CLI::Range(1u, 10'000'000u));
  sem->add_option("--dim", sa.dim, "embedding dimension")->check(CLI::Range(1u, 4096u));
  sem->add_option("--ef", sa.ef, "ef_search for the main row")->check(CLI::Range(1u, 100000u));
  sem->add_flag("--sweep", sa.sweep, "also measure every ef in --sweep-list");
  sem->add_option("--sweep-list", sa.sweep_list, "ef values for --sweep")->delimiter(',');
  sem->add_option("--recall-sample", sa.recall_sample,
                  "queries checked against a brute-force scan of every entry");
  sem->add_option("--threshold", sa.threshold, "similarity a semantic cache hit needs")
      ->check(CLI::Range(-1.0f, 1.0f));
  sem->add_option("--m", sa.m, "HNSW links per node")->check(CLI::Range(2u, 256u));
  sem->add_option("--ef-construction", sa.ef_construction, "HNSW build breadth")
      ->check(CLI::Range(1u, 10000u));
  sem->add_option("--k", sa.k, "neighbours per lookup")->check(CLI::Range(1u, 1000u));
  sem->add_option("--flat-limit", sa.flat_limit, "entries below which a flat scan is used");
  sem->add_option("--initial-capacity", sa.initial_capacity, "first HNSW capacity")
      ->check(CLI::Range(1u, 1u << 30));
  sem->add_option("--replace", sa.replace, "evict-and-insert operations timed at the end");
  sem->add_option("--seed", sa.seed, "seed of the synthetic texts");
  sem->add_option("--unrelated-share", sa.unrelated_share, "share of unrelated queries")
      ->check(CLI::Range(0.0, 1.0));
  sem->add_option("--build-timeout", sa.build_timeout_s, "stop inserting after this many s");
  sem->add_option("--phase-timeout", sa.phase_timeout_s, "bound of every other phase, s");
  sem->add_option("--max-memory-mb", sa.max_memory_mb, "refuse plans estimated above this");
  tc::bench::pipeline_args pa;
  auto* pipe = app.add_subcommand("pipeline", "what auth and admission add, in process");
  pipe->add_option("--rounds", pa.rounds, "rounds (the first warms up)")
      ->check(CLI::Range(2u, 100000u));
  pipe->add_option("--requests", pa.requests_per_round, "requests per mode and round")
      ->check(CLI::Range(1u, 1000000u));
  pipe->add_option("--scheduler-threads", pa.scheduler_threads, "CAF scheduler threads")
      ->check(CLI::Range(1u, 64u));
  pipe->add_option("--max-seconds", pa.max_seconds, "stop early past this")
      ->check(CLI::Range(1u, 3600u));
  tc::bench::records_args ra;
  auto* rec = app.add_subcommand("records", "what a request's two records cost the writer");
  rec->add_option("--rounds", ra.rounds, "rounds (the first warms up)")
      ->check(CLI::Range(2u, 1000u));
  rec->add_option("--records", ra.records, "request pairs per round")
      ->check(CLI::Range(1000u, 10'000'000u));
  rec->add_option("--burst", ra.burst, "pairs sent back to back")->check(CLI::Range(1u, 100000u));
  rec->add_option("--max-behind", ra.max_behind, "unwritten pairs the sender allows")
      ->check(CLI::Range(1u, 1'000'000u));
  rec->add_option("--max-seconds", ra.max_seconds, "stop early past this")
      ->check(CLI::Range(1u, 3600u));
  auto* mod = app.add_subcommand("moderation", "keyword + PII moderation of a 4 KB prompt");
  std::string mod_write;
  mod->add_option("--write", mod_write,
                  "write DIR/lexicon.txt and DIR/chat.json (the 10,000 terms and a chat body with "
                  "the 4 KB prompt) for a load through a node, and measure nothing");
  tc::bench::tokenizer_args ta;
  auto* tok = app.add_subcommand("tokenizer", "exact token counts from tokenizer.json files");
  tok->add_option("--file", ta.files, "a tokenizer.json (repeatable)")->required();
  tok->add_option("--rounds", ta.rounds, "timed count() calls per text")
      ->check(CLI::Range(1u, 100000u));
  tc::bench::machine_args ma;
  auto* mach = app.add_subcommand(
      "machine", "system call, clock and thread wake-up round trips on this machine");
  mach->add_option("--round-trips", ma.round_trips, "timed round trips per figure")
      ->check(CLI::Range(500u, 10000000u));
  mach->add_option("--max-seconds", ma.max_seconds, "at most this long per figure")
      ->check(CLI::Range(0.1, 600.0));
  tc::bench::failover_args fa;
  auto* fo = app.add_subcommand("failover", "kill one of a model's two endpoints under load");
  fo->add_option("--target", fa.target, "the node's data port, HOST:PORT")->required();
  fo->add_option("--admin", fa.admin, "the node's admin port, HOST:PORT")->required();
  fo->add_option("--dead", fa.dead, "the provider whose process is killed")->required();
  fo->add_option("--kill-pid", fa.kill_pid, "that process")->required();
  fo->add_option("--model", fa.model, "the model both endpoints serve");
  fo->add_option("--clients", fa.clients, "concurrent clients")->check(CLI::Range(1u, 1024u));
  fo->add_option("--seconds", fa.seconds, "load duration")->check(CLI::Range(2.0, 3600.0));
  fo->add_option("--kill-at", fa.kill_at_s, "seconds into the load")
      ->check(CLI::Range(1.0, 3600.0));
  fo->add_option("--max-tokens", fa.max_tokens, "per request")->check(CLI::Range(1u, 4096u));
  tc::bench::affinity_args aa;
  auto* af = app.add_subcommand("affinity", "prefix affinity over replicas under load");
  af->add_option("--target", aa.target, "the node's data port, HOST:PORT")->required();
  af->add_option("--admin", aa.admin, "the node's admin port, HOST:PORT")->required();
  af->add_option("--model", aa.model, "the model the replicas serve");
  af->add_option("--clients", aa.clients, "concurrent clients")->check(CLI::Range(1u, 1024u));
  af->add_option("--seconds", aa.seconds, "load duration")->check(CLI::Range(2.0, 3600.0));
  af->add_option("--shared", aa.shared, "share of requests with the shared system prompt")
      ->check(CLI::Range(0.0, 1.0));
  af->add_option("--prompts", aa.prompts, "other system prompts")->check(CLI::Range(1u, 100000u));
  af->add_option("--max-tokens", aa.max_tokens, "per request")->check(CLI::Range(1u, 4096u));
  af->add_option("--bound", aa.bound, "fail above this x the mean load")
      ->check(CLI::Range(1.0, 1000.0));
  const auto add_bounds = [](CLI::App* sub, tc::bench::open_loop_bounds& b) {
    sub->add_option("--max-in-flight", b.max_in_flight,
                    "per class: requests due beyond this are skipped")
        ->check(CLI::Range(1u, 100000u));
    sub->add_option("--max-requests", b.max_requests, "stop the arrivals after this many")
        ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
    sub->add_option("--drain-seconds", b.drain_seconds, "wait this long for answers after")
        ->check(CLI::Range(0.0, 3600.0));
    sub->add_option("--timeout-seconds", b.timeout_seconds, "per request")
        ->check(CLI::Range(0.1, 3600.0));
  };
  tc::bench::batching_args ba;
  auto* bat = app.add_subcommand(
      "batching", "open-loop interactive (P0-P2) + batch (P3) load through a node to tcsim");
  bat->add_option("--target", ba.target, "the node's data port, HOST:PORT")->required();
  bat->add_option("--sim", ba.sim, "the tcsim behind it, HOST:PORT")->required();
  bat->add_option("--rate", ba.rate, "offered requests per second, all classes")
      ->check(CLI::Range(0.01, 100000.0));
  bat->add_option("--seconds", ba.seconds, "arrivals stop after this")
      ->check(CLI::Range(1.0, 3600.0));
  bat->add_option("--model", ba.model, "the model to ask");
  bat->add_option("--max-tokens", ba.max_tokens, "per request")->check(CLI::Range(1u, 4096u));
  bat->add_option("--interactive-share", ba.interactive_share, "share of interactive requests")
      ->check(CLI::Range(0.0, 1.0));
  bat->add_option("--p0-key", ba.p0_key, "interactive requests use this key of priority 0");
  bat->add_option("--p1-key", ba.p1_key, "interactive requests use this key of priority 1");
  bat->add_option("--label", ba.label, "names the run in the summary line");
  bat->add_flag("--completions", ba.completions,
                "single-prompt /v1/completions (temperature 0) instead of chat");
  add_bounds(bat, ba.bounds);
  tc::bench::flood_args fl;
  auto* fld = app.add_subcommand("flood", "open-loop P4 flood over capacity plus a P0 trickle");
  fld->add_option("--target", fl.target, "the node's data port, HOST:PORT")->required();
  fld->add_option("--sim", fl.sim, "the tcsim behind it, HOST:PORT")->required();
  fld->add_option("--capacity-rps", fl.capacity_rps, "what the endpoint completes per second")
      ->required()
      ->check(CLI::Range(0.01, 100000.0));
  fld->add_option("--flood-factor", fl.flood_factor, "P4 rate = this x --capacity-rps")
      ->check(CLI::Range(0.01, 1000.0));
  fld->add_option("--p0-rate", fl.p0_rate, "P0 requests per second")
      ->check(CLI::Range(0.01, 10000.0));
  fld->add_option("--p0-key", fl.p0_key, "a key of priority 0")->required();
  fld->add_option("--seconds", fl.seconds, "arrivals stop after this")
      ->check(CLI::Range(1.0, 3600.0));
  fld->add_option("--model", fl.model, "the model to ask");
  fld->add_option("--max-tokens", fl.max_tokens, "per request")->check(CLI::Range(1u, 4096u));
  fld->add_option("--window-seconds", fl.window_seconds, "P4 progress window")
      ->check(CLI::Range(0.1, 600.0));
  fld->add_option("--label", fl.label, "names the run in the summary line");
  add_bounds(fld, fl.bounds);
  CLI11_PARSE(app, argc, argv);

  std::string command_line;
  for (int i = 0; i < argc; ++i) {
    if (i > 0) command_line += ' ';
    command_line += argv[i];
  }
  if (sem->parsed()) return run_semantic(sa, command_line);
  if (pipe->parsed()) return tc::bench::run_pipeline(pa, command_line);
  if (rec->parsed()) return tc::bench::run_records(ra, command_line);
  if (mod->parsed() && !mod_write.empty()) return tc::bench::write_moderation_inputs(mod_write);
  if (mod->parsed()) return tc::bench::run_moderation(command_line);
  if (tok->parsed()) return tc::bench::run_tokenizer(ta, command_line);
  if (mach->parsed()) return tc::bench::run_machine(ma, command_line);
  if (af->parsed()) return tc::bench::run_affinity(aa, command_line);
  if (bat->parsed()) return tc::bench::run_batching(ba, command_line);
  if (fld->parsed()) return tc::bench::run_flood(fl, command_line);
  if (fo->parsed()) {
    if (fa.kill_at_s >= fa.seconds) {
      std::fprintf(stderr, "tcbench failover: --kill-at must be before --seconds\n");
      return 2;
    }
    return tc::bench::run_failover(fa, command_line);
  }
  return 2;
}
