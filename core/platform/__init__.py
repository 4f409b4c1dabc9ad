"""What this machine can run: CPU stand-ins for Megatron-Core's CUDA-only code paths
(``cpu_shims``, ``cpu_shims_moe``) and the check that refuses GPU-only features here (``machine``)."""
