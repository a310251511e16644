"""Compile-time feature sets: the kernels a compiled call needs, and nothing else.

The network drivers branch at run time on the layer table's kinds and activation codes, the
loss and the optimizer. Compiled for every branch, a fit of a two-layer ReLU network paid for
batch normalisation, dropout, every activation, loss and optimizer: most of a cold start. A
driver therefore takes a :class:`Features` value as its first argument. Numba types it as
``FeaturesType(mask)``, a type that carries the mask, so every driver is compiled (and cached)
once per feature set. Each optional kernel is reached through :func:`gated`, which compiles to
the kernel when the mask has its bit and to nothing otherwise, and each dispatch on a run-time
code (activation, loss, optimizer) through :func:`switch`, compiled for the mask's codes only.
:data:`ALL` has every bit: with it a driver is the generic one, which serves any network
(``FASTDNN_SPECIALIZE=0``, or a precompiled cache, makes every call use it).

Only the drivers and the gates see a feature set; the kernels behind the gates are compiled
once per argument types and shared by every feature set.
"""

import inspect
import os

from numba import types
from numba.core.imputils import lower_constant
from numba.extending import (
    NativeValue,
    models,
    overload,
    register_model,
    typeof_impl,
    unbox,
)

from .._cache import usable_level
from .._options import OVERLOAD_OPTIONS

# Bit layout of a mask. Activation codes (``activations.py``) take bits 0-15 (one per code),
# layer kinds (``network.py``) 16-23, loss codes (``losses.py``) 24-31, optimizer codes
# (``optimizers.py``) 32-39; bit 40 is gradient clipping.
ACTIVATION_SHIFT = 0
KIND_SHIFT = 16
LOSS_SHIFT = 24
OPTIMIZER_SHIFT = 32
CLIP = 1 << 40
_ALL_MASK = (1 << 41) - 1
LAYER_MASK = (1 << LOSS_SHIFT) - 1  # the activation and kind bits


def activation_bit(code):
    """The mask bit of activation ``code``."""
    return 1 << (ACTIVATION_SHIFT + code)


def kind_bit(kind):
    """The mask bit of layer kind ``kind``."""
    return 1 << (KIND_SHIFT + kind)


def loss_bit(code):
    """The mask bit of loss ``code``."""
    return 1 << (LOSS_SHIFT + code)


def optimizer_bit(code):
    """The mask bit of optimizer ``code``."""
    return 1 << (OPTIMIZER_SHIFT + code)


class Features:
    """A set of kernel features, passed to the compiled drivers (see the module docstring).

    Use :func:`features` to get one: equal masks give the same object.

    Parameters
    ----------
    mask : int
        The OR of the bits of the features included.
    """

    __slots__ = ("mask",)

    def __init__(self, mask):
        self.mask = int(mask)

    def __repr__(self):
        return f"Features({self.mask:#x})"


class FeaturesType(types.Type):
    """Numba's type of a :class:`Features` value; the mask is part of the type."""

    def __init__(self, mask):
        self.mask = int(mask)
        super().__init__(name=f"Features({self.mask:#x})")


@typeof_impl.register(Features)
def _typeof_features(value, context):
    return FeaturesType(value.mask)


@register_model(FeaturesType)
class _FeaturesModel(models.OpaqueModel):
    """No run-time value: everything a driver needs from it is in the type."""


