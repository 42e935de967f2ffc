#include "privacy/pld_accountant.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "core/check.h"
#include "privacy/rdp_accountant.h"

namespace umbra {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Losses above this many nats go to +∞ (conservative); keeps e^ε finite in double.
constexpr double kMaxLoss = 600.0;

// log P(Z > z) and log P(Z <= z) for a standard normal Z, accurate in both tails.
double log_sf(double z) { return std::log(0.5) + log_erfc(z / std::sqrt(2.0)); }
double log_cdf(double z) { return log_sf(-z); }

// log(e^ε − 1 + q) for e^ε > 1 − q, without overflow for large ε.
double log_expm1_plus(double eps, double q) {
  if (eps > 1.0) return eps + std::log1p((q - 1.0) * std::exp(-eps));
  return std::log(std::expm1(eps) + q);
}

enum class Direction { kRemove, kAdd };

// One step of the Poisson-subsampled Gaussian in one direction (see the header for P and Q),
// as a function of the mechanism's output o. The privacy loss L(o) = ln(P/Q)(o) is increasing
// in o (remove) or decreasing (add), so tails of L are Gaussian tails at the output x(ε) where
// L crosses ε.
struct Mechanism {
  double sigma;
  double q;
  Direction dir;

  double support_lower() const { return dir == Direction::kRemove ? std::log1p(-q) : -kInf; }
  double support_upper() const { return dir == Direction::kRemove ? kInf : -std::log1p(-q); }

  // ln(1 − q + q·exp((2o − 1)/(2σ²))), accurate near 0 and without overflow.
  double log_mixture_ratio(double o) const {
    const double t = (2.0 * o - 1.0) / (2.0 * sigma * sigma);
    if (t > 30.0) return t + std::log(q) + std::log1p((1.0 - q) / q * std::exp(-t));
    return std::log1p(q * std::expm1(t));
  }
  double loss(double o) const {
    return dir == Direction::kRemove ? log_mixture_ratio(o) : -log_mixture_ratio(o);
  }
  // Density of the output under P.
  double density(double o) const {
    const double norm = 1.0 / (sigma * std::sqrt(2.0 * M_PI));
    const double g0 = std::exp(-o * o / (2.0 * sigma * sigma));
    if (dir == Direction::kAdd) return norm * g0;
    const double g1 = std::exp(-(o - 1.0) * (o - 1.0) / (2.0 * sigma * sigma));
    return norm * ((1.0 - q) * g0 + q * g1);
  }
  // The output where L = ε (±inf outside the support; its orientation follows dir).
  double output_at(double eps) const {
    if (dir == Direction::kRemove) {
      if (eps <= support_lower()) return -kInf;
      return sigma * sigma * (log_expm1_plus(eps, q) - std::log(q)) + 0.5;
    }
    if (eps >= support_upper()) return -kInf;
    return sigma * sigma * (log_expm1_plus(-eps, q) - std::log(q)) + 0.5;
  }

