"""What this CPU is, as /proc/cpuinfo describes it: its model name (for show_config and the
tuning cache's key) and its family (for the built-in table of GEMM kernels)."""

import platform


def _fields():
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def model_name():
    """The CPU's model name, or what the platform module says where Linux does not."""
    return _fields().get("model name") or platform.processor() or platform.machine()


def identity():
    """The model name with the vendor's family, model and stepping numbers where Linux gives them:
    a virtual machine may name several generations alike ("AMD EPYC"), and a home folder shared
    by a cluster's nodes may see them all."""
    fields = _fields()
    numbers = "/".join(fields.get(key, "?") for key in ("cpu family", "model", "stepping"))
    return model_name() + (f" (family/model/stepping {numbers})" if "cpu family" in fields else "")


def family_of(fields):
    """One of "zen3", "zen4", "zen5", "amd_other", "intel_server", "intel_client" or "other",
    from the fields of /proc/cpuinfo (vendor_id, cpu family, model name, flags)."""
    vendor = fields.get("vendor_id", "")
    try:
        number = int(fields.get("cpu family", ""))
    except ValueError:
        number = -1
    if vendor == "AuthenticAMD":
        if number == 0x19:  # Zen 3 and Zen 4 share a family number; only Zen 4 has AVX-512
            return "zen4" if "avx512f" in fields.get("flags", "").split() else "zen3"
        return "zen5" if number == 0x1A else "amd_other"
    if vendor == "GenuineIntel":
        return "intel_server" if "xeon" in fields.get("model name", "").lower() else "intel_client"
    return "other"


def family():
    """This CPU's family, as family_of names them."""
    return family_of(_fields())
