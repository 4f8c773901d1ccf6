// The catalogue CSV reader: quoting, nulls, comments, and errors that name file, line and column.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "xpstellar/csv_table.hpp"
#include "test_support.hpp"
#include "xpstellar/error.hpp"

namespace {

TEST(CsvTable, ReadsNumbersNullsQuotesAndComments) {
  const auto path = xps::test::write_temp_file("xps_csv_good.csv",
                              "# %ECSV 1.0\n# a comment\nsource_id,g,ph_qual,note\n"
                              "5853498713190525696,12.5,AAA,\"a, b\"\n"
                              "5762406957886626816,,ABU,\"say \"\"hi\"\"\"\r\n");
  const auto table = xps::CsvTable::read(path);
  EXPECT_EQ(table.rows(), 2u);
  EXPECT_EQ(table.integers("source_id")[0], 5853498713190525696);
  const auto g = table.numbers("g");
  EXPECT_EQ(g[0], 12.5);
  EXPECT_TRUE(std::isnan(g[1]));
  EXPECT_EQ(table.strings("ph_qual")[1], "ABU");
  EXPECT_EQ(table.strings("note")[0], "a, b");
  EXPECT_EQ(table.strings("note")[1], "say \"hi\"");
  EXPECT_TRUE(std::isnan(table.numbers_or_nan("absent")[1]));
}

TEST(CsvTable, ErrorsNameFileLineAndColumn) {
  const auto bad_number = xps::test::write_temp_file("xps_csv_bad.csv", "source_id,g\n1,12.5\n2,twelve\n");
  const auto table = xps::CsvTable::read(bad_number);
  const std::string message = xps::test::error_message<xps::IoError>([&] { table.numbers("g"); });
  EXPECT_NE(message.find("xps_csv_bad.csv:3"), std::string::npos) << message;
  EXPECT_NE(message.find("column g"), std::string::npos) << message;
  EXPECT_NE(message.find("twelve"), std::string::npos) << message;
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] { table.require({"g", "bp_rp", "ruwe"}); }).find("bp_rp, ruwe"), std::string::npos);

  const auto ragged = xps::test::write_temp_file("xps_csv_ragged.csv", "a,b\n1,2\n3\n");
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] { xps::CsvTable::read(ragged); }).find("xps_csv_ragged.csv:3"), std::string::npos);
  const auto empty = xps::test::write_temp_file("xps_csv_empty.csv", "");
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] { xps::CsvTable::read(empty); }).find("no header"), std::string::npos);
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] { xps::CsvTable::read("/nonexistent/file.csv"); }).find("/nonexistent/file.csv"), std::string::npos);
  const auto bad_id = xps::test::write_temp_file("xps_csv_bad_id.csv", "source_id\n12x\n");
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] { xps::CsvTable::read(bad_id).integers("source_id"); }).find("not an integer"), std::string::npos);
}

}  // namespace