  // P(L > ε) and P(L <= ε).
  double upper_tail(double eps) const {
    const double x = output_at(eps);
    if (dir == Direction::kRemove) {
      if (x == -kInf) return 1.0;
      return (1.0 - q) * std::exp(log_sf(x / sigma)) + q * std::exp(log_sf((x - 1.0) / sigma));
    }
    return x == -kInf ? 0.0 : std::exp(log_cdf(x / sigma));
  }
  double lower_tail(double eps) const {
    const double x = output_at(eps);
    if (dir == Direction::kRemove) {
      if (x == -kInf) return 0.0;
      return (1.0 - q) * std::exp(log_cdf(x / sigma)) + q * std::exp(log_cdf((x - 1.0) / sigma));
    }
    return x == -kInf ? 1.0 : std::exp(log_sf(x / sigma));
  }
};

// Bisection for a monotone predicate: returns b with pred(b) true, pred(a) false, b − a tiny.
template <class Pred>
double bisect(double a, double b, Pred pred) {
  for (int i = 0; i < 200 && b - a > 1e-12 * std::max(1.0, std::abs(b)); ++i) {
    const double m = 0.5 * (a + b);
    (pred(m) ? b : a) = m;
  }
  return b;
}

// The loss range kept on the grid: [bottom, top] with P(L < bottom) and P(L > top) <= tail.
std::pair<double, double> loss_range(const Mechanism& m, double h, double tail) {
  const double cap = std::min(m.support_upper(), kMaxLoss);
  double top = std::max(h, 1.0);
  while (m.upper_tail(top) > tail && top < cap) top *= 2.0;
  top = std::min(top, cap);
  // P(L > −kMaxLoss) ≈ 1 > tail, so the crossing lies in (−kMaxLoss, top].
  if (m.upper_tail(top) <= tail) {
    top = bisect(-kMaxLoss, top, [&](double e) { return m.upper_tail(e) <= tail; });
  }
  double bottom = m.support_lower();
  if (!std::isfinite(bottom)) {
    double b = -1.0;
    while (m.lower_tail(b) > tail && b > -kMaxLoss) b *= 2.0;
    bottom = std::max(b, -kMaxLoss);
    if (m.lower_tail(top) > tail) {
      bottom = bisect(bottom, top, [&](double e) { return m.lower_tail(e) > tail; });
      bottom = std::max(bottom - h, -kMaxLoss);
    }
  }
  return {bottom, std::max(top, bottom + h)};
}

// Discrete PLD of one step on indices lower .. lower + mass.size() − 1 (loss k·h), plus the
// P-mass at +∞.
struct StepPld {
  int64_t lower = 0;
  std::vector<double> mass;
  double inf_mass = 0.0;
};

// Connect the dots as a mass split: the P-mass of L in each interval (ε_k, ε_{k+1}] goes to
// its two end points so that both the P-mass p_k and the Q-mass are preserved, i.e.
//   b_k = c_k / (1 − e^{−h}) to ε_{k+1} and p_k − b_k to ε_k,  c_k = E_P[(1 − e^{ε_k − L}); bin].
// This is the discrete PLD whose privacy profile equals the exact δ(ε_k) at every grid point
// (Doroshenko et al. 2022). p_k and c_k are integrals over the output o with Gauss–Legendre
// rules on pieces no wider than σ/64; computing them as differences of tail probabilities
// instead would lose ~1/h² relative precision (c_k = O(h²)).
StepPld split_masses(const Mechanism& m, int64_t lower, int64_t upper, double h) {
  static constexpr double kNode[3] = {-0.7745966692414834, 0.0, 0.7745966692414834};
  static constexpr double kWeight[3] = {5.0 / 9.0, 8.0 / 9.0, 5.0 / 9.0};
  const double o_min = -40.0 * m.sigma, o_max = 1.0 + 40.0 * m.sigma;  // beyond: < e^-800
  const double max_piece = m.sigma / 64.0;
  const double far = 1.0 - std::exp(-h);  // 1 − e^{ε_k − L} for L at the interval's far end
  const int64_t n = upper - lower + 1;
  StepPld out;
  out.lower = lower;
  out.mass.assign(n, 0.0);
  double o_prev = m.output_at(static_cast<double>(lower) * h);
  for (int64_t k = 0; k + 1 < n; ++k) {
    const double eps_k = static_cast<double>(lower + k) * h;
    const double o_next = m.output_at(static_cast<double>(lower + k + 1) * h);
    const double a = std::clamp(std::min(o_prev, o_next), o_min, o_max);
    const double b = std::clamp(std::max(o_prev, o_next), o_min, o_max);
    o_prev = o_next;
    if (!(b > a)) continue;
    const auto pieces = static_cast<int64_t>(std::ceil((b - a) / max_piece));
    const double width = (b - a) / static_cast<double>(pieces);
    double p = 0.0, c = 0.0;
    for (int64_t j = 0; j < pieces; ++j) {
      const double mid = a + (static_cast<double>(j) + 0.5) * width;
      for (int i = 0; i < 3; ++i) {
        const double o = mid + 0.5 * width * kNode[i];
        const double w = kWeight[i] * m.density(o);
        p += w;
        c += w * std::clamp(-std::expm1(eps_k - m.loss(o)), 0.0, far);
      }
    }
    p *= 0.5 * width;
    c *= 0.5 * width;
    const double up = std::min(p, c / far);
    out.mass[k] += p - up;
    out.mass[k + 1] += up;
  }
  // Below the grid (tail search only): moved up to ε_lower. Above it: to +∞.
  out.mass[0] += m.lower_tail(static_cast<double>(lower) * h);
  out.inf_mass = m.upper_tail(static_cast<double>(upper) * h);
  return out;
}

struct Window {
  int64_t lower, upper;  // composed loss indices kept
};

// Chernoff bounds on the composed loss S = Σ steps: P(S >= u) <= exp(K(t) − t·u) for t > 0 and
// P(S <= l) <= exp(K(−t) + t·l), K the log-MGF (index units). The MGF is evaluated on groups of
// bins placed at the group's upper (resp. lower) end, which only enlarges it.
Window chernoff_window(const std::vector<StepPld>& steps_pld, const std::vector<int64_t>& counts,
                       double h, double tail) {
  constexpr int kGroups = 4096;
  struct Coarse {
    std::vector<double> log_mass, lo_index, hi_index;
  };
  std::vector<Coarse> coarse;
  double hard_lower = 0.0, hard_upper = 0.0;
  for (size_t e = 0; e < steps_pld.size(); ++e) {
    const StepPld& s = steps_pld[e];
    const int64_t n = static_cast<int64_t>(s.mass.size());
    const int64_t g = std::max<int64_t>(1, (n + kGroups - 1) / kGroups);
    Coarse c;
    for (int64_t start = 0; start < n; start += g) {
      double sum = 0.0;
      for (int64_t k = start; k < std::min(n, start + g); ++k) sum += s.mass[k];
      if (sum <= 0.0) continue;
      c.log_mass.push_back(std::log(sum));
      c.lo_index.push_back(static_cast<double>(s.lower + start));
      c.hi_index.push_back(static_cast<double>(s.lower + std::min(n, start + g) - 1));
    }
    const double cnt = static_cast<double>(counts[e]);
    hard_lower += cnt * static_cast<double>(s.lower);
    hard_upper += cnt * static_cast<double>(s.lower + n - 1);
    coarse.push_back(std::move(c));
  }
  auto log_mgf = [&](double t, bool upper_end) {
    double total = 0.0;
    for (size_t e = 0; e < coarse.size(); ++e) {
      const Coarse& c = coarse[e];
      const std::vector<double>& idx = upper_end ? c.hi_index : c.lo_index;
      double mx = -kInf;
      for (size_t i = 0; i < idx.size(); ++i) mx = std::max(mx, c.log_mass[i] + t * idx[i]);
      double sum = 0.0;
      for (size_t i = 0; i < idx.size(); ++i) sum += std::exp(c.log_mass[i] + t * idx[i] - mx);
      total += static_cast<double>(counts[e]) * (mx + std::log(sum));
    }
    return total;
  };
  const double log_tail = std::log(tail);
  double upper = hard_upper, lower = hard_lower;
  for (int i = 0; i <= 160; ++i) {
    const double t = std::pow(10.0, -3.0 + 7.0 * i / 160.0) * h;  // 1e-3 .. 1e4 per nat
    upper = std::min(upper, (log_mgf(t, true) - log_tail) / t);
    lower = std::max(lower, -(log_mgf(-t, false) - log_tail) / t);
  }
  return {static_cast<int64_t>(std::floor(lower)), static_cast<int64_t>(std::ceil(upper))};
}

// Smallest 2^a 3^b 5^c >= n (pocketfft is fastest on such lengths).
int64_t fast_fft_size(int64_t n) {
  int64_t best = 1;
  while (best < n) best *= 2;
  for (int64_t p5 = 1; p5 < best; p5 *= 5) {
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t v = p35;
      while (v < n) v *= 2;
      best = std::min(best, v);
    }
  }
  return best;
}

