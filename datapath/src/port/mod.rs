//! Port backends. Today: AF_XDP on any Linux interface (veth, tap, NICs), see [`afxdp`], and
//! the bridge's LOCAL port (OVS's internal port) on top of it, see [`local`]. Tunnel vports
//! (Geneve) have no interface: see [`tunnel`]. Patch ports come with the OVSDB work.

pub mod afxdp;
pub mod local;
pub mod tap;
pub mod tunnel;

pub use self::afxdp::{AttachMode, XdpPort};
pub use self::local::LocalPort;
pub use self::tap::TapPort;
pub use self::tunnel::{TunnelConfig, TunnelKind};

/// A network device the switch created for a port and removes with it: the host end of an
/// internal port (the bridge's LOCAL port or another `type=internal` interface) or a tap.
#[derive(Debug)]
pub enum OwnedDev {
    Internal(LocalPort),
    Tap(TapPort),
}

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
