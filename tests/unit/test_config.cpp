// Declared parameters: defaults, INI files, command-line overrides and their precedence, and
// errors that name the offending key and file.
#include <gtest/gtest.h>

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>

#include "xpstellar/config.hpp"
#include "test_support.hpp"
#include "xpstellar/error.hpp"

namespace {

namespace po = boost::program_options;
using xps::ParameterSet;

ParameterSet example() {
  ParameterSet p;
  p.declare_real("survey.g_limit", 17.65, "mag", "faint limit", 5, 21);
  p.declare_integer("survey.stars", 100, "", "stars", 1);
  p.declare_text("dust.law", "fitzpatrick99", "law", {"fitzpatrick99", "ccm89"});
  p.declare_flag("train.xi", false, "use xi");
  return p;
}

TEST(Config, DefaultsAreReadBack) {
  const auto p = example();
  EXPECT_EQ(p.real("survey.g_limit"), 17.65);
  EXPECT_EQ(p.integer("survey.stars"), 100);
  EXPECT_EQ(p.text("dust.law"), "fitzpatrick99");
  EXPECT_FALSE(p.flag("train.xi"));
}

TEST(Config, IniFileSetsKeysAndUnknownKeysAreErrorsNamingFileAndKey) {
  auto p = example();
  p.load_ini(xps::test::write_temp_file("xps_good.ini", "[survey]\nstars = 5\n[train]\nxi = true\n"));
  EXPECT_EQ(p.integer("survey.stars"), 5);
  EXPECT_TRUE(p.flag("train.xi"));
  const auto bad = xps::test::write_temp_file("xps_bad.ini", "[survey]\nstarz = 5\n");
  const std::string message = xps::test::error_message<xps::UsageError>([&] { p.load_ini(bad); });
  EXPECT_NE(message.find("survey.starz"), std::string::npos) << message;
  EXPECT_NE(message.find("xps_bad.ini"), std::string::npos) << message;
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.load_ini("/nonexistent/x.ini"); }).find("/nonexistent/x.ini"),
            std::string::npos);
}

TEST(Config, ValuesAreCheckedAgainstTypeRangeAndChoices) {
  auto p = example();
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.set("survey.g_limit", "25", "cli"); }).find("outside"), std::string::npos);
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.set("survey.g_limit", "abc", "cli"); }).find("not a finite number"), std::string::npos);
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.set("survey.stars", "1.5", "cli"); }).find("not an integer"), std::string::npos);
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.set("dust.law", "odonnell", "cli"); }).find("ccm89"), std::string::npos);
  EXPECT_NE(xps::test::error_message<xps::UsageError>([&] { p.set("train.xi", "maybe", "cli"); }).find("true or false"), std::string::npos);
  EXPECT_EQ(p.real("survey.g_limit"), 17.65);  // failed sets leave the value alone
}

TEST(Config, LaterFilesWinAndCommandLineWinsOverFiles) {
  auto p = example();
  const auto first = xps::test::write_temp_file("xps_first.ini", "[survey]\nstars = 5\ng_limit = 16\n");
  const auto second = xps::test::write_temp_file("xps_second.ini", "[survey]\nstars = 7\n");
  const char* argv[] = {"prog", "--config", first.c_str(), "--config", second.c_str(),
                        "--survey.g_limit", "15.5"};
  po::options_description driver("driver");
  po::variables_map values;
  const auto command_line = xps::parse_command_line(7, argv, driver, values, p);
  EXPECT_EQ(command_line.config_files.size(), 2u);
  EXPECT_EQ(p.integer("survey.stars"), 7);
  EXPECT_EQ(p.real("survey.g_limit"), 15.5);
}

TEST(Config, UnknownCommandLineOptionIsAnErrorNamingIt) {
  auto p = example();
  const char* argv[] = {"prog", "--survey.colour", "red"};
  po::options_description driver("driver");
  po::variables_map values;
  const std::string message = xps::test::error_message<xps::UsageError>([&] { xps::parse_command_line(3, argv, driver, values, p); });
  EXPECT_NE(message.find("survey.colour"), std::string::npos) << message;
}

TEST(Config, EffectiveIniReadsBackToTheSameValues) {
  auto p = example();
  p.set("survey.g_limit", "16.25", "test");
  p.set("dust.law", "ccm89", "test");
  auto q = example();
  q.load_ini(xps::test::write_temp_file("xps_effective.ini", p.effective_ini()));
  EXPECT_EQ(q.real("survey.g_limit"), 16.25);
  EXPECT_EQ(q.text("dust.law"), "ccm89");
  EXPECT_EQ(q.effective_ini(), p.effective_ini());
}

}  // namespace
