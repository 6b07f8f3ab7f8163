"""Every option with a fixed set of values, in one place: the layers that use a set import it from here, and
the CLI offers exactly these (so a typo is refused with the list, never read as a default). No imports: the
CLI loads this module on every start."""

ON_ERROR = ("raise", "skip")                    # a malformed input row stops the run, or is skipped and counted
FORMATS = ("jsonl", "csv", "tsv", "parquet", "lines", "eml", "mbox", "html",  # --format (default: by file name
           "auditd", "winxml", "evtx")                                          # or, for logs, by content)
MODES = ("best_guess", "high_confidence")       # decision thresholds a model folder carries
DTYPES = ("float32", "float16", "int8")         # stored weights
ENDPOINTS = ("completions", "chat")             # OpenAI-compatible teacher API
STRATEGIES = ("random", "uncertainty", "diversity", "dedup", "combined", "cluster", "density", "mixed")  # what to ask the teacher
DEFAULT_STRATEGY = "random"  # measured on telemetry: bench/selection_curves.py, docs/benchmarks.md
COMBINE_RULES = ("equal", "learned")            # teacher with students
TARGETS = ("raw", "calibrated", "combined")     # what the distilled student learns on teacher rows
NOISY = ("keep", "drop", "relabel", "downweight")  # seed rows a confident teacher contradicts
STUDENTS = ("linear", "cnn")                    # the distilled student's family
