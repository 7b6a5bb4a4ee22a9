"""Hardware measurements of a candidate: latency and peak memory on the device a search targets.

* :mod:`nas.hardware.context` says where and how a measurement is made (device, its name,
  threads, batch, precision, memory format, torch version): a study records it, and refuses to
  continue on another kind of device unless asked to measure again.
* :mod:`nas.hardware.measure` measures a candidate, before training: latency with
  ``torch.utils.benchmark.Timer`` (warm-up, then the median of at least 30 synchronised
  runs), peak memory with ``torch.cuda.max_memory_allocated`` on CUDA and, on CPU, an
  estimate from the tensor sizes a forward pass allocates.
* :mod:`nas.hardware.cache` keeps measurements in the study, by architecture and context, so
  that a repeated architecture is not measured again and every worker shares them.
"""
