// pybind11 module bpfast._core: the optimizer's settings (bind_optim.cpp),
// the name tables (names.h); the kernels (bind_kernels.cpp), the native
// network (bind_network.cpp) and the small-network kernels for the tests
// (bind_small_net.cpp) in one submodule per precision (precision.h: f32,
// f64); the process-wide settings. Bindings validate, convert and call: no
// math here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings/bind_common.h"
#include "kernels/elementwise/check_kernels.h"
#include "kernels/bf16/bfloat16.h"
#include "kernels/bf16/pair_ukernel.h"
#include "kernels/elementwise/losses.h"
#include "kernels/gemm/gemm_timing.h"
#include "kernels/gemm/ukernel.h"
#include "kernels/probe/fma_probe.h"
#include "model/parameter_layout.h"
#include "model/small_net_backend.h"
#include "model/targets.h"
#include "precision.h"
#include "runtime/amx_support.h"
#include "runtime/cpu_info.h"
#include "runtime/dispatch.h"
#include "runtime/sizes.h"
#include "runtime/thread_chooser.h"
#include "runtime/threads.h"
#include "runtime/workspace.h"
#include "names.h"

namespace py = pybind11;

namespace {

// The names of a names.h table, in its order.
template <typename E, std::size_t N>
py::tuple names_of(const bpfast::Named<E> (&table)[N]) {
    py::tuple names(N);
    for (std::size_t i = 0; i < N; ++i) names[i] = py::str(table[i].name);
    return names;
}

// The submodule of precision P, with everything bound for it and the names
// bpfast._precision checks its table against.
template <typename P>
void bind_precision(py::module_ core, py::list& names) {
    py::module_ m = core.def_submodule(P::submodule, (std::string(P::name) + " kernels and network").c_str());
    m.attr("name") = P::name;
    m.attr("storage") = py::dtype::of<bpfast::Storage<P>>();
    m.attr("computes_in_storage") = bpfast::computes_in_storage<P>;
    bpfast::bind_kernels<P>(m);
    bpfast::bind_network<P>(m);
    bpfast::bind_small_net<P>(m);
    names.append(P::name);
}

// Which of dtype's micro-kernel candidates `name` is; ValueError naming the
// valid ones otherwise. `what` names the argument (or variable) in the message.
template <typename T>
std::size_t candidate_named(const std::string& dtype, const std::string& name, const std::string& what) {
    const std::vector<bpfast::MicroKernel<T>>& candidates = bpfast::micro_kernel_candidates<T>();
    std::string known;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        if (name == candidates[i].name) return i;
        known += (i ? ", " : "") + std::string(candidates[i].name);
    }
    throw py::value_error(what + " must name one of the " + dtype + " GEMM kernels of this CPU's instruction set (" +
                          bpfast::active_isa() + "): " + known + "; got '" + name + "'");
}

// f(T{}) for dtype "float32" or "float64"; ValueError naming `dtype` otherwise.
template <typename F>
auto for_dtype(const std::string& dtype, F&& f) {
    if (dtype == "float32") return f(float{});
    if (dtype == "float64") return f(double{});
    throw py::value_error("dtype must be 'float32' or 'float64'; got '" + dtype + "'");
}

