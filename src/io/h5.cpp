#include "io/h5.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <type_traits>

#include "xpstellar/error.hpp"

static_assert(std::is_same_v<hid_t, xps::h5::Id>, "h5.hpp carries identifiers as hid_t");
static_assert(std::is_same_v<herr_t, int>, "h5.hpp's Handle::Closer must match H5?close");
static_assert(std::is_same_v<hsize_t, xps::h5::Dims::value_type>, "h5::Dims must match hsize_t");

namespace xps::h5 {

namespace {

// The most specific message on HDF5's error stack, to append to ours. Must be called right after
// the failing call: the next API call clears the stack.
std::string hdf5_error_detail() {
  std::string detail;
  auto first_description = [](unsigned, const H5E_error2_t* error, void* out) -> herr_t {
    auto* text = static_cast<std::string*>(out);
    if (text->empty() && error->desc != nullptr) *text = error->desc;
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_description, &detail);
  return detail.empty() ? std::string() : " [HDF5: " + detail + "]";
}

[[noreturn]] void throw_io(const std::string& file, const std::string& path,
                           const std::string& what) {
  std::string message = file + ": ";
  if (!path.empty()) message += path + ": ";
  throw IoError(message + what);
}

// Checks an identifier-returning call; `closer` then owns it.
Handle checked_handle(hid_t id, Handle::Closer closer, const std::string& file,
                      const std::string& path, const std::string& what) {
  if (id < 0) throw_io(file, path, what + hdf5_error_detail());
  return Handle(id, closer);
}

void check(herr_t status, const std::string& file, const std::string& path,
           const std::string& what) {
  if (status < 0) throw_io(file, path, what + hdf5_error_detail());
}

template <Element T>
hid_t memory_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
}

// Files always hold little-endian IEEE / two's-complement types, whatever the host.
template <Element T>
hid_t file_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  if constexpr (std::is_same_v<T, std::int32_t>) return H5T_STD_I32LE;
  if constexpr (std::is_same_v<T, std::int64_t>) return H5T_STD_I64LE;
  if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_STD_U8LE;
}

// A fixed-length, NUL-terminated ASCII string type of `length` characters.
Handle fixed_string_type(std::size_t length, const std::string& file, const std::string& path) {
  Handle type = checked_handle(H5Tcopy(H5T_C_S1), H5Tclose, file, path, "cannot copy string type");
  check(H5Tset_size(type.get(), length + 1), file, path, "cannot size string type");
  check(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), file, path, "cannot set string padding");
  check(H5Tset_cset(type.get(), H5T_CSET_ASCII), file, path, "cannot set string character set");
  return type;
}

Handle variable_string_type(const std::string& file, const std::string& path) {
  Handle type = checked_handle(H5Tcopy(H5T_C_S1), H5Tclose, file, path, "cannot copy string type");
  check(H5Tset_size(type.get(), H5T_VARIABLE), file, path, "cannot size string type");
  return type;
}

// Object creation properties: no modification/creation times, so reruns are byte-identical.
Handle creation_properties(hid_t property_class, const std::string& file, const std::string& path) {
  Handle plist = checked_handle(H5Pcreate(property_class), H5Pclose, file, path,
                                "cannot create property list");
  check(H5Pset_obj_track_times(plist.get(), 0), file, path, "cannot turn off time tracking");
  return plist;
}

// Cuts a fixed-length string buffer at its first NUL (NULLTERM and NULLPAD) or trailing spaces.
std::string trim_fixed_string(const char* data, std::size_t size, H5T_str_t padding) {
  std::string text(data, std::find(data, data + size, '\0'));
  if (padding == H5T_STR_SPACEPAD) text.erase(text.find_last_not_of(' ') + 1);
  return text;
}

// The file selection of rows [first_row, first_row + rows) and a matching memory space. A rank
// with no rows selects nothing, so it can still take part in a collective transfer.
struct RowSelection {
  Handle file_space;
  Handle memory_space;
  std::uint64_t elements = 0;
};

