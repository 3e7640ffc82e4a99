// The firmware's key=value run configuration (firmware/common/fw_protocol.h),
// which the device and `tinyzo fw-ref` parse alike.
#include <gtest/gtest.h>

#include <cmath>

#include "../firmware/common/fw_protocol.h"

namespace tinyzo {
namespace {

TEST(FwProtocol, ChoicesTakeTheirTwoWordsAndNothingElse) {
  fw::RunConfig c;
  EXPECT_TRUE(fw::apply_token(&c, "rounding=stochastic"));
  EXPECT_EQ(c.stochastic_rounding, 1u);
  EXPECT_TRUE(fw::apply_token(&c, "rounding=nearest"));
  EXPECT_EQ(c.stochastic_rounding, 0u);
  EXPECT_TRUE(fw::apply_token(&c, "estimation=model"));
  EXPECT_EQ(c.model_wise, 1u);
  EXPECT_TRUE(fw::apply_token(&c, "passes=layer"));
  EXPECT_EQ(c.one_layer_per_pass, 1u);
  EXPECT_TRUE(fw::apply_token(&c, "passes=1"));
  EXPECT_EQ(c.one_layer_per_pass, 0u);
  EXPECT_TRUE(fw::apply_token(&c, "baseline=mean"));
  EXPECT_EQ(c.baseline, 1u);
  EXPECT_EQ(fw::zo_config(c).step_norm, StepNorm::kNone);
  EXPECT_TRUE(fw::apply_token(&c, "step_norm=layer"));
  EXPECT_EQ(c.step_norm, 1u);
  EXPECT_EQ(fw::zo_config(c).step_norm, StepNorm::kLayer);
  EXPECT_FALSE(fw::zo_config(c).bias_only);
  EXPECT_TRUE(fw::apply_token(&c, "params=bias"));
  EXPECT_EQ(c.params, 1u);
  EXPECT_TRUE(fw::zo_config(c).bias_only);
  EXPECT_TRUE(fw::apply_token(&c, "bias_mu=0.25"));
  EXPECT_EQ(fw::zo_config(c).bias_mu, 0.25f);
  // A bad word leaves the setting as it was.
  for (const char* bad : {"rounding=Nearest", "estimation=", "passes=2", "baseline=median", "passes", "step_norm=model",
                          "params=weights", "params=", "bias_mu=-1", "bias_mu=200", "bias_mu=nan"}) {
    const fw::RunConfig before = c;
    EXPECT_FALSE(fw::apply_token(&c, bad)) << bad;
    EXPECT_EQ(std::memcmp(&before, &c, sizeof c), 0) << bad;
  }
}

TEST(FwProtocol, MomentumIsABetaBelowOne) {
  fw::RunConfig c;
  EXPECT_EQ(c.momentum, 0.f);
  EXPECT_EQ(fw::zo_config(c).momentum, 0.f);
  EXPECT_TRUE(fw::apply_token(&c, "momentum=0.9"));
  EXPECT_EQ(c.momentum, 0.9f);
  EXPECT_EQ(fw::zo_config(c).momentum, 0.9f);
  EXPECT_TRUE(fw::apply_token(&c, "momentum=0"));
  EXPECT_EQ(c.momentum, 0.f);
  for (const char* bad : {"momentum=1", "momentum=1.5", "momentum=-0.1", "momentum=x", "momentum=0x3f800000"}) {
    EXPECT_FALSE(fw::apply_token(&c, bad)) << bad;
    EXPECT_EQ(c.momentum, 0.f) << bad;
  }
}

TEST(FwProtocol, AnchorIsAFractionAndReachesBothTrainers) {
  fw::RunConfig c;
  EXPECT_EQ(fw::zo_config(c).anchor, 0.f);
  EXPECT_TRUE(fw::apply_token(&c, "anchor=0.02"));
  EXPECT_EQ(fw::zo_config(c).anchor, 0.02f);
  EXPECT_EQ(plus_bias_config(fw::zo_config(c), 10).anchor, 0.02f);  // the plus-biases trainer decays too
  for (const char* bad : {"anchor=-0.1", "anchor=1.5", "anchor=nan", "anchor=", "anchor=x"}) {
    EXPECT_FALSE(fw::apply_token(&c, bad)) << bad;
    EXPECT_EQ(c.anchor, 0.02f) << bad;
  }
}

TEST(FwProtocol, PlusBiasesIsAQueryCountAndItsTrainerTheHostsConfiguration) {
  fw::RunConfig c;
  EXPECT_EQ(c.plus_biases, 0u);
  EXPECT_TRUE(fw::apply_token(&c, "plus_biases=50"));
  EXPECT_EQ(c.plus_biases, 50u);
  EXPECT_TRUE(fw::apply_token(&c, "plus_biases=256"));
  EXPECT_TRUE(fw::apply_token(&c, "plus_biases=0"));  // off
  EXPECT_EQ(c.plus_biases, 0u);
  for (const char* bad : {"plus_biases=257", "plus_biases=-1", "plus_biases=x", "plus_biases="}) {
    EXPECT_FALSE(fw::apply_token(&c, bad)) << bad;
    EXPECT_EQ(c.plus_biases, 0u) << bad;
  }
  // The second trainer's configuration is plus_bias_config's, from the run's own.
  ASSERT_TRUE(fw::apply_token(&c, "bias_mu=0.25"));
  ASSERT_TRUE(fw::apply_token(&c, "baseline=mean"));
  ASSERT_TRUE(fw::apply_token(&c, "qw=3"));
  const ZoConfig z = plus_bias_config(fw::zo_config(c), 7);
  EXPECT_TRUE(z.bias_only);
  EXPECT_EQ(z.estimation, Estimation::kModelWise);
  EXPECT_EQ(z.n_queries_b, 7);
  EXPECT_EQ(z.bias_mu, 0.25f);
  EXPECT_EQ(z.baseline, Baseline::kMean);
  EXPECT_EQ(z.n_queries_w, ZoConfig{}.n_queries_w);  // not the first trainer's weight queries
  EXPECT_EQ(z.seed, fw::zo_config(c).seed);
}

}  // namespace
}  // namespace tinyzo
