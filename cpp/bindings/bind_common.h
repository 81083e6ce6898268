// Helpers shared by the binding files: array types, shape checks with
// messages that name the argument. Names become enums through names.h.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "precision.h"

namespace bpfast {

namespace py = pybind11;

// Inputs: C-contiguous arrays of T, converted once if they are not.
// Outputs: caller-owned buffers bound with noconvert, never replaced by a copy.
template <typename T>
using In = py::array_t<T, py::array::c_style | py::array::forcecast>;
template <typename T>
using Out = py::array_t<T>;

inline std::string shape_text(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string shape_text(const std::vector<index>& shape) {
    std::string s = "(";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

inline void expect_shape(const py::array& a, const std::vector<index>& shape, const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
    if (!ok)
        throw py::value_error(std::string(name) + " must have shape " + shape_text(shape) + "; got " +
                              shape_text(a));
}

inline void expect_ndim(const py::array& a, py::ssize_t ndim, const char* name) {
    if (a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D; got shape " +
                              shape_text(a));
}

// Whether the array's data is aligned to its element type (numpy can hold
// misaligned views, e.g. of a buffer at an odd offset; the kernels read T*).
inline bool aligned_to(const py::array& a, size_t alignment) {
    return reinterpret_cast<std::uintptr_t>(a.data()) % alignment == 0;
}

// An output buffer: exact dtype (ensured by noconvert), C-contiguous, aligned, writeable, right shape.
template <typename T>
T* output(Out<T>& a, const std::vector<index>& shape, const char* name) {
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + " must be C-contiguous");
    if (!aligned_to(a, alignof(T)))
        throw py::value_error(std::string(name) + " must be aligned to its dtype (a misaligned view of a buffer)");
    if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
    expect_shape(a, shape, name);
    return a.mutable_data();
}

// Labels: C-contiguous int64 arrays, converted once if they are not.
using Labels = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

// A base learning rate as a call takes it: None (nullopt: the configured one)
// or a real number that is_base_rate (model/optim.h); ValueError naming lr otherwise.
std::optional<double> base_rate(py::handle lr);

void bind_optim(py::module_ m);  // _core.OptimizerConfig
// Binders, one per file, each called once per precision P (precision.h) on its submodule (module.cpp).
template <typename P>
void bind_kernels(py::module_ m);
template <typename P>
void bind_network(py::module_ m);
template <typename P>
void bind_small_net(py::module_ m);  // f32.small_net, f64.small_net: for the tests

}  // namespace bpfast