c10::complex<double> power(c10::complex<double> z, int64_t n) {
  c10::complex<double> result(1.0, 0.0);
  while (n > 0) {
    if (n & 1) result *= z;
    z *= z;
    n >>= 1;
  }
  return result;
}

// The composed PLD of one direction: pmf over loss indices lower .. lower + pmf.size() − 1.
struct Composed {
  double h = 0.0;
  int64_t lower = 0;
  std::vector<double> suffix_mass;      // d1[k] = Σ_{j>=k} p_j, size n + 1
  std::vector<double> suffix_weighted;  // d2[k] = Σ_{j>=k} p_j e^{−(j−k)h}, size n + 1
  double inf_mass = 0.0;                // P-mass at +∞, including the window's tail bound
  int64_t bins = 0;

  // δ(ε) = inf_mass + Σ_j p_j (1 − e^{ε − (lower+j)h})_+.
  double delta(double eps) const {
    const int64_t n = static_cast<int64_t>(suffix_mass.size()) - 1;
    // First index whose loss exceeds ε.
    int64_t k = static_cast<int64_t>(std::floor(eps / h)) - lower + 1;
    k = std::clamp<int64_t>(k, 0, n);
    const double top = static_cast<double>(lower + k) * h;
    return inf_mass + suffix_mass[k] - std::exp(eps - top) * suffix_weighted[k];
  }

