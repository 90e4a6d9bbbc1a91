// tceval: the quality of the cache's template and semantic tiers on a paraphrase set built for
// it (docs/cache.md). Each pair is (stored question, new question, what must happen): a
// paraphrase should hit; a pair that differs in a number, an entity or a negation must never
// hit. A pair hits when the template tier would answer it (same template, same slot values) or
// the semantic tier would (same guard and cosine similarity >= threshold), exactly the tests
// actors/cache_shard.cpp applies. Prints hit and false-hit rates per threshold as Markdown.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "protocol/canonical/embed.hpp"
#include "protocol/canonical/template.hpp"

namespace {

enum class kind { paraphrase, number, entity, negation };

struct pair_case {
  kind k;
  std::string_view stored;
  std::string_view asked;
};

// Built by hand for this evaluation: everyday assistant questions. Paraphrases reword,
// reorder, change case and punctuation, contract or expand; the other kinds change exactly one
// number, entity or negation and keep every other word.
const std::vector<pair_case>& pairs() {
  static const std::vector<pair_case> all = {
      // -- paraphrases: the same question ------------------------------------------------
      {kind::paraphrase, "What is the capital of France?", "what is the capital of France"},
      {kind::paraphrase, "What is the capital of France?", "What's the capital of France?"},
      {kind::paraphrase, "What is the capital of France?", "Tell me the capital of France."},
      {kind::paraphrase, "How do I reverse a list in Python?",
       "How can I reverse a list in Python?"},
      {kind::paraphrase, "How do I reverse a list in Python?", "how to reverse a list in Python"},
      {kind::paraphrase, "Explain how TCP handshakes work.", "Explain how the TCP handshake works"},
      {kind::paraphrase, "Explain how TCP handshakes work.",
       "Can you explain how TCP handshakes work?"},
      {kind::paraphrase, "Summarize the plot of Hamlet.", "Summarise the plot of Hamlet."},
      {kind::paraphrase, "Summarize the plot of Hamlet.", "Please summarize the plot of Hamlet"},
      {kind::paraphrase, "What are the health benefits of green tea?",
       "What are the health benefits of drinking green tea?"},
      {kind::paraphrase, "What are the health benefits of green tea?",
       "what are green tea's health benefits"},
      {kind::paraphrase, "Translate 'good morning' into Spanish.",
       "Translate 'good morning' to Spanish"},
      {kind::paraphrase, "Give me a recipe for banana bread.", "Give me a banana bread recipe."},
      {kind::paraphrase, "Give me a recipe for banana bread.",
       "Can you give me a recipe for banana bread?"},
      {kind::paraphrase, "What is the difference between a process and a thread?",
       "What's the difference between a process and a thread?"},
      {kind::paraphrase, "What is the difference between a process and a thread?",
       "Difference between a process and a thread?"},
      {kind::paraphrase, "Write a haiku about autumn leaves.",
       "Write a haiku about the autumn leaves"},
      {kind::paraphrase, "How many days are in a leap year?",
       "How many days are there in a leap year?"},
      {kind::paraphrase, "How many days are in a leap year?",
       "how many days does a leap year have"},
      {kind::paraphrase, "Who wrote Pride and Prejudice?",
       "Who is the author of Pride and Prejudice?"},
      {kind::paraphrase, "Who wrote Pride and Prejudice?", "who wrote Pride and Prejudice"},
      {kind::paraphrase, "What causes the seasons on Earth?", "What causes seasons on Earth?"},
      {kind::paraphrase, "How do I center a div in CSS?", "How can I center a div in CSS?"},
      {kind::paraphrase, "How do I center a div in CSS?", "how to center a div with CSS"},
      {kind::paraphrase, "What is a good name for a golden retriever?",
       "What's a good name for a golden retriever?"},
      {kind::paraphrase, "List three uses of baking soda.", "List 3 uses of baking soda."},
      {kind::paraphrase, "Convert 5 km to miles.", "convert 5 km into miles"},
      {kind::paraphrase, "Is it safe to eat raw cookie dough?", "Is eating raw cookie dough safe?"},
      {kind::paraphrase, "Is it safe to eat raw cookie dough?",
       "is it safe to eat raw cookie dough"},
      {kind::paraphrase, "Why is the sky blue?", "Why is the sky blue"},
      {kind::paraphrase, "Why is the sky blue?", "why's the sky blue?"},
      {kind::paraphrase, "What does HTTP 404 mean?", "What does an HTTP 404 mean?"},
      {kind::paraphrase, "Recommend a book about habits.", "Recommend me a book about habits"},
      {kind::paraphrase, "How long should I boil an egg?", "How long should I boil an egg for?"},
      {kind::paraphrase, "How long should I boil an egg?", "How long do I boil an egg?"},
      {kind::paraphrase, "Describe the water cycle.", "Describe the water cycle in simple terms."},
      {kind::paraphrase, "北京今天天气怎么样？", "北京今天天气怎么样"},
      {kind::paraphrase, "如何学习编程？", "如何学习编程"},
      // -- a different number: never the same answer --------------------------------------
      {kind::number, "What is 2+3?", "What is 2+4?"},
      {kind::number, "What is 2+3?", "What is 3+2?"},
      {kind::number, "What is 12 times 7?", "What is 12 times 8?"},
      {kind::number, "Convert 5 km to miles.", "Convert 6 km to miles."},
      {kind::number, "Convert 100 USD to EUR.", "Convert 200 USD to EUR."},
      {kind::number, "List three uses of baking soda.", "List 5 uses of baking soda."},
      {kind::number, "What happened in 1969?", "What happened in 1968?"},
      {kind::number, "Is 97 a prime number?", "Is 91 a prime number?"},
      {kind::number, "What day of the week was 2024-03-15?",
       "What day of the week was 2024-03-16?"},
      {kind::number, "Split a bill of $120 between 4 people.",
       "Split a bill of $120 between 5 people."},
      {kind::number, "How many calories are in 2 eggs?", "How many calories are in 3 eggs?"},
      {kind::number, "Write a 100-word story about a cat.", "Write a 200-word story about a cat."},
      {kind::number, "What is 15% of 80?", "What is 25% of 80?"},
      {kind::number, "Where is order AB-12345?", "Where is order AB-12346?"},
      {kind::number, "Email bob@example.com about the meeting.",
       "Email rob@example.com about the meeting."},
      {kind::number, "Python 3.10 new features", "Python 3.11 new features"},
      {kind::number, "Translate \"open the door\" into French.",
       "Translate \"close the door\" into French."},
      {kind::number, "What was the weather on November 21, 2026?",
       "What was the weather on November 22, 2026?"},
      {kind::number, "How long should I boil an egg for 6 minutes?",
       "How long should I boil an egg for 9 minutes?"},
      {kind::number, "北京到上海有1200公里吗？", "北京到上海有1300公里吗？"},
      // -- a different entity ---------------------------------------------------------------
      {kind::entity, "What is the capital of France?", "What is the capital of Germany?"},
      {kind::entity, "Who wrote Pride and Prejudice?", "Who wrote Sense and Sensibility?"},
      {kind::entity, "How do I reverse a list in Python?", "How do I reverse a list in Rust?"},
      {kind::entity, "What is the population of Tokyo?", "What is the population of Osaka?"},
      {kind::entity, "Summarize the plot of Hamlet.", "Summarize the plot of Macbeth."},
      {kind::entity, "Is Paris bigger than Rome?", "Is Paris bigger than Madrid?"},
      {kind::entity, "Book a flight from Paris to London.", "Book a flight from London to Paris."},
      {kind::entity, "When was NASA founded?", "When was ESA founded?"},
      {kind::entity, "Compare AWS and Azure pricing.", "Compare AWS and GCP pricing."},
      {kind::entity, "What did Einstein discover?", "What did Newton discover?"},
      {kind::entity, "How tall is Mount Everest?", "How tall is Mount Fuji?"},
      {kind::entity, "Tell me about the history of Microsoft.",
       "Tell me about the history of Apple."},
      {kind::entity, "How do I install Docker on Ubuntu?", "How do I install Docker on Fedora?"},
      {kind::entity, "What is the currency of Japan?", "What is the currency of China?"},
      {kind::entity, "Who is the CEO of Tesla?", "Who is the CEO of Ford?"},
      {kind::entity, "Explain the causes of World War I.", "Explain the causes of World War II."},
      // -- a different negation -------------------------------------------------------------
      {kind::negation, "Is it safe to eat raw cookie dough?",
       "Is it not safe to eat raw cookie dough?"},
      {kind::negation, "Is it safe to eat raw cookie dough?",
       "Isn't it safe to eat raw cookie dough?"},
      {kind::negation, "Should I use a mutex here?", "Should I not use a mutex here?"},
      {kind::negation, "Why does my code compile?", "Why does my code not compile?"},
      {kind::negation, "Why does my code compile?", "Why doesn't my code compile?"},
      {kind::negation, "List foods that contain gluten.", "List foods that do not contain gluten."},
      {kind::negation, "Which countries use the euro?", "Which countries never used the euro?"},
      {kind::negation, "Can dogs eat grapes?", "Can dogs never eat grapes?"},
      {kind::negation, "Give me a recipe with eggs.", "Give me a recipe without eggs."},
      {kind::negation, "Is the function thread safe?", "Is the function not thread safe?"},
      {kind::negation, "Do cats like water?", "Don't cats like water?"},
      {kind::negation, "Explain why the test passes.", "Explain why the test never passes."},
      {kind::negation, "这个药安全吗？", "这个药不安全吗？"},
      {kind::negation, "他来了吗？", "他没来吗？"},
  };
  return all;
}

const char* name_of(kind k) {
  switch (k) {
    case kind::paraphrase:
      return "paraphrase (should hit)";
    case kind::number:
      return "differs in a value (must not hit)";
    case kind::entity:
      return "differs in an entity (must not hit)";
    case kind::negation:
      return "differs in a negation (must not hit)";
  }
  return "?";
}

struct verdict {
  bool template_hit = false;
  bool guard_equal = false;
  float similarity = 0;
};

verdict judge(const pair_case& p, const tc::canonical::embed_options& opt) {
  verdict v;
  auto ta = tc::canonical::make_template(p.stored);
  auto tb = tc::canonical::make_template(p.asked);
  v.template_hit = ta.text == tb.text && ta.slots == tb.slots;
  v.guard_equal = tc::canonical::make_guard(p.stored) == tc::canonical::make_guard(p.asked);
  auto ea = tc::canonical::embed(p.stored, opt);
  auto eb = tc::canonical::embed(p.asked, opt);
  v.similarity = tc::canonical::dot(ea.data(), eb.data(), opt.dimension);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tceval: the cache's template and semantic tiers on a built-in paraphrase set"};
  uint32_t dim = 256;
  bool list = false;
  app.add_option("--dim", dim, "embedding dimension (cache.embedding_dim)")->capture_default_str();
  app.add_flag("--list", list, "print every pair with its similarity and verdicts");
  CLI11_PARSE(app, argc, argv);

  tc::canonical::embed_options opt;
  opt.dimension = dim;
  std::vector<verdict> vs;
  for (const auto& p : pairs()) vs.push_back(judge(p, opt));

  const std::vector<float> thresholds = {0.70f, 0.75f, 0.80f, 0.85f, 0.90f,
                                         0.92f, 0.95f, 0.97f, 0.99f};
  const kind kinds[] = {kind::paraphrase, kind::number, kind::entity, kind::negation};
  std::printf("Pairs: ");
  for (kind k : kinds) {
    int n = 0;
    for (const auto& p : pairs()) n += p.k == k;
    std::printf("%d %s%s", n, name_of(k), k == kind::negation ? ".\n\n" : "; ");
  }
  std::printf("Hits per threshold (template tier or semantic tier with its guard), and in\n");
  std::printf("brackets what the similarity alone would have let through without the guard:\n\n");
  std::printf(
      "| threshold | paraphrases hit | number false hits | entity false hits | negation false hits "
      "|\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  for (float t : thresholds) {
    std::printf("| %.2f |", t);
    for (kind k : kinds) {
      int n = 0, hit = 0, unguarded = 0;
      for (std::size_t i = 0; i < pairs().size(); ++i) {
        if (pairs()[i].k != k) continue;
        ++n;
        const verdict& v = vs[i];
        hit += v.template_hit || (v.guard_equal && v.similarity >= t);
        unguarded += v.template_hit || v.similarity >= t;
      }
      if (k == kind::paraphrase)
        std::printf(" %d/%d (%.0f%%) |", hit, n, 100.0 * hit / n);
      else
        std::printf(" %d/%d (%d) |", hit, n, unguarded);
    }
    std::printf("\n");
  }
  if (list) {
    std::printf(
        "\n| kind | stored | asked | template | guard | similarity "
        "|\n|---|---|---|---|---|---:|\n");
    for (std::size_t i = 0; i < pairs().size(); ++i) {
      const auto& p = pairs()[i];
      std::printf("| %s | %.*s | %.*s | %s | %s | %.3f |\n", name_of(p.k),
                  static_cast<int>(p.stored.size()), p.stored.data(),
                  static_cast<int>(p.asked.size()), p.asked.data(),
                  vs[i].template_hit ? "hit" : "-", vs[i].guard_equal ? "equal" : "differs",
                  vs[i].similarity);
    }
  }
  // Exit status: 1 if any must-not pair would hit at the default threshold 0.95.
  int bad = 0;
  for (std::size_t i = 0; i < pairs().size(); ++i) {
    if (pairs()[i].k == kind::paraphrase) continue;
    bad += vs[i].template_hit || (vs[i].guard_equal && vs[i].similarity >= 0.95f);
  }
  return bad == 0 ? 0 : 1;
}
