#include "xpstellar/xp_convert_file.hpp"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "xpstellar/sampled_spectra.hpp"
#include "xpstellar/xp_csv.hpp"

namespace xps::xp {

namespace {

// Reads up to rows.size() convertible rows; reports and drops the others. Returns how many.
std::size_t read_batch(XpCsvReader& reader, std::vector<XpRow>& rows, const DesignMatrices& design,
                       const ConversionOptions& options, const WarningSink& warn,
                       FileConversionSummary& summary) {
  std::size_t count = 0;
  while (count < rows.size() && reader.next(rows[count])) {
    XpRow& row = rows[count];
    ++summary.rows;
    if (row.problem.empty()) row.problem = check_source(row.source, design, options);
    if (!row.problem.empty()) {
      ++summary.skipped;
      if (warn) warn(reader.path() + ": " + row.where() + ": " + row.problem + "; row skipped");
      continue;
    }
    ++count;
  }
  return count;
}

void resize_batch(SampledSpectra& batch, std::size_t rows, std::size_t samples) {
  batch.source_id.resize(rows);
  batch.flux.resize(rows * samples);
  batch.flux_error.resize(rows * samples);
  batch.flux_cov.resize(rows * samples * samples);
}

void convert_batch(const std::vector<XpRow>& rows, std::size_t count,
                   std::vector<SourceConverter>& converters, SampledSpectra& batch) {
  const std::size_t m = batch.samples();
  const int threads = static_cast<int>(converters.size());
#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::size_t i = 0; i < count; ++i) {
    SourceConverter& converter = converters[static_cast<std::size_t>(omp_get_thread_num())];
    batch.source_id[i] = rows[i].source.source_id;
    converter.convert(rows[i].source, std::span<double>(batch.flux).subspan(i * m, m),
                      std::span<double>(batch.flux_error).subspan(i * m, m),
                      std::span<double>(batch.flux_cov).subspan(i * m * m, m * m));
  }
}

}  // namespace

FileConversionSummary convert_xp_file(const std::string& input, const std::string& output,
                                      const DesignMatrices& design,
                                      const FileConversionOptions& options,
                                      const std::string& provenance, const WarningSink& warn) {
  ConversionOptions conversion = options.conversion;
  conversion.with_covariance = true;
  const int max_bases = std::max(design.n_bases(Band::bp), design.n_bases(Band::rp));
  XpCsvReader reader(input, max_bases);
  SampledSpectraWriter writer(output, design.wavelength_nm(), provenance);

  const std::size_t batch_rows = std::max<std::size_t>(options.batch_rows, 1);
  std::vector<XpRow> rows(batch_rows);
  std::vector<SourceConverter> converters;
  for (int t = 0; t < std::max(options.threads, 1); ++t)
    converters.emplace_back(design, conversion);
  SampledSpectra batch;
  batch.wavelength_nm = design.wavelength_nm();
  resize_batch(batch, batch_rows, design.samples());  // the largest batch: no reallocation later

  FileConversionSummary summary;
  for (;;) {
    const std::size_t count = read_batch(reader, rows, design, conversion, warn, summary);
    if (count == 0) break;
    resize_batch(batch, count, design.samples());
    convert_batch(rows, count, converters, batch);
    writer.append(batch);
    summary.converted += count;
  }
  writer.close();
  return summary;
}

}  // namespace xps::xp