RowSelection select_rows(hid_t dataset, std::uint64_t first_row, std::uint64_t rows,
                         const std::string& file, const std::string& path) {
  RowSelection selection;
  selection.file_space =
      checked_handle(H5Dget_space(dataset), H5Sclose, file, path, "cannot get dataspace");
  const hid_t space = selection.file_space.get();
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 1) throw_io(file, path, "expected an array with rows, found a scalar or null space");
  Dims dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), file, path, "cannot read shape");
  if (first_row + rows > dims[0]) {
    throw_io(file, path,
             "rows [" + std::to_string(first_row) + "," + std::to_string(first_row + rows) +
                 ") requested, dataset has shape " + dims_text(dims));
  }
  Dims start(dims.size(), 0);
  Dims count = dims;
  start[0] = first_row;
  count[0] = rows;
  selection.elements = std::accumulate(count.begin(), count.end(), hsize_t{1}, std::multiplies<>());
  if (rows == 0) {
    const hsize_t one = 1;
    check(H5Sselect_none(space), file, path, "cannot select nothing");
    selection.memory_space = checked_handle(H5Screate_simple(1, &one, nullptr), H5Sclose, file,
                                            path, "cannot create memory space");
    check(H5Sselect_none(selection.memory_space.get()), file, path, "cannot select nothing");
    return selection;
  }
  check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
        file, path, "cannot select rows");
  selection.memory_space = checked_handle(H5Screate_simple(rank, count.data(), nullptr), H5Sclose,
                                          file, path, "cannot create memory space");
  return selection;
}

}  // namespace

// ---- Handle ------------------------------------------------------------------------------------

Handle::Handle(Handle&& other) noexcept : m_id(other.m_id), m_closer(other.m_closer) {
  other.m_id = -1;
  other.m_closer = nullptr;
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    close();
    m_id = std::exchange(other.m_id, -1);
    m_closer = std::exchange(other.m_closer, nullptr);
  }
  return *this;
}

Handle::~Handle() { close(); }

bool Handle::close() noexcept {
  bool ok = true;
  if (m_closer != nullptr && m_id >= 0) ok = m_closer(m_id) >= 0;
  m_id = -1;
  m_closer = nullptr;
  return ok;
}

std::string dims_text(const Dims& dims) {
  std::string text = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(dims[i]);
  }
  return text + "]";
}

void silence_error_printing() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// ---- Object: attributes ------------------------------------------------------------------------

void Object::fail(const std::string& what) const { throw_io(m_file->name, m_path, what); }

std::string Object::child_path(const std::string& name) const {
  return m_path == "/" ? "/" + name : m_path + "/" + name;
}

bool Object::has_attribute(const std::string& name) const {
  const htri_t exists = H5Aexists(id(), name.c_str());
  if (exists < 0) fail("cannot look for attribute " + name + hdf5_error_detail());
  return exists > 0;
}

