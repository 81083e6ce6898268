"""python -m bpfast.sklearn [-m module | script.py] [args ...]: run a Python script
(or, with -m, a module) with scikit-learn patched (bpfast.sklearn.patch()), so
that its ``from sklearn.neural_network import MLPClassifier, MLPRegressor``
trains on bpfast. The script sees sys.argv as if run by ``python script.py args``."""

import os
import runpy
import sys

USAGE = ("usage: python -m bpfast.sklearn [-m module | script.py] [args ...]\n"
         "Runs the script (or module) with bpfast's MLPClassifier and MLPRegressor in place of "
         "scikit-learn's (bpfast.sklearn.patch()).")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    as_module = argv[0] == "-m"
    if as_module:
        argv = argv[1:]
        if not argv:
            print("python -m bpfast.sklearn: -m needs a module name\n" + USAGE, file=sys.stderr)
            return 2
    target = argv[0]
    if not as_module and not os.path.exists(target):
        print(f"python -m bpfast.sklearn: can't open file {target!r}: no such file", file=sys.stderr)
        return 2

    from . import patch

    patch()
    if as_module:
        sys.argv = [target] + argv[1:]  # runpy puts the module's path in argv[0]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(target))  # as `python script.py` sets it
        runpy.run_path(target, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