  double epsilon(double target) const {
    if (inf_mass >= target) return kInf;
    if (delta(0.0) <= target) return 0.0;
    const int64_t n = static_cast<int64_t>(suffix_mass.size()) - 1;
    // D(k) = δ((lower + k)·h) = inf + d1[k+1] − e^{−h} d2[k+1] decreases in k; D(n−1) = inf.
    auto grid_delta = [&](int64_t k) {
      return inf_mass + suffix_mass[k + 1] - std::exp(-h) * suffix_weighted[k + 1];
    };
    int64_t lo = -1, hi = n - 1;  // D(hi) <= target; D(lo) > target (lo = −1: ε below grid)
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (grid_delta(mid) <= target ? hi : lo) = mid;
    }
    // On ((lower+hi−1)h, (lower+hi)h] only indices >= hi exceed ε: solve the exponential.
    const double top = static_cast<double>(lower + hi) * h;
    const double eps = top + std::log((inf_mass + suffix_mass[hi] - target) / suffix_weighted[hi]);
    return std::max(0.0, eps);
  }
};

struct EntryView {
  double sigma, q;
  int64_t steps;
};

Composed compose_direction(const std::vector<EntryView>& entries, Direction dir,
                           const PldOptions& options) {
  std::vector<Mechanism> mechs;
  std::vector<int64_t> counts;
  for (const EntryView& e : entries) {
    if (e.steps == 0 || e.q == 0.0) continue;  // q = 0: the output does not depend on the data
    mechs.push_back({e.sigma, e.q, dir});
    counts.push_back(e.steps);
  }
  Composed out;
  out.h = options.discretization;
  if (mechs.empty()) {
    out.suffix_mass = {1.0, 0.0};
    out.suffix_weighted = {1.0, 0.0};
    return out;  // a point mass at loss 0: δ(ε) = 0 for ε >= 0
  }
  double h = options.discretization;
  const double max_bins = static_cast<double>(options.max_bins);
  std::vector<StepPld> steps_pld;
  Window window{};
  for (int attempt = 0;; ++attempt) {
    std::vector<std::pair<double, double>> ranges;
    double widest = 0.0;
    for (const Mechanism& m : mechs) {
      ranges.push_back(loss_range(m, h, PldAccountant::kStepTailMass));
      widest = std::max(widest, (ranges.back().second - ranges.back().first) / h);
    }
    if (widest > max_bins) {
      h *= 1.05 * widest / max_bins;
      continue;
    }
    steps_pld.clear();
    for (size_t i = 0; i < mechs.size(); ++i) {
      const auto lower = static_cast<int64_t>(std::floor(ranges[i].first / h));
      const auto upper = static_cast<int64_t>(std::ceil(ranges[i].second / h));
      steps_pld.push_back(split_masses(mechs[i], lower, upper, h));
    }
    window = chernoff_window(steps_pld, counts, h, PldAccountant::kWindowTailMass);
    const double width = static_cast<double>(window.upper - window.lower + 1);
    if (width <= max_bins || attempt >= 4) break;
    h *= 1.05 * width / max_bins;
  }

  const int64_t n = fast_fft_size(window.upper - window.lower + 1);
  auto mod = [n](int64_t i) { return ((i % n) + n) % n; };
  torch::Tensor spectrum;
  double log_no_inf = 0.0;  // log P(no step hit +∞)
  for (size_t i = 0; i < steps_pld.size(); ++i) {
    const StepPld& s = steps_pld[i];
    torch::Tensor a = torch::zeros({n}, torch::kFloat64);
    double* pa = a.data_ptr<double>();
    for (size_t k = 0; k < s.mass.size(); ++k)
      pa[mod(s.lower + static_cast<int64_t>(k))] += s.mass[k];
    torch::Tensor f = torch::fft::rfft(a).contiguous();
    auto* pf = f.data_ptr<c10::complex<double>>();
    for (int64_t k = 0; k < f.numel(); ++k) pf[k] = power(pf[k], counts[i]);
    spectrum = spectrum.defined() ? spectrum * f : f;
    log_no_inf += static_cast<double>(counts[i]) * std::log1p(-s.inf_mass);
  }
  torch::Tensor p = torch::fft::irfft(spectrum, n).contiguous();
  const double* pp = p.data_ptr<double>();

  // Position i of the circular result holds composed indices ≡ i (mod n); read the window
  // [window.lower, window.lower + n).
  out.h = h;
  out.lower = window.lower;
  out.bins = n;
  out.suffix_mass.assign(n + 1, 0.0);
  out.suffix_weighted.assign(n + 1, 0.0);
  const double decay = std::exp(-h);
  const int64_t offset = mod(window.lower);
  double total = 0.0;
  for (int64_t k = n - 1; k >= 0; --k) {
    const double pk = std::max(0.0, pp[(offset + k) % n]);
    total += pk;
    out.suffix_mass[k] = pk + out.suffix_mass[k + 1];
    out.suffix_weighted[k] = pk + decay * out.suffix_weighted[k + 1];
  }
  const double inf_mass = -std::expm1(log_no_inf);
  UMBRA_ASSERT(std::abs(total + inf_mass - 1.0) < 1e-6, "PLD composition lost mass: finite ", total,
               " + infinite ", inf_mass);
  out.inf_mass = inf_mass + PldAccountant::kWindowTailMass;
  return out;
}

}  // namespace

