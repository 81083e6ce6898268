"""The workers: child processes, the FMA and BLAS probes, and the plain numpy competitor."""
