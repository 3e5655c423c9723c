//! AF_XDP and XDP over raw syscalls.
//!
//! Why our own instead of xsk-rs/libxdp: libxdp needs a C toolchain and m4 to build, loads a
//! dispatcher program that fails with EPERM in containers whose memlock limit cannot be raised,
//! and makes one out-of-line FFI call per descriptor. The kernel ABI we need is small: four
//! mmapped rings, a UMEM registration, a five-instruction redirect program and `BPF_LINK_CREATE`
//! (the link goes away with the process, so a killed daemon leaves nothing behind).
//!
//! Every `unsafe` block in the project that touches rings, UMEM or syscalls lives in this crate
//! and carries a `// SAFETY:` comment.

pub mod asm;
pub mod bpf;
pub mod netdev;
pub mod netlink;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod umem;

pub use ring::{ConsRing, ProdRing};
pub use socket::{BindMode, XskConfig, XskSocket};
pub use sys::{XdpDesc, XdpStatistics};
pub use umem::Umem;

/// Errors from the AF_XDP / BPF layer, each naming the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: {source}")]
    Sys {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no network interface named {0:?}")]
    NoSuchInterface(String),
    #[error("BPF verifier rejected program {name}: {source}; log: {log}")]
    Verifier {
        name: String,
        source: std::io::Error,
        log: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn last(op: &'static str) -> Self {
        Error::Sys {
            op,
            source: std::io::Error::last_os_error(),
        }
    }

    /// The errno behind a syscall failure, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Sys { source, .. } | Error::Verifier { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a negative syscall return into the current errno.
pub(crate) fn cvt(op: &'static str, r: i64) -> Result<i64> {
    if r < 0 {
        Err(Error::last(op))
    } else {
        Ok(r)
    }
}
