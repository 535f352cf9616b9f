//! Plane reductions over `lanes`-lane planes: CubeCL's `plane_*` on GPUs (32-lane warps), the
//! value itself where a plane has one lane — CubeCL's CPU runtime, which lowers no plane
//! reductions, and where dsocr's kernels are tested without a GPU (docs/gpu.md).
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// The sum over the plane.
#[cube]
pub(super) fn lanes_sum<E: CubePrimitive<Scalar: PlaneNumeric>>(value: E, #[comptime] lanes: u32) -> E {
    let mut out = value;
    if comptime!(lanes > 1) {
        out = plane_sum(value);
    }
    out
}

/// The sum over the plane's lower lanes (0 in lane 0).
#[cube]
pub(super) fn lanes_exclusive_sum<E: CubePrimitive<Scalar: PlaneNumeric>>(value: E, #[comptime] lanes: u32) -> E {
    let mut out = E::cast_from(0u32);
    if comptime!(lanes > 1) {
        out = plane_exclusive_sum(value);
    }
    out
}

/// The maximum over the plane.
#[cube]
pub(super) fn lanes_max<E: CubePrimitive<Scalar: PlaneNumeric>>(value: E, #[comptime] lanes: u32) -> E {
    let mut out = value;
    if comptime!(lanes > 1) {
        out = plane_max(value);
    }
    out
}

/// The minimum over the plane.
#[cube]
pub(super) fn lanes_min<E: CubePrimitive<Scalar: PlaneNumeric>>(value: E, #[comptime] lanes: u32) -> E {
    let mut out = value;
    if comptime!(lanes > 1) {
        out = plane_min(value);
    }
    out
}
