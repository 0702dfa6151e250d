#include "base/progress.h"

#include <unistd.h>

#include <cstdio>

namespace offcore {

ProgressBar::ProgressBar(std::string label, int total)
    : label_(std::move(label)), total_(total > 0 ? total : 1), tty_(::isatty(STDERR_FILENO)) {
  draw("");
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::step(const std::string& what) {
  if (done_ < total_) ++done_;
  draw(what);
}

void ProgressBar::draw(const std::string& what) {
  constexpr int kWidth = 30;
  int filled = done_ * kWidth / total_;
  std::string bar(static_cast<size_t>(filled), '#');
  bar += std::string(static_cast<size_t>(kWidth - filled), '.');
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s [%s] %d/%d %s", label_.c_str(), bar.c_str(), done_, total_, what.c_str());
  } else if (done_ > 0) {
    std::fprintf(stderr, "%s [%s] %d/%d %s\n", label_.c_str(), bar.c_str(), done_, total_, what.c_str());
  }
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace offcore
