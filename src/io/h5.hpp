// A small RAII layer over the HDF5 C API, in the spirit of HighFive: every identifier is owned by
// a Handle, every C call is checked, and a failure throws xps::IoError naming the file, the object
// path and what was expected. Private to src/io (tests may include it too).
//
// This header deliberately does not include hdf5.h: identifiers are carried as std::int64_t
// (h5.cpp static_asserts that this is hid_t), so only h5.cpp and nothing outside src/io sees the
// C API.
#pragma once

#include <mpi.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "xpstellar/error.hpp"

namespace xps::h5 {

using Id = std::int64_t;                       // hid_t
using Dims = std::vector<unsigned long long>;  // hsize_t

// The element types the star tables, model files and catalogs store.
template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> ||
    std::same_as<T, std::int32_t> || std::same_as<T, std::int64_t> || std::same_as<T, std::uint8_t>;

enum class TypeClass { integer, floating, string, other };

// Owns one HDF5 identifier and releases it with the matching H5?close function.
class Handle {
public:
  using Closer = int (*)(Id);  // herr_t (*)(hid_t)
  Handle() = default;
  Handle(Id id, Closer closer) noexcept : m_id(id), m_closer(closer) {}
  Handle(Handle&& other) noexcept;
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();

  Id get() const noexcept { return m_id; }
  // Closes now; returns false if HDF5 reported a failure (the handle is released either way).
  bool close() noexcept;

private:
  Id m_id = -1;
  Closer m_closer = nullptr;
};

// What every object of one open file shares: its name for messages and the transfer properties.
struct FileContext {
  std::string name;
  Handle write_transfer;  // collective MPI-IO transfers for a parallel file, else default
  bool parallel = false;
};

// A group or dataset: something with a path and attributes.
class Object {
public:
  const std::string& path() const { return m_path; }
  const std::string& file_name() const { return m_file->name; }
  Id id() const { return m_handle.get(); }

  bool has_attribute(const std::string& name) const;
  // Attribute writes are collective in parallel HDF5: every rank must pass the same value.
  void write_attribute(const std::string& name, std::int32_t value);
  void write_attribute(const std::string& name, std::int64_t value);
  void write_attribute(const std::string& name, const std::string& value);  // fixed-length ASCII
  void write_attribute(const std::string& name, double value);  // IEEE float64
  // Variable-length UTF-8, which h5py reads as str (a fixed-length ASCII one reads as bytes).
  void write_text_attribute(const std::string& name, const std::string& value);
  // Any integer attribute, converted by HDF5 (throws if it is missing or not an integer).
  std::int64_t read_integer_attribute(const std::string& name) const;
  // Any numeric (floating-point or integer) attribute, converted to double by HDF5.
  double read_double_attribute(const std::string& name) const;
  // A fixed- or variable-length string attribute (files written by h5py use variable length).
  std::string read_string_attribute(const std::string& name) const;

protected:
  Object(Handle handle, std::shared_ptr<const FileContext> file, std::string path)
      : m_handle(std::move(handle)), m_file(std::move(file)), m_path(std::move(path)) {}
  // Throws IoError "<file>: <object path>: <what>".
  [[noreturn]] void fail(const std::string& what) const;
  std::string child_path(const std::string& name) const;

  Handle m_handle;
  std::shared_ptr<const FileContext> m_file;
  std::string m_path;
};

class Dataset : public Object {
public:
  Dims shape() const;
  TypeClass type_class() const;

  // Writes rows [first_row, first_row + rows) of a dataset whose first axis is rows, from `data`
  // (rows x the product of the other dimensions). In a parallel file this is collective: every
  // rank calls it, a rank without rows with rows == 0.
  template <Element T>
  void write_rows(std::uint64_t first_row, std::uint64_t rows, std::span<const T> data);
  // Reads rows [first_row, first_row + rows) into `out` (independent, never collective).
  template <Element T>
  void read_rows(std::uint64_t first_row, std::uint64_t rows, std::span<T> out) const;
  // Same contract as write_rows, for a one-dimensional fixed-length string dataset.
  void write_string_rows(std::uint64_t first_row, std::span<const std::string> values);
  // Sets the length of the first axis to `rows` (a chunked dataset only: its first axis is
  // unlimited). Collective in a parallel file. Used to append rows to a growing table.
  void resize_rows(std::uint64_t rows);
  std::vector<std::string> read_strings() const;

private:
  friend class Group;
  using Object::Object;
};

// How a new dataset is stored. Chunked datasets are shuffled and deflated and have an unlimited
// first axis (so a chunk may be larger than an empty or short table); chunk_rows == 0 means a
// contiguous dataset, for small arrays such as per-band metadata.
struct Layout {
  std::uint64_t chunk_rows = 0;
  // Level 1: the noise-dominated float mantissas of fluxes and covariances compress to ~78 % at
  // level 1 and ~75 % at level 4, at a fraction of the time. 0: no filters at all.
  int deflate_level = 1;
  // Fixed extent, storage allocated when the dataset is created and never filled, so that blocks
  // of rows written in any order leave the same bytes. Unfiltered only (deflate_level 0): a
  // filtered chunk moves whenever it is rewritten. A chunk is at most the extent.
  bool preallocate = false;
};

class Group : public Object {
public:
  Group create_group(const std::string& name);
  Group open_group(const std::string& name) const;
  // Whether a link `name` (relative, may contain '/') exists, checking each path component.
  bool has(const std::string& name) const;