namespace {

// Replaces attribute `name` of `object` with a scalar of `type` holding `data`.
void write_scalar_attribute(hid_t object, const std::string& name, hid_t stored_type,
                            hid_t memory_type, const void* data, const std::string& file,
                            const std::string& path) {
  const std::string where = path + "@" + name;
  const htri_t exists = H5Aexists(object, name.c_str());
  check(exists, file, where, "cannot look for attribute");
  if (exists > 0) check(H5Adelete(object, name.c_str()), file, where, "cannot replace attribute");
  Handle space =
      checked_handle(H5Screate(H5S_SCALAR), H5Sclose, file, where, "cannot create scalar space");
  Handle attribute = checked_handle(
      H5Acreate2(object, name.c_str(), stored_type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose, file, where, "cannot create attribute");
  check(H5Awrite(attribute.get(), memory_type, data), file, where, "cannot write attribute");
}

Handle open_attribute(hid_t object, const std::string& name, const std::string& file,
                      const std::string& path) {
  const htri_t exists = H5Aexists(object, name.c_str());
  check(exists, file, path, "cannot look for attribute " + name);
  if (exists == 0) throw_io(file, "", "attribute " + path + "@" + name + " missing");
  return checked_handle(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose, file,
                        path + "@" + name, "cannot open attribute");
}

// Reads a scalar numeric attribute, converted by HDF5 into `memory_type`. Integer attributes are
// always accepted; floating-point ones only when `accept_float`.
void read_scalar_numeric_attribute(hid_t object, const std::string& name, bool accept_float,
                                   hid_t memory_type, void* value, const std::string& file,
                                   const std::string& path) {
  Handle attribute = open_attribute(object, name, file, path);
  const std::string where = path + "@" + name;
  Handle type = checked_handle(H5Aget_type(attribute.get()), H5Tclose, file, where,
                               "cannot get attribute type");
  Handle space = checked_handle(H5Aget_space(attribute.get()), H5Sclose, file, where,
                                "cannot get attribute space");
  const H5T_class_t type_class = H5Tget_class(type.get());
  const bool numeric = type_class == H5T_INTEGER || (accept_float && type_class == H5T_FLOAT);
  if (!numeric || H5Sget_simple_extent_npoints(space.get()) != 1) {
    throw_io(file, where,
             accept_float ? "expected a scalar numeric attribute" : "expected a scalar integer attribute");
  }
  check(H5Aread(attribute.get(), memory_type, value), file, where, "cannot read attribute");
}

}  // namespace

void Object::write_attribute(const std::string& name, std::int32_t value) {
  write_scalar_attribute(id(), name, H5T_STD_I32LE, H5T_NATIVE_INT32, &value, file_name(), m_path);
}

void Object::write_attribute(const std::string& name, std::int64_t value) {
  write_scalar_attribute(id(), name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, file_name(), m_path);
}

void Object::write_attribute(const std::string& name, const std::string& value) {
  Handle type = fixed_string_type(value.size(), file_name(), m_path);
  std::vector<char> buffer(value.size() + 1, '\0');
  std::copy(value.begin(), value.end(), buffer.begin());
  write_scalar_attribute(id(), name, type.get(), type.get(), buffer.data(), file_name(), m_path);
}

void Object::write_attribute(const std::string& name, double value) {
  write_scalar_attribute(id(), name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, file_name(),
                         m_path);
}

void Object::write_text_attribute(const std::string& name, const std::string& value) {
  Handle type = variable_string_type(file_name(), m_path);
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file_name(), m_path,
        "cannot set string character set");
  const char* text = value.c_str();
  write_scalar_attribute(id(), name, type.get(), type.get(), &text, file_name(), m_path);
}

double Object::read_double_attribute(const std::string& name) const {
  double value = 0;
  read_scalar_numeric_attribute(id(), name, true, H5T_NATIVE_DOUBLE, &value, file_name(), m_path);
  return value;
}

std::int64_t Object::read_integer_attribute(const std::string& name) const {
  std::int64_t value = 0;
  read_scalar_numeric_attribute(id(), name, false, H5T_NATIVE_INT64, &value, file_name(), m_path);
  return value;
}

std::string Object::read_string_attribute(const std::string& name) const {
  Handle attribute = open_attribute(id(), name, file_name(), m_path);
  const std::string where = m_path + "@" + name;
  Handle type = checked_handle(H5Aget_type(attribute.get()), H5Tclose, file_name(), where,
                               "cannot get attribute type");
  Handle space = checked_handle(H5Aget_space(attribute.get()), H5Sclose, file_name(), where,
                                "cannot get attribute space");
  if (H5Tget_class(type.get()) != H5T_STRING || H5Sget_simple_extent_npoints(space.get()) != 1) {
    throw_io(file_name(), where, "expected a scalar string attribute");
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory = variable_string_type(file_name(), where);
    // h5py writes UTF-8 strings: read them with the file's character set or HDF5 refuses.
    H5Tset_cset(memory.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    check(H5Aread(attribute.get(), memory.get(), &text), file_name(), where,
          "cannot read attribute");
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::vector<char> buffer(size, '\0');
  check(H5Aread(attribute.get(), type.get(), buffer.data()), file_name(), where,
        "cannot read attribute");
  return trim_fixed_string(buffer.data(), size, H5Tget_strpad(type.get()));
}

// ---- Dataset ---------------------------------------------------------------------------------

Dims Dataset::shape() const {
  Handle space =
      checked_handle(H5Dget_space(id()), H5Sclose, file_name(), m_path, "cannot get dataspace");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0) fail("cannot read rank" + hdf5_error_detail());
  Dims dims(static_cast<std::size_t>(rank));
  check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), file_name(), m_path,
        "cannot read shape");
  return dims;
}

