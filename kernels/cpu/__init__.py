"""CPU kernels: @njit functions over arrays and scalars, writing into caller-owned buffers."""