  template <Element T>
  Dataset create_dataset(const std::string& name, const Dims& shape, const Layout& layout);
  // A one-dimensional fixed-length ASCII string dataset, `max_length` bytes per entry.
  Dataset create_string_dataset(const std::string& name, std::uint64_t count,
                                std::size_t max_length);
  Dataset open_dataset(const std::string& name) const;
  // Renames a link (tests use it to break the contract of a file on purpose).
  void move_link(const std::string& from, const std::string& to);

protected:
  friend class File;
  using Object::Object;
};

class File : public Group {
public:
  // Creates (truncating) `path`. A communicator of one rank uses the default POSIX driver, so a
  // file is byte-identical whatever the job size; a larger one uses MPI-IO and collective writes.
  static File create(const std::string& path, MPI_Comm comm);
  // Opens an existing file read-only (MPI-IO when comm has more than one rank; collective then).
  static File open_read_only(const std::string& path, MPI_Comm comm);
  // Opens an existing file for modification by one process (tests, small fix-ups).
  static File open_read_write(const std::string& path);

  // Closes the file, throwing if HDF5 cannot flush it. Every object of the file must be closed.
  void close();

private:
  using Group::Group;
};

// "[10,66]": a shape as messages print it.
std::string dims_text(const Dims& dims);

// Turns off HDF5's automatic printing of its error stack: failures become IoError messages.
void silence_error_printing();

// Opens dataset `name` and checks its shape and kind of element against the contract.
template <class T>
inline Dataset open_checked(const File& file, const std::string& name, const Dims& expected) {
  Dataset dataset = file.open_dataset(name);
  const Dims shape = dataset.shape();
  if (shape != expected) {
    throw IoError(file.file_name() + ": dataset " + dataset.path() + " has shape " +
                  dims_text(shape) + ", expected " + dims_text(expected));
  }
  const TypeClass expected_class =
      std::is_floating_point_v<T> ? TypeClass::floating : TypeClass::integer;
  if (dataset.type_class() != expected_class) {
    throw IoError(
        file.file_name() + ": dataset " + dataset.path() + " holds " +
        (expected_class == TypeClass::floating ? "non-floating-point" : "non-integer") +
        " values");
  }
  return dataset;
}

// The length of dataset `name`, which must exist and be one-dimensional.
std::uint64_t dataset_length(const File& file, const std::string& name);

// ---- training checkpoints (src/io/training_checkpoint.cpp) ------------------------------------

// A scalar unsigned 64-bit attribute (seeds, checksums), stored as little-endian u64. Writing is
// collective in a parallel file: every rank must pass the same value.
void write_u64_attribute(Object& object, const std::string& name, std::uint64_t value);
// Any integer attribute read as u64 (throws if it is missing or not an integer).
std::uint64_t read_u64_attribute(const Object& object, const std::string& name);
// Byte offset of a contiguous dataset's data in its file (tests corrupt it on purpose); throws if
// the dataset is chunked or its storage was never allocated.
std::uint64_t dataset_storage_offset(const Dataset& dataset);
// A contiguous, unfiltered dataset allocated when it is created and never filled with a fill
// value. MPI-IO files always allocate early; asking for it everywhere makes a file written by one
// process (POSIX driver) byte-identical to one written by several. Collective in a parallel file.
template <Element T>
Dataset create_preallocated_dataset(Group& group, const std::string& name, const Dims& shape);
// The same for a one-dimensional fixed-length ASCII string dataset, `max_length` bytes per entry.
Dataset create_preallocated_string_dataset(Group& group, const std::string& name,
                                           std::uint64_t count, std::size_t max_length);

// ---- end training checkpoints -----------------------------------------------------------------

}  // namespace xps::h5
