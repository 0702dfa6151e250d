// Order statistics for benchmark samples. Machines here are noisy, so
// reports quote medians, not means.
#pragma once

#include <vector>

namespace offcore {

double median(std::vector<double> samples);
// q in [0,1], nearest-rank; 0 for no samples.
double percentile(std::vector<double> samples, double q);

}  // namespace offcore
