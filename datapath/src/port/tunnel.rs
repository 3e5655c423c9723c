//! Tunnel vports: ports with no interface and no socket. Output to one encapsulates the packet
//! and sends it on through the underlay bridge (see [`crate::tunnel`]); packets to the local
//! tunnel endpoint are decapsulated and enter the pipeline from one.
//!
//! Configuration comes as OVS's `Interface.options` map, the way ovn-controller writes it
//! (`remote_ip=192.0.2.2 key=flow csum=true`), so the OVSDB reconciler can hand the map over
//! unchanged.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::packet::geneve;

/// The tunnel protocol of a vport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKind {
    Geneve,
}

impl TunnelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Geneve => "geneve",
        }
    }

    /// The OVS `Interface.type` of this kind, if it is one.
    pub fn from_type(t: &str) -> Option<TunnelKind> {
        match t {
            "geneve" => Some(TunnelKind::Geneve),
            _ => None,
        }
    }
}

/// A tunnel endpoint address: fixed, or taken from the flow (`tun_dst` / `tun_src` set by the
/// OpenFlow pipeline on output, reported in them on receive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelIp {
    Fixed(Ipv4Addr),
    Flow,
}

/// The tunnel key (Geneve VNI): fixed, or `tun_id` of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelKey {
    Fixed(u32),
    Flow,
}

/// A tunnel port's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    pub remote_ip: TunnelIp,
    /// `None`: the source address of the route to the remote end.
    pub local_ip: Option<TunnelIp>,
    pub key: TunnelKey,
    pub dst_port: u16,
    /// Compute the outer UDP checksum (else 0, as IPv4 allows).
    pub csum: bool,
    /// Options given but not implemented (ignored; logged when the port is added).
    pub ignored: Vec<String>,
}

fn parse_ip(k: &str, v: &str) -> Result<TunnelIp, String> {
    if v == "flow" {
        return Ok(TunnelIp::Flow);
    }
    v.parse::<Ipv4Addr>().map(TunnelIp::Fixed).map_err(|_| {
        format!("{k}={v:?}: not an IPv4 address or \"flow\" (IPv6 underlays are not supported)")
    })
}

fn parse_key(v: &str) -> Result<TunnelKey, String> {
    if v == "flow" {
        return Ok(TunnelKey::Flow);
    }
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse::<u64>(),
    }
    .map_err(|_| format!("key={v:?}: not a number or \"flow\""))?;
    if n > 0xff_ffff {
        return Err(format!("key={v}: a Geneve VNI has 24 bits"));
    }
    Ok(TunnelKey::Fixed(n as u32))
}

impl TunnelConfig {
    /// Reads OVS-style options. `remote_ip` is required; `in_key`/`out_key` must equal `key`
    /// when given (one key for both directions); options this switch does not implement are
    /// ignored with a warning, as OVS ignores options a tunnel type does not know.
    pub fn from_options(opts: &BTreeMap<String, String>) -> Result<TunnelConfig, String> {
        let mut c = TunnelConfig {
            remote_ip: TunnelIp::Flow,
            local_ip: None,
            key: TunnelKey::Fixed(0),
            dst_port: geneve::UDP_PORT,
            csum: false,
            ignored: Vec::new(),
        };
        let mut remote = false;
        let mut keys = Vec::new();
        for (k, v) in opts {
            let v = v.trim();
            match k.as_str() {
                "remote_ip" => {
                    c.remote_ip = parse_ip(k, v)?;
                    remote = true;
                }
                "local_ip" => c.local_ip = Some(parse_ip(k, v)?),
                "key" | "in_key" | "out_key" => keys.push((k.as_str(), parse_key(v)?)),
                "dst_port" => {
                    c.dst_port = v
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| format!("dst_port={v:?}: not a UDP port"))?
                }
                "csum" => {
                    c.csum = match v {
                        "true" => true,
                        "false" => false,
                        _ => return Err(format!("csum={v:?}: expected true or false")),
                    }
                }
                other => c.ignored.push(format!("{other}={v}")),
            }
        }
        if !remote {
            return Err("remote_ip is required (an IPv4 address or \"flow\")".into());
        }
        if let Some((_, k)) = keys.first() {
            if keys.iter().any(|(_, x)| x != k) {
                return Err(
                    "in_key and out_key differ: only one key for both directions is supported"
                        .into(),
                );
            }
            c.key = *k;
        }
        Ok(c)
    }

    /// The options as `dpif/show` prints them (OVS style: sorted `key=value` pairs).
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if self.csum {
            v.push("csum=true".to_string());
        }
        if self.dst_port != geneve::UDP_PORT {
            v.push(format!("dst_port={}", self.dst_port));
        }
        match self.key {
            TunnelKey::Flow => v.push("key=flow".into()),
            TunnelKey::Fixed(0) => {}
            TunnelKey::Fixed(k) => v.push(format!("key={k}")),
        }
        match self.local_ip {
            Some(TunnelIp::Flow) => v.push("local_ip=flow".into()),
            Some(TunnelIp::Fixed(ip)) => v.push(format!("local_ip={ip}")),
            None => {}
        }
        match self.remote_ip {
            TunnelIp::Flow => v.push("remote_ip=flow".into()),
            TunnelIp::Fixed(ip) => v.push(format!("remote_ip={ip}")),
        }
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ovn_controller_options() {
        let c = TunnelConfig::from_options(&opts(&[
            ("remote_ip", "172.31.0.2"),
            ("key", "flow"),
            ("csum", "true"),
        ]))
        .unwrap();
        assert_eq!(c.remote_ip, TunnelIp::Fixed(Ipv4Addr::new(172, 31, 0, 2)));
        assert_eq!(c.key, TunnelKey::Flow);
        assert!(c.csum);
        assert_eq!(c.dst_port, 6081);
        assert_eq!(c.describe(), "csum=true, key=flow, remote_ip=172.31.0.2");
    }

    #[test]
    fn flow_endpoints_fixed_keys_and_ignored_options() {
        let c = TunnelConfig::from_options(&opts(&[
            ("remote_ip", "flow"),
            ("local_ip", "flow"),
            ("key", "0x10"),
            ("dst_port", "7081"),
            ("tos", "inherit"),
        ]))
        .unwrap();
        assert_eq!(c.remote_ip, TunnelIp::Flow);
        assert_eq!(c.local_ip, Some(TunnelIp::Flow));
        assert_eq!(c.key, TunnelKey::Fixed(16));
        assert_eq!(c.ignored, vec!["tos=inherit".to_string()]);
        assert_eq!(
            c.describe(),
            "dst_port=7081, key=16, local_ip=flow, remote_ip=flow"
        );
    }

    #[test]
    fn bad_options_are_refused_with_reasons() {
        let e = |kv: &[(&str, &str)]| TunnelConfig::from_options(&opts(kv)).unwrap_err();
        assert!(e(&[("key", "flow")]).contains("remote_ip is required"));
        assert!(e(&[("remote_ip", "fe80::1")]).contains("IPv4"));
        assert!(e(&[("remote_ip", "flow"), ("key", "0x1000000")]).contains("24 bits"));
        assert!(e(&[("remote_ip", "flow"), ("dst_port", "0")]).contains("dst_port"));
        assert!(e(&[("remote_ip", "flow"), ("csum", "maybe")]).contains("csum"));
        assert!(e(&[("remote_ip", "flow"), ("in_key", "1"), ("out_key", "2")]).contains("differ"));
    }
}