TypeClass Dataset::type_class() const {
  Handle type =
      checked_handle(H5Dget_type(id()), H5Tclose, file_name(), m_path, "cannot get datatype");
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER:
      return TypeClass::integer;
    case H5T_FLOAT:
      return TypeClass::floating;
    case H5T_STRING:
      return TypeClass::string;
    default:
      return TypeClass::other;
  }
}

template <Element T>
void Dataset::write_rows(std::uint64_t first_row, std::uint64_t rows, std::span<const T> data) {
  RowSelection selection = select_rows(id(), first_row, rows, file_name(), m_path);
  if (data.size() != selection.elements) {
    fail("write of " + std::to_string(rows) + " rows given " + std::to_string(data.size()) +
         " values, expected " + std::to_string(selection.elements));
  }
  // HDF5 rejects a null buffer even for an empty selection.
  const T placeholder{};
  const T* buffer = data.empty() ? &placeholder : data.data();
  check(H5Dwrite(id(), memory_type<T>(), selection.memory_space.get(), selection.file_space.get(),
                 m_file->write_transfer.get(), buffer),
        file_name(), m_path, "cannot write rows");
}

template <Element T>
void Dataset::read_rows(std::uint64_t first_row, std::uint64_t rows, std::span<T> out) const {
  RowSelection selection = select_rows(id(), first_row, rows, file_name(), m_path);
  if (out.size() != selection.elements) {
    fail("read of " + std::to_string(rows) + " rows given room for " + std::to_string(out.size()) +
         " values, expected " + std::to_string(selection.elements));
  }
  if (rows == 0) return;
  check(H5Dread(id(), memory_type<T>(), selection.memory_space.get(), selection.file_space.get(),
                H5P_DEFAULT, out.data()),
        file_name(), m_path, "cannot read rows (truncated or corrupt file?)");
}

void Dataset::resize_rows(std::uint64_t rows) {
  Dims dims = shape();
  if (dims.empty()) fail("cannot resize a scalar dataset");
  dims[0] = rows;
  check(H5Dset_extent(id(), dims.data()), file_name(), m_path,
        "cannot resize to " + dims_text(dims) + " (is the dataset chunked?)");
}

void Dataset::write_string_rows(std::uint64_t first_row, std::span<const std::string> values) {
  Handle type =
      checked_handle(H5Dget_type(id()), H5Tclose, file_name(), m_path, "cannot get datatype");
  const std::size_t width = H5Tget_size(type.get());
  std::vector<char> buffer(std::max<std::size_t>(values.size(), 1) * width, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].size() >= width) fail("string '" + values[i] + "' longer than the dataset's");
    std::memcpy(buffer.data() + i * width, values[i].data(), values[i].size());
  }
  RowSelection selection = select_rows(id(), first_row, values.size(), file_name(), m_path);
  check(H5Dwrite(id(), type.get(), selection.memory_space.get(), selection.file_space.get(),
                 m_file->write_transfer.get(), buffer.data()),
        file_name(), m_path, "cannot write strings");
}

std::vector<std::string> Dataset::read_strings() const {
  const Dims dims = shape();
  if (dims.size() != 1) fail("expected a one-dimensional string dataset");
  Handle type =
      checked_handle(H5Dget_type(id()), H5Tclose, file_name(), m_path, "cannot get datatype");
  if (H5Tget_class(type.get()) != H5T_STRING) fail("expected a string dataset");
  const std::size_t count = dims[0];
  std::vector<std::string> values(count);
  if (count == 0) return values;
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle memory = variable_string_type(file_name(), m_path);
    H5Tset_cset(memory.get(), H5Tget_cset(type.get()));
    std::vector<char*> pointers(count, nullptr);
    check(H5Dread(id(), memory.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), file_name(),
          m_path, "cannot read strings (truncated or corrupt file?)");
    for (std::size_t i = 0; i < count; ++i) {
      values[i] = pointers[i] != nullptr ? pointers[i] : "";
      H5free_memory(pointers[i]);
    }
    return values;
  }
  const std::size_t width = H5Tget_size(type.get());
  std::vector<char> buffer(count * width, '\0');
  check(H5Dread(id(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()), file_name(),
        m_path, "cannot read strings (truncated or corrupt file?)");
  const H5T_str_t padding = H5Tget_strpad(type.get());
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = trim_fixed_string(buffer.data() + i * width, width, padding);
  }
  return values;
}

