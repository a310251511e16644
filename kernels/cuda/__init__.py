"""CUDA kernels (see fastdnn.backends.cuda); empty until the CUDA device lands."""
