#include "actors/ledger.hpp"

#include <chrono>
#include <utility>

namespace tc::actors {

namespace {

using self_ptr = caf::stateful_actor<ledger_state>*;

constexpr auto retry_after = std::chrono::milliseconds(100);

/// Lets the I/O loops send the answers held for records in this batch.
void release_held(ledger_state& st) {
  if (st.held.empty()) return;
  if (st.hooks && st.hooks->on_durable) st.hooks->on_durable(st.held);
  st.held.clear();
}

void queue_flush(self_ptr self) {
  auto& st = self->state;
  if (st.flush_queued) return;
  // Behind whatever else is already in the mailbox: those records join this batch.
  st.flush_queued = true;
  self->send(self, ledger_flush_atom::value);
}

/// Writes what is pending. On failure keeps it and tries again shortly.
void flush(self_ptr self) {
  auto& st = self->state;
  st.flush_queued = false;
  if (st.pending.empty()) return release_held(st);
  size_t added = 0;
  store::status s = st.book->append(st.pending, &added);
  if (s.value == store::status::code::invalid) {
    // The batch was written except records that can never be (no id, impossible time):
    // retrying would stall every record behind them.
    st.failing = false;
    if (st.hooks && st.hooks->on_write_failed) st.hooks->on_write_failed(s.message, 0);
    if (st.hooks && st.hooks->on_written) st.hooks->on_written(added);
    st.pending.clear();
    count_down(st.hooks ? st.hooks->records_behind : nullptr, st.unwaited);
    return release_held(st);
  }
  if (!s.ok()) {
    st.failing = true;
    if (st.hooks && st.hooks->on_write_failed)
      st.hooks->on_write_failed(s.message, st.pending.size());
    if (st.hooks && st.hooks->release_on_failure) release_held(st);
    st.flush_queued = true;
    self->delayed_send(self, retry_after, ledger_flush_atom::value);
    return;
  }
  st.failing = false;
  if (st.hooks && st.hooks->on_written) st.hooks->on_written(st.pending.size());
  st.pending.clear();
  count_down(st.hooks ? st.hooks->records_behind : nullptr, st.unwaited);
  release_held(st);
}

bool parse_group_by(const std::string& text, std::vector<billing::dimension>& out,
                    std::string& error) {
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string name = text.substr(start, comma - start);
    billing::dimension d;
    if (!billing::parse_dimension(name, d)) {
      error = "Unknown group_by dimension '" + name +
              "'; expected day, tenant, project, key, model or provider.";
      return false;
    }
    out.push_back(d);
    start = comma + 1;
  }
  return true;
}

}  // namespace

caf::behavior ledger(caf::stateful_actor<ledger_state>* self, std::shared_ptr<store> db,
                     std::shared_ptr<ledger_book> book, std::shared_ptr<const ledger_hooks> hooks) {
  self->state.db = std::move(db);
  self->state.book = std::move(book);
  self->state.hooks = std::move(hooks);
  return {
      [self](billing::usage_record& r) {
        self->state.pending.push_back(std::move(r));
        ++self->state.unwaited;
        queue_flush(self);
      },
      [self](billing::usage_record& r, reply_target held) {
        auto& st = self->state;
        st.pending.push_back(std::move(r));
        st.held.push_back(held);
        if (st.failing && st.hooks && st.hooks->release_on_failure) return release_held(st);
        queue_flush(self);
      },
      [self](ledger_flush_atom) { flush(self); },
      [self](ledger_sync_atom) {
        flush(self);
        return self->state.pending.empty();
      },
      [self](ledger_report_atom, int64_t from_day, int64_t to_day, const std::string& tenant,
             const std::string& project, const std::string& key, const std::string& group_by,
             const std::string& format) -> caf::result<std::string> {
        flush(self);
        billing::usage_query q;
        q.from_day = from_day;
        q.to_day = to_day;
        q.tenant = tenant;
        q.project = project;
        q.key = key;
        std::string error;
        if (!parse_group_by(group_by, q.group_by, error))
          return caf::make_error(caf::sec::invalid_argument, error);
        billing::usage_report r = self->state.book->report(q);
        return format == "csv" ? billing::to_csv(r) : billing::to_json(r);
      },
      [self](ledger_records_atom, int64_t from_day, int64_t to_day, const std::string& tenant,
             uint64_t limit, const std::string& format) -> caf::result<std::string> {
        flush(self);
        std::vector<billing::usage_record> records;
        store::status s = self->state.book->records(from_day, to_day, tenant, limit, records);
        if (!s.ok()) return caf::make_error(caf::sec::runtime_error, s.message);
        std::string out;
        if (format == "csv") {
          out = billing::csv_header();
          for (const auto& r : records) out += billing::to_csv_line(r);
          return out;
        }
        out = R"({"object":"list","data":[)";
        for (size_t i = 0; i < records.size(); ++i) {
          if (i != 0) out += ',';
          out += billing::to_json(records[i]);
        }
        out += "]}";
        return out;
      },
  };
}

}  // namespace tc::actors