// ---- Group -----------------------------------------------------------------------------------

Group Group::create_group(const std::string& name) {
  const std::string path = child_path(name);
  Handle properties = creation_properties(H5P_GROUP_CREATE, file_name(), path);
  Handle group =
      checked_handle(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                     H5Gclose, file_name(), path, "cannot create group");
  return Group(std::move(group), m_file, path);
}

Group Group::open_group(const std::string& name) const {
  const std::string path = child_path(name);
  if (!has(name)) throw_io(file_name(), "", "group " + path + " missing");
  Handle group = checked_handle(H5Gopen2(id(), name.c_str(), H5P_DEFAULT), H5Gclose, file_name(),
                                path, "cannot open group");
  return Group(std::move(group), m_file, path);
}

bool Group::has(const std::string& name) const {
  // H5Lexists fails (rather than answering no) when an intermediate group is missing.
  std::string prefix;
  std::size_t begin = 0;
  while (begin <= name.size()) {
    const std::size_t slash = std::min(name.find('/', begin), name.size());
    if (!prefix.empty()) prefix += '/';
    prefix.append(name, begin, slash - begin);
    const htri_t exists = H5Lexists(id(), prefix.c_str(), H5P_DEFAULT);
    if (exists < 0) fail("cannot look for " + prefix + hdf5_error_detail());
    if (exists == 0) return false;
    begin = slash + 1;
  }
  return true;
}