@unbox(FeaturesType)
def _unbox_features(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


@lower_constant(FeaturesType)
def _constant_features(context, builder, typ, value):
    return context.get_dummy_value()


_interned = {}


def _intern(mask):
    found = _interned.get(mask)
    if found is None:
        found = _interned[mask] = Features(mask)
    return found


def specializing():
    """Whether drivers are compiled per feature set: ``FASTDNN_SPECIALIZE=1``, or unset while
    no precompiled cache serves this host (``kernels/_cache.py``; it holds the generic drivers,
    which then load instead of compiling)."""
    setting = os.environ.get("FASTDNN_SPECIALIZE")
    if setting is None:
        return usable_level() is None
    return setting != "0"


def features(mask):
    """The :class:`Features` of ``mask``, or :data:`ALL` when not :func:`specializing`."""
    return _intern(mask if specializing() else _ALL_MASK)


ALL = _intern(_ALL_MASK)


def layer_features(features):
    """The layer part (kinds and activations) of ``features``, in compiled code: the passes
    over the layers take only it, so a fit, an evaluation and a prediction of one network
    share them."""
    raise NotImplementedError("called from compiled kernels only")


@overload(layer_features, inline="always", jit_options=OVERLOAD_OPTIONS)
def _layer_features(features):
    if not isinstance(features, FeaturesType):
        return None
    part = _intern(features.mask & LAYER_MASK)
    return lambda features: part


def _parameters(kernels):
    """The positional parameter names shared by ``kernels`` (njit functions)."""
    names = {tuple(inspect.signature(k.py_func).parameters) for k in kernels}
    if len(names) != 1:
        raise TypeError(f"kernels of one switch take different parameters: {names}")
    return ", ".join(names.pop())


def _build(name, head, cases, params, otherwise, result="return "):
    """Source-built ``(stub, typer)``: ``stub(head..., params...)`` is what compiled code
    calls; ``typer`` picks, per feature set, an implementation that calls ``kernel_i`` when
    ``cases[i][0]`` (an ``if`` condition over ``head``'s names) holds, for the cases whose bit
    (``cases[i][1]``) is in the mask, and runs the statement ``otherwise`` when none holds.
    ``result`` prefixes each kernel call: ``"return "`` passes the kernel's value on."""
    scope = {f"kernel_{i}": kernel for i, (_, _, kernel) in enumerate(cases)}
    exec(f"def stub({head}, {params}):\n    raise NotImplementedError", scope)  # noqa: S102
    stub = scope["stub"]
    stub.__name__ = stub.__qualname__ = name
    impls = {}

    def choose(features):
        if not isinstance(features, FeaturesType):
            return None
        present = tuple(i for i, case in enumerate(cases) if features.mask & case[1])
        if present not in impls:
            source = [f"def impl({head}, {params}):"]
            for i in present:
                source += [f"    if {cases[i][0]}:", f"        {result}kernel_{i}({params})"]
            source.append(otherwise)
            exec("\n".join(source), scope)  # noqa: S102 -- fixed templates
            impls[present] = scope.pop("impl")
        return impls[present]

    scope["choose"] = choose
    exec(f"def typer({head}, {params}):\n    return choose(features)", scope)  # noqa: S102
    return stub, scope["typer"]


def gated(bit, kernel):
    """A function ``gate(features, *args)`` for compiled code: ``kernel(*args)`` when
    ``features`` has ``bit``, else nothing (and ``kernel`` is then never compiled).

    ``kernel`` is an ``njit`` function; the gate takes the same positional parameters after
    ``features`` and returns None either way. Numba inlines it into its caller, so it costs no
    call (its inliner needs named parameters: the source is built from ``kernel``'s).
    """
    params = _parameters([kernel])
    cases = [("True", bit, kernel)]
    name = f"gated_{kernel.__name__}"
    gate, typer = _build(name, "features", cases, params, "    return None", result="")
    overload(gate, inline="always", jit_options=OVERLOAD_OPTIONS)(typer)
    return gate


def switch(bits, kernels):
    """A function ``run(features, code, *args)`` for compiled code: ``kernels[c](*args)`` for
    the run-time ``code == c``, compiled only for the codes whose ``bits[c]`` is in
    ``features``; returns what the kernel returns. A code outside ``features`` (or unknown)
    raises ValueError.

    Parameters
    ----------
    bits, kernels : dict
        Code to mask bit and code to ``njit`` kernel; every kernel takes the same positional
        parameters.
    """
    params = _parameters(kernels.values())
    cases = [(f"code == {code}", bits[code], kernel) for code, kernel in kernels.items()]
    name = "switch_" + "_".join(k.__name__ for k in kernels.values())
    # A code left out means a feature set that does not match its network: an error, never
    # another kernel's result.
    otherwise = f"    raise ValueError({name + ': code not in the compiled feature set'!r})"
    run, typer = _build(name, "features, code", cases, params, otherwise)
    overload(run, inline="always", jit_options=OVERLOAD_OPTIONS)(typer)
    return run