struct PldAccountant::Cache {
  std::once_flag once, once_coarse;
  Composed remove, add;                // at the requested interval h
  Composed coarse_remove, coarse_add;  // at 2h, for the error estimate
};

PldAccountant::PldAccountant(PldOptions options)
    : options_(options), cache_(std::make_shared<Cache>()) {
  UMBRA_CHECK(options_.discretization > 0.0 && options_.discretization <= 0.1,
              "PLD accountant: discretization must be in (0, 0.1], got ", options_.discretization);
  UMBRA_CHECK(options_.max_bins >= 1024, "PLD accountant: max_bins must be >= 1024, got ",
              options_.max_bins);
}

void PldAccountant::compose(double noise_multiplier, double sample_rate, int64_t steps) {
  UMBRA_ASSERT(noise_multiplier > 0.0 && sample_rate >= 0.0 && sample_rate <= 1.0 && steps >= 0,
               "PLD compose(", noise_multiplier, ", ", sample_rate, ", ", steps, ")");
  if (steps == 0) return;
  entries_.push_back({noise_multiplier, sample_rate, steps});
  cache_ = std::make_shared<Cache>();
}

const PldAccountant::Cache& PldAccountant::composed(bool coarse) const {
  auto view = [this] {
    std::vector<EntryView> v;
    for (const Entry& e : entries_) v.push_back({e.noise_multiplier, e.sample_rate, e.steps});
    return v;
  };
  std::call_once(cache_->once, [&] {
    cache_->remove = compose_direction(view(), Direction::kRemove, options_);
    cache_->add = compose_direction(view(), Direction::kAdd, options_);
  });
  if (coarse) {
    std::call_once(cache_->once_coarse, [&] {
      PldOptions o = options_;
      o.discretization = 2.0 * std::max(cache_->remove.h, cache_->add.h);
      cache_->coarse_remove = compose_direction(view(), Direction::kRemove, o);
      cache_->coarse_add = compose_direction(view(), Direction::kAdd, o);
    });
  }
  return *cache_;
}

PldEpsilon PldAccountant::epsilon(double delta) const {
  UMBRA_ASSERT(delta > 0.0 && delta < 1.0, "delta ", delta);
  const Cache& c = composed(false);
  PldEpsilon out;
  out.epsilon_remove = c.remove.epsilon(delta);
  out.epsilon_add = c.add.epsilon(delta);
  out.epsilon = std::max(out.epsilon_remove, out.epsilon_add);
  out.discretization = std::max(c.remove.h, c.add.h);
  out.bins = std::max(c.remove.bins, c.add.bins);
  return out;
}

double PldAccountant::discretization_error(double delta) const {
  UMBRA_ASSERT(delta > 0.0 && delta < 1.0, "delta ", delta);
  const Cache& c = composed(true);
  const double fine = std::max(c.remove.epsilon(delta), c.add.epsilon(delta));
  const double coarse = std::max(c.coarse_remove.epsilon(delta), c.coarse_add.epsilon(delta));
  if (!std::isfinite(fine) || !std::isfinite(coarse)) return 0.0;
  return std::max(0.0, coarse - fine) / 3.0;
}

double PldAccountant::delta(double epsilon) const {
  const Cache& c = composed(false);
  return std::min(1.0, std::max(c.remove.delta(epsilon), c.add.delta(epsilon)));
}

}  // namespace umbra
