//! Port backends. Today: AF_XDP on any Linux interface (veth, tap, NICs), see [`afxdp`].
//! Internal ports, patch ports and tunnel vports come with the OVSDB and Geneve work.

pub mod afxdp;

pub use self::afxdp::{AttachMode, XdpPort};

/// Port errors, each naming the interface.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("port {port}: {source}")]
    Xdp {
        port: String,
        #[source]
        source: ::afxdp::Error,
    },
    #[error("port {port}: {msg}")]
    Other { port: String, msg: String },
}
