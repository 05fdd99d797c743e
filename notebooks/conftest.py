"""nbval settings for the course notebooks (``make nbval``).

What native libraries print on stderr (TensorFlow's and oneDNN's C++ logs, e.g. "oneDNN
supports DT_UINT8 only on platforms with AVX-512") depends on the CPU and on which cell
first runs a kernel, so checked cells compare stdout and results, never stderr.
"""


def pytest_collection_modifyitems(items):
    for item in items:
        notebook = item.parent
        if hasattr(notebook, "skip_compare") and "stderr" not in notebook.skip_compare:
            notebook.skip_compare = (*notebook.skip_compare, "stderr")
