"""Settings of the notebook session itself: Binder's memory, idle kernels, the kernel's malloc."""

# --- the notebook session's memory (livecell_kit.kernels, course.setup) ---------------------------
#: What mybinder.org gives one user's session in all (MB); above it the kernels are restarted.
BINDER_MEMORY_MB = 2048
#: ``course.setup()`` warns when the other kernels of the session hold more than this (MB): a
#: notebook with TensorFlow peaks near 1 GB, so beyond ~0.5 GB elsewhere the two no longer fit.
OTHER_KERNELS_WARN_MB = 500
#: Binder's Jupyter server shuts a kernel down after this many seconds without a cell run (its
#: notebook reruns from the top, reloading what earlier notebooks saved), checking every
#: ``KERNEL_CULL_INTERVAL_S``; a kernel busy training is never shut down.
KERNEL_CULL_IDLE_S = 20 * 60
KERNEL_CULL_INTERVAL_S = 60

# --- the kernel's malloc (kernels.limit_malloc) -----------------------------------------------------
#: glibc malloc settings of a notebook kernel that loads TensorFlow (``course.setup``): at most this
#: many malloc heaps ("arenas") for all threads, instead of up to 8 per core, each hoarding what its
#: threads freed ...
KERNEL_MALLOC_ARENAS = 2
#: ... and blocks of this many bytes or more (training tensors: a 8×128×128×8 float32 activation is
#: 4 MiB) mapped on their own, so that freeing one returns it to the system at once; glibc would
#: otherwise raise this threshold to the largest block freed so far and keep such blocks in its heaps.
#: Measured on notebook 04's training (2 epochs of quick on the sample, 2 cores): the kernel's peak
#: resident memory 1193 MB with glibc's defaults, 1147 MB with 2 arenas, 1035 MB with both settings.
KERNEL_MALLOC_MMAP_THRESHOLD = 2**20