template <Element T>
Dataset Group::create_dataset(const std::string& name, const Dims& shape, const Layout& layout) {
  const std::string path = child_path(name);
  if (shape.empty()) throw_io(file_name(), path, "a dataset needs at least one dimension");
  Dims max_shape = shape;
  Handle properties = creation_properties(H5P_DATASET_CREATE, file_name(), path);
  if (layout.preallocate) {
    if (layout.chunk_rows > 0 && layout.deflate_level > 0)
      throw_io(file_name(), path, "a preallocated dataset cannot be compressed");
    check(H5Pset_alloc_time(properties.get(), H5D_ALLOC_TIME_EARLY), file_name(), path,
          "cannot ask for early allocation");
    check(H5Pset_fill_time(properties.get(), H5D_FILL_TIME_NEVER), file_name(), path,
          "cannot turn off fill values");
  }
  // An empty preallocated dataset stays contiguous: a chunk cannot be empty.
  if (layout.chunk_rows > 0 && !(layout.preallocate && shape[0] == 0)) {
    Dims chunk = shape;
    chunk[0] = layout.chunk_rows;
    if (layout.preallocate) {
      chunk[0] = std::min<hsize_t>(chunk[0], shape[0]);  // a fixed extent bounds the chunk
    } else {
      max_shape[0] = H5S_UNLIMITED;
    }
    for (std::size_t i = 1; i < shape.size(); ++i) {
      // A chunk dimension must be at least 1 and may exceed the extent only along unlimited axes.
      if (shape[i] == 0) max_shape[i] = H5S_UNLIMITED;
      chunk[i] = std::max<hsize_t>(shape[i], 1);
    }
    const auto rank = static_cast<int>(shape.size());
    check(H5Pset_chunk(properties.get(), rank, chunk.data()), file_name(), path,
          "cannot set chunk shape " + dims_text(chunk));
    if (layout.deflate_level > 0) {
      check(H5Pset_shuffle(properties.get()), file_name(), path, "cannot add shuffle filter");
      check(H5Pset_deflate(properties.get(), static_cast<unsigned>(layout.deflate_level)),
            file_name(), path, "cannot add deflate filter");
    }
  }
  Handle space = checked_handle(
      H5Screate_simple(static_cast<int>(shape.size()), shape.data(), max_shape.data()), H5Sclose,
      file_name(), path, "cannot create dataspace " + dims_text(shape));
  Handle dataset = checked_handle(H5Dcreate2(id(), name.c_str(), file_type<T>(), space.get(),
                                             H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                                  H5Dclose, file_name(), path, "cannot create dataset");
  return Dataset(std::move(dataset), m_file, path);
}

Dataset Group::create_string_dataset(const std::string& name, std::uint64_t count,
                                     std::size_t max_length) {
  const std::string path = child_path(name);
  Handle type = fixed_string_type(max_length, file_name(), path);
  Handle properties = creation_properties(H5P_DATASET_CREATE, file_name(), path);
  const hsize_t length = count;
  Handle space = checked_handle(H5Screate_simple(1, &length, nullptr), H5Sclose, file_name(), path,
                                "cannot create dataspace");
  Handle dataset = checked_handle(H5Dcreate2(id(), name.c_str(), type.get(), space.get(),
                                             H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                                  H5Dclose, file_name(), path, "cannot create dataset");
  return Dataset(std::move(dataset), m_file, path);
}

Dataset Group::open_dataset(const std::string& name) const {
  const std::string path = child_path(name);
  if (!has(name)) throw_io(file_name(), "", "dataset " + path + " missing");
  Handle dataset = checked_handle(H5Dopen2(id(), name.c_str(), H5P_DEFAULT), H5Dclose, file_name(),
                                  path, "cannot open dataset");
  return Dataset(std::move(dataset), m_file, path);
}

void Group::move_link(const std::string& from, const std::string& to) {
  check(H5Lmove(id(), from.c_str(), id(), to.c_str(), H5P_DEFAULT, H5P_DEFAULT), file_name(),
        child_path(from), "cannot move link to " + to);
}

// ---- File ------------------------------------------------------------------------------------

namespace {

Handle file_access_properties(const std::string& path, MPI_Comm comm, bool parallel) {
  Handle plist = checked_handle(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, path, "",
                                "cannot create file access properties");
  if (parallel) {
    check(H5Pset_fapl_mpio(plist.get(), comm, MPI_INFO_NULL), path, "",
          "cannot select the MPI-IO driver");
  }
  return plist;
}

std::shared_ptr<FileContext> make_context(const std::string& path, bool parallel) {
  auto context = std::make_shared<FileContext>();
  context->name = path;
  context->parallel = parallel;
  if (!parallel) {
    context->write_transfer = Handle(H5P_DEFAULT, nullptr);
    return context;
  }
  // Parallel HDF5 1.10 writes compressed datasets only with collective transfers.
  context->write_transfer = checked_handle(H5Pcreate(H5P_DATASET_XFER), H5Pclose, path, "",
                                           "cannot create transfer properties");
  check(H5Pset_dxpl_mpio(context->write_transfer.get(), H5FD_MPIO_COLLECTIVE), path, "",
        "cannot select collective transfers");
  return context;
}

bool is_parallel(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size > 1;
}

}  // namespace

File File::create(const std::string& path, MPI_Comm comm) {
  silence_error_printing();
  const bool parallel = is_parallel(comm);
  Handle access = file_access_properties(path, comm, parallel);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get());
  if (id < 0) {
    throw IoError(path +
                  ": cannot create HDF5 file (does the directory exist and is it "
                  "writable?)" +
                  hdf5_error_detail());
  }
  return File(Handle(id, H5Fclose), make_context(path, parallel), "/");
}

namespace {

Handle open_file(const std::string& path, unsigned flags, MPI_Comm comm, bool parallel) {
  silence_error_printing();
  std::error_code error;
  if (!std::filesystem::exists(path, error)) throw IoError(path + ": no such file");
  Handle access = file_access_properties(path, comm, parallel);
  const hid_t id = H5Fopen(path.c_str(), flags, access.get());
  if (id < 0) {
    throw IoError(path + " is not a readable HDF5 file (truncated or corrupt?)" +
                  hdf5_error_detail());
  }
  return Handle(id, H5Fclose);
}

}  // namespace

File File::open_read_only(const std::string& path, MPI_Comm comm) {
  const bool parallel = is_parallel(comm);
  Handle file = open_file(path, H5F_ACC_RDONLY, comm, parallel);
  return File(std::move(file), make_context(path, parallel), "/");
}

File File::open_read_write(const std::string& path) {
  Handle file = open_file(path, H5F_ACC_RDWR, MPI_COMM_SELF, false);
  return File(std::move(file), make_context(path, false), "/");
}

void File::close() {
  if (!m_handle.close()) {
    throw IoError(file_name() + ": cannot close HDF5 file (disk full, or objects still open?)" +
                  hdf5_error_detail());
  }
}

// ---- explicit instantiations -----------------------------------------------------------------

#define XPS_H5_INSTANTIATE(T)                                                             \
  template void Dataset::write_rows<T>(std::uint64_t, std::uint64_t, std::span<const T>); \
  template void Dataset::read_rows<T>(std::uint64_t, std::uint64_t, std::span<T>) const;  \
  template Dataset Group::create_dataset<T>(const std::string&, const Dims&, const Layout&);

XPS_H5_INSTANTIATE(float)
XPS_H5_INSTANTIATE(double)
XPS_H5_INSTANTIATE(std::int32_t)
XPS_H5_INSTANTIATE(std::int64_t)
XPS_H5_INSTANTIATE(std::uint8_t)

#undef XPS_H5_INSTANTIATE

std::uint64_t dataset_length(const File& file, const std::string& name) {
  const Dims shape = file.open_dataset(name).shape();
  if (shape.size() != 1) {
    throw IoError(file.file_name() + ": dataset /" + name + " has shape " + dims_text(shape) +
                  ", expected one dimension");
  }
  return shape[0];
}

// ---- training checkpoints (src/io/training_checkpoint.cpp) ------------------------------------

void write_u64_attribute(Object& object, const std::string& name, std::uint64_t value) {
  write_scalar_attribute(object.id(), name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value,
                         object.file_name(), object.path());
}

std::uint64_t read_u64_attribute(const Object& object, const std::string& name) {
  std::uint64_t value = 0;
  read_scalar_numeric_attribute(object.id(), name, false, H5T_NATIVE_UINT64, &value,
                                object.file_name(), object.path());
  return value;
}

std::uint64_t dataset_storage_offset(const Dataset& dataset) {
  const haddr_t offset = H5Dget_offset(dataset.id());
  if (offset == HADDR_UNDEF) {
    throw_io(dataset.file_name(), dataset.path(),
             "has no contiguous storage (chunked, or never written)");
  }
  return offset;
}

namespace {

Dataset create_preallocated(Group& group, const std::string& name, hid_t type, const Dims& shape) {
  const std::string path = group.path() == "/" ? "/" + name : group.path() + "/" + name;
  const std::string& file = group.file_name();
  if (shape.empty()) throw_io(file, path, "a dataset needs at least one dimension");
  Handle properties = creation_properties(H5P_DATASET_CREATE, file, path);
  check(H5Pset_alloc_time(properties.get(), H5D_ALLOC_TIME_EARLY), file, path,
        "cannot ask for early allocation");
  check(H5Pset_fill_time(properties.get(), H5D_FILL_TIME_NEVER), file, path,
        "cannot turn off fill values");
  Handle space =
      checked_handle(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr),
                     H5Sclose, file, path, "cannot create dataspace " + dims_text(shape));
  Handle dataset = checked_handle(H5Dcreate2(group.id(), name.c_str(), type, space.get(),
                                             H5P_DEFAULT, properties.get(), H5P_DEFAULT),
                                  H5Dclose, file, path, "cannot create dataset");
  if (!dataset.close()) throw_io(file, path, "cannot close new dataset" + hdf5_error_detail());
  return group.open_dataset(name);
}

}  // namespace

template <Element T>
Dataset create_preallocated_dataset(Group& group, const std::string& name, const Dims& shape) {
  return create_preallocated(group, name, file_type<T>(), shape);
}

template Dataset create_preallocated_dataset<float>(Group&, const std::string&, const Dims&);
template Dataset create_preallocated_dataset<double>(Group&, const std::string&, const Dims&);
template Dataset create_preallocated_dataset<std::int32_t>(Group&, const std::string&, const Dims&);
template Dataset create_preallocated_dataset<std::int64_t>(Group&, const std::string&, const Dims&);
template Dataset create_preallocated_dataset<std::uint8_t>(Group&, const std::string&, const Dims&);

Dataset create_preallocated_string_dataset(Group& group, const std::string& name,
                                           std::uint64_t count, std::size_t max_length) {
  Handle type = fixed_string_type(max_length, group.file_name(), group.path() + "/" + name);
  return create_preallocated(group, name, type.get(), Dims{count});
}

// ---- end training checkpoints -----------------------------------------------------------------

}  // namespace xps::h5
