//! Run-time choice of the instruction set the kernels use.

use std::sync::OnceLock;

/// An instruction set the vec-dot kernels are written for.
///
/// [`Isa::detect`] picks the best one this CPU supports; tests and benches pass the others
/// explicitly to compare paths. Kernels without a variant for some ISA use the next lower one
/// (AVX-512 falls back to AVX2, AVX2 to scalar).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust, the reference definition of every kernel.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (Haswell and later).
    Avx2,
    /// x86-64 with AVX-512 F, BW, VL and VNNI on top of [`Isa::Avx2`] (Ice Lake, Zen 4 and later).
    Avx512,
    /// aarch64 with NEON. NOTE: no kernel has a NEON version at present, so this selects the
    /// portable code, which gives the same bits as the x86-64 kernels.
    Neon,
}

impl Isa {
    /// Every variant, best last.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// Returns the best instruction set this CPU supports, detected once and cached.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();

        *DETECTED.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2, Isa::Neon]
                .into_iter()
                .find(|isa| isa.is_supported())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Returns true when this CPU can run kernels written for `self`.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2 => avx2_supported(),
            Isa::Avx512 => avx512_supported(),
            Isa::Neon => neon_supported(),
        }
    }

    /// Returns the supported instruction sets of this CPU, scalar first.
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_supported()).collect()
    }

    /// Returns `self` when supported, else the best supported ISA below it.
    #[inline]
    pub(crate) fn resolve(self) -> Isa {
        match self {
            Isa::Avx512 if avx512_supported() => Isa::Avx512,
            Isa::Avx512 | Isa::Avx2 if avx2_supported() => Isa::Avx2,
            Isa::Neon if neon_supported() => Isa::Neon,
            _ => Isa::Scalar,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();

    *SUPPORTED.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

#[cfg(target_arch = "x86_64")]
fn avx512_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();

    *SUPPORTED.get_or_init(|| {
        avx2_supported()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_supported() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512_supported() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn neon_supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();

    *SUPPORTED.get_or_init(|| {
        std::arch::is_aarch64_feature_detected!("neon")
    })
}

#[cfg(not(target_arch = "aarch64"))]
fn neon_supported() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_is_supported() {
        assert!(Isa::detect().is_supported());
        assert!(Isa::Scalar.is_supported());
    }

    #[test]
    fn resolve_never_returns_unsupported() {
        for isa in Isa::ALL {
            assert!(isa.resolve().is_supported(), "{isa:?}");
        }
    }
}