// The GEMM micro-kernel candidates and their choice (kernels/gemm/ukernel.h);
// bpfast._tuning decides which one runs.
void bind_micro_kernel_choice(py::module_& m) {
    namespace bp = bpfast;
    m.def("gemm_kernels", [](const std::string& dtype) {
        return for_dtype(dtype, [](auto zero) {
            py::list names;
            for (const auto& kernel : bp::micro_kernel_candidates<decltype(zero)>()) names.append(kernel.name);
            return py::tuple(names);
        });
    }, py::arg("dtype"), "The GEMM micro-kernels of this ISA for dtype ('float32' or 'float64'), the default first.");
    m.def("gemm_kernel", [](const std::string& dtype) {
        return for_dtype(dtype, [](auto zero) { return std::string(bp::active_micro_kernel<decltype(zero)>().name); });
    }, py::arg("dtype"), "The GEMM micro-kernel in use for dtype.");
    m.def("use_gemm_kernel", [](const std::string& dtype, const std::string& name) {
        for_dtype(dtype, [&](auto zero) {
            using T = decltype(zero);
            bp::use_micro_kernel<T>(candidate_named<T>(dtype, name, "name"));
            return 0;
        });
    }, py::arg("dtype"), py::arg("name"),
       "Run dtype's products on the GEMM micro-kernel `name` (one of gemm_kernels(dtype)) from now on; any of "
       "them gives the same bits.");
    m.def("time_gemm_kernel", [](const std::string& dtype, const std::string& name, bp::index m_rows,
                                 bp::index n_cols, bp::index depth, bool trans_b, int reps, int threads) {
        if (m_rows < 1 || n_cols < 1 || depth < 1 || m_rows * depth > (1 << 24) || depth * n_cols > (1 << 24))
            throw py::value_error("m, n and k must be at least 1, and m*k and k*n at most 2**24");
        if (reps < 1 || reps > 1000) throw py::value_error("reps must be in [1, 1000]; got " + std::to_string(reps));
        if (threads < 0 || threads > bp::MAX_THREADS)
            throw py::value_error("threads must be in [0, " + std::to_string(bp::MAX_THREADS) + "]; got " +
                                  std::to_string(threads));
        return for_dtype(dtype, [&](auto zero) {
            using T = decltype(zero);
            const bp::MicroKernel<T>& kernel = bp::micro_kernel_candidates<T>()[candidate_named<T>(dtype, name, "name")];
            py::gil_scoped_release release;
            return bp::time_gemm<T>(kernel, m_rows, n_cols, depth, trans_b, reps, threads);
        });
    }, py::arg("dtype"), py::arg("name"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("trans_b"),
       py::arg("reps"), py::arg("threads") = 0,
       "Seconds of each of reps products (m, k)·(k, n) (with trans_b, (m, k)·(n, k)ᵀ) on GEMM kernel `name`, "
       "after an untimed one, on `threads` threads (0: the calling thread's count).");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    namespace bp = bpfast;
    using bp::Labels;
    m.doc() = "bpfast's compiled core; use it through bpfast.Network and bpfast.kernels";
    // Choose the instruction set now, so that a bad BPFAST_ISA fails at import.
    m.attr("isa") = std::string(bp::active_isa());
    // And the GEMM blocking, so that a bad BPFAST_GEMM_BLOCKS fails at import too.
    bp::gemm_blocking<float>();
    bp::gemm_blocking<double>();
    bp::pair_gemm_blocking();
    bind_micro_kernel_choice(m);
    m.def("gemm_blocking_for", [](long l1d, long l2, long l3, int l3_cpus, int mr, int nr, int value_bytes) {
        if (l1d < 0 || l2 < 0 || l3 < 0 || l3_cpus < 0)
            throw py::value_error("cache sizes and l3_cpus must be >= 0 (0: not reported)");
        if (mr < 1 || mr > 64 || nr < 1 || nr > 256)
            throw py::value_error("mr must be in [1, 64] and nr in [1, 256]; got " + std::to_string(mr) + " and " +
                                  std::to_string(nr));
        if (value_bytes != 4 && value_bytes != 8)
            throw py::value_error("value_bytes must be 4 or 8; got " + std::to_string(value_bytes));
        const bp::GemmBlocking b = bp::blocking_for(bp::CacheSizes{l1d, l2, l3, l3_cpus}, mr, nr, value_bytes);
        return py::make_tuple(b.mc, b.kc, b.nc);
    }, py::arg("l1d"), py::arg("l2"), py::arg("l3"), py::arg("l3_cpus"), py::arg("mr"), py::arg("nr"),
       py::arg("value_bytes"),
       "(mc, kc, nc): the GEMM blocking rule (kernels/gemm/blocking.h) for these cache sizes in bytes (0: not "
       "reported), l3_cpus CPUs sharing the L3 and an mr x nr micro-tile of value_bytes values.");
    m.def("set_num_threads", [](long long n) {
        if (n < 1 || n > bp::MAX_THREADS)
            throw py::value_error("n must be between 1 and " + std::to_string(bp::MAX_THREADS) + " threads; got " +
                                  std::to_string(n));
        bp::set_num_threads(static_cast<int>(n));
    }, py::arg("n"), "Use n threads (the caller included, at most MAX_THREADS) in the kernels.");
    m.attr("MAX_THREADS") = bp::MAX_THREADS;
    m.attr("MAX_VALUES") = bp::MAX_VALUES;
    m.def("get_num_threads", &bp::get_num_threads, "Threads the kernels use.");
    m.def("set_local_num_threads", [](long long n) {
        if (n < 0 || n > bp::MAX_THREADS)
            throw py::value_error("n must be between 0 and " + std::to_string(bp::MAX_THREADS) + "; got " +
                                  std::to_string(n));
        bp::thread_limit() = static_cast<int>(n);
    }, py::arg("n"),
          "Use n threads in the native calls made from the calling Python thread only (0: the pool's count, "
          "set_num_threads'); bpfast.sklearn's n_threads.");
    m.def("get_local_num_threads", [] { return bp::thread_limit(); },
          "The calling Python thread's own thread count (0: none set).");
    m.def("set_adaptive_threads", &bp::set_adaptive_threads, py::arg("on"),
          "Whether training steps may run on one thread where, timed on this host, one thread is faster than "
          "get_num_threads() threads (re-timed every 256 steps; results are the same for any count). On by "
          "default; BPFAST_ADAPTIVE_THREADS=0 turns it off at start.");
    m.def("get_adaptive_threads", &bp::adaptive_threads, "Whether training steps choose their thread count by timing.");
    py::class_<bp::ThreadChooser>(m, "ThreadChooser", "The thread-count chooser of training steps (for the tests).")
        .def(py::init<>())
        .def("next", &bp::ThreadChooser::next, py::arg("batch"), py::arg("allowed"),
             "The thread count for the next step of this batch size.")
        .def("record", &bp::ThreadChooser::record, py::arg("seconds"), "The seconds that step took.")
        .def_property_readonly("chosen", &bp::ThreadChooser::chosen, "The count the last trial chose.")
        .def_property_readonly("trials", &bp::ThreadChooser::trials, "Trials finished.");
    m.def("threads_started", &bp::threads_started,
          "How many OS threads the pool has started since import; it does not grow per call.");
    m.def("buffer_growths", &bp::buffer_growths,
          "How many times a native work buffer has grown since import (steady state: never).");
    m.def("all_finite", [](py::array a) -> py::object {
        // C-contiguous, aligned float32/float64 arrays only; None means "not handled".
        if (!(a.flags() & py::array::c_style) || !bp::aligned_to(a, a.itemsize())) return py::none();
        const auto n = static_cast<bp::index>(a.size());
        if (a.dtype().is(py::dtype::of<float>())) return py::bool_(bp::all_finite(static_cast<const float*>(a.data()), n));
        if (a.dtype().is(py::dtype::of<double>())) return py::bool_(bp::all_finite(static_cast<const double*>(a.data()), n));
        return py::none();
    }, py::arg("array"), "Whether a C-contiguous float array holds no NaN or Inf; None for other arrays.");
    m.def("label_classes", &bp::label_classes, py::arg("n_out"),
          "How many classes labels may name for n_out output units: n_out, or 2 for one unit.");
    m.def("first_label_out_of_range", [](Labels labels, bp::index n_out) {
        return bp::first_label_out_of_range(labels.data(), static_cast<bp::index>(labels.size()), n_out);
    }, py::arg("labels"), py::arg("n_out"),
       "Index of the first label outside [0, n_out) ([0, 2) for one output unit), or -1.");
    m.def("label_range_message",
          py::overload_cast<const std::string&, bp::index, const std::string&, const std::string&>(
              &bp::label_range_message),
          py::arg("name"), py::arg("n_out"), py::arg("lo"), py::arg("hi"),
          "The message of the label-range rule for argument name, whose labels run from lo to hi.");
    py::class_<bp::ParameterLayout>(m, "ParameterLayout",
                                    "Where each layer's parameters lie in the flat arrays of weights, gradients "
                                    "and optimizer state (model/parameter_layout.h): W_0, b_0, W_1, b_1, ...")
        .def(py::init<std::vector<bp::index>>(), py::arg("sizes"),
             "ValueError for fewer than two sizes, a size below 1, or more parameters than a buffer holds")
        .def_property_readonly("sizes", &bp::ParameterLayout::sizes)
        .def_property_readonly("n_parameters", &bp::ParameterLayout::n_parameters)
        .def_property_readonly("shapes", [](const bp::ParameterLayout& layout) {
            py::list shapes;
            for (const bp::ParameterArray& a : layout.arrays()) shapes.append(py::tuple(py::cast(a.shape)));
            return shapes;
        }, "[(n_out, n_in), (n_out,), ...]: the shape of W_0, b_0, W_1, b_1, ...")
        .def_property_readonly("offsets", [](const bp::ParameterLayout& layout) {
            py::list offsets;
            for (const bp::ParameterArray& a : layout.arrays()) offsets.append(a.offset);
            return offsets;
        }, "where W_0, b_0, W_1, b_1, ... begin in the flat arrays")
        .def_property_readonly("layers", [](const bp::ParameterLayout& layout) {
            py::list layers;
            for (bp::index l = 0; l < layout.n_layers(); ++l)
                layers.append(py::make_tuple(layout.weights(l), layout.layer_end(l)));
            return layers;
        }, "[(begin, end)]: each layer's W and b together in the flat arrays");
    m.def("build_info", [] {
        const bp::BuildInfo build = bp::build_info();
        const bp::CacheSizes caches = bp::cache_sizes();
        const bp::GemmBlocking blocks = bp::gemm_blocking<float>(), blocks64 = bp::gemm_blocking<double>();
        py::list isas;
        for (const bp::IsaSupport& isa : bp::isa_support()) isas.append(py::make_tuple(isa.name, isa.supported));
        py::dict tiles;
        tiles["float32"] = py::make_tuple(bp::active_micro_kernel<float>().mr, bp::active_micro_kernel<float>().nr);
        tiles["float64"] = py::make_tuple(bp::active_micro_kernel<double>().mr, bp::active_micro_kernel<double>().nr);
        const bp::PairMicroKernel& pairs = bp::active_pair_micro_kernel();
        tiles["bfloat16"] = py::make_tuple(pairs.mr, pairs.nr);
        const bp::GemmBlocking pair_blocks = bp::pair_gemm_blocking();
        py::dict info;
        info["compiler"] = build.compiler;
        info["build_type"] = build.build_type;
        info["cxx_flags"] = build.cxx_flags;
        info["isa"] = bp::active_isa();
        info["isas"] = isas;
        info["cache_bytes"] = py::dict(py::arg("l1d") = caches.l1d, py::arg("l2") = caches.l2,
                                       py::arg("l3") = caches.l3, py::arg("l3_cpus") = caches.l3_cpus);
        py::dict gemm_blocks;
        gemm_blocks["float32"] = py::dict(py::arg("mc") = blocks.mc, py::arg("kc") = blocks.kc, py::arg("nc") = blocks.nc);
        gemm_blocks["float64"] = py::dict(py::arg("mc") = blocks64.mc, py::arg("kc") = blocks64.kc,
                                          py::arg("nc") = blocks64.nc);
        gemm_blocks["bfloat16"] = py::dict(py::arg("mc") = pair_blocks.mc, py::arg("kc") = 2 * pair_blocks.kc,
                                           py::arg("nc") = pair_blocks.nc);
        info["gemm_blocks"] = gemm_blocks;
        py::dict kernels;
        kernels["float32"] = bp::active_micro_kernel<float>().name;
        kernels["float64"] = bp::active_micro_kernel<double>().name;
        kernels["bfloat16"] = pairs.name;
        info["gemm_kernel"] = kernels;
        info["amx"] = bp::amx_support().usable ? std::string("usable") : bp::amx_support().why;
        info["gemm_blocks_forced"] = bp::gemm_blocks_forced();
        info["gemm_tile"] = tiles;
        info["small_net_max_weight_bytes"] = bp::SmallNetBackend<bp::Float32>::max_weight_bytes();
        info["small_net_max_batch"] = bp::SmallNetBackend<bp::Float32>::MAX_BATCH;
        // mixed precision's bound on the small path (infinite where bfloat16 is emulated)
        info["small_net_bf16_max_forward_flops"] = bp::SmallNetBackend<bp::MixedBFloat16>::bf16_forward_flops_limit();
        return info;
    }, "The build and what the core chose on this CPU: compiler, flags, instruction sets, caches, blocking.");
    m.def("fma_probe", [](const std::string& isa, const std::string& dtype, long rounds, int threads) {
        if (dtype != "float32" && dtype != "float64" && dtype != "bfloat16")
            throw py::value_error("dtype must be float32, float64 or bfloat16; got '" + dtype + "'");
        const bp::ProbeKind kind = dtype == "float64" ? bp::ProbeKind::f64
                                   : dtype == "bfloat16" ? bp::ProbeKind::bf16 : bp::ProbeKind::f32;
        double checksum = 0, flops = 0;
        {
            py::gil_scoped_release release;
            flops = bp::run_fma_probe(isa, kind, rounds, threads, &checksum);
        }
        return py::make_tuple(flops, checksum);
    }, py::arg("isa"), py::arg("dtype"), py::arg("rounds"), py::arg("threads"),
       "The benchmarks' FMA peak probe: `threads` tasks at once, each `rounds` rounds of independent "
       "register-held FMA chains on isa's vectors (avx512 or avx2); for bfloat16, VDPBF16PS chains (avx512_bf16) or "
       "AMX tiles (amx). Returns (flops done, checksum); "
       "the caller times it.");
    m.def("round_to_bfloat16", [](bp::In<float> x, bp::Out<float> out) {
        const bp::index n = static_cast<bp::index>(x.size());
        float* rounded = bp::output(out, {n}, "out");
        const float* values = x.data();
        py::gil_scoped_release release;
        for (bp::index i = 0; i < n; ++i) rounded[i] = bp::from_bfloat16(bp::to_bfloat16(values[i]));
    }, py::arg("x"), py::arg("out").noconvert(), "out = x rounded to bfloat16 (nearest, ties to even), 1-D float32");
    py::dict names;
    names["activation"] = names_of(bp::ACTIVATION_NAMES);
    names["loss"] = names_of(bp::LOSS_NAMES);
    names["reduction"] = names_of(bp::REDUCTION_NAMES);
    names["optimizer"] = names_of(bp::OPTIMIZER_NAMES);
    names["schedule"] = names_of(bp::SCHEDULE_NAMES);
    names["form"] = names_of(bp::UPDATE_FORM_NAMES);
    m.attr("names") = names;  // the core's name tables (names.h): what each argument may name
    py::list logit_losses;
    for (const auto& loss : bp::LOSS_NAMES)
        if (bp::takes_logits(loss.value)) logit_losses.append(loss.name);
    m.attr("LOGIT_LOSSES") = py::tuple(logit_losses);  // the losses that take the logits (losses.h)
    bp::bind_optim(m);
    py::list precisions;
#define BPFAST_BIND_PRECISION(P) bind_precision<bp::P>(m, precisions);
    BPFAST_FOR_EACH_PRECISION(BPFAST_BIND_PRECISION)
#undef BPFAST_BIND_PRECISION
    m.attr("precisions") = py::tuple(precisions);
}
