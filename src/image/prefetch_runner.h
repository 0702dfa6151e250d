// Running the prefetch planner (prefetch_plan.h) on a converted image.
//
// The planner mounts every layer's EROFS image and their overlay, so it runs
// as its own process (`offcore image plan-prefetch`) in a private mount
// namespace that dies with it: a converter killed at any point leaves no
// mount behind. The converter sends the start spec on stdin and reads the
// plan as JSON from stdout.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "image/prefetch_plan.h"

namespace offcore {

std::string startSpecToJson(const StartSpec& spec);
Result<StartSpec> startSpecFromJson(const std::string& text);
std::string prefetchPlanToJson(const PrefetchPlan& plan);
// layers: how many layer_ranges the plan must carry.
Result<PrefetchPlan> prefetchPlanFromJson(const std::string& text, size_t layers);

// The planner's side (in its private mount namespace): mounts images
// (bottom first) under work, plans, unmounts.
Result<PrefetchPlan> planFromLayerImages(const std::vector<std::string>& images, const StartSpec& spec,
                                         const std::string& work);

// The converter's side: runs planner_argv + "--work W --layer I..." in a new
// mount namespace and returns its plan.
Result<PrefetchPlan> runPrefetchPlanner(const std::vector<std::string>& planner_argv,
                                        const std::vector<std::string>& images, const StartSpec& spec,
                                        const std::string& work);

}  // namespace offcore
