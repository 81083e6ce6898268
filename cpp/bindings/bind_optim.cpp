// Binding of the optimizer's settings (model/optim.h OptimizerConfig) as
// _core.OptimizerConfig: one class with the struct's named fields, which
// bpfast.optim's objects fill and every engine's set_optimizer takes. The
// enum fields read and write their names (names.h).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/bind_common.h"
#include "model/optim.h"
#include "names.h"

namespace py = pybind11;

namespace bpfast {
namespace {

template <typename E, std::size_t N>
std::string name_of(const Named<E> (&table)[N], E value) {
    for (const Named<E>& entry : table)
        if (entry.value == value) return entry.name;
    return "?";
}

// The class and its field names in the struct's order.
struct ConfigClass {
    py::class_<OptimizerConfig> cls;
    std::vector<const char*> fields;

    template <typename V>
    void field(const char* name, V OptimizerConfig::*member, const char* doc) {
        cls.def_readwrite(name, member, doc);
        fields.push_back(name);
    }

    template <typename E, std::size_t N>
    void named(const char* name, E OptimizerConfig::*member, const Named<E> (&table)[N], const char* doc) {
        cls.def_property(
            name, [member, &table](const OptimizerConfig& c) { return name_of(table, c.*member); },
            [member, &table, name](OptimizerConfig& c, const std::string& value) {
                c.*member = from_name(table, value, name);
            },
            doc);
        fields.push_back(name);
    }
};

}  // namespace

std::optional<double> base_rate(py::handle lr) {
    if (lr.is_none()) return std::nullopt;
    double value = -1.0;
    if (PyFloat_Check(lr.ptr())) {
        value = PyFloat_AS_DOUBLE(lr.ptr());
    } else if (!PyBool_Check(lr.ptr()) && py::isinstance(lr, py::module_::import("numbers").attr("Real"))) {
        value = PyFloat_AsDouble(lr.ptr());
        if (value == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    }
    if (!is_base_rate(value))
        throw py::value_error("lr must be a finite positive number; got " + std::string(py::repr(lr)));
    return value;
}

void bind_optim(py::module_ m) {
    m.def("base_rate", &base_rate, py::arg("lr"),
          "lr as a training call takes it: None (the optimizer's own rate) or a finite positive number, "
          "as a float; ValueError naming lr otherwise");
    ConfigClass c{py::class_<OptimizerConfig>(
                      m, "OptimizerConfig",
                      "An optimizer's settings as the core keeps them (model/optim.h); bpfast.optim's optimizers "
                      "make one (settings()), and set_optimizer takes it. OptimizerConfig(**settings) starts from "
                      "the core's defaults."),
                  {}};
    c.named("kind", &OptimizerConfig::kind, OPTIMIZER_NAMES, "sgd, adam or adamw");
    c.field("lr", &OptimizerConfig::lr, "the base learning rate");
    c.field("momentum", &OptimizerConfig::momentum, "SGD's momentum");
    c.field("nesterov", &OptimizerConfig::nesterov, "SGD's Nesterov momentum");
    c.field("beta1", &OptimizerConfig::beta1, "Adam's first-moment decay");
    c.field("beta2", &OptimizerConfig::beta2, "Adam's second-moment decay");
    c.field("eps", &OptimizerConfig::eps, "Adam's epsilon");
    c.field("weight_decay", &OptimizerConfig::weight_decay, "L2 for SGD and Adam, decoupled for AdamW");
    c.field("decay_bias", &OptimizerConfig::decay_bias, "whether biases decay too");
    c.field("clip_norm", &OptimizerConfig::clip_norm, "the global gradient norm to clip to; 0 turns it off");
    c.named("schedule", &OptimizerConfig::schedule, SCHEDULE_NAMES, "constant, step or inverse_scaling");
    c.field("step_size", &OptimizerConfig::step_size, "step: epochs between decays");
    c.field("gamma", &OptimizerConfig::gamma, "step: the decay factor");
    c.field("power_t", &OptimizerConfig::power_t, "inverse_scaling: the exponent");
    c.named("form", &OptimizerConfig::form, UPDATE_FORM_NAMES,
            "pytorch, or sklearn for the momentum and Adam updates of scikit-learn's MLP solvers");

    py::tuple fields(c.fields.size());
    for (size_t i = 0; i < c.fields.size(); ++i) fields[i] = py::str(c.fields[i]);
    c.cls.attr("fields") = fields;
    c.cls.def(py::init([](const py::kwargs& settings) {
        const py::object fields = py::type::of<OptimizerConfig>().attr("fields");
        OptimizerConfig config;
        py::object view = py::cast(&config, py::return_value_policy::reference);
        for (auto [key, value] : settings) {
            if (!fields.contains(key))
                throw py::type_error("OptimizerConfig has no setting " + std::string(py::repr(key)));
            view.attr(key) = value;
        }
        return config;
    }));
    c.cls.def("__repr__", [](py::object self) {
        const py::tuple fields = self.attr("fields");
        std::string text = "OptimizerConfig(";
        for (size_t i = 0; i < fields.size(); ++i)
            text += (i ? ", " : "") + fields[i].cast<std::string>() + "=" +
                    std::string(py::repr(self.attr(fields[i])));
        return text + ")";
    });
}

}  // namespace bpfast
