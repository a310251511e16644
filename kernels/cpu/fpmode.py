"""Flushing denormal floats to zero while a kernel trains.

Adam's moment estimates decay geometrically wherever a gradient stays near zero (dead ReLU units,
constant input features) and, after some hundreds of steps, sink below float32's smallest normal
number (1.2e-38). Arithmetic on such denormal numbers takes microcode assists on x86 (about 100
cycles each): training the AE workload slowed from 120 to 250 ms per epoch after 20 epochs,
with nearly every first-moment entry denormal. JAX on the CPU and ``torch.set_flush_denormal``
avoid this the same way: the SSE control register's flush-to-zero (FTZ: denormal results become
0) and denormals-are-zero (DAZ: denormal inputs read as 0) bits, set for the duration of a call
on the calling thread and restored before it returns. Only values below 1.2e-38 (float32) or
2.2e-308 (float64) change.
"""

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

FTZ_DAZ = 0x8040  # MXCSR bit 15 (flush to zero) and bit 6 (denormals are zero)
HAS_MXCSR = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_functions(builder):
    i8_ptr = ir.IntType(8).as_pointer()
    fnty = ir.FunctionType(ir.VoidType(), [i8_ptr])
    store = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
    load = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
    return store, load


@intrinsic
def flush_denormals(typingctx):
    """Set FTZ and DAZ on this thread; returns the previous control word for
    :func:`restore_fp_mode` (0, and nothing changed, on CPUs without MXCSR)."""

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not HAS_MXCSR:
            return i32(0)
        store, load = _mxcsr_functions(builder)
        slot = cgutils.alloca_once(builder, i32)
        pointer = builder.bitcast(slot, ir.IntType(8).as_pointer())
        builder.call(store, [pointer])
        previous = builder.load(slot)
        builder.store(builder.or_(previous, i32(FTZ_DAZ)), slot)
        builder.call(load, [pointer])
        return previous

    return types.uint32(), codegen


@intrinsic
def restore_fp_mode(typingctx, previous):
    """Put back the control word returned by :func:`flush_denormals`."""

    def codegen(context, builder, signature, args):
        if HAS_MXCSR:
            _, load = _mxcsr_functions(builder)
            slot = cgutils.alloca_once_value(builder, args[0])
            builder.call(load, [builder.bitcast(slot, ir.IntType(8).as_pointer())])
        return context.get_dummy_value()

    return types.none(types.uint32), codegen
