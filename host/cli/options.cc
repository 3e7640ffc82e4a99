#include "options.h"

#include <type_traits>

namespace tinyzo::cli {

namespace {

// The first long name of "--batch,-b" (what a message names).
std::string first_long_name(const std::string& names) {
  size_t start = 0;
  while (start < names.size()) {
    const size_t comma = names.find(',', start);
    const std::string n = names.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (n.rfind("--", 0) == 0) return n;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

// An option taking one text value, handed to `parse`, which returns the
// reason it refuses the text ("" = taken): a refusal is a usage error.
CLI::Option* add_parsed(CLI::App* cmd, const std::string& names, const std::string& help, const char* type,
                        std::function<std::string(const std::string&)> parse) {
  const std::string flag = first_long_name(names);
  CLI::Option* o = cmd->add_option_function<std::string>(
      names,
      [flag, parse](const std::string& text) {
        const std::string why = parse(text);
        if (!why.empty()) throw CLI::ValidationError(flag, why);
      },
      help);
  o->type_name(type);
  return o;
}

template <class T>
CLI::Option* add_int(CLI::App* cmd, const std::string& names, T* dst, int64_t min, int64_t max,
                     const std::string& help) {
  static_assert(std::is_integral_v<T>);
  return add_parsed(cmd, names, help, "INT", [dst, min, max](const std::string& text) {
    int64_t v = 0;
    const std::string why = parse_int_text(text, min, max, &v);
    if (why.empty()) *dst = T(v);
    return why;
  });
}

}  // namespace

CLI::Option* SettingFlags::add(const std::string& key, const std::string& help) {
  const Setting* s = find_setting(key);
  if (s == nullptr) throw std::logic_error("SettingFlags: no setting '" + key + "'");
  auto e = std::make_unique<Entry>();
  Entry* raw = e.get();
  raw->setting = s;
  const std::string text = help.empty() ? std::string(s->help) : help;
  if (std::holds_alternative<bool TrainConfig::*>(s->member)) {
    raw->option = cmd_->add_flag(s->flags, raw->value, text);
  } else {
    raw->option = add_parsed(cmd_, s->flags, text, "VALUE", [raw](const std::string& v) {
      const std::string why = check_setting_text(*raw->setting, v);
      if (why.empty()) raw->text = v;
      return why;
    });
  }
  entries_.push_back(std::move(e));
  return raw->option;
}

void SettingFlags::add_all() {
  for (const Setting& s : train_settings()) add(s.key);
}

bool SettingFlags::given(const std::string& key) const {
  for (const auto& e : entries_)
    if (key == e->setting->key) return e->option->count() > 0;
  return false;
}

void SettingFlags::apply(TrainConfig* c, SettingSources* sources) const {
  for (const auto& e : entries_) {
    if (e->option->count() == 0) continue;
    const Setting& s = *e->setting;
    const std::string flag = setting_flag(s);
    if (const auto* m = std::get_if<bool TrainConfig::*>(&s.member)) {
      c->** m = e->value;
    } else {
      set_setting_text(s, e->text, c, flag);
    }
    if (sources != nullptr) sources->set(s.key, flag);
  }
}

CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, int* dst, int64_t min, int64_t max,
                            const std::string& help) {
  return add_int(cmd, names, dst, min, max, help);
}

CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, int64_t* dst, int64_t min, int64_t max,
                            const std::string& help) {
  return add_int(cmd, names, dst, min, max, help);
}

CLI::Option* add_int_option(CLI::App* cmd, const std::string& names, size_t* dst, int64_t min, int64_t max,
                            const std::string& help) {
  if (min < 0) throw std::logic_error("add_int_option: a size_t option needs min >= 0");
  return add_int(cmd, names, dst, min, max, help);
}

CLI::Option* add_u64_option(CLI::App* cmd, const std::string& names, uint64_t* dst, const std::string& help) {
  return add_parsed(cmd, names, help, "UINT64",
                    [dst](const std::string& text) { return parse_u64_text(text, dst); });
}

CLI::Option* add_real_option(CLI::App* cmd, const std::string& names, double* dst, double min, double max,
                             const std::string& help) {
  return add_parsed(cmd, names, help, "NUMBER", [dst, min, max](const std::string& text) {
    return parse_real_text(text, min, max, dst);
  });
}

}  // namespace tinyzo::cli
