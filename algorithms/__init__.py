"""The algorithm files, importable as modules (`from algorithms import crl_infonce`) and run as
scripts (`python algorithms/crl_infonce.py --help`); `algorithms/run/` is the harness they share."""
