// A one-line progress bar on stderr for long work. On a terminal it redraws
// in place; otherwise it prints one line per step, so CI logs stay readable.
#pragma once

#include <string>

namespace offcore {

class ProgressBar {
 public:
  ProgressBar(std::string label, int total);
  ~ProgressBar();
  void step(const std::string& what);
  void finish();

 private:
  void draw(const std::string& what);
  std::string label_;
  int total_;
  int done_ = 0;
  bool tty_;
  bool finished_ = false;
};

}  // namespace offcore
